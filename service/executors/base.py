"""The executor port: ``provision(limits) -> Sandbox``, ``Sandbox.run(request)``, ``dispose()``.

A sandbox is single-use: provisioned (created, started, the harness up with its imports done,
waiting for its one request), run once, disposed of. Splitting the three lets a pool provision
ahead of demand (``service.executors.pool``) while a cold run does all three in a row
(``Executor.run``). Engines (``docker/``, ``local/``) implement the port; the registry
(``service.executors.registry``) is the only list of them. Nothing outside ``executors/``
compares engine names: it asks the port (``isolation()``, ``readiness()``,
``sweep_orphans()``, ``cancel()``).

Adapters are synchronous (docker-py and subprocess block); the pipeline calls them from a
worker thread. Both speak ``runner_image.protocol`` to the same harness, so a script behaves
the same in either engine.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from anyio import CapacityLimiter

    from service.executors.pool import WarmPool
    from service.executors.queue import RunQueue
    from service.settings import Settings

# The label every container we start carries; cleanup and leak checks select on it.
CONTAINER_LABEL = "io.python-coder.managed"
JOB_LABEL = "io.python-coder.job"
# Which gateway process provisioned a sandbox ("host:pid"): pooled ones carry no job id.
GATEWAY_LABEL = "io.python-coder.gateway"
GATEWAY_ID = f"{socket.gethostname()}:{os.getpid()}"
# Modules a pooled sandbox imports before it reports ready (matplotlib with the Agg backend).
POOL_PREIMPORT = "numpy,pandas,matplotlib,matplotlib.pyplot"
POOL_PREIMPORT_BUSY = "numpy,pandas,matplotlib"  # while requests outrun the pool
# The CPU weight a pooled sandbox starts and imports at (``provision(background=True)``), on
# the cgroup v1 ``cpu.shares`` scale whose default (Docker's too) is 1024: it yields the cores
# to the runs under way, and is raised to the default once it is ready, before it serves.
BACKGROUND_CPU_SHARES = 64
DEFAULT_CPU_SHARES = 1024


@dataclass(frozen=True)
class InputFile:
    """A file to place in the script's working directory under ``name`` (relative path)."""

    name: str
    path: Path
    size: int


@dataclass(frozen=True)
class RunLimits:
    timeout_s: float = 30.0
    memory_bytes: int = 512 * 1024 * 1024
    cpus: float = 1.0
    pids: int = 128
    max_output_bytes: int = 1024 * 1024
    max_artifact_bytes: int = 50 * 1024 * 1024
    max_artifacts_total_bytes: int = 200 * 1024 * 1024
    max_artifacts: int = 50
    fsize_bytes: int = 1024 * 1024 * 1024
    nofile: int = 256
    workdir_bytes: int = 1024 * 1024 * 1024

    def shape(self) -> tuple[int, float, int, int]:
        """What a sandbox is built with; a request may use a sandbox of the same shape.
        (The timeout and the output caps travel with the request.)"""
        return (self.memory_bytes, self.cpus, self.pids, self.workdir_bytes)

    def to_wire(self) -> dict[str, Any]:
        """The limits the harness enforces itself (the engine enforces the rest)."""
        return {
            "max_output_bytes": self.max_output_bytes,
            "max_artifact_bytes": self.max_artifact_bytes,
            "max_artifacts_total_bytes": self.max_artifacts_total_bytes,
            "max_artifacts": self.max_artifacts,
            "memory_bytes": self.memory_bytes,
            "cpu_s": max(1, int(self.timeout_s * max(self.cpus, 1.0)) + 1),
            "fsize_bytes": self.fsize_bytes,
            "nofile": self.nofile,
            "nproc": self.pids,
        }


def limits_from_settings(settings: Settings, timeout_s: float | None = None) -> RunLimits:
    """The operator's limits for a run (``timeout_s`` checked by the caller)."""
    return RunLimits(
        timeout_s=float(timeout_s or settings.timeout),
        memory_bytes=settings.max_memory_bytes,
        cpus=settings.cpus,
        pids=settings.pids_limit,
        max_output_bytes=settings.max_output_bytes,
        max_artifact_bytes=settings.max_artifact_bytes,
        max_artifacts_total_bytes=settings.max_artifacts_total_bytes,
        max_artifacts=settings.max_artifacts,
        workdir_bytes=settings.tmpfs_size_mb * 1024 * 1024,
    )


# Receives a run's output while it runs: ("stdout" | "stderr", text). Called on the thread
# that reads the sandbox's answer; it must be quick and must not raise.
OnOutput = Callable[[str, str], None]


@dataclass(frozen=True)
class RunRequest:
    job_id: str
    code: str
    inputs: tuple[InputFile, ...]
    output_dir: Path  # where the adapter writes produced files (made with the first one)
    limits: RunLimits = field(default_factory=RunLimits)
    # Set: the harness streams the output as it comes (chunk frames), each stream within
    # ``max_output_bytes``; None (the default): it sends the result only, as it always did.
    on_output: OnOutput | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ProducedFile:
    name: str
    size: int
    path: Path


@dataclass(frozen=True)
class SkippedFile:
    name: str
    size: int
    reason: str


@dataclass(frozen=True)
class RunResult:
    engine: str
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    exit_code: int | None = None
    timed_out: bool = False
    oom_killed: bool = False
    duration_s: float = 0.0  # script wall time measured by the harness
    wall_s: float = 0.0  # whole run as seen by the adapter (start -> removed)
    artifacts: tuple[ProducedFile, ...] = ()
    skipped: tuple[SkippedFile, ...] = ()
    skipped_more: int = 0  # files not returned beyond those listed in ``skipped``
    isolation: tuple[str, ...] = ()
    error: str | None = None  # failure reason when the script did not finish normally

    @property
    def success(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.oom_killed


@dataclass(frozen=True)
class Readiness:
    ready: bool
    engine: str
    detail: str
    checks: dict[str, Any] = field(default_factory=dict)


class Sandbox(ABC):
    """One provisioned sandbox: serves exactly one ``run``, then is disposed of.

    ``run`` may be called from any thread; ``dispose`` is idempotent, never raises, and may
    run on another thread than ``run`` (a pool disposes off the request path).
    """

    engine: str
    ident: str  # container name or job dir, for logs
    limits: RunLimits  # the shape it was provisioned with

    def __init__(self) -> None:
        self.provisioned_at = time.monotonic()
        self._used = False
        self._use_lock = threading.Lock()

    def claim(self) -> None:
        """Mark the sandbox used; a second claim is a bug, never a second run."""
        with self._use_lock:
            if self._used:
                raise RuntimeError(f"sandbox {self.ident} has already served a request")
            self._used = True

    @abstractmethod
    def run(self, request: RunRequest) -> RunResult:
        """Deliver the request and read its result; the timeout clock starts on delivery.
        Output chunks go to ``request.on_output`` (if set) on the way."""

    @abstractmethod
    def alive(self) -> bool:
        """Still waiting for its request? Cheap: no engine API call."""

    @abstractmethod
    def kill(self) -> None:
        """Stop a running script now (cancellation); the run then returns its result."""

    @abstractmethod
    def dispose(self) -> None:
        """Remove every trace of the sandbox."""

    # A session sandbox (``Executor.open_session``) is not claimed: it answers many frames,
    # one at a time, over the same channel (``service.executors.session.exchange``).

    def wire_limits(self, limits: RunLimits) -> dict[str, Any]:
        """The limits the harness enforces itself in this sandbox (``RunLimits.to_wire``)."""
        return limits.to_wire()

    def send_bytes(self, data: bytes, deadline: float) -> None:
        """Write ``data`` to the harness's stdin by ``deadline`` (monotonic); session mode."""
        raise NotImplementedError(f"{self.engine} sandboxes have no session channel")

    def reader(self, deadline: float) -> Callable[[int], bytes]:
        """A read callable on the harness's result channel that gives up at ``deadline``."""
        raise NotImplementedError(f"{self.engine} sandboxes have no session channel")


class Executor(ABC):
    """An engine: provisions single-use sandboxes and answers for its own host resources."""

    name: str
    # Are a sandbox's input files charged to its memory limit (docker's tmpfs)? Then a pooled
    # sandbox only takes inputs within the room it was provisioned with.
    charges_inputs_to_memory = False

    def __init__(self) -> None:
        self._running: dict[str, Sandbox] = {}
        self._running_lock = threading.Lock()
        self.pool: WarmPool | None = None  # set by the registry when pooling is on
        # The app's sandbox slots (an anyio CapacityLimiter shared by its engines), set by the
        # registry; None: the caller's default (anyio's worker-thread limit).
        self.slots: CapacityLimiter | None = None
        # The bounded, fair queue in front of the slots (set with them); None: no queue.
        self.queue: RunQueue | None = None

    @abstractmethod
    def provision(
        self,
        limits: RunLimits,
        *,
        preimport: str = "",
        input_room: int = 0,
        tag: str | None = None,
        session: bool = False,
        background: bool = False,
    ) -> Sandbox:
        """A started sandbox waiting for one request, its ``preimport`` modules imported.

        ``input_room``: bytes of inputs it must make room for (engines that charge the work
        dir to the memory limit); ``tag``: a cold run's job id, for names and labels;
        ``session``: the harness serves frames until its stdin ends (``open_session``);
        ``background``: provisioned ahead of any request (the pool): where the engine can,
        at ``BACKGROUND_CPU_SHARES`` until it is ready.
        Raises ``EngineUnavailable``/``ExecutorError``/``RunnerImageMissing``.
        """

    def open_session(self, limits: RunLimits, *, tag: str) -> Sandbox:
        """A sandbox whose harness runs in session mode (a persistent interpreter), warm with
        the pool's pre-imports; never taken from the pool (its harness is one-shot)."""
        return self.provision(limits, preimport=POOL_PREIMPORT, tag=tag, session=True)

    def serve(self, sandbox: Sandbox, request: RunRequest) -> RunResult:
        """Run ``request`` in ``sandbox`` (once), cancellable by job id meanwhile."""
        sandbox.claim()
        with self._running_lock:
            self._running[request.job_id] = sandbox
        try:
            return sandbox.run(request)
        finally:
            with self._running_lock:
                self._running.pop(request.job_id, None)

    def run(self, request: RunRequest) -> RunResult:
        """Run in a pooled sandbox when one fits, else cold: provision, run and dispose on
        this thread. A pooled one is disposed of off the request path."""
        pool = self.pool
        sandbox = pool.take(request) if pool is not None else None
        if sandbox is not None:
            assert pool is not None
            try:
                return self.serve(sandbox, request)
            finally:
                pool.dispose(sandbox)
        started = time.monotonic()
        sandbox = self.provision(
            request.limits, input_room=sum(f.size for f in request.inputs), tag=request.job_id
        )
        try:
            result = self.serve(sandbox, request)
        finally:
            sandbox.dispose()
        if pool is not None:  # what a cold start costs this workload, for the pool's choice
            pool.cold_served(time.monotonic() - started)
        return result

    def cancel(self, job_ids: list[str] | None = None) -> list[str]:
        """Kill the scripts of these jobs (all running ones for None); their runs then
        return as failed. Returns the job ids that were running here."""
        with self._running_lock:
            targets = {
                job: sb for job, sb in self._running.items() if job_ids is None or job in job_ids
            }
        for sandbox in targets.values():
            sandbox.kill()
        return sorted(targets)

    @abstractmethod
    def isolation(self) -> tuple[str, ...]:
        """Labels of what confines a script here (reported with each result)."""

    @abstractmethod
    def readiness(self) -> Readiness:
        """Is the engine reachable and the runner present? Cheap enough for ``/readyz``."""

    @abstractmethod
    def fingerprint(self) -> str:
        """Identifies the runner new sandboxes start from; a change drains the pool."""

    @abstractmethod
    def sweep_orphans(
        self, *, everything: bool = False, jobs: list[str] | None = None
    ) -> list[str]:
        """Remove sandboxes no live gateway owns (a crashed one's): ``jobs`` names jobs that
        surely died with their gateway; ``everything`` also takes ones that may still run.
        Returns what was removed."""

    def describe(self) -> str:
        """One line for the startup log: what was found and how it isolates."""
        return f"isolation: {','.join(self.isolation())}"

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients."""
