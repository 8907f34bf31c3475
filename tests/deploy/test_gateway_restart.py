"""A gateway killed mid-run leaves a runner container; the next start removes it.

And a gateway stopped with SIGTERM while a script runs kills that script's container itself.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from service.executors.base import CONTAINER_LABEL, JOB_LABEL
from service.settings import get_settings
from tests.deploy.gateway import GatewayProcess

pytestmark = pytest.mark.docker

# uvicorn re-raises the SIGTERM it handled once shutdown is complete.
STOPPED_CLEANLY = (0, -signal.SIGTERM)
LONG_SCRIPT = "import time\nprint('started', flush=True)\ntime.sleep(120)\n"


@pytest.fixture
def engine() -> Iterator[docker.DockerClient]:
    client = docker.from_env(timeout=30)
    yield client
    client.close()


def gateway_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "PYTHON_CODE_ENGINE": "docker",
        "PYTHON_CODE_IMAGE": get_settings().image,
        "PYTHON_CODE_EXECUTION_DIR": str(tmp_path / "exec"),
        "PYTHON_CODE_LOG_LEVEL": "INFO",
        **extra,
    }


def start_long_run(gateway: GatewayProcess) -> threading.Thread:
    """POST a long script from a thread; the call dies with the gateway, which is expected.
    It uploads a file, so that the job has a scratch dir (made on first use) to leave."""

    def call() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(
                gateway.url + "/v1/execute",
                data={"code": LONG_SCRIPT, "timeout_s": "300"},
                files={"files": ("data.csv", b"a,b\n1,2\n", "text/csv")},
                timeout=200,
            )

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread


def wait_for_job_container(
    client: docker.DockerClient, exec_dir: Path, timeout_s: float = 60
) -> str:
    """The running container of this gateway's job, once its script runs: its scratch dir
    under ``exec_dir/jobs`` is named by the job id, which the container carries as a label
    (other suites may share the engine, so "any new container" would not do)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = exec_dir / "jobs"
        for job in jobs.iterdir() if jobs.is_dir() else []:
            found = client.containers.list(
                filters={"label": [CONTAINER_LABEL, f"{JOB_LABEL}={job.name}"]}
            )
            # Running, and the script forked off the harness: the request was delivered.
            if found and found[0].status == "running" and len(found[0].top()["Processes"]) > 1:
                return str(found[0].id)
        time.sleep(0.2)
    raise AssertionError("no runner container started for the long script")


def test_restart_removes_the_orphan_of_a_killed_gateway(
    tmp_path: Path, engine: docker.DockerClient
) -> None:
    env = gateway_env(tmp_path)
    gateway = GatewayProcess(env, tmp_path / "gateway.log")
    try:
        gateway.start()
        caller = start_long_run(gateway)
        orphan = wait_for_job_container(engine, tmp_path / "exec")
        gateway.kill()
        caller.join(10)
        # The crash left the container and the job's scratch dir behind.
        engine.containers.get(orphan)
        assert any((tmp_path / "exec" / "jobs").iterdir()), "the crash left its job dir too"

        restarted = GatewayProcess(env, tmp_path / "gateway.log", port=gateway.port)
        gateway = restarted
        restarted.start()
        with pytest.raises(docker.errors.NotFound):
            engine.containers.get(orphan)
        assert list((tmp_path / "exec" / "jobs").iterdir()) == []
        logs = restarted.logs()
        assert "removed orphan sandboxes left by a previous run" in logs, logs[-2000:]
        assert restarted.terminate(30) in STOPPED_CLEANLY
        assert "Application shutdown complete" in restarted.logs()
    finally:
        gateway.stop()


def test_sigterm_kills_a_run_that_outlives_the_grace_period(
    tmp_path: Path, engine: docker.DockerClient
) -> None:
    gateway = GatewayProcess(
        gateway_env(tmp_path, PYTHON_CODE_SHUTDOWN_GRACE_S="1"), tmp_path / "gateway.log"
    )
    try:
        gateway.start()
        caller = start_long_run(gateway)
        container = wait_for_job_container(engine, tmp_path / "exec")
        started = time.monotonic()
        code = gateway.terminate(60)
        stopped_in = time.monotonic() - started
        caller.join(10)
        assert code in STOPPED_CLEANLY, gateway.logs()[-3000:]
        assert "Application shutdown complete" in gateway.logs()
        assert stopped_in < 30, f"shutdown took {stopped_in:.1f}s"
        with pytest.raises(docker.errors.NotFound):
            engine.containers.get(container)
        assert "grace period over" in gateway.logs()
    finally:
        gateway.stop()


def test_a_killed_gateways_pooled_containers_end_and_are_swept(
    engine: docker.DockerClient, tmp_path: Path
) -> None:
    from service.executors.base import GATEWAY_LABEL

    env = gateway_env(tmp_path, PYTHON_CODE_POOL_MIN="2", PYTHON_CODE_POOL_MAX="2")
    first = GatewayProcess(env, tmp_path / "first.log")
    second = GatewayProcess({**env, "PYTHON_CODE_POOL_MAX": "0"}, tmp_path / "second.log")
    try:
        first.start()
        assert first.proc is not None
        mine = {"label": [f"{GATEWAY_LABEL}={_gateway_id(first.proc.pid)}"]}

        def pooled() -> list[tuple[str, str]]:
            listed = engine.api.containers(all=True, filters=mine)
            return [(c["Names"][0], c["State"]) for c in listed]

        deadline = time.monotonic() + 120
        while len([name for name, state in pooled() if state == "running"]) < 2:
            assert time.monotonic() < deadline, first.logs()[-3000:]
            time.sleep(0.2)
        names = sorted(name for name, _ in pooled())
        first.kill()
        # With the gateway gone its attach connections close: each harness sees EOF on
        # stdin and the container stops by itself...
        deadline = time.monotonic() + 60
        while any(state == "running" for _, state in pooled()):
            assert time.monotonic() < deadline, pooled()
            time.sleep(0.2)
        # ...and the next gateway sweeps the stopped ones before it serves.
        second.start()
        assert pooled() == [], names
        assert second.terminate() in STOPPED_CLEANLY
    finally:
        first.stop()
        second.stop()


def _gateway_id(pid: int) -> str:
    import socket

    return f"{socket.gethostname()}:{pid}"
