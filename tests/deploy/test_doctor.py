"""``python-coder doctor``: each check against real things (an HTTP server, the disk, a CLI run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from service import doctor
from service.settings import Settings
from tests.deploy.gateway import REPO, free_port


class ModelsHandler(BaseHTTPRequestHandler):
    """``GET /v1/models`` of an OpenAI-compatible server; key ``good`` is the only valid one."""

    def do_GET(self) -> None:
        if self.path != "/v1/models":
            self.send_error(404)
            return
        if self.headers.get("Authorization") != "Bearer good":
            self.send_error(401)
            return
        body = json.dumps({"object": "list", "data": [{"id": "tiny-coder"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def llm_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ModelsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()
    thread.join()


def settings_for(tmp_path: Path, **kw: object) -> Settings:
    return Settings(execution_dir=tmp_path / "exec", **kw)  # type: ignore[arg-type]


def test_llm_endpoint_checks(tmp_path: Path, llm_url: str) -> None:
    ok = doctor.check_llm(
        settings_for(tmp_path, llm_base_url=llm_url, llm_api_key="good", llm_model="tiny-coder")
    )
    assert ok.status == doctor.OK, ok
    other_model = doctor.check_llm(
        settings_for(tmp_path, llm_base_url=llm_url, llm_api_key="good", llm_model="gpt-x")
    )
    assert other_model.status == doctor.WARN and "tiny-coder" in other_model.detail
    bad_key = doctor.check_llm(settings_for(tmp_path, llm_base_url=llm_url, llm_api_key="bad"))
    assert bad_key.status == doctor.FAIL and "API_KEY" in bad_key.fix
    wrong_base = doctor.check_llm(
        settings_for(tmp_path, llm_base_url=llm_url.removesuffix("/v1"), llm_api_key="good")
    )
    assert wrong_base.status == doctor.FAIL and "404" in wrong_base.detail
    down = doctor.check_llm(
        settings_for(tmp_path, llm_base_url=f"http://127.0.0.1:{free_port()}/v1")
    )
    assert down.status == doctor.FAIL and "BASE_URL" in down.fix
    unset = doctor.check_llm(settings_for(tmp_path))
    assert unset.status == doctor.WARN


def test_intake_sandbox_is_shown_and_a_weak_one_is_not_ok(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from files import sandbox

    found = doctor.check_intake_sandbox(settings_for(tmp_path))
    assert found.status in (doctor.OK, doctor.WARN) and "seccomp-no-sockets" in found.detail
    confined = sandbox.detect("confined")
    monkeypatch.setattr(sandbox, "worker_sandbox", lambda: confined)
    warned = doctor.check_intake_sandbox(settings_for(tmp_path))
    assert warned.status == doctor.WARN and "bubblewrap" in warned.fix
    none = sandbox.WorkerSandbox("unconfined", "no seccomp filter on riscv64")
    monkeypatch.setattr(sandbox, "worker_sandbox", lambda: none)
    failed = doctor.check_intake_sandbox(settings_for(tmp_path))
    assert failed.status == doctor.FAIL and "riscv64" in failed.detail


def test_limits_and_disk(tmp_path: Path) -> None:
    fine = doctor.check_limits(settings_for(tmp_path))
    assert [c.status for c in fine] == [doctor.OK]
    bad = doctor.check_limits(settings_for(tmp_path, timeout=900, max_timeout=600))
    assert any(c.status == doctor.FAIL and "timeout" in c.name for c in bad)
    greedy = doctor.check_limits(settings_for(tmp_path, cpus=(os.cpu_count() or 1) + 4))
    assert any(c.status == doctor.WARN and "cpus" in c.name for c in greedy)

    settings = settings_for(tmp_path)
    assert doctor.check_disk(settings).status == doctor.OK
    huge = 1 << 60
    assert doctor.check_disk(settings, warn_bytes=huge).status == doctor.WARN
    assert doctor.check_disk(settings, warn_bytes=huge, fail_bytes=huge).status == doctor.FAIL


def test_local_runner_missing_fails_only_when_it_is_the_engine(tmp_path: Path) -> None:
    def local_row(engine: str) -> doctor.Check:
        settings = settings_for(tmp_path, engine=engine, local_runner_dir=tmp_path / "no-venv")
        (row,) = [c for c in doctor.check_engines(settings) if c.name == "engine subprocess"]
        return row

    needed = local_row("subprocess")
    assert needed.status == doctor.FAIL and "--local" in needed.fix
    assert local_row("docker").status == doctor.OK
    # auto: a warning while another engine is ready, a failure when none is.
    assert local_row("auto").status in (doctor.WARN, doctor.FAIL)


def run_doctor(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "doctor"],
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_doctor_command_exits_1_and_names_the_fix(tmp_path: Path, llm_url: str) -> None:
    base = {
        "PYTHON_CODE_ENGINE": "subprocess",
        "PYTHON_CODE_EXECUTION_DIR": str(tmp_path / "exec"),
        "PYTHON_CODE_LOCAL_RUNNER_DIR": str(tmp_path / "no-venv"),
        "PYTHON_CODE_LLM_BASE_URL": llm_url,
        "PYTHON_CODE_LLM_API_KEY": "bad",
    }
    result = run_doctor(base)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "python-coder doctor" in out
    assert "FAIL" in out and "LLM endpoint" in out and "PYTHON_CODE_LLM_API_KEY" in out
    assert "build-runner --local" in out
    assert "check(s) failed" in out
