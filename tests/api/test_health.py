"""Health, readiness and the environment description."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from tests.api.conftest import make_settings


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_when_ready(client: TestClient, engine: str) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["engine"] == engine
    intake = response.json()["intake_sandbox"]  # where uploads are parsed, never silent
    assert intake["ok"] and intake["mode"] in ("bwrap", "confined")
    assert "seccomp-no-sockets" in intake["labels"]


def test_environment_lists_python_and_packages(client: TestClient, engine: str) -> None:
    body = client.get("/v1/environment").json()
    assert body["engine"] == engine
    assert body["python_version"].startswith("3.11")
    names = {p["name"].lower() for p in body["packages"]}
    assert {"pandas", "numpy", "matplotlib", "statsmodels", "pyarrow"} <= names
    assert body["limits"]["memory_mb"] == 512 and body["limits"]["network"] == "none"


@pytest.mark.docker
def test_missing_runner_image_is_503_naming_the_build_command(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "docker", image="python-coder-runner:does-not-exist")
    with TestClient(create_app(settings)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "build-runner" in ready.text
        run = client.post("/v1/execute", json={"code": "print(1)"})
        assert run.status_code == 503
        assert "build-runner" in run.json()["message"]
        assert client.get("/healthz").status_code == 200


def test_missing_local_runner_is_503_naming_the_build_command(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "subprocess", local_runner_dir=tmp_path / "no-venv")
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 503
        run = client.post("/v1/execute", json={"code": "print(1)"})
        assert run.status_code == 503
        assert "build-runner --local" in run.json()["message"]
