"""The in-process ``execute_code_task`` tool and ``python-coder ask``, with the scripted model."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from service.cli_ask import ask_command
from service.settings import Settings, get_settings
from service.tool import PYTHON_CODER_TOOL, execute_code_task
from tests.datafiles import employees_csv
from tests.llm.openai_server import ScriptedOpenAI
from tests.llm.scripts import approve, fenced, issue, modification, review
from tests.llm.test_generate_api import CSV_CODE, runner_dir

PLOT_CODE = """
import json
import pandas as pd

df = pd.read_csv('employees.csv')
means = df.groupby('department')['salary'].mean()
with open('summary.csv', 'w') as fh:
    fh.write(means.to_csv())
print(json.dumps(means.to_dict()))
"""


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(engine="subprocess", local_runner_dir=runner_dir())


async def test_tool_returns_the_seed_output_format(
    settings: Settings, llm_server: ScriptedOpenAI, tmp_path: Path
) -> None:
    llm_server.push(fenced(CSV_CODE), approve())
    csv = employees_csv(tmp_path / "employees.csv")
    result = await execute_code_task(
        "average salary by department", files=[str(csv)], settings=settings
    )
    seed_keys = {
        "success", "code", "output", "error", "iterations", "modifications", "execution_time",
        "input_files", "file_metadata", "verification_history",
    }  # fmt: skip
    assert seed_keys <= set(result)
    assert result["success"] is True and result["result"]["IT"] == 100000.0
    assert result["verification_history"] == [
        {"iteration": 1, "issues": [], "action": "approved", "changes": [], "overrides": []}
    ]
    json.dumps(result)  # plain JSON types only, ready for an agent's scratchpad


async def test_tool_reports_failures_as_data(
    settings: Settings, llm_server: ScriptedOpenAI
) -> None:
    complaint = issue("wrong", category="intent_mismatch")
    llm_server.push(
        fenced("print(1)"), review(False, complaint), modification("print(2)\n", "x"),
        review(False, complaint),
    )  # fmt: skip
    settings = settings.model_copy(update={"max_iterations": 1})
    result = await execute_code_task("anything", settings=settings)
    assert result["success"] is False and result["error_type"] == "VerificationFailed"
    assert result["code"] == "print(2)\n"
    assert [r["action"] for r in result["verification_history"]] == ["modified", "rejected"]
    missing = await execute_code_task("x", files=["/nonexistent/data.csv"], settings=settings)
    assert missing["success"] is False and "not found" in missing["error"]


def test_tool_schema_is_an_openai_function() -> None:
    function = PYTHON_CODER_TOOL["function"]
    assert function["name"] == "python_coder"
    assert function["parameters"]["required"] == ["query"]
    assert set(function["parameters"]["properties"]) == {"query", "context", "files"}
    json.dumps(PYTHON_CODER_TOOL)


def test_cli_ask_prints_code_output_and_saves_artifacts(
    settings: Settings,
    llm_server: ScriptedOpenAI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in {
        "PYTHON_CODE_LLM_BASE_URL": llm_server.base_url,
        "PYTHON_CODE_LLM_API_KEY": "k",
        "PYTHON_CODE_LLM_MAX_RETRIES": "0",
        "PYTHON_CODE_ENGINE": "subprocess",
        "PYTHON_CODE_LOCAL_RUNNER_DIR": str(settings.local_runner_dir),
        "PYTHON_CODE_EXECUTION_DIR": str(tmp_path / "exec"),
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    llm_server.push(fenced(PLOT_CODE), approve())
    csv = employees_csv(tmp_path / "employees.csv")
    out = tmp_path / "out"
    args = argparse.Namespace(
        query="average salary", file=[str(csv)], context=None, out=str(out), url=None
    )
    try:
        assert ask_command(args) == 0
    finally:
        get_settings.cache_clear()
    printed = capsys.readouterr().out
    assert "pd.read_csv('employees.csv')" in printed  # the code
    assert '"IT": 100000.0' in printed  # the output
    assert "round 1: approved" in printed
    assert (out / "summary.csv").read_text().startswith("department,salary")
    assert f"saved {out / 'summary.csv'}" in printed


def test_cli_ask_without_llm_says_what_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in (
        "PYTHON_CODE_LLM_BASE_URL",
        "PYTHON_CODE_LLM_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYTHON_CODE_EXECUTION_DIR", str(tmp_path / "exec"))
    get_settings.cache_clear()
    args = argparse.Namespace(query="q", file=[], context=None, out=str(tmp_path), url=None)
    try:
        assert ask_command(args) == 2
    finally:
        get_settings.cache_clear()
    assert "PYTHON_CODE_LLM_BASE_URL" in capsys.readouterr().err
    assert sys.stdout  # nothing else to check: no traceback, exit code 2


def test_cli_ask_against_a_running_gateway(
    settings: Settings,
    llm_server: ScriptedOpenAI,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import socket
    import threading
    import time

    import uvicorn

    from service.api.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        llm_server.push(fenced(PLOT_CODE), approve())
        out = tmp_path / "out"
        args = argparse.Namespace(
            query="average salary",
            file=[str(employees_csv(tmp_path / "employees.csv"))],
            context="salaries are yearly",
            out=str(out),
            url=f"http://127.0.0.1:{port}",
        )
        assert ask_command(args) == 0
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
    printed = capsys.readouterr().out
    assert '"IT": 100000.0' in printed
    assert (out / "summary.csv").read_text().startswith("department,salary")
    assert "salaries are yearly" in llm_server.prompts()[0]
