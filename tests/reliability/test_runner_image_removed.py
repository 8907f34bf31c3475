"""The runner image is removed while the gateway serves: its pool is drained, pooled requests
never 500, and new runs get a 503 naming the build command (a test-only tag of the image)."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.executors.registry import ExecutorRegistry
from service.settings import Settings, get_settings

pytestmark = pytest.mark.docker


@pytest.fixture
def test_image() -> Iterator[str]:
    """A tag of the runner image only this test uses (and removes)."""
    client = docker.from_env(timeout=60)
    tag = f"pyc-faulttest:{uuid.uuid4().hex[:12]}"
    client.images.get(get_settings().image).tag(tag)
    try:
        yield tag
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(tag, noprune=True)
        client.close()


def wait_for(predicate: Callable[[], bool], what: str, limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < deadline, f"not within {limit_s} s: {what}"
        time.sleep(0.1)


def test_removing_the_runner_image_drains_the_pool_and_answers_503(
    tmp_path: Path, test_image: str
) -> None:
    settings = Settings(
        execution_dir=tmp_path / "exec", engine="docker", image=test_image, pool_min=2, pool_max=2
    )
    with TestClient(create_app(settings)) as client:
        registry: ExecutorRegistry = client.app.state.executors  # type: ignore[attr-defined]
        [pool] = registry.pools()
        wait_for(lambda: pool.snapshot()["idle"] >= 2, "the pool fills")
        assert client.post("/v1/execute", json={"code": "print(1)"}).json()["success"]
        # Refilled first: then one sandbox of the old image is still there to drain, whatever
        # the request below takes.
        wait_for(lambda: pool.snapshot()["idle"] >= 2, "the pool refills")

        engine = docker.from_env(timeout=60)
        try:
            engine.images.remove(test_image, noprune=True)  # the tag goes; the image stays
        finally:
            engine.close()

        # Whatever the pool still holds in the meantime: a result or a 503, never a 500.
        answer = client.post("/v1/execute", json={"code": "print(2)"})
        assert answer.status_code in (200, 503), answer.text

        # The other pooled sandbox (of the removed image) is drained, not handed out.
        wait_for(lambda: pool.snapshot()["drained"] >= 1, "the pool is drained")
        assert pool.snapshot()["idle"] == 0
        missing = client.post("/v1/execute", json={"code": "print(3)"})
        assert missing.status_code == 503, missing.text
        assert missing.json()["error"] == "RunnerImageMissing"
        assert "python-coder build-runner" in missing.json()["message"]
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["ready"] is False
