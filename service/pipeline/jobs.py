"""Steps every job shares: its directories, file intake, running code, building the result."""

from __future__ import annotations

import errno
import logging
import mimetypes
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio

from files.intake import FileIntake, IntakeLimits, StoredFile
from service.auth.permissions import LOCAL_OPERATOR, Principal
from service.errors import DiskFull, EngineUnavailable, InvalidRequest
from service.executors.base import (
    Executor,
    InputFile,
    RunLimits,
    RunRequest,
    RunResult,
    limits_from_settings,
)
from service.models import Artifact, ExecutionResponse
from service.observability import observe_upload, record_execution, track_active_container
from service.pipeline.live import LiveOutput
from service.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Upload:
    """One uploaded file as the pipeline sees it: a name and a stream of chunks."""

    filename: str
    chunks: AsyncIterable[bytes]


@dataclass
class Job:
    """One request's files. Its directories are made on first use: most runs upload nothing
    and write nothing, and on ext4 each mkdir/rmdir pair costs ~0.3-1 ms of the request."""

    id: str
    root: Path  # private scratch space, removed when the job ends
    output_dir: Path  # produced files (made by the first one), kept for the retention period
    files: tuple[StoredFile, ...] = ()
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    # Files placed beside the inputs without intake (a one-shot run's installed packages).
    extra_inputs: tuple[InputFile, ...] = ()

    @property
    def input_dir(self) -> Path:
        """Where uploads go, made when first asked for."""
        path = self.root / "inputs"
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    @property
    def input_names(self) -> list[str]:
        return [f.name for f in self.files]


def jobs_root(settings: Settings) -> Path:
    return settings.execution_dir / "jobs"


def artifacts_root(settings: Settings) -> Path:
    return settings.execution_dir / "artifacts"


def owners_root(settings: Settings) -> Path:
    """Who ran each job (``owners/<job id>`` holds a principal's identity), so that with API
    keys one caller's artifacts are not another's to download. Swept with the artifacts."""
    return settings.execution_dir / "owners"


def artifact_owner(settings: Settings, job_id: str) -> str | None:
    try:
        return (owners_root(settings) / job_id).read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None


@asynccontextmanager
async def open_job(settings: Settings, owner: str | None = None) -> AsyncIterator[Job]:
    """A job whose directories are made on first use; after it, the scratch space goes, and
    the output dir unless files are in it, which then get their owner's record.
    ``owner``: the identity of the principal it runs for (see ``owners_root``)."""
    settings.execution_dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(settings.execution_dir).free
    if free < settings.min_free_disk_mb * 1024 * 1024:
        raise EngineUnavailable(
            f"only {free // (1024 * 1024)} MB free under {settings.execution_dir}; new jobs "
            f"wait until {settings.min_free_disk_mb} MB are (PYTHON_CODE_MIN_FREE_DISK_MB)"
        )
    job_id = uuid.uuid4().hex
    root = jobs_root(settings) / job_id
    output_dir = artifacts_root(settings) / job_id
    job = Job(id=job_id, root=root, output_dir=output_dir)
    served = False  # ended well with files in its output dir
    try:
        yield job
    except Exception as exc:
        # A job that ends in an error serves no files: what it wrote so far goes now.
        shutil.rmtree(output_dir, ignore_errors=True)
        if _out_of_space(exc) and not isinstance(exc, DiskFull):
            raise DiskFull(
                "the execution dir (PYTHON_CODE_EXECUTION_DIR) ran out of space during the job; "
                "retry later (expired artifacts are swept every PYTHON_CODE_CLEANUP_INTERVAL_S)"
            ) from exc
        raise
    else:
        served = _has_entries(output_dir)
        # Files to serve: their owner is written before any id that names them leaves.
        if served and owner is not None:
            owner_file = owners_root(settings) / job_id
            owner_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            owner_file.write_text(owner, encoding="utf-8")
    finally:
        if os.path.lexists(root):
            shutil.rmtree(root, ignore_errors=True)
        if not served and os.path.isdir(output_dir) and not _has_entries(output_dir):
            output_dir.rmdir()


def _has_entries(directory: Path) -> bool:
    try:
        with os.scandir(directory) as entries:
            return next(entries, None) is not None
    except (FileNotFoundError, NotADirectoryError):
        return False


def _out_of_space(exc: BaseException) -> bool:
    """Is ENOSPC/EDQUOT anywhere in the chain (engines wrap what they caught, ``from exc``)?"""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        current = current.__cause__ or current.__context__
    return False


def intake_limits(settings: Settings) -> IntakeLimits:
    return IntakeLimits(
        max_file_bytes=settings.max_file_bytes,
        max_total_bytes=settings.max_total_upload_bytes,
        max_files=settings.max_files,
    )


async def intake_uploads(job: Job, uploads: Sequence[Upload], settings: Settings) -> None:
    """Store, validate, extract and describe the uploads; raises ``files.errors.IntakeError``."""
    if not uploads:
        return
    started = time.perf_counter()
    intake = FileIntake(job.input_dir, intake_limits(settings))
    for upload in uploads:
        await intake.add_async_stream(upload.filename, upload.chunks)
    result = await anyio.to_thread.run_sync(intake.finish)
    job.files = result.files
    observe_upload(sum(f.size for f in result.files), len(result.files))
    job.metadata = result.metadata
    job.warnings.extend(result.warnings)
    job.timings["intake"] = time.perf_counter() - started


def run_limits(settings: Settings, timeout_s: float | None) -> RunLimits:
    if timeout_s is not None and not 0 < timeout_s <= settings.max_timeout:
        raise InvalidRequest(
            f"timeout must be in (0, {settings.max_timeout}] seconds, got {timeout_s}"
        )
    return limits_from_settings(settings, timeout_s)


async def run_code(
    job: Job,
    code: str,
    executor: Executor,
    settings: Settings,
    timeout_s: float | None,
    *,
    caller: str = LOCAL_OPERATOR.identity,
    live: LiveOutput | None = None,
) -> RunResult:
    """Run ``code`` against the job's inputs in a fresh sandbox (off the event loop).

    At most ``max_concurrent_runs`` sandboxes run at once (the executor's ``slots``, shared
    by the app's engines); the others wait in the app's ``RunQueue``, on the event loop,
    without holding a worker thread: bounded (``QueueFull``, a 429, beyond it) and served
    round-robin by ``caller``. Each run starts with an empty output dir, so a repaired run
    never serves files its failed predecessor left. ``live``: the output goes there as it
    comes, and ``live.begin()`` once the run has its slot.
    """
    request = RunRequest(
        job_id=job.id,
        code=code,
        inputs=tuple(InputFile(name=f.name, path=f.path, size=f.size) for f in job.files)
        + job.extra_inputs,
        output_dir=job.output_dir,
        limits=run_limits(settings, timeout_s),
        on_output=live.output if live is not None else None,
    )
    if os.path.lexists(job.output_dir):  # made by the engine on the first file it receives
        shutil.rmtree(job.output_dir, ignore_errors=True)
    waiting = time.perf_counter()
    started = waiting

    def run_tracked() -> RunResult:
        nonlocal started
        started = time.perf_counter()
        with track_active_container(executor.name, job.id):
            return executor.run(request)

    queue = executor.queue
    try:
        async with queue.slot(caller) if queue is not None else nullcontext():
            if live is not None:
                live.begin()
            return await anyio.to_thread.run_sync(
                run_tracked, limiter=executor.slots, abandon_on_cancel=False
            )
    finally:
        job.timings["queued"] = job.timings.get("queued", 0.0) + started - waiting
        job.timings["execute"] = job.timings.get("execute", 0.0) + time.perf_counter() - started


def artifact_url(job_id: str, name: str) -> str:
    return f"/v1/executions/{job_id}/artifacts/{quote(name)}"


def artifacts_of(job: Job, run: RunResult) -> list[Artifact]:
    return [
        Artifact(
            name=a.name,
            size=a.size,
            media_type=mimetypes.guess_type(a.name)[0] or "application/octet-stream",
            url=artifact_url(job.id, a.name),
        )
        for a in run.artifacts
    ]


def failure_reason(run: RunResult) -> str | None:
    """stderr for a failing script, or what stopped it when there is no stderr to show."""
    if run.success:
        return run.stderr or None
    reasons = [r for r in (run.error,) if r]
    if run.timed_out and not any("time" in r for r in reasons):
        reasons.insert(0, "timed out")
    if run.stderr:
        reasons.append(run.stderr)
    return "\n".join(reasons) or f"exit code {run.exit_code}"


def record_job(
    job: Job, settings: Settings, *, caller: Principal, code: str, engine: str, outcome: str
) -> None:
    """Metrics and the audit line for one finished (or refused) job."""
    record_execution(
        settings,
        caller=caller,
        code=code,
        input_files=[(f.name, f.size) for f in job.files],
        engine=engine,
        outcome=outcome,
        phase_timings=dict(job.timings),
        job_id=job.id,
    )


def build_response(
    job: Job, code: str, run: RunResult | None, *, engine: str, **extra: Any
) -> ExecutionResponse:
    """The one result shape for REST, MCP and the CLI."""
    fields: dict[str, Any] = {
        "id": job.id,
        "code": code,
        "engine": engine,
        "input_files": job.input_names,
        "file_metadata": job.metadata,
        "timings": {k: round(v, 4) for k, v in job.timings.items()},
        "warnings": list(job.warnings),
    }
    if run is None:
        fields["success"] = False
    else:
        skipped = [
            f"artifact {s.name} ({s.size} bytes) not returned: {s.reason}" for s in run.skipped
        ]
        if run.skipped_more:
            skipped.append(f"{run.skipped_more} more produced files not returned (limits)")
        fields.update(
            success=run.success,
            output=run.stdout,
            error=failure_reason(run),
            exit_code=run.exit_code,
            timed_out=run.timed_out,
            oom_killed=run.oom_killed,
            output_truncated=run.stdout_truncated,
            error_truncated=run.stderr_truncated,
            execution_time=round(run.duration_s, 4),
            engine=run.engine,
            isolation=list(run.isolation),
            artifacts=artifacts_of(job, run),
            warnings=fields["warnings"] + skipped,
        )
    fields.update(extra)
    return ExecutionResponse(**fields)
