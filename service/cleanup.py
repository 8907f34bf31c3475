"""Leave nothing behind: orphan containers, stale job dirs, expired artifacts, running jobs.

- ``startup_cleanup``: a crashed gateway leaves runner containers (labelled ours) and job
  scratch dirs; both go before the first request is served.
- ``ArtifactSweeper``: produced files (and saved query results) are served for
  ``artifact_retention_s``; a background task deletes older ones every ``cleanup_interval_s``.
- ``shutdown``: wait up to ``shutdown_grace_s`` for running scripts, then kill their
  containers and process groups so that a stop never leaks a sandbox.

One gateway per Docker engine is assumed: containers carrying our label that this process
did not start are a previous crash's, not a neighbour's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from service.executors.base import CONTAINER_LABEL, JOB_LABEL
from service.observability import CLEANUP_REMOVED, active_jobs, active_runs, wait_for_idle
from service.settings import Settings

log = logging.getLogger(__name__)

# The subprocess engine's per-run temp dirs, directly under execution_dir.
SUBPROCESS_JOB_PREFIX = "job-"


@dataclass
class CleanupReport:
    containers: list[str] = field(default_factory=list)
    job_dirs: list[str] = field(default_factory=list)
    artifact_dirs: list[str] = field(default_factory=list)
    temp_dirs: list[str] = field(default_factory=list)
    killed_processes: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_log(self) -> dict[str, Any]:
        return {
            "containers_removed": len(self.containers),
            "job_dirs_removed": len(self.job_dirs),
            "artifact_dirs_removed": len(self.artifact_dirs),
            "temp_dirs_removed": len(self.temp_dirs),
            "processes_killed": len(self.killed_processes),
            "errors": self.errors[:5],
        }


# --- containers ------------------------------------------------------------------------------


def _docker_client(timeout: int = 10) -> Any | None:
    """A client when an engine answers, else None: without one nothing of ours can run."""
    from service.errors import EngineUnavailable
    from service.executors.factory import ping_docker

    try:
        ping_docker()  # a plain-socket check first: docker-py leaks failed connections
    except EngineUnavailable:
        return None
    import docker

    client = None
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except Exception:
        if client is not None:
            client.close()
        return None


def _remove_orphans_fn() -> Callable[..., list[str]] | None:
    try:
        from service.executors import docker as docker_executor
    except ImportError:
        return None
    return getattr(docker_executor, "remove_orphans", None)


def remove_our_containers(client: Any, job_ids: Iterable[str] | None = None) -> list[str]:
    """Remove containers carrying our label; returns their names.

    Without ``job_ids`` (startup): what no run can still own, by the docker executor's rule
    (stopped ones, and live ones older than any run may take), so a neighbour gateway's runs
    survive. With ``job_ids`` (shutdown): exactly those jobs' containers, running or not.
    """
    remove_orphans = _remove_orphans_fn()
    api = getattr(client, "api", client)  # the executor works with the low-level client
    if job_ids is None:
        if remove_orphans is not None:
            return list(remove_orphans(api))
        selectors = [[CONTAINER_LABEL]]
    else:
        selectors = [[CONTAINER_LABEL, f"{JOB_LABEL}={job}"] for job in job_ids]
        if remove_orphans is not None:
            removed: list[str] = []
            for job in job_ids:
                removed += remove_orphans(api, only={JOB_LABEL: job}, live_for_s=0)
            return removed
    removed = []
    for labels in selectors:
        for container in api.containers(all=True, filters={"label": labels}):
            with contextlib.suppress(Exception):  # gone meanwhile is fine
                api.remove_container(container["Id"], force=True, v=True)
                removed.append((container.get("Names") or [container["Id"][:12]])[0].lstrip("/"))
    return removed


def cleanup_containers(report: CleanupReport, job_ids: Iterable[str] | None = None) -> None:
    client = _docker_client()
    if client is None:
        return
    try:
        found = remove_our_containers(client, job_ids)
        report.containers.extend(found)
        CLEANUP_REMOVED.labels(kind="container").inc(len(found))
    except Exception as exc:
        report.errors.append(f"containers: {exc}")
    finally:
        client.close()


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
    # A scratch dir lives as long as its job: one older than the longest possible job (and
    # the retention) belongs to a job that is gone.
    scratch_age = max(retention, float(settings.max_timeout) * 2 + 60)
    report.job_dirs = remove_older_than(jobs, scratch_age, now=now)
    report.temp_dirs = remove_older_than(
        settings.execution_dir, scratch_age, prefix=SUBPROCESS_JOB_PREFIX, now=now
    )
    CLEANUP_REMOVED.labels(kind="artifact_dir").inc(len(report.artifact_dirs))
    CLEANUP_REMOVED.labels(kind="job_dir").inc(len(report.job_dirs))
    CLEANUP_REMOVED.labels(kind="temp_dir").inc(len(report.temp_dirs))
    return report


def startup_cleanup_sync(settings: Settings) -> CleanupReport:
    """Before serving: no job runs yet, so every container of ours and scratch dir is stale."""
    report = sweep_expired(settings)
    jobs, _ = _dirs(settings)
    # A scratch dir still here belongs to a job of a gateway that died with it running: its
    # container (labelled with the job id) is ours for sure, whatever its state or age.
    crashed = [p.name for p in jobs.iterdir()] if jobs.is_dir() else []
    if crashed:
        cleanup_containers(report, crashed)
    stale_jobs = remove_older_than(jobs, 0.0)
    stale_temp = remove_older_than(settings.execution_dir, 0.0, prefix=SUBPROCESS_JOB_PREFIX)
    report.job_dirs.extend(stale_jobs)
    report.temp_dirs.extend(stale_temp)
    CLEANUP_REMOVED.labels(kind="job_dir").inc(len(stale_jobs))
    CLEANUP_REMOVED.labels(kind="temp_dir").inc(len(stale_temp))
    cleanup_containers(report)
    return report


async def startup_cleanup(settings: Settings) -> CleanupReport:
    report = await anyio.to_thread.run_sync(startup_cleanup_sync, settings)
    level = logging.INFO if not report.errors else logging.WARNING
    log.log(level, "startup cleanup", extra=report.as_log())
    if report.containers:
        log.warning(
            "removed orphan runner containers left by a previous run",
            extra={"containers": report.containers},
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
            if report.artifact_dirs or report.job_dirs or report.temp_dirs:
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
    """The subprocess engine's scripts: the local runner's python or the sandbox around it."""
    runner = str(settings.local_runner_dir.resolve())

    def match(cmdline: str) -> bool:
        return runner in cmdline or "bwrap" in cmdline or "runner_image" in cmdline

    return match


def shutdown_sync(settings: Settings, grace_s: float | None = None) -> CleanupReport:
    """Wait for running scripts up to the grace period, then kill what is left."""
    report = CleanupReport()
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
    cleanup_containers(report, [job for job, engine in jobs.items() if engine == "docker"])
    report.killed_processes = kill_descendants(_is_runner_process(settings))
    # The killed runs now return (as failed) from their worker threads; give them a moment
    # so their job dirs are removed by the pipeline before the process exits.
    wait_for_idle(5.0)
    return report


async def shutdown(settings: Settings, sweeper: ArtifactSweeper | None = None) -> CleanupReport:
    if sweeper is not None:
        await sweeper.stop()
    report = await anyio.to_thread.run_sync(shutdown_sync, settings)
    log.info("shutdown cleanup", extra=report.as_log())
    return report
