"""Leave nothing behind: orphan sandboxes, stale job dirs, expired artifacts, running jobs.

- ``startup_cleanup``: a crashed gateway leaves sandboxes (runner containers, local job
  dirs) and job scratch dirs; each engine sweeps its own (``Executor.sweep_orphans``) and the
  scratch dirs go, before the pool starts and the first request is served.
- ``ArtifactSweeper``: produced files (and saved query results) are served for
  ``artifact_retention_s``; a background task deletes older ones every ``cleanup_interval_s``.
- ``shutdown``: drain the warm pools, wait up to ``shutdown_grace_s`` for running scripts,
  then cancel them (``Executor.cancel``) and kill stray process groups, so that a stop never
  leaks a sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from service.executors.registry import ExecutorRegistry
from service.observability import CLEANUP_REMOVED, active_jobs, active_runs, wait_for_idle
from service.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class CleanupReport:
    sandboxes: dict[str, list[str]] = field(default_factory=dict)  # engine -> removed
    job_dirs: list[str] = field(default_factory=list)
    artifact_dirs: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)  # jobs killed at shutdown
    killed_processes: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_log(self) -> dict[str, Any]:
        return {
            "sandboxes_removed": sum(len(v) for v in self.sandboxes.values()),
            "job_dirs_removed": len(self.job_dirs),
            "artifact_dirs_removed": len(self.artifact_dirs),
            "processes_killed": len(self.killed_processes),
            "errors": self.errors[:5],
        }


# --- directories -----------------------------------------------------------------------------


def _age_s(path: Path, now: float) -> float:
    """Seconds since the entry or anything directly inside it last changed."""
    try:
        newest = path.lstat().st_mtime
        if path.is_dir() and not path.is_symlink():
            for child in path.iterdir():
                with contextlib.suppress(OSError):
                    newest = max(newest, child.lstat().st_mtime)
    except OSError:
        return 0.0
    return now - newest


def remove_older_than(
    parent: Path,
    max_age_s: float,
    *,
    keep: Callable[[Path], bool] = lambda _p: False,
    prefix: str = "",
    now: float | None = None,
) -> list[str]:
    """Delete entries of ``parent`` (matching ``prefix``) older than ``max_age_s``."""
    if not parent.is_dir():
        return []
    now = time.time() if now is None else now
    removed: list[str] = []
    for entry in parent.iterdir():
        if prefix and not entry.name.startswith(prefix):
            continue
        if keep(entry) or _age_s(entry, now) < max_age_s:
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry.name)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("could not remove %s: %s", entry, exc)
    return removed


def _dirs(settings: Settings) -> tuple[Path, Path]:
    # The pipeline's layout: jobs/<id> is scratch (gone when the job ends), artifacts/<id>
    # holds produced files for the retention period.
    return settings.execution_dir / "jobs", settings.execution_dir / "artifacts"


def sweep_expired(settings: Settings, now: float | None = None) -> CleanupReport:
    """Delete artifacts older than the retention period and scratch dirs nobody uses."""
    report = CleanupReport()
    jobs, artifacts = _dirs(settings)
    retention = float(settings.artifact_retention_s)
    report.artifact_dirs = remove_older_than(artifacts, retention, now=now)
    # Query results saved as Parquet (service/tools) are kept as long as artifacts.
    report.artifact_dirs += remove_older_than(settings.query_results_dir, retention, now=now)
    # Who ran each job (service/pipeline/jobs.py owners_root) goes with its artifacts.
    remove_older_than(settings.execution_dir / "owners", retention, now=now)
    # A scratch dir lives as long as its job: one older than the longest possible job (and
    # the retention) belongs to a job that is gone.
    scratch_age = max(retention, float(settings.max_timeout) * 2 + 60)
    report.job_dirs = remove_older_than(jobs, scratch_age, now=now)
    CLEANUP_REMOVED.labels(kind="artifact_dir").inc(len(report.artifact_dirs))
    CLEANUP_REMOVED.labels(kind="job_dir").inc(len(report.job_dirs))
    return report


def startup_cleanup_sync(
    settings: Settings, registry: ExecutorRegistry | None = None
) -> CleanupReport:
    """Before serving: no job runs yet, so every sandbox of ours and scratch dir is stale."""
    report = sweep_expired(settings)
    jobs, _ = _dirs(settings)
    # A scratch dir still here belongs to a job of a gateway that died with it running: its
    # sandbox is ours for sure, whatever its state or age.
    crashed = sorted(p.name for p in jobs.iterdir()) if jobs.is_dir() else []
    own = registry is None
    registry = registry or ExecutorRegistry(settings)
    try:
        report.sandboxes = registry.sweep_orphans(jobs=crashed)
    except Exception as exc:
        report.errors.append(f"sandboxes: {exc}")
    finally:
        if own:
            registry.close()
    for engine, removed in report.sandboxes.items():
        CLEANUP_REMOVED.labels(kind=f"{engine}_sandbox").inc(len(removed))
    stale_jobs = remove_older_than(jobs, 0.0)
    report.job_dirs.extend(stale_jobs)
    CLEANUP_REMOVED.labels(kind="job_dir").inc(len(stale_jobs))
    return report


async def startup_cleanup(
    settings: Settings, registry: ExecutorRegistry | None = None
) -> CleanupReport:
    report = await anyio.to_thread.run_sync(startup_cleanup_sync, settings, registry)
    level = logging.INFO if not report.errors else logging.WARNING
    log.log(level, "startup cleanup", extra=report.as_log())
    if any(report.sandboxes.values()):
        log.warning(
            "removed orphan sandboxes left by a previous run",
            extra={"sandboxes": report.sandboxes},
        )
    return report


# --- the periodic sweeper --------------------------------------------------------------------


class ArtifactSweeper:
    """Background task deleting expired artifacts every ``cleanup_interval_s``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="sweeper")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.cleanup_interval_s)
            try:
                report = await anyio.to_thread.run_sync(sweep_expired, self.settings)
            except Exception:
                log.exception("artifact sweep failed")
                continue
            if report.artifact_dirs or report.job_dirs:
                log.info("expired files removed", extra=report.as_log())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


# --- shutdown --------------------------------------------------------------------------------


def _children_of(pid: int) -> list[int]:
    """All descendants of ``pid`` (from /proc; empty where there is no /proc)."""
    parents: dict[int, list[int]] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parens, so split after ")".
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1:
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def kill_descendants(
    match: Callable[[str], bool] = lambda _cmd: True, pid: int | None = None
) -> list[int]:
    """SIGKILL the process groups of our descendants whose command line ``match``es."""
    me = os.getpid() if pid is None else pid
    my_group = os.getpgid(me)
    killed: list[int] = []
    for child in _children_of(me):
        if not match(_cmdline(child)):
            continue
        try:
            group = os.getpgid(child)
            if group != my_group:
                os.killpg(group, signal.SIGKILL)
            else:
                os.kill(child, signal.SIGKILL)
            killed.append(child)
        except ProcessLookupError:
            continue
        except PermissionError as exc:
            log.warning("could not kill %s: %s", child, exc)
    return killed


def _is_runner_process(settings: Settings) -> Callable[[str], bool]:
    """The subprocess engine's scripts: the local runner's python or the sandbox around it.

    Not the intake workers (also under bwrap; ``files.confine`` is in their command line):
    they hold no job, and they exit with the gateway.
    """
    runner = str(settings.local_runner_dir.resolve())

    def match(cmdline: str) -> bool:
        if "files.confine" in cmdline:
            return False
        return runner in cmdline or "bwrap" in cmdline or "runner_image" in cmdline

    return match


def shutdown_sync(
    settings: Settings, registry: ExecutorRegistry | None = None, grace_s: float | None = None
) -> CleanupReport:
    """Drain the pools, wait for running scripts up to the grace period, then kill the rest."""
    report = CleanupReport()
    if registry is not None:
        registry.drain_pools()
    grace = settings.shutdown_grace_s if grace_s is None else grace_s
    running = active_runs()
    if running == 0:
        return report
    log.info("waiting for running jobs", extra={"running": running, "grace_s": grace})
    if wait_for_idle(grace):
        return report
    jobs = active_jobs()
    log.warning(
        "grace period over: killing running jobs",
        extra={"running": active_runs(), "jobs": sorted(jobs)},
    )
    if registry is not None:
        report.cancelled = registry.cancel(sorted(jobs))
    report.killed_processes = kill_descendants(_is_runner_process(settings))
    # The killed runs now return (as failed) from their worker threads and dispose of their
    # sandboxes; give them a moment so nothing is left when the process exits.
    wait_for_idle(5.0)
    return report


async def shutdown(
    settings: Settings,
    registry: ExecutorRegistry | None = None,
    sweeper: ArtifactSweeper | None = None,
) -> CleanupReport:
    if sweeper is not None:
        await sweeper.stop()
    report = await anyio.to_thread.run_sync(shutdown_sync, settings, registry)
    log.info("shutdown cleanup", extra=report.as_log())
    return report
