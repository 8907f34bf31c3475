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


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")
def test_compose_file_is_valid_with_the_example_env() -> None:
    version = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if version.returncode != 0:
        pytest.skip("docker compose v2 missing: run .ci/install-compose.sh")
    done = subprocess.run(
        ["docker", "compose", "--env-file", ".env.example", "config", "--format", "json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)
    gateway, runner = config["services"]["gateway"], config["services"]["runner"]
    assert gateway["group_add"] == ["0"]  # DOCKER_GID unset: documented as a required edit
    assert any(v["target"] == "/var/run/docker.sock" for v in gateway["volumes"])
    assert runner["scale"] == 0 and runner["build"]["context"].endswith("runner_image")
