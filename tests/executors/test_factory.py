"""Engine choice: explicit engines, ``auto`` falling back on a dead Docker host, the registry."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

from service.errors import EngineUnavailable, InvalidRequest
from service.executors.docker.probe import ping_docker
from service.executors.local.executor import SubprocessExecutor
from service.executors.registry import ExecutorRegistry, make_executor
from service.settings import Settings

DEAD_DOCKER = "unix:///nonexistent.sock"
REQUIRE_DOCKER = os.environ.get("REQUIRE_DOCKER") == "1"


def settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(
        execution_dir=tmp_path / "exec",
        local_runner_dir=Path(sys.prefix),
        **overrides,  # type: ignore[arg-type]
    )


def test_subprocess_engine_is_a_subprocess_executor(tmp_path: Path) -> None:
    executor = make_executor(settings(tmp_path), "subprocess")
    assert isinstance(executor, SubprocessExecutor)
    assert executor.name == "subprocess"


def test_engine_defaults_to_the_settings(tmp_path: Path) -> None:
    executor = make_executor(settings(tmp_path, engine="subprocess"))
    assert isinstance(executor, SubprocessExecutor)


def test_auto_falls_back_when_docker_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DOCKER_HOST", DEAD_DOCKER)
    with caplog.at_level(logging.INFO, logger="service.executors.registry"):
        executor = make_executor(settings(tmp_path, engine="auto"))
    assert isinstance(executor, SubprocessExecutor)
    lines = [r.getMessage() for r in caplog.records if r.name == "service.executors.registry"]
    assert len(lines) == 1, lines
    assert lines[0].startswith("engine=subprocess (no Docker engine reachable at " + DEAD_DOCKER)
    assert "isolation: rlimits" in lines[0]


def test_docker_engine_on_a_dead_host_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", DEAD_DOCKER)
    with pytest.raises(EngineUnavailable, match=r"nonexistent\.sock"):
        make_executor(settings(tmp_path), "docker")


def test_unknown_engine_is_an_invalid_request(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="podman"):
        make_executor(settings(tmp_path), "podman")
    with pytest.raises(InvalidRequest):
        ExecutorRegistry(settings(tmp_path)).get("podman")


def test_auto_picks_docker_when_it_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Needs only a reachable engine (not the runner image): the choice is a ping."""
    from service.executors.docker.executor import DockerExecutor

    try:
        ping_docker()
    except EngineUnavailable as exc:
        if REQUIRE_DOCKER:
            raise
        pytest.skip(f"Docker test skipped: {exc.message}")
    with caplog.at_level(logging.INFO, logger="service.executors.registry"):
        executor = make_executor(settings(tmp_path, engine="auto"))
    try:
        assert isinstance(executor, DockerExecutor)
        (line,) = [r.getMessage() for r in caplog.records if r.name == "service.executors.registry"]
        assert line.startswith("engine=docker (Docker ")
        assert line.endswith(f"image {Settings().image}, runtime runc)")
    finally:
        executor.close()


def test_registry_caches_one_instance_per_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DOCKER_HOST", DEAD_DOCKER)
    registry = ExecutorRegistry(settings(tmp_path, engine="auto"))
    with caplog.at_level(logging.INFO, logger="service.executors.registry"):
        default = registry.get(None)
        assert registry.get("auto") is default
        assert registry.get("subprocess") is default  # auto resolved to the same engine
    assert registry.default_engine == "subprocess"
    assert registry.describe() == "engine=subprocess"
    # One decision, logged once, however often it is asked for.
    assert len([r for r in caplog.records if r.name == "service.executors.registry"]) == 1
    with pytest.raises(EngineUnavailable):
        registry.get("docker")  # a request may insist on docker: 503, not a silent fallback
    registry.close()
    assert registry.get(None) is not default  # after close, a fresh instance


async def test_registry_readiness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", DEAD_DOCKER)
    ready = ExecutorRegistry(settings(tmp_path, engine="auto"))
    readiness = await ready.readiness()
    assert readiness.ready, readiness.detail
    assert readiness.engine == "subprocess"
    ready.close()

    broken = ExecutorRegistry(settings(tmp_path, engine="docker"))
    readiness = await broken.readiness()
    assert not readiness.ready
    assert "nonexistent.sock" in readiness.detail
    assert "unavailable" in broken.describe()
    broken.close()
