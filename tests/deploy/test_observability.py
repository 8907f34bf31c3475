"""Metrics, request ids on log lines, and the audit log, through real HTTP requests."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service import observability as obs
from service.auth.permissions import LOCAL_OPERATOR, Principal, Role
from service.settings import Settings


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Route logging into a buffer through the JSON handler; restore the root after."""
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    stream = io.StringIO()
    obs.configure_logging("INFO", stream=stream)
    yield stream
    root.handlers[:] = before
    root.setLevel(level)


def lines_of(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def demo_app(settings: Settings) -> FastAPI:
    app = FastAPI()
    obs.install_observability(app, settings)
    log = logging.getLogger("tests.deploy.demo")

    @app.post("/work/{item}")
    async def work(item: str) -> dict[str, str | None]:
        log.info("working", extra={"item": item})

        def in_thread() -> None:  # pipeline steps run in worker threads
            log.info("in a worker thread")

        await anyio.to_thread.run_sync(in_thread)
        obs.observe_execution("docker", "success", {"execute": 0.2, "total": 0.3})
        obs.observe_upload(1234, files=2)
        obs.observe_llm(calls=1, prompt_tokens=100, completion_tokens=20)
        return {"request_id": obs.current_request_id()}

    return app


def sample(name: str, **labels: str) -> float:
    return obs.REGISTRY.get_sample_value(name, labels or None) or 0.0


def test_metrics_count_what_the_pipeline_reports(tmp_path: Path, log_stream: io.StringIO) -> None:
    settings = Settings(execution_dir=tmp_path / "exec")
    runs = sample("python_coder_executions_total", engine="docker", outcome="success")
    execute_count = sample("python_coder_phase_seconds_count", phase="execute")
    uploads = sample("python_coder_upload_bytes_total")
    prompt = sample("python_coder_llm_tokens_total", kind="prompt")
    with TestClient(demo_app(settings)) as client:
        assert client.post("/work/a").status_code == 200
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "# TYPE python_coder_executions_total counter" in text
    assert "# TYPE python_coder_phase_seconds histogram" in text
    assert "python_coder_active_containers" in text
    assert sample("python_coder_executions_total", engine="docker", outcome="success") == runs + 1
    assert sample("python_coder_phase_seconds_count", phase="execute") == execute_count + 1
    assert sample("python_coder_upload_bytes_total") == uploads + 1234
    assert sample("python_coder_llm_tokens_total", kind="prompt") == prompt + 100
    assert (
        sample(
            "python_coder_http_requests_total", method="POST", route="/work/{item}", status="200"
        )
        >= 1
    )


def test_every_log_line_of_a_request_carries_its_id(
    tmp_path: Path, log_stream: io.StringIO
) -> None:
    app = demo_app(Settings(execution_dir=tmp_path / "exec"))
    obs.configure_logging("INFO", stream=log_stream)  # the app set up stderr; capture instead
    with TestClient(app) as client:
        first = client.post("/work/one")
        second = client.post("/work/two", headers={"X-Request-ID": "trace-42"})
        hostile = client.post("/work/three", headers={"X-Request-ID": "bad id with spaces"})
        trailing = client.post("/work/four", headers={"X-Request-ID": "x" * 129})
    rid1 = first.headers["x-request-id"]
    assert len(rid1) == 32 and first.json()["request_id"] == rid1
    assert second.headers["x-request-id"] == "trace-42"
    assert len(hostile.headers["x-request-id"]) == 32
    assert len(trailing.headers["x-request-id"]) == 32

    lines = lines_of(log_stream)
    by_id: dict[object, list[dict[str, object]]] = {}
    for line in lines:
        by_id.setdefault(line.get("request_id"), []).append(line)
    for rid, item in ((rid1, "one"), ("trace-42", "two")):
        msgs = [line["msg"] for line in by_id[rid]]
        assert msgs == ["working", "in a worker thread", "request"], msgs
        working = by_id[rid][0]
        assert working["item"] == item and working["level"] == "INFO"
        request_line = by_id[rid][-1]
        assert request_line["status"] == 200 and request_line["method"] == "POST"
    # Lines from outside any request carry no id at all, never a stale one.
    logging.getLogger("tests.deploy.demo").info("after the requests")
    assert "request_id" not in lines_of(log_stream)[-1]


def test_json_formatter_keeps_exceptions(log_stream: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("tests.deploy").exception("failed")
    line = lines_of(log_stream)[-1]
    assert line["msg"] == "failed" and line["level"] == "ERROR"
    assert "ValueError: boom" in str(line["exc"])


def test_audit_log_one_line_per_execution(tmp_path: Path) -> None:
    settings = Settings(execution_dir=tmp_path / "exec")
    code = "print('hi')\n"
    entry = obs.audit_execution(
        settings,
        caller=Principal(identity="key:0123456789ab", role=Role.ML_ENGINEER, key_id="0123456789ab"),
        code=code,
        input_files=[("data.csv", 12)],
        engine="docker",
        outcome="success",
        duration_s=0.5,
        job_id="abc",
    )
    obs.audit_execution(
        settings,
        caller=LOCAL_OPERATOR,
        code="1/0",
        input_files=[],
        engine="subprocess",
        outcome="error",
        duration_s=0.1,
    )
    path = settings.execution_dir / "audit.jsonl"
    raw = path.read_text()
    lines = [json.loads(line) for line in raw.splitlines()]
    assert len(lines) == 2 and lines[0] == entry
    first = lines[0]
    assert first["code_sha256"] == hashlib.sha256(code.encode()).hexdigest()
    assert (first["caller"], first["key_id"], first["role"]) == (
        "key:0123456789ab",
        "0123456789ab",
        "ml_engineer",
    )
    assert first["input_files"] == [{"name": "data.csv", "size": 12}]
    assert (first["engine"], first["outcome"], first["duration_s"]) == ("docker", "success", 0.5)
    assert (lines[1]["caller"], lines[1]["key_id"], lines[1]["role"]) == ("local", None, "admin")
    assert lines[1]["outcome"] == "error"


def test_active_runs_and_wait_for_idle() -> None:
    assert obs.active_runs() == 0
    gauge = sample("python_coder_active_containers")
    with obs.track_active_container("docker"):
        assert obs.active_runs() == 1
        assert sample("python_coder_active_containers") == gauge + 1
        assert obs.wait_for_idle(0.05) is False
    assert obs.active_runs() == 0
    assert sample("python_coder_active_containers") == gauge
    assert obs.wait_for_idle(0.05) is True


def test_detailed_timings_fold_into_the_standard_phases() -> None:
    phases = obs.standard_phases(
        {
            "intake": 0.1,
            "generate": 1.0,
            "policy": 0.01,
            "verify_loop_model": 2.0,
            "verify_loop_overhead": 0.04,
            "verify_loop_overhead_per_round": 0.02,
            "model": 3.0,
            "execute": 0.5,
            "total": 3.7,
        }
    )
    assert phases == pytest.approx(
        {"intake": 0.1, "generate": 1.0, "verify": 2.05, "execute": 0.5, "total": 3.7}
    )
    assert set(phases) <= set(obs.PHASES)
