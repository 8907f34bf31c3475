"""Shared test plumbing: engine detection, the docker marker, and the leak check.

Tests marked ``docker`` need a reachable engine and the runner image. Without them they are
skipped with the reason, unless ``REQUIRE_DOCKER=1`` (CI), where they fail instead.
Subprocess-engine tests that find no bubblewrap sandbox or no runner venv skip the same way,
unless ``REQUIRE_SUBPROCESS_ENGINE=1`` (CI): see ``subprocess_engine_missing``. So do the
tests that need a Docker daemon of their own to stop and restart (root, a dockerd binary),
unless ``REQUIRE_PRIVATE_DOCKERD=1`` (CI): see ``private_dockerd_missing``. The intake
workers' bubblewrap sandbox is required the same way by ``REQUIRE_INTAKE_SANDBOX=1`` (CI): see
``intake_bwrap_missing``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import cache
from typing import NoReturn

import pytest

from service.executors.base import CONTAINER_LABEL
from service.settings import get_settings

REQUIRE_DOCKER = os.environ.get("REQUIRE_DOCKER") == "1"
# Apps built by tests run cold unless a test asks for a pool (tests/executors/test_pool.py
# and the pooled API tests): a pool per test app would hold idle sandboxes all suite long.
os.environ.setdefault("PYTHON_CODE_POOL_MAX", "0")

# Starlette's TestClient sends "Host: testserver": allow that name like a loopback one (real
# HTTP clients in the tests use 127.0.0.1, which is always allowed).
os.environ.setdefault("PYTHON_CODE_ALLOWED_HOSTS", "testserver")

REQUIRE_SUBPROCESS_ENGINE = os.environ.get("REQUIRE_SUBPROCESS_ENGINE") == "1"


def subprocess_engine_missing(reason: str) -> NoReturn:
    """Skip a test the subprocess engine cannot run here; fail instead when CI requires it."""
    if REQUIRE_SUBPROCESS_ENGINE:
        pytest.fail(f"REQUIRE_SUBPROCESS_ENGINE=1 but {reason}")
    pytest.skip(reason)


REQUIRE_PRIVATE_DOCKERD = os.environ.get("REQUIRE_PRIVATE_DOCKERD") == "1"


def private_dockerd_missing(reason: str) -> NoReturn:
    """Skip a test that cannot run a private Docker daemon here; fail instead when CI
    requires it."""
    if REQUIRE_PRIVATE_DOCKERD:
        pytest.fail(f"REQUIRE_PRIVATE_DOCKERD=1 but {reason}")
    pytest.skip(reason)


REQUIRE_INTAKE_SANDBOX = os.environ.get("REQUIRE_INTAKE_SANDBOX") == "1"


def intake_bwrap_missing(reason: str) -> NoReturn:
    """Skip a test of the intake workers' bubblewrap mode; fail instead when CI requires it."""
    if REQUIRE_INTAKE_SANDBOX:
        pytest.fail(f"REQUIRE_INTAKE_SANDBOX=1 but {reason}")
    pytest.skip(reason)


@cache
def docker_problem() -> str | None:
    """``None`` when Docker tests can run, else why not."""
    from service.errors import EngineUnavailable
    from service.executors.docker.probe import ping_docker

    try:
        ping_docker()  # plain socket first: docker-py leaks a failed connection (ResourceWarning)
    except EngineUnavailable as exc:
        return exc.message
    try:
        import docker
        from docker.errors import DockerException, ImageNotFound

        client = docker.from_env(timeout=5)
        try:
            client.ping()
        except DockerException as exc:
            return f"no Docker engine reachable ({exc.__class__.__name__})"
        image = get_settings().image
        try:
            client.images.get(image)
        except ImageNotFound:
            return f"runner image {image!r} missing: run `python-coder build-runner`"
        finally:
            client.close()
    except Exception as exc:  # the docker SDK raises many things when no socket exists
        return f"no Docker engine reachable ({exc})"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problem = docker_problem() if any("docker" in i.keywords for i in items) else None
    if problem is None:
        return
    for item in items:
        if "docker" in item.keywords:
            if REQUIRE_DOCKER:
                item.add_marker(pytest.mark.usefixtures("_docker_required"))
            else:
                item.add_marker(pytest.mark.skip(reason=f"Docker test skipped: {problem}"))


@pytest.fixture
def _docker_required() -> None:
    pytest.fail(f"REQUIRE_DOCKER=1 but {docker_problem()}")


def our_containers() -> list[str]:
    """Names of containers (any state) that carry our label."""
    if docker_problem() is not None:
        return []
    import docker

    # The low-level listing: the high-level one inspects each container and fails on one
    # that another suite removes meanwhile.
    client = docker.APIClient(**docker.utils.kwargs_from_env(), version="1.41", timeout=10)
    try:
        listed = client.containers(all=True, filters={"label": CONTAINER_LABEL})
        return [(c.get("Names") or ["/" + c["Id"][:12]])[0].lstrip("/") for c in listed]
    finally:
        client.close()


def _our_temp_dirs() -> set[str]:
    import tempfile
    from pathlib import Path

    return {p.name for p in Path(tempfile.gettempdir()).glob("pyc*")}


@pytest.fixture(scope="session", autouse=True)
def no_leaks_after_suite() -> Iterator[None]:
    """After the whole suite: no container labelled ours, no temp dir of ours left behind."""
    containers_before = set(our_containers())
    temps_before = _our_temp_dirs()
    yield
    leaked_containers = set(our_containers()) - containers_before
    leaked_temps = _our_temp_dirs() - temps_before
    assert not leaked_containers, f"containers left behind: {sorted(leaked_containers)}"
    assert not leaked_temps, f"temp dirs left behind: {sorted(leaked_temps)}"
