"""``.env.example`` documents every setting, and compose reads it as written."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from service.settings import Settings
from tests.deploy.gateway import REPO


def test_env_example_names_every_setting() -> None:
    text = (REPO / ".env.example").read_text()
    named = set(re.findall(r"\bPYTHON_CODE_([A-Z0-9_]+)=", text))
    missing = sorted(
        f"PYTHON_CODE_{field.upper()}"
        for field in Settings.model_fields
        if field.upper() not in named
    )
    assert missing == [], f".env.example does not document: {missing}"
    unknown = sorted(n for n in named if n.lower() not in Settings.model_fields)
    assert unknown == [], f".env.example names settings that do not exist: {unknown}"


def test_env_example_as_env_file_is_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PYTHON_CODE_"):
            monkeypatch.delenv(name)
    settings = Settings(_env_file=REPO / ".env.example")
    assert settings.engine == "auto" and settings.timeout == 30


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    version = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if version.returncode != 0:
        pytest.skip("docker compose v2 missing: run .ci/install-compose.sh")
    clean = {k: v for k, v in os.environ.items() if k != "DOCKER_GID"}
    return subprocess.run(
        ["docker", "compose", "--env-file", ".env.example", "config", "--format", "json"],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")
def test_compose_file_is_valid_with_the_example_env() -> None:
    done = compose_config({"DOCKER_GID": "4242"})
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)
    gateway, runner = config["services"]["gateway"], config["services"]["runner"]
    assert gateway["group_add"] == ["4242"]
    assert any(v["target"] == "/var/run/docker.sock" for v in gateway["volumes"])
    assert runner["scale"] == 0 and runner["build"]["context"].endswith("runner_image")
    # Listening on all interfaces inside the container, published on the host's loopback only,
    # with the explicit opt-out while no keys are configured.
    assert gateway["environment"]["PYTHON_CODE_HOST"] == "0.0.0.0"
    assert gateway["environment"]["PYTHON_CODE_ALLOW_UNAUTHENTICATED"] == "true"
    assert [(p["host_ip"], p["target"]) for p in gateway["ports"]] == [("127.0.0.1", 8000)]


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")
def test_compose_refuses_to_guess_the_docker_group() -> None:
    done = compose_config({})
    assert done.returncode != 0
    assert "DOCKER_GID is not set" in done.stderr
