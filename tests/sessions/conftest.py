"""An app per engine with sessions, and a small pure-Python wheel in its wheelhouse."""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.settings import Settings

ENGINES = [
    pytest.param("docker", marks=pytest.mark.docker, id="docker"),
    pytest.param("subprocess", id="subprocess"),
]
DEMO_WHEEL = "pyc_demo_pkg-1.0.0-py3-none-any.whl"

MakeClient = Callable[..., TestClient]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def build_demo_wheel(wheelhouse: Path) -> Path:
    """A wheel the runner image lacks: ``import pyc_demo_pkg; pyc_demo_pkg.VALUE == 42``."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    path = wheelhouse / DEMO_WHEEL
    info = "pyc_demo_pkg-1.0.0.dist-info"
    files = {
        "pyc_demo_pkg/__init__.py": "VALUE = 42\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: pyc-demo-pkg\nVersion: 1.0.0\n",
        f"{info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(f"{name},,\n" for name in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
        wheel.writestr(f"{info}/RECORD", record)
    return path


@pytest.fixture
def make_client(engine: str, tmp_path: Path) -> Iterator[MakeClient]:
    """Build (and afterwards shut down) an app on ``engine`` with settings ``overrides``."""
    clients: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        settings = Settings(
            execution_dir=tmp_path / "exec",
            engine=engine,
            **overrides,  # type: ignore[arg-type]
        )
        build_demo_wheel(settings.wheelhouse)
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client()


def sandbox_exists(client: TestClient, ident: str) -> bool:
    """Is the session's container (docker) or job dir (subprocess) still there?"""
    settings: Settings = client.app.state.settings  # type: ignore[attr-defined]
    if settings.engine == "docker":
        import docker
        from docker.errors import NotFound

        api = docker.from_env(timeout=10)
        try:
            api.containers.get(ident)
            return True
        except NotFound:
            return False
        finally:
            api.close()
    return (settings.execution_dir / ident).exists()
