"""``python-coder run --url`` against a gateway with keys: the key goes along, artifacts too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.auth.keys import add_key
from service.auth.permissions import Role
from tests.deploy.gateway import REPO, GatewayProcess

pytestmark = pytest.mark.subprocess_engine


def test_run_url_sends_the_key(tmp_path: Path) -> None:
    key_file = tmp_path / "keys.jsonl"
    key, _ = add_key(key_file, Role.DATA_SCIENTIST)
    gateway = GatewayProcess(
        {
            "PYTHON_CODE_ENGINE": "subprocess",
            "PYTHON_CODE_EXECUTION_DIR": str(tmp_path / "exec"),
            "PYTHON_CODE_API_KEYS_FILE": str(key_file),
        },
        tmp_path / "gateway.log",
    )
    script = tmp_path / "job.py"
    script.write_text("print('hello')\nopen('out.txt', 'w').write('made')\n")
    clean = {k: v for k, v in os.environ.items() if k != "PYTHON_CODER_API_KEY"}

    def run(
        out: str, *extra: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "service.cli",
                "run",
                str(script),
                "--url",
                gateway.url,
                "--out",
                str(tmp_path / out),
                *extra,
            ],
            cwd=REPO,
            env={**clean, **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )

    try:
        gateway.start()
        flag = run("a", "--api-key", key)
        assert flag.returncode == 0, flag.stdout + flag.stderr
        assert flag.stdout.strip() == "hello" and (tmp_path / "a" / "out.txt").read_text() == "made"
        env = run("b", env={"PYTHON_CODER_API_KEY": key})
        assert env.returncode == 0, env.stdout + env.stderr
        assert (tmp_path / "b" / "out.txt").read_text() == "made"
        missing = run("c")
        assert missing.returncode != 0 and "HTTP 401: missing API key" in missing.stderr
    finally:
        gateway.stop()
