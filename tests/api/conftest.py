"""An app per engine, backed by a private execution dir, driven through real HTTP calls."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.settings import Settings

ENGINES = [
    pytest.param("docker", marks=pytest.mark.docker, id="docker"),
    pytest.param("subprocess", id="subprocess"),
]


def make_settings(tmp: Path, engine: str, **overrides: object) -> Settings:
    return Settings(execution_dir=tmp / "exec", engine=engine, **overrides)  # type: ignore[arg-type]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(engine: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(tmp_path, engine)
    with TestClient(create_app(settings)) as test_client:
        yield test_client
    jobs = settings.execution_dir / "jobs"
    leftovers = list(jobs.iterdir()) if jobs.exists() else []
    assert leftovers == [], f"job dirs left behind: {leftovers}"
