"""The compose stack as ops run it: build offline, up until healthy, one real job, down clean.

``docker compose up -d --build --wait gateway`` builds the gateway image from the locally
bootstrapped base (``BASE_IMAGE``) and the host-downloaded wheelhouse (no network inside the
build), starts it with the Docker socket and an API key (``PYTHON_CODE_API_KEYS``, hashed),
and waits for its healthcheck. A script then runs over HTTP, with the key, in a sibling
runner container with an uploaded file and returns an artifact;
``/metrics`` must have counted it, the JSON logs must carry the request id, the audit log
must hold the run, and ``docker compose down`` must leave no container of ours behind.

The runner image is the one ``python-coder build-runner`` made (the test does not rebuild it
through compose: same Dockerfile, minutes of work). Needs ``docker compose`` v2
(``.ci/install-compose.sh``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from service.auth.keys import new_key
from service.auth.permissions import Role
from service.executors.base import CONTAINER_LABEL, JOB_LABEL
from service.settings import get_settings
from tests.deploy.gateway import REPO, free_port

pytestmark = pytest.mark.docker

BASE_IMAGE = os.environ.get("PYTHON_CODER_BASE_IMAGE", "python-coder-base:bookworm")
WHEELHOUSE = ".cache/gateway-wheelhouse"
GATEWAY_IMAGE = "python-coder-gateway:compose-test"

SCRIPT = """\
import pandas as pd
import matplotlib.pyplot as plt

df = pd.read_csv("sales.csv")
totals = df.groupby("region")["amount"].sum()
print(totals.to_dict())
ax = totals.plot.bar()
plt.savefig("totals.png")
"""


def compose_problem() -> str | None:
    try:
        done = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker CLI unusable: {exc}"
    if done.returncode != 0:
        return "docker compose v2 missing: run .ci/install-compose.sh"
    return None


def base_image_problem(client: docker.DockerClient) -> str | None:
    try:
        client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        return f"base image {BASE_IMAGE} missing: python-coder build-runner --bootstrap-base"
    return None


class Stack:
    """One compose project with its own name and port, so it never touches a real deployment."""

    def __init__(self, tmp: Path) -> None:
        self.project = f"pyc-test-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        gid = os.stat("/var/run/docker.sock").st_gid if Path("/var/run/docker.sock").exists() else 0
        self.key, self.key_record = new_key(Role.DATA_SCIENTIST)
        record = self.key_record
        self.env = {
            **os.environ,
            "COMPOSE_PROJECT_NAME": self.project,
            "BASE_IMAGE": BASE_IMAGE,
            "GATEWAY_WHEELHOUSE": WHEELHOUSE,
            "GATEWAY_IMAGE": GATEWAY_IMAGE,
            "GATEWAY_PORT": str(self.port),
            "DOCKER_GID": str(gid),
            "PYTHON_CODE_API_KEYS": f"{record.role.value}:{record.id}:{record.hash}",
            "PYTHON_CODE_IMAGE": get_settings().image,
            "PYTHON_CODE_ENGINE": "docker",
        }
        self.log = tmp / "compose.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        done = subprocess.run(
            ["docker", "compose", "-f", str(REPO / "compose.yaml"), *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        with self.log.open("a") as fh:
            fh.write(f"$ docker compose {' '.join(args)}\n{done.stdout}\n{done.stderr}\n")
        if check and done.returncode != 0:
            raise AssertionError(
                f"docker compose {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done.stdout


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    problem = compose_problem()
    if problem is None:
        client = docker.from_env(timeout=30)
        try:
            problem = base_image_problem(client)
        finally:
            client.close()
    if problem is None and not any((REPO / WHEELHOUSE).glob("*.whl")):
        # The air-gapped path: wheels downloaded on the host beforehand (tests use no network).
        problem = f"gateway wheelhouse {WHEELHOUSE} empty: run .ci/gateway-wheelhouse.sh"
    if problem is not None:
        if os.environ.get("REQUIRE_DOCKER") == "1":
            pytest.fail(problem)
        pytest.skip(problem)
    s = Stack(tmp_path)
    try:
        yield s
    finally:
        s.compose("down", "--volumes", "--remove-orphans", "--timeout", "30", check=False)


def test_compose_stack_runs_a_job_end_to_end(stack: Stack, tmp_path: Path) -> None:
    client = docker.from_env(timeout=60)
    project_label = f"com.docker.compose.project={stack.project}"

    # Both images are declared; the runner one is build-only (scale 0): `up` never starts it.
    services = stack.compose("config", "--services").split()
    assert sorted(services) == ["gateway", "runner"]

    started = time.monotonic()
    stack.compose("up", "-d", "--build", "--wait", "--wait-timeout", "120", "gateway", timeout=600)
    up_s = time.monotonic() - started
    print(f"compose up --build --wait: {up_s:.1f}s")

    gateway = client.containers.list(filters={"label": project_label})
    assert [c.labels["com.docker.compose.service"] for c in gateway] == ["gateway"]
    assert gateway[0].attrs["State"]["Health"]["Status"] == "healthy"
    assert gateway[0].attrs["Config"]["User"] == "coder"

    request_id = f"compose-{uuid.uuid4().hex[:8]}"
    csv = b"region,amount\nnorth,10\nsouth,5\nnorth,3\n"
    with httpx.Client(base_url=stack.url, timeout=180) as http:
        ready = http.get("/readyz")
        assert ready.status_code == 200
        # No bubblewrap in the container: the intake workers' fallback, shown, not silent.
        intake = ready.json()["intake_sandbox"]
        assert intake["mode"] == "confined" and "seccomp-no-sockets" in intake["labels"]
        assert http.post("/v1/execute", data={"code": SCRIPT}).status_code == 401
        http.headers["Authorization"] = f"Bearer {stack.key}"
        response = http.post(
            "/v1/execute",
            data={"code": SCRIPT},
            files=[("files", ("sales.csv", csv, "text/csv"))],
            headers={"X-Request-ID": request_id},
        )
        assert response.status_code == 200, response.text
        assert response.headers["x-request-id"] == request_id
        body = response.json()
        assert body["success"], body
        assert body["engine"] == "docker"
        assert "'north': 13" in body["output"]
        assert body["input_files"] == ["sales.csv"]
        [artifact] = body["artifacts"]
        assert artifact["name"] == "totals.png"
        png = http.get(artifact["url"])
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG\r\n\x1a\n")

        metrics = http.get("/metrics").text
    assert metric(metrics, "python_coder_executions_total", engine="docker", outcome="success") >= 1
    assert metric(metrics, "python_coder_upload_bytes_total") >= len(csv)
    assert metric(metrics, "python_coder_phase_seconds_count", phase="execute") >= 1
    assert metric(metrics, "python_coder_active_containers") == 0

    # The same gateway through the CLI: `python-coder run --url`.
    script = tmp_path / "cli.py"
    script.write_text(
        "print(open('sales.csv').read().count('north'))\nopen('n.txt','w').write('2')\n"
    )
    data = tmp_path / "sales.csv"
    data.write_bytes(csv)
    out = tmp_path / "out"
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "service.cli",
            "run",
            str(script),
            "--file",
            str(data),
            "--url",
            stack.url,
            "--out",
            str(out),
            "--api-key",
            stack.key,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert cli.stdout.strip() == "2" and (out / "n.txt").read_text() == "2"

    # Structured logs: JSON lines, the request id on the lines the request caused.
    logs = stack.compose("logs", "--no-color", "--no-log-prefix", "gateway")
    records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert records, logs[-2000:]
    mine = [r for r in records if r.get("request_id") == request_id]
    assert {"request", "execution finished"} <= {r["msg"] for r in mine}, mine
    # The audit log, where ops read it: the artifacts volume.
    audit = stack.compose("exec", "-T", "gateway", "cat", "/data/audit.jsonl")
    entries = [json.loads(line) for line in audit.splitlines()]
    [entry] = [e for e in entries if e["request_id"] == request_id]
    assert entry["engine"] == "docker" and entry["outcome"] == "success"
    assert entry["input_files"] == [{"name": "sales.csv", "size": len(csv)}]
    key_id = stack.key_record.id
    assert (entry["caller"], entry["key_id"], entry["role"]) == (
        f"key:{key_id}",
        key_id,
        "data_scientist",
    )
    assert stack.key not in audit and stack.key not in logs
    assert "SERVING WITHOUT AUTHENTICATION" not in logs

    job_ids = {e["job_id"] for e in entries}
    assert body["id"] in job_ids and len(job_ids) == 2  # the HTTP job and the CLI's

    stack.compose("down", "--volumes", "--timeout", "30")
    assert not client.containers.list(all=True, filters={"label": project_label})
    # No runner container of this gateway's jobs is left (other suites may share the engine,
    # so the check is by job id rather than by the label alone).
    left = [
        c.name
        for c in client.containers.list(all=True, filters={"label": CONTAINER_LABEL})
        if c.labels.get(JOB_LABEL) in job_ids
    ]
    assert left == []
    client.close()


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{.*\})?\s+(\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return 0.0
