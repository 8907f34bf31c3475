"""The in-process ``execute_code_task`` tool and ``python-coder ask``, with the scripted model."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from service.cli.ask import ask_command
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

# Two artifacts with the same base name in different folders.
NESTED_CODE = (
    PLOT_CODE
    + """
import os
for folder in ('a', 'b'):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, 'x.csv'), 'w') as fh:
        fh.write(folder + '\\n')
"""
)


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
    llm_server.push(fenced(NESTED_CODE), approve())
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
    # Same base name in two folders: both kept under their relative paths.
    assert (out / "a" / "x.csv").read_text() == "a\n"
    assert (out / "b" / "x.csv").read_text() == "b\n"
    assert not (out / "x.csv").exists()
    # Handed over at once: no artifact files left behind in the execution dir.
    artifacts = tmp_path / "exec" / "artifacts"
    assert [p for p in artifacts.rglob("*") if p.is_file()] == []


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


class FakeGateway:
    """A real HTTP server standing in for a gateway that misbehaves in a chosen way."""

    def __init__(self, generate: tuple[int, str, bytes], files: dict[str, tuple[int, bytes]]):
        self.generate = generate
        self.files = files
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._send(*gateway.generate)

            def do_GET(self) -> None:
                status, body = gateway.files.get(self.path, (404, b"not found"))
                self._send(status, "application/octet-stream", body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeGateway:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _generated(*names: str) -> tuple[int, str, bytes]:
    body = {
        "id": "j",
        "engine": "subprocess",
        "success": True,
        "code": "print(1)\n",
        "output": "1\n",
        "artifacts": [
            {
                "name": n,
                "size": 1,
                "media_type": "text/csv",
                "url": f"/v1/executions/j/artifacts/{n}",
            }
            for n in names
        ],
    }
    return 200, "application/json", json.dumps(body).encode()


def _ask(url: str, out: Path) -> int:
    args = argparse.Namespace(query="q", file=[], context=None, out=str(out), url=url)
    return ask_command(args)


def test_cli_ask_remote_keeps_same_named_artifacts_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {
        "/v1/executions/j/artifacts/a/x.csv": (200, b"from a\n"),
        "/v1/executions/j/artifacts/b/x.csv": (200, b"from b\n"),
    }
    out = tmp_path / "out"
    with FakeGateway(_generated("a/x.csv", "b/x.csv"), files) as gateway:
        assert _ask(gateway.url, out) == 0
    assert (out / "a" / "x.csv").read_bytes() == b"from a\n"
    assert (out / "b" / "x.csv").read_bytes() == b"from b\n"
    assert f"saved {out / 'a' / 'x.csv'}" in capsys.readouterr().out


def test_cli_ask_remote_refuses_artifact_names_outside_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {"/v1/executions/j/artifacts/../escape.txt": (200, b"x")}
    with FakeGateway(_generated("../escape.txt"), files) as gateway:
        assert _ask(gateway.url, tmp_path / "out") == 2
    assert "refusing artifact name" in capsys.readouterr().err
    assert not (tmp_path / "escape.txt").exists()


def test_cli_ask_remote_failed_download_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    with FakeGateway(_generated("gone.csv"), {}) as gateway:
        assert _ask(gateway.url, out) == 2
    assert "downloading artifact 'gone.csv' failed: HTTP 404" in capsys.readouterr().err
    assert not (out / "gone.csv").exists()


def test_cli_ask_remote_non_json_error_page_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = b"<html>\n<head><title>502 Bad Gateway</title></head>\n<body>nginx</body>\n</html>\n"
    with FakeGateway((502, "text/html", page), {}) as gateway:
        assert _ask(gateway.url, tmp_path / "out") == 2
    # Only our lines: JSON log records (httpx) may share stderr when logging is configured.
    lines = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("{")]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: HTTP 502") and "502 Bad Gateway" in lines[0]
