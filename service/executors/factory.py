"""The one place that picks an engine: ``make_executor`` and the app-lifetime registry.

``auto`` means Docker when the engine answers a ping within ``PING_TIMEOUT_S``, else the
local subprocess engine. The choice is logged in one line that says why.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

import anyio

from service.errors import EngineUnavailable, InvalidRequest
from service.executors.base import Executor, Readiness
from service.settings import Settings

log = logging.getLogger(__name__)

ENGINES = ("auto", "docker", "subprocess")
PING_TIMEOUT_S = 2.0


def ping_docker(timeout: float = PING_TIMEOUT_S) -> str:
    """Describe the reachable engine (version, address) or raise ``EngineUnavailable``.

    Honours ``DOCKER_HOST`` and friends, like the docker CLI.
    """
    try:
        import docker
        import requests
        from docker.errors import DockerException
    except ImportError as exc:  # pragma: no cover - docker is a hard dependency
        raise EngineUnavailable(f"docker SDK not installed: {exc}") from exc
    kwargs = docker.utils.kwargs_from_env()
    address = kwargs.get("base_url") or docker.constants.DEFAULT_UNIX_SOCKET
    _connect(address, timeout)
    try:
        # An explicit (old) API version: the constructor then does not connect, so the
        # client exists to be closed whatever happens, and any engine answers /version.
        client = docker.APIClient(
            **kwargs, version=docker.constants.MINIMUM_DOCKER_API_VERSION, timeout=timeout
        )
    except (DockerException, requests.exceptions.RequestException, OSError) as exc:
        raise EngineUnavailable(f"no Docker engine reachable at {address}: {exc}") from exc
    try:
        version: dict[str, Any] = client.version()
        return f"Docker {version.get('Version', '?')} reachable at {address}"
    except (DockerException, requests.exceptions.RequestException, OSError) as exc:
        raise EngineUnavailable(f"no Docker engine reachable at {address}: {exc}") from exc
    finally:
        client.close()


def _connect(address: str, timeout: float) -> None:
    """Can anything be reached at ``address``? Checked with a plain socket first because
    docker-py leaks the socket of a failed connection (a ResourceWarning later)."""
    parsed = urlsplit(address)
    try:
        if parsed.scheme in ("unix", "http+unix"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(parsed.path)
        elif parsed.scheme in ("tcp", "http", "https") and parsed.hostname:
            default = 2376 if parsed.scheme == "https" else 2375
            socket.create_connection((parsed.hostname, parsed.port or default), timeout).close()
    except OSError as exc:
        raise EngineUnavailable(f"no Docker engine reachable at {address}: {exc}") from exc


def make_executor(settings: Settings, engine: str | None = None) -> Executor:
    """An executor for ``engine`` (default ``settings.engine``); logs which one and why."""
    executor, reason = _make(settings, engine or settings.engine)
    log.info("engine=%s (%s)", executor.name, reason)
    return executor


def _make(settings: Settings, engine: str) -> tuple[Executor, str]:
    if engine not in ENGINES:
        raise InvalidRequest(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "docker":
        return _docker(settings, ping_docker())
    if engine == "subprocess":
        sub = _subprocess(settings)
        return sub, f"requested; isolation: {_labels(sub)}"
    try:
        found = ping_docker()
    except EngineUnavailable as exc:
        sub = _subprocess(settings)
        return sub, f"{exc.message}; isolation: {_labels(sub)}"
    return _docker(settings, found)


def _docker(settings: Settings, found: str) -> tuple[Executor, str]:
    from service.executors.docker import DockerExecutor

    return DockerExecutor(settings), f"{found}, image {settings.image}"


def _subprocess(settings: Settings) -> Executor:
    from service.executors.subprocess import SubprocessExecutor

    return SubprocessExecutor(settings)


def _labels(executor: Executor) -> str:
    from service.executors.subprocess import SubprocessExecutor

    if isinstance(executor, SubprocessExecutor):
        return ",".join(executor.isolation().labels)
    return "?"


class ExecutorRegistry:
    """One executor per engine for the app's lifetime; a request may name its engine.

    ``auto`` (or no engine) is resolved once, on first use, and then stays put.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._executors: dict[str, Executor] = {}
        self._default: str | None = None

    def get(self, engine: str | None = None) -> Executor:
        """The executor for ``engine``; ``None``/``auto`` mean the default engine."""
        wanted = engine or self.settings.engine
        if wanted not in ENGINES:
            raise InvalidRequest(f"unknown engine {wanted!r}; choose one of {', '.join(ENGINES)}")
        with self._lock:
            if wanted == "auto" and self._default is not None:
                return self._executors[self._default]
            if wanted in self._executors:
                return self._executors[wanted]
            executor, reason = _make(self.settings, wanted)
            if executor.name in self._executors:  # auto picked one we already hold
                executor.close()
                executor = self._executors[executor.name]
            else:
                self._executors[executor.name] = executor
                log.info("engine=%s (%s)", executor.name, reason)
            if wanted == "auto" or wanted == self.settings.engine:
                self._default = self._default or executor.name
            return executor

    @property
    def default_engine(self) -> str:
        return self.get(None).name

    def describe(self) -> str:
        """One line for the startup log: the default engine, or why there is none."""
        try:
            executor = self.get(None)
        except EngineUnavailable as exc:
            return f"engine={self.settings.engine} unavailable: {exc.message}"
        return f"engine={executor.name}"

    def readiness_sync(self) -> Readiness:
        try:
            executor = self.get(None)
        except EngineUnavailable as exc:
            return Readiness(False, self.settings.engine, exc.message)
        return executor.readiness()

    async def readiness(self) -> Readiness:
        """Readiness of the default engine, off the event loop (it may ping Docker)."""
        return await anyio.to_thread.run_sync(self.readiness_sync)

    def close(self) -> None:
        with self._lock:
            executors, self._executors = list(self._executors.values()), {}
            self._default = None
        for executor in executors:
            try:
                executor.close()
            except Exception:
                log.exception("closing the %s executor failed", executor.name)
