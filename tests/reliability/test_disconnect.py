"""A client that hangs up mid-run: its job is cancelled and its sandbox removed, on both
engines, through a real uvicorn gateway."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from service.executors.base import CONTAINER_LABEL, GATEWAY_LABEL
from service.settings import get_settings
from tests.deploy.gateway import GatewayProcess

SLEEPER = "import time\nprint('started', flush=True)\ntime.sleep(60)\n"
ENGINES = [
    pytest.param("docker", marks=pytest.mark.docker, id="docker"),
    pytest.param("subprocess", id="subprocess"),
]


@pytest.fixture(params=ENGINES)
def gateway(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GatewayProcess]:
    env = {
        "PYTHON_CODE_ENGINE": str(request.param),
        "PYTHON_CODE_IMAGE": get_settings().image,
        "PYTHON_CODE_EXECUTION_DIR": str(tmp_path / "exec"),
        "PYTHON_CODE_LOCAL_RUNNER_DIR": str(get_settings().local_runner_dir.resolve()),
        "PYTHON_CODE_POOL_MAX": "0",
        "PYTHON_CODE_LOG_LEVEL": "INFO",
    }
    process = GatewayProcess(env, tmp_path / "gateway.log")
    process.start()
    yield process
    process.terminate()


def readyz_queue(gateway: GatewayProcess) -> dict[str, int]:
    import httpx

    body = httpx.get(gateway.url + "/readyz", timeout=10).json()
    return dict(body["queue"])


def wait_for(predicate: Callable[[], bool], what: str, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < deadline, f"not within {limit_s} s: {what}"
        time.sleep(0.1)


def post_and_hang_up_later(gateway: GatewayProcess) -> socket.socket:
    """Send ``POST /v1/execute`` on a raw connection and leave it open (unread)."""
    body = json.dumps({"code": SLEEPER, "timeout_s": 120}).encode()
    conn = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    conn.sendall(
        b"POST /v1/execute HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return conn


def sandboxes_of(gateway: GatewayProcess, engine: str) -> list[str]:
    """What this gateway has running: its containers, or its bubblewrap/runner processes
    (not its intake workers, which are bubblewrap processes too and stay)."""
    assert gateway.proc is not None
    if engine == "docker":
        client = docker.from_env(timeout=30)
        try:
            owner = f"{GATEWAY_LABEL}={socket.gethostname()}:{gateway.proc.pid}"
            found = client.containers.list(all=True, filters={"label": [CONTAINER_LABEL, owner]})
            return [c.name for c in found]
        finally:
            client.close()
    runner = str(get_settings().local_runner_dir.resolve())
    return [
        cmd
        for pid, cmd in descendants(gateway.proc.pid)
        if ("bwrap" in cmd or runner in cmd or "harness" in cmd) and "files.confine" not in cmd
    ]


def descendants(root: int) -> list[tuple[int, str]]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: list[tuple[int, str]] = []
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid:
                frontier.append(child)
                try:
                    cmd = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    continue
                found.append((child, cmd.decode(errors="replace")))
    return found


def test_a_client_that_hangs_up_cancels_its_job(
    gateway: GatewayProcess, request: pytest.FixtureRequest
) -> None:
    engine = gateway.env["PYTHON_CODE_ENGINE"]
    conn = post_and_hang_up_later(gateway)
    try:
        wait_for(lambda: readyz_queue(gateway)["running"] == 1, "the job runs", 60)
        wait_for(lambda: bool(sandboxes_of(gateway, engine)), "its sandbox exists", 60)
    finally:
        conn.close()  # the client goes away mid-run
    # The sandbox goes within seconds, not after the script's 60 s sleep.
    wait_for(lambda: not sandboxes_of(gateway, engine), "the sandbox is removed", 15)
    wait_for(lambda: readyz_queue(gateway)["running"] == 0, "the slot is free", 15)
    wait_for(lambda: "client disconnected: cancelling job" in gateway.logs(), "logged", 15)
