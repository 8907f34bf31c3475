"""The warm pool through the HTTP API: hits are counted, shown and still single-use."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from tests.api.conftest import make_settings


def metric(client: TestClient, name: str) -> float:
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_pool(client: TestClient, engine: str, size: int) -> None:
    deadline = time.monotonic() + 120
    while metric(client, f'python_coder_pool_size{{engine="{engine}"}}') < size:
        assert time.monotonic() < deadline, "the pool did not fill"
        time.sleep(0.1)


@pytest.fixture
def pooled(engine: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(tmp_path, engine, pool_min=1, pool_max=1)
    with TestClient(create_app(settings)) as client:
        yield client


def test_requests_are_served_warm_and_never_share_a_sandbox(
    engine: str, pooled: TestClient
) -> None:
    wait_pool(pooled, engine, 1)
    hits = metric(pooled, f'python_coder_pool_hits_total{{engine="{engine}"}}')
    code = "import os\nprint(os.path.exists('mark.txt'))\nopen('mark.txt', 'w').write('x')"
    for _ in range(2):
        body = pooled.post("/v1/execute", json={"code": code}).json()
        assert body["success"], body
        assert body["output"] == "False\n"  # nothing of the previous run
        wait_pool(pooled, engine, 1)
    assert metric(pooled, f'python_coder_pool_hits_total{{engine="{engine}"}}') == hits + 2
    env = pooled.get("/v1/environment").json()
    assert env["engine"] == engine
    assert env["pool"]["max"] == 1 and env["pool"]["hits"] >= 2
    assert metric(pooled, "python_coder_pool_provision_seconds_count") >= 3


def test_a_request_with_its_own_timeout_still_takes_a_pooled_sandbox(
    engine: str, pooled: TestClient
) -> None:
    wait_pool(pooled, engine, 1)
    hits = metric(pooled, f'python_coder_pool_hits_total{{engine="{engine}"}}')
    body = pooled.post("/v1/execute", json={"code": "print(7)", "timeout_s": 5}).json()
    assert body["success"] and body["output"] == "7\n", body
    assert metric(pooled, f'python_coder_pool_hits_total{{engine="{engine}"}}') == hits + 1
