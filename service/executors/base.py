"""The executor port: ``run(RunRequest) -> RunResult``, with docker and subprocess adapters.

Adapters are synchronous (docker-py and subprocess block); the pipeline calls them from a
worker thread. Both speak ``runner_image.protocol`` to the same harness, so a script behaves
the same in either engine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The label every container we start carries; cleanup and leak checks select on it.
CONTAINER_LABEL = "io.python-coder.managed"
JOB_LABEL = "io.python-coder.job"


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


@dataclass(frozen=True)
class RunRequest:
    job_id: str
    code: str
    inputs: tuple[InputFile, ...]
    output_dir: Path  # where the adapter writes produced files (created by the caller)
    limits: RunLimits = field(default_factory=RunLimits)


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


class Executor(ABC):
    """Runs one script in a fresh sandbox and returns what it produced."""

    name: str

    @abstractmethod
    def run(self, request: RunRequest) -> RunResult:
        """Run the script; raise ``EngineUnavailable``/``ExecutorError``, never return half."""

    @abstractmethod
    def readiness(self) -> Readiness:
        """Is the engine reachable and the runner present? Cheap enough for ``/readyz``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and pools."""
