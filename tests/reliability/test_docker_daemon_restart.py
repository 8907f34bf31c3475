"""The Docker daemon goes away mid-load and comes back: a real gateway on a private daemon.

In-flight jobs answer a retryable 503 (``Retry-After``), never a 500 and never after their
timeout; ``/readyz`` is red while the daemon is down and ``/healthz`` stays green; once the
daemon is back the same gateway process runs scripts again, its warm pool refills, and no
container, process or job dir of the outage is left.

The daemon is the test's own (``PrivateDockerd``): the host's engine, which other suites
share, is never stopped. It needs root and a dockerd binary; without them the test skips,
unless ``REQUIRE_PRIVATE_DOCKERD=1`` (CI), where it fails instead.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from service.executors.base import CONTAINER_LABEL
from service.settings import get_settings
from tests.conftest import private_dockerd_missing
from tests.deploy.gateway import GatewayProcess
from tests.reliability.private_dockerd import (
    PrivateDockerd,
    host_runtimes,
    private_dockerd_problem,
)

pytestmark = pytest.mark.docker  # the runner image comes from the host's engine

POOL = 2
SLOTS = 3
IN_FLIGHT = 5  # more than the slots: some wait in the queue when the daemon dies
SLEEPER = "import time\nprint('started', flush=True)\ntime.sleep(60)\n"
SCRIPT_TIMEOUT_S = 90  # far beyond the answers this test waits for
ANSWER_WITHIN_S = 20  # after the daemon died


@pytest.fixture(scope="module")
def dockerd() -> Iterator[PrivateDockerd]:
    problem = private_dockerd_problem()
    if problem is not None:
        private_dockerd_missing(problem)
    daemon = PrivateDockerd(runtimes=host_runtimes())
    host_bridge = Path("/sys/class/net/docker0").exists()
    try:
        try:
            started = daemon.start()
        except RuntimeError as exc:
            private_dockerd_missing(f"a private Docker daemon does not start here: {exc}")
        loaded = daemon.load_image(get_settings().image)
        print(f"private dockerd up in {started:.1f} s, runner image loaded in {loaded:.1f} s")
        yield daemon
    finally:
        daemon.close()
    assert not daemon.root.exists(), f"{daemon.root} left behind"
    assert not daemon.mounts(), daemon.mounts()
    assert not daemon.cgroup_tasks(), daemon.cgroup_tasks()
    # The host engine's default bridge is not the private daemon's to touch.
    assert Path("/sys/class/net/docker0").exists() == host_bridge


@pytest.fixture
def gateway(dockerd: PrivateDockerd, tmp_path: Path) -> Iterator[GatewayProcess]:
    env = {
        "DOCKER_HOST": dockerd.host,
        "PYTHON_CODE_ENGINE": "docker",
        "PYTHON_CODE_IMAGE": get_settings().image,
        "PYTHON_CODE_EXECUTION_DIR": str(tmp_path / "exec"),
        "PYTHON_CODE_POOL_MIN": str(POOL),
        "PYTHON_CODE_POOL_MAX": str(POOL),
        "PYTHON_CODE_MAX_CONCURRENT_RUNS": str(SLOTS),
        "PYTHON_CODE_LOG_LEVEL": "INFO",
    }
    process = GatewayProcess(env, tmp_path / "gateway.log")
    try:
        process.start()
        yield process
        assert process.terminate(60) in (0, -signal.SIGTERM), process.logs()[-3000:]
    finally:
        process.stop()
    if not dockerd.answers():  # the test failed during the outage: close() clears up
        return
    # Stopped, the gateway leaves no container, no container process and no shim behind.
    wait_for(lambda: not ours(dockerd), "no container left", 15)
    wait_for(lambda: not dockerd.cgroup_tasks(), "no container process left", 15)
    wait_for(lambda: not dockerd.shims(), "no shim left", 15)


@dataclass
class Answer:
    status: int | None = None
    body: dict[str, object] | None = None
    retry_after: str | None = None
    error: str | None = None
    at: float = 0.0  # monotonic


def post_sleepers(gateway: GatewayProcess, n: int) -> tuple[list[Answer], list[threading.Thread]]:
    answers = [Answer() for _ in range(n)]

    def call(answer: Answer) -> None:
        try:
            r = httpx.post(
                gateway.url + "/v1/execute",
                json={"code": SLEEPER, "timeout_s": SCRIPT_TIMEOUT_S},
                timeout=SCRIPT_TIMEOUT_S + 30,
            )
            answer.status, answer.body = r.status_code, r.json()
            answer.retry_after = r.headers.get("retry-after")
        except (httpx.HTTPError, ValueError) as exc:
            answer.error = repr(exc)
        answer.at = time.monotonic()

    threads = [threading.Thread(target=call, args=(a,), daemon=True) for a in answers]
    for t in threads:
        t.start()
    return answers, threads


def wait_for(predicate: Callable[[], bool], what: str, limit_s: float) -> float:
    """Poll until ``predicate``; returns the seconds it took."""
    began = time.monotonic()
    while not predicate():
        assert time.monotonic() - began < limit_s, f"not within {limit_s} s: {what}"
        time.sleep(0.2)
    return time.monotonic() - began


def pool_size(gateway: GatewayProcess) -> int:
    text = httpx.get(gateway.url + "/metrics", timeout=10).text
    found = re.search(r'^python_coder_pool_size\{engine="docker"\} (\S+)$', text, re.M)
    return int(float(found.group(1))) if found else 0


def readyz(gateway: GatewayProcess) -> httpx.Response:
    return httpx.get(gateway.url + "/readyz", timeout=30)


def ours(dockerd: PrivateDockerd) -> list[dict[str, object]]:
    return [c for c in dockerd.containers() if CONTAINER_LABEL in (c.get("Labels") or {})]  # type: ignore[operator]


def assert_retryable_503(answer: Answer) -> None:
    assert answer.error is None, answer.error
    assert answer.status == 503, (answer.status, answer.body)
    assert answer.body is not None
    assert answer.body["error"] == "EngineUnavailable", answer.body
    assert "retry" in str(answer.body["message"]).lower(), answer.body
    assert answer.retry_after is not None and int(answer.retry_after) > 0, answer


@pytest.mark.parametrize(
    ("sig", "with_containerd"),
    [
        pytest.param(signal.SIGTERM, False, id="sigterm"),
        # A crash: the daemon and its containerd die at once; the containers (under their
        # shims) keep running until the restarted daemon kills them.
        pytest.param(signal.SIGKILL, True, id="sigkill"),
    ],
)
def test_a_daemon_restart_mid_load_answers_503_and_recovers(
    dockerd: PrivateDockerd,
    gateway: GatewayProcess,
    sig: signal.Signals,
    with_containerd: bool,
) -> None:
    assert readyz(gateway).status_code == 200
    wait_for(lambda: pool_size(gateway) == POOL, "the pool fills", 90)

    # Load: every slot runs a script (two of them in pooled sandboxes), the rest wait.
    answers, threads = post_sleepers(gateway, IN_FLIGHT)
    wait_for(
        lambda: readyz(gateway).json()["queue"]["running"] == SLOTS,
        "the slots are busy",
        60,
    )
    # The pool refilled after its hits: idle sandboxes die in the outage too.
    wait_for(
        lambda: sum(c["State"] == "running" for c in ours(dockerd)) >= SLOTS + POOL,
        "the scripts run and the pool refills",
        60,
    )
    time.sleep(1.0)  # the requests are delivered: the scripts sleep

    died = time.monotonic()
    dockerd.stop(sig, with_containerd=with_containerd)

    for t in threads:
        t.join(ANSWER_WITHIN_S)
    print("in-flight answers:", [(a.status, a.retry_after, round(a.at - died, 1)) for a in answers])
    for answer in answers:
        assert answer.at and answer.at - died < ANSWER_WITHIN_S, answers
        assert_retryable_503(answer)

    # While it is down: alive, not ready, and a new job gets the same retryable 503 at once.
    assert httpx.get(gateway.url + "/healthz", timeout=10).status_code == 200
    down = readyz(gateway)
    assert down.status_code == 503 and down.json()["ready"] is False, down.text
    began = time.monotonic()
    [refused], _ = post_sleepers(gateway, 1)
    wait_for(lambda: refused.at > 0, "a job during the outage is answered", 15)
    assert_retryable_503(refused)
    assert refused.at - began < 10

    time.sleep(3)  # the pool's fillers and keeper meet the dead engine for a while

    restarted = dockerd.start()
    print(f"dockerd back in {restarted:.1f} s")

    # The same gateway process: ready again, runs scripts, the pool refills.
    back = time.monotonic()
    wait_for(lambda: readyz(gateway).status_code == 200, "ready again", 30)
    ok = httpx.post(gateway.url + "/v1/execute", json={"code": "print(6 * 7)"}, timeout=120)
    assert ok.status_code == 200 and ok.json()["output"].strip() == "42", ok.text
    refill = wait_for(lambda: pool_size(gateway) == POOL, "the pool refills", 60)
    print(f"ready and refilled {time.monotonic() - back:.1f} s after the restart ({refill:.1f})")

    # Nothing of the outage is left: only the pool's fresh sandboxes exist.
    wait_for(
        lambda: len(ours(dockerd)) == POOL,
        "the containers of the outage are removed",
        30,
    )
    assert all(c["State"] == "running" for c in ours(dockerd)), ours(dockerd)
    jobs = Path(gateway.env["PYTHON_CODE_EXECUTION_DIR"]) / "jobs"
    wait_for(lambda: not jobs.exists() or not any(jobs.iterdir()), "job dirs removed", 10)
    # Not one request answered with a 5xx other than the 503s, nothing logged as an error.
    records = [json.loads(line) for line in gateway.logs().splitlines() if line.startswith("{")]
    failed = [r for r in records if int(r.get("status", 0)) >= 500 and r["status"] != 503]
    errors = [r for r in records if r.get("level") in ("ERROR", "CRITICAL")]
    assert not failed and not errors, failed + errors
