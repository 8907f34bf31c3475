"""The only list of engines, and the app-lifetime ``ExecutorRegistry`` built from it.

An engine is one subpackage plus one ``ENGINES`` line: its name, how to tell whether it can
run here (``probe``) and how to build its executor (``load``). ``auto`` takes the first
engine, in this order, whose probe passes. The settings' engine choice, the API's ``engine``
field, the CLI, ``/v1/environment`` and doctor all derive their names from here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from service.errors import EngineUnavailable, InvalidRequest
from service.executors.base import Executor, Readiness, limits_from_settings
from service.executors.queue import RunQueue

if TYPE_CHECKING:
    from service.executors.pool import WarmPool
    from service.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineEntry:
    name: str
    probe: Callable[[], str]  # what was found, or raise EngineUnavailable
    load: Callable[[Settings], Executor]


def _probe_docker() -> str:
    from service.executors.docker.probe import ping_docker

    return ping_docker()


def _load_docker(settings: Settings) -> Executor:
    from service.executors.docker.executor import DockerExecutor

    return DockerExecutor(settings)


def _probe_local() -> str:
    return "the local sandbox (bubblewrap where it works)"


def _load_local(settings: Settings) -> Executor:
    from service.executors.local.executor import SubprocessExecutor

    return SubprocessExecutor(settings)


ENGINES: dict[str, EngineEntry] = {
    e.name: e
    for e in (
        EngineEntry("docker", _probe_docker, _load_docker),
        EngineEntry("subprocess", _probe_local, _load_local),
    )
}
ENGINE_NAMES: tuple[str, ...] = tuple(ENGINES)
ENGINE_CHOICES: tuple[str, ...] = ("auto", *ENGINE_NAMES)


def check_engine(name: str) -> str:
    """``name`` if it is ``auto`` or a registered engine, else ``InvalidRequest``."""
    if name not in ENGINE_CHOICES:
        raise InvalidRequest(f"unknown engine {name!r}; choose one of {', '.join(ENGINE_CHOICES)}")
    return name


def resolve(settings: Settings, engine: str) -> tuple[Executor, str]:
    """Build the executor for ``engine`` (``auto``: the first whose probe passes) and why."""
    check_engine(engine)
    if engine != "auto":
        entry = ENGINES[engine]
        found = entry.probe()
        executor = entry.load(settings)
        return executor, f"requested; {found}; {executor.describe()}"
    problems = []
    for entry in ENGINES.values():
        try:
            found = entry.probe()
        except EngineUnavailable as exc:
            problems.append(exc.message)
            continue
        executor = entry.load(settings)
        why = "; ".join([*problems, found, executor.describe()])
        return executor, why
    raise EngineUnavailable("no engine can run code here: " + "; ".join(problems))


def make_executor(settings: Settings, engine: str | None = None) -> Executor:
    """An executor for ``engine`` (default ``settings.engine``); logs which one and why."""
    executor, reason = resolve(settings, engine or settings.engine)
    log.info("engine=%s (%s)", executor.name, reason)
    return executor


class ExecutorRegistry:
    """One executor (and its warm pool) per engine for the app's lifetime.

    ``auto`` (or no engine) is resolved once, on first use, and then stays put. A request may
    name another engine; its executor and pool are built on first use. Only a ``pooled``
    registry (the app's) keeps warm pools; a one-off (CLI, a tool call) runs cold.
    """

    def __init__(self, settings: Settings, *, pooled: bool = False) -> None:
        self.settings = settings
        self.pooled = pooled
        self._lock = threading.Lock()
        self._executors: dict[str, Executor] = {}
        self._pools: dict[str, WarmPool] = {}
        self._default: str | None = None
        self._closed = False
        self.slots: anyio.CapacityLimiter | None = None
        self.queue: RunQueue | None = None

    def open_slots(self) -> None:
        """Create the app's sandbox slots (``max_concurrent_runs``) and the bounded, fair
        queue in front of them; in the event loop."""
        self.slots = anyio.CapacityLimiter(self.settings.max_concurrent_runs)
        self.queue = RunQueue(
            self.settings.max_concurrent_runs,
            max_queued=self.settings.max_queued_runs,
            max_wait_s=self.settings.max_queue_wait_s,
        )
        for executor in self.executors():
            executor.slots = self.slots
            executor.queue = self.queue

    def get(self, engine: str | None = None) -> Executor:
        """The executor for ``engine``; ``None``/``auto`` mean the default engine."""
        wanted = check_engine(engine or self.settings.engine)
        with self._lock:
            if wanted == "auto" and self._default is not None:
                return self._executors[self._default]
            if wanted in self._executors:
                return self._executors[wanted]
            executor, reason = resolve(self.settings, wanted)
            if executor.name in self._executors:  # auto picked one we already hold
                executor.close()
                executor = self._executors[executor.name]
            else:
                self._executors[executor.name] = executor
                executor.slots = self.slots
                executor.queue = self.queue
                log.info("engine=%s (%s)", executor.name, reason)
                self._start_pool(executor)
            if wanted in ("auto", self.settings.engine):
                self._default = self._default or executor.name
            return executor

    def _start_pool(self, executor: Executor) -> None:
        if self._closed or not self.pooled or self.settings.pool_max <= 0:
            return
        from service.executors.pool import WarmPool

        pool = WarmPool(
            executor,
            limits_from_settings(self.settings),
            minimum=self.settings.pool_min,
            maximum=self.settings.pool_max,
            input_room=self.settings.pool_input_room_mb * 1024 * 1024,
            preimport=self.settings.pool_preimport,
            busy_preimport=self.settings.pool_preimport_busy,
        )
        self._pools[executor.name] = pool
        executor.pool = pool
        pool.start()

    def pool(self, executor: Executor) -> WarmPool | None:
        with self._lock:
            return self._pools.get(executor.name)

    def pools(self) -> list[WarmPool]:
        with self._lock:
            return list(self._pools.values())

    def executors(self) -> list[Executor]:
        with self._lock:
            return list(self._executors.values())

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

    def sweep_orphans(self, jobs: list[str] | None = None) -> dict[str, list[str]]:
        """Every engine that can run here removes what a crashed gateway left behind."""
        removed: dict[str, list[str]] = {}
        for entry in ENGINES.values():
            try:
                entry.probe()
                executor = self._executors.get(entry.name) or entry.load(self.settings)
            except EngineUnavailable:
                continue
            try:
                removed[entry.name] = executor.sweep_orphans(jobs=jobs)
            except EngineUnavailable as exc:
                log.warning("could not sweep %s orphans: %s", entry.name, exc.message)
            finally:
                if entry.name not in self._executors:
                    executor.close()
        return removed

    def cancel(self, job_ids: list[str] | None = None) -> list[str]:
        """Kill these jobs' scripts (all for None), whichever engine runs them."""
        return [job for executor in self.executors() for job in executor.cancel(job_ids)]

    def drain_pools(self) -> None:
        """Stop refilling and dispose of every waiting sandbox (shutdown)."""
        for executor in self.executors():
            executor.pool = None
        for pool in self.pools():
            pool.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pools, self._pools = list(self._pools.values()), {}
            executors, self._executors = list(self._executors.values()), {}
            self._default = None
        for pool in pools:
            pool.close()
        for executor in executors:
            executor.pool = None
            try:
                executor.close()
            except Exception:
                log.exception("closing the %s executor failed", executor.name)
