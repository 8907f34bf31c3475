"""``python-coder serve`` refuses what must not be served, before it binds anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from service.auth.keys import add_key
from service.auth.permissions import Role
from tests.deploy.gateway import REPO, GatewayProcess, free_port


def serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON_CODE_")}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(free_port()), *args],
        cwd=REPO,
        env={
            **clean,
            "PYTHON_CODE_ENGINE": "subprocess",
            "PYTHON_CODE_EXECUTION_DIR": str(tmp_path / "exec"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "gateway.example"])
def test_a_non_loopback_bind_without_keys_is_refused(tmp_path: Path, host: str) -> None:
    done = serve(tmp_path, "--host", host)
    assert done.returncode == 2
    assert f"refusing to serve on {host} without API keys" in done.stderr
    assert "PYTHON_CODE_ALLOW_UNAUTHENTICATED=true" in done.stderr
    assert not (tmp_path / "exec").exists()  # refused before anything started


def test_the_host_setting_is_checked_like_the_flag(tmp_path: Path) -> None:
    done = serve(tmp_path, PYTHON_CODE_HOST="0.0.0.0")
    assert done.returncode == 2 and "refusing to serve on 0.0.0.0" in done.stderr


def test_a_broken_key_entry_stops_the_start_naming_it(tmp_path: Path) -> None:
    done = serve(tmp_path, "--host", "0.0.0.0", PYTHON_CODE_API_KEYS="admin:letmein")
    assert done.returncode == 2 and "PYTHON_CODE_API_KEYS entry 1" in done.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PYTHON_CODE_LLM_API_KEY", "changeme"),
        ("PYTHON_CODE_API_KEYS", "admin:pyc_0123456789ab_changemechangemechangemechangeme"),
    ],
)
def test_production_refuses_placeholder_secrets(tmp_path: Path, name: str, value: str) -> None:
    done = serve(tmp_path, PYTHON_CODE_ENVIRONMENT="production", **{name: value})
    assert done.returncode == 2
    assert f"placeholder secret in {name}" in done.stderr
    assert value not in done.stderr  # the refusal does not echo the secret


def test_development_accepts_the_placeholder_llm_key(tmp_path: Path) -> None:
    from service.settings import Settings

    assert Settings(llm_api_key="changeme").llm_api_key == "changeme"


def test_opting_out_serves_on_all_interfaces_and_says_so_loudly(tmp_path: Path) -> None:
    gateway = GatewayProcess(
        {
            "PYTHON_CODE_ENGINE": "subprocess",
            "PYTHON_CODE_EXECUTION_DIR": str(tmp_path / "exec"),
            "PYTHON_CODE_ALLOW_UNAUTHENTICATED": "true",
        },
        tmp_path / "gateway.log",
        host="0.0.0.0",
    )
    try:
        gateway.start()
        assert httpx.get(gateway.url + "/healthz").status_code == 200
        # DNS rebinding: a page whose name now points here sends its own Host.
        rebound = httpx.get(gateway.url + "/healthz", headers={"Host": "rebind.example:80"})
        assert rebound.status_code == 403 and "rebind.example" in rebound.json()["message"]
    finally:
        gateway.stop()
    assert "SERVING WITHOUT AUTHENTICATION on 0.0.0.0" in gateway.logs()


def test_with_keys_a_non_loopback_bind_starts(tmp_path: Path) -> None:
    key_file = tmp_path / "keys.jsonl"
    key, _ = add_key(key_file, Role.DATA_SCIENTIST)
    gateway = GatewayProcess(
        {
            "PYTHON_CODE_ENGINE": "subprocess",
            "PYTHON_CODE_EXECUTION_DIR": str(tmp_path / "exec"),
            "PYTHON_CODE_API_KEYS_FILE": str(key_file),
        },
        tmp_path / "gateway.log",
        host="0.0.0.0",
    )
    try:
        gateway.start()
        assert httpx.get(gateway.url + "/v1/environment").status_code == 401
        ok = httpx.get(gateway.url + "/v1/environment", headers={"X-API-Key": key}, timeout=60)
        assert ok.status_code == 200, ok.text
    finally:
        gateway.stop()
    assert "SERVING WITHOUT AUTHENTICATION" not in gateway.logs()
