"""The run queue through the API: a full queue answers 429 with Retry-After, on a real engine."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.executors.registry import ExecutorRegistry
from service.settings import Settings

SLOW = "import time\ntime.sleep(60)\nprint('slept')\n"


@pytest.fixture
def busy_client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        execution_dir=tmp_path / "exec",
        engine="subprocess",
        max_concurrent_runs=1,
        max_queued_runs=1,
        pool_max=0,
    )
    with TestClient(create_app(settings)) as client:
        yield client


def wait_for(predicate: Any, what: str, limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def test_a_full_queue_answers_429_with_retry_after(busy_client: TestClient) -> None:
    registry: ExecutorRegistry = busy_client.app.state.executors  # type: ignore[attr-defined]
    assert registry.queue is not None
    answers: list[httpx.Response] = []

    def post() -> None:
        answers.append(busy_client.post("/v1/execute", json={"code": SLOW, "timeout_s": 120}))

    # One job runs, one waits: the queue (max 1) is full.
    first = threading.Thread(target=post)
    first.start()
    wait_for(lambda: registry.queue is not None and registry.queue.running == 1, "a running job")
    second = threading.Thread(target=post)
    second.start()
    wait_for(lambda: registry.queue is not None and registry.queue.queued == 1, "a queued job")

    refused = busy_client.post("/v1/execute", json={"code": "print(1)"})
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    body = refused.json()
    assert body["error"] == "QueueFull"
    assert "PYTHON_CODE_MAX_QUEUED_RUNS=1" in body["message"]
    ready = busy_client.get("/readyz").json()
    assert ready["queue"]["queued"] == 1 and ready["queue"]["refused"] == 1

    # Cancel both slow jobs: they come back as failed runs, not errors.
    while first.is_alive() or second.is_alive():
        registry.cancel()
        time.sleep(0.1)
    first.join()
    second.join()
    assert [a.status_code for a in answers] == [200, 200]
    assert all(a.json()["success"] is False for a in answers)
    assert registry.queue.queued == 0 and registry.queue.running == 0


def test_a_job_waiting_past_the_cap_gets_429(tmp_path: Path) -> None:
    settings = Settings(
        execution_dir=tmp_path / "exec",
        engine="subprocess",
        max_concurrent_runs=1,
        max_queued_runs=4,
        max_queue_wait_s=0.5,
        pool_max=0,
    )
    with TestClient(create_app(settings)) as client:
        registry: ExecutorRegistry = client.app.state.executors  # type: ignore[attr-defined]
        runner = threading.Thread(
            target=client.post, args=("/v1/execute",), kwargs={"json": {"code": SLOW}}
        )
        runner.start()
        wait_for(lambda: registry.queue is not None and registry.queue.running == 1, "a run")
        waited = client.post("/v1/execute", json={"code": "print(1)"})
        assert waited.status_code == 429, waited.text
        assert "PYTHON_CODE_MAX_QUEUE_WAIT_S" in waited.json()["message"]
        assert "Retry-After" in waited.headers
        while runner.is_alive():
            registry.cancel()
            time.sleep(0.1)
        runner.join()
