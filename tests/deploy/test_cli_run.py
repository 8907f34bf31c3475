"""``python-coder run``: the script's output, artifacts in --out, the script's exit code."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from service.cli import build_parser, main
from service.cli import run as cli_run
from service.models import ExecutionResponse
from service.settings import get_settings
from tests.deploy.gateway import REPO, free_port

ENGINES = [
    pytest.param("docker", marks=pytest.mark.docker, id="docker"),
    pytest.param("subprocess", id="subprocess"),
]

SCRIPT = """\
import sys
import pandas as pd

df = pd.read_csv("sales.csv")
totals = df.groupby("region")["amount"].sum()
print(totals.to_string())
totals.to_csv("totals.csv")
print("done", file=sys.stderr)
sys.exit(int(totals["north"]) % 7)
"""


def cli(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=tmp_path,
        env={
            **os.environ,
            "PYTHONPATH": str(REPO),
            "PYTHON_CODE_EXECUTION_DIR": str(tmp_path / "exec"),
            "PYTHON_CODE_LOCAL_RUNNER_DIR": str(REPO / ".runner-venv"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    script = tmp_path / "report.py"
    script.write_text(SCRIPT)
    data = tmp_path / "sales.csv"
    data.write_text("region,amount\nnorth,10\nsouth,5\nnorth,3\n")
    return script, data


@pytest.mark.parametrize("engine", ENGINES)
def test_run_locally_prints_output_saves_artifacts_and_exits_like_the_script(
    engine: str, tmp_path: Path, inputs: tuple[Path, Path]
) -> None:
    script, data = inputs
    out = tmp_path / "out"
    result = cli(
        ["run", str(script), "--file", str(data), "--engine", engine, "--out", str(out)],
        tmp_path,
    )
    assert result.returncode == 13 % 7, result.stdout + result.stderr
    assert "north    13" in result.stdout and "south     5" in result.stdout
    assert "done" in result.stderr
    assert (out / "totals.csv").read_text().splitlines() == ["region,amount", "north,13", "south,5"]
    # The CLI hands artifacts over at once and keeps no job files behind.
    leftovers = [
        p for p in (tmp_path / "exec").rglob("*") if p.is_file() and p.name != "audit.jsonl"
    ]
    assert leftovers == []


def test_run_timeout_exits_124(tmp_path: Path) -> None:
    script = tmp_path / "slow.py"
    script.write_text("import time\ntime.sleep(30)\n")
    result = cli(["run", str(script), "--engine", "subprocess", "--timeout", "1"], tmp_path)
    assert result.returncode == cli_run.EXIT_TIMEOUT, result.stdout + result.stderr
    assert "timed out" in result.stderr


def test_run_reports_missing_files_and_unreachable_gateways(tmp_path: Path) -> None:
    script = tmp_path / "ok.py"
    script.write_text("print(1)\n")
    missing = cli(["run", str(script), "--file", "nope.csv"], tmp_path)
    assert missing.returncode == cli_run.EXIT_NOT_RUN
    assert "no such file: nope.csv" in missing.stderr
    down = cli(["run", str(script), "--url", f"http://127.0.0.1:{free_port()}"], tmp_path)
    assert down.returncode == cli_run.EXIT_NOT_RUN
    assert "cannot reach" in down.stderr


def test_policy_rejection_is_explained(tmp_path: Path) -> None:
    script = tmp_path / "bad.py"
    script.write_text("import subprocess\nsubprocess.run(['id'])\n")
    result = cli(["run", str(script), "--engine", "subprocess"], tmp_path)
    assert result.returncode == cli_run.EXIT_NOT_RUN
    assert "line 1" in result.stderr and "subprocess" in result.stderr


class SteppedClock:
    """A monotonic clock for cli_run alone: the first reading is the start, later ones 2.5 s on."""

    def __init__(self) -> None:
        self.readings = 0

    def monotonic(self) -> float:
        self.readings += 1
        return 100.0 if self.readings == 1 else 102.5


def test_spinner_shows_elapsed_time_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = SteppedClock()
    monkeypatch.setattr(cli_run, "time", clock)
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=80)
    with cli_run.spinner("running", console):
        # wait (real time, generous) until the ticker has rendered a reading of the clock
        deadline = time.monotonic() + 30
        while "running 2.5s" not in buffer.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
    shown = re.findall(r"running (\d+\.\d)s", buffer.getvalue())
    assert shown[0] == "0.0", buffer.getvalue()  # before the first tick
    assert "2.5" in shown, buffer.getvalue()  # elapsed = 102.5 - 100.0, one decimal
    assert set(shown) <= {"0.0", "2.5"}
    quiet = io.StringIO()
    with cli_run.spinner("running", Console(file=quiet, force_terminal=False)):
        pass
    assert quiet.getvalue() == ""


def test_exit_codes_follow_the_result() -> None:
    base = {"id": "x", "code": "", "engine": "docker"}
    assert cli_run.exit_code_of(ExecutionResponse(success=True, exit_code=0, **base)) == 0
    assert cli_run.exit_code_of(ExecutionResponse(success=False, exit_code=3, **base)) == 3
    timed_out = ExecutionResponse(success=False, timed_out=True, **base)
    assert cli_run.exit_code_of(timed_out) == 124
    oom = ExecutionResponse(success=False, oom_killed=True, exit_code=137, **base)
    assert cli_run.exit_code_of(oom) == 137
    with pytest.raises(ValueError):
        cli_run.safe_target(Path("out"), "../escape.txt")


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "-inf", "soon"])
def test_run_timeout_must_be_a_positive_finite_number(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["run", "x.py", f"--timeout={value}"])
    assert exit_info.value.code == 2
    assert "argument --timeout" in capsys.readouterr().err


def test_run_timeout_above_the_maximum_is_an_error_not_capped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PYTHON_CODE_MAX_TIMEOUT", "5")
    get_settings.cache_clear()
    try:
        assert build_parser().parse_args(["run", "x.py", "--timeout", "5"]).timeout == 5.0
        assert build_parser().parse_args(["run", "x.py", "--timeout", "0.5"]).timeout == 0.5
        with pytest.raises(SystemExit) as exit_info:
            build_parser().parse_args(["run", "x.py", "--timeout", "5.5"])
    finally:
        get_settings.cache_clear()
    assert exit_info.value.code == 2
    assert "exceeds the maximum of 5s" in capsys.readouterr().err


def test_run_rejects_a_non_utf8_script_and_an_uncreatable_out_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    latin1 = tmp_path / "latin1.py"
    latin1.write_bytes("print('café')\n".encode("latin-1"))
    assert main(["run", str(latin1), "--out", str(tmp_path / "out")]) == cli_run.EXIT_NOT_RUN
    message = capsys.readouterr().err
    assert "is not UTF-8 text" in message and len(message.strip().splitlines()) == 1
    script = tmp_path / "ok.py"
    script.write_text("print(1)\n")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    assert main(["run", str(script), "--out", str(blocker / "sub")]) == cli_run.EXIT_NOT_RUN
    message = capsys.readouterr().err
    assert "cannot create output directory" in message
    assert len(message.strip().splitlines()) == 1
