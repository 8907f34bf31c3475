"""A killed gateway's session containers end by themselves (the harness sees its stdin
close) and the next gateway sweeps them: state is lost on a gateway restart, nothing leaks."""

from __future__ import annotations

import time
from pathlib import Path

import docker
import httpx
import pytest

from service.executors.base import CONTAINER_LABEL, JOB_LABEL
from tests.deploy.gateway import GatewayProcess
from tests.deploy.test_gateway_restart import STOPPED_CLEANLY, gateway_env

pytestmark = pytest.mark.docker


def test_a_killed_gateways_session_ends_and_is_swept(tmp_path: Path) -> None:
    engine = docker.from_env(timeout=30)
    env = gateway_env(tmp_path, PYTHON_CODE_POOL_MAX="0")
    first = GatewayProcess(env, tmp_path / "first.log")
    second = GatewayProcess(env, tmp_path / "second.log")
    try:
        first.start()
        sid = httpx.post(first.url + "/v1/sessions", json={}, timeout=120).json()["id"]
        cell = httpx.post(
            f"{first.url}/v1/sessions/{sid}/execute", json={"code": "x = 1"}, timeout=60
        )
        assert cell.json()["success"], cell.text
        mine = {"label": [CONTAINER_LABEL, f"{JOB_LABEL}={sid}"]}

        def states() -> list[str]:
            return [c["State"] for c in engine.api.containers(all=True, filters=mine)]

        assert states() == ["running"]
        first.kill()
        deadline = time.monotonic() + 60
        while states() != ["exited"]:
            assert time.monotonic() < deadline, states()
            time.sleep(0.2)
        second.start()
        assert states() == []
        gone = httpx.post(f"{second.url}/v1/sessions/{sid}/execute", json={"code": "x"})
        assert gone.status_code == 404
        assert second.terminate() in STOPPED_CLEANLY
    finally:
        first.stop()
        second.stop()
        engine.close()
