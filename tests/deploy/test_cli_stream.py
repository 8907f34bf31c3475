"""``python-coder run`` shows the script's output as it comes, locally and through a gateway."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.settings import get_settings
from tests.deploy.gateway import REPO, GatewayProcess

SLEEPY = "import sys, time\nprint('first', flush=True)\ntime.sleep(2)\nprint('second')\n"


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    env = {
        "PYTHON_CODE_ENGINE": "subprocess",
        "PYTHON_CODE_EXECUTION_DIR": str(tmp_path / "gateway-exec"),
        "PYTHON_CODE_LOCAL_RUNNER_DIR": str(get_settings().local_runner_dir.resolve()),
        "PYTHON_CODE_POOL_MAX": "0",
    }
    process = GatewayProcess(env, tmp_path / "gateway.log")
    process.start()
    yield process
    process.terminate()


def run_and_time_lines(tmp_path: Path, *args: str) -> tuple[list[tuple[float, str]], float, str]:
    """stdout lines with their arrival times, the exit time, and stderr."""
    script = tmp_path / "sleepy.py"
    script.write_text(SLEEPY)
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "run", str(script), "--engine", "subprocess", *args],
        cwd=tmp_path,
        env={
            **os.environ,
            "PYTHONPATH": str(REPO),
            "PYTHON_CODE_EXECUTION_DIR": str(tmp_path / "exec"),
            "PYTHON_CODE_LOCAL_RUNNER_DIR": str(get_settings().local_runner_dir.resolve()),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines = [(time.monotonic(), line) for line in proc.stdout]
    assert proc.wait(120) == 0, proc.stderr.read()
    ended = time.monotonic()
    errors = proc.stderr.read()
    proc.stderr.close()
    proc.stdout.close()
    return lines, ended, errors


def check_live(lines: list[tuple[float, str]], ended: float) -> None:
    assert [line for _, line in lines] == ["first\n", "second\n"]  # each once
    assert ended - lines[0][0] > 1.0, "the first line came only at the end"


def test_run_locally_prints_as_it_goes(tmp_path: Path) -> None:
    lines, ended, _ = run_and_time_lines(tmp_path)
    check_live(lines, ended)


def test_run_through_a_gateway_prints_as_it_goes(tmp_path: Path, gateway: GatewayProcess) -> None:
    lines, ended, _ = run_and_time_lines(tmp_path, "--url", gateway.url)
    check_live(lines, ended)
