"""Metrics, structured logs and the audit trail: what ops need to see a running gateway.

- ``/metrics``: Prometheus text format from our own registry (``prometheus_client``), so
  creating several apps in one process (tests) never registers a metric twice.
- Logs: one JSON object per line on stderr; every line a request caused carries its
  ``request_id`` (taken from a sane ``X-Request-ID`` header or made up, and sent back).
- Audit: one JSON line per execution appended to ``settings.audit_log_path``, naming the
  authenticated caller (identity, API key id, role; never the key).

The pipeline reports through the small functions below (``observe_execution``,
``observe_upload``, ``observe_llm``, ``track_active_container``, ``audit_execution``); it never
touches a metric object directly.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import logging
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from service.auth.permissions import Principal
    from service.executors.base import RunResult
    from service.executors.pool import PoolHooks
    from service.settings import Settings

log = logging.getLogger("python_coder.observability")

# --- metrics -------------------------------------------------------------------------------

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

PHASES = ("intake", "generate", "verify", "execute", "repair", "total")
OUTCOMES = ("success", "error", "timeout", "oom", "rejected", "failed")

EXECUTIONS = Counter(
    "python_coder_executions",
    "Executions by engine and outcome (success, error, timeout, oom, rejected, failed).",
    ["engine", "outcome"],
    registry=REGISTRY,
)
PHASE_SECONDS = Histogram(
    "python_coder_phase_seconds",
    "Latency of each pipeline phase (intake, generate, verify, execute, total).",
    ["phase"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
    registry=REGISTRY,
)
ACTIVE_CONTAINERS = Gauge(
    "python_coder_active_containers",
    "Sandboxes (runner containers or local sandboxes) running a script right now.",
    registry=REGISTRY,
)
POOL_SIZE = Gauge(
    "python_coder_pool_size",
    "Warm sandboxes waiting for a request, by engine.",
    ["engine"],
    registry=REGISTRY,
)
POOL_HITS = Counter(
    "python_coder_pool_hits",
    "Requests served by a warm pooled sandbox, by engine.",
    ["engine"],
    registry=REGISTRY,
)
POOL_MISSES = Counter(
    "python_coder_pool_misses",
    "Requests provisioned cold, by engine and reason (empty pool, other shape).",
    ["engine", "reason"],
    registry=REGISTRY,
)
POOL_PROVISION_SECONDS = Histogram(
    "python_coder_pool_provision_seconds",
    "Time to provision a pooled sandbox until its harness is ready, by engine.",
    ["engine"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60),
    registry=REGISTRY,
)
ACTIVE_EXECUTIONS = Gauge(
    "python_coder_active_executions",
    "Scripts running right now, by engine.",
    ["engine"],
    registry=REGISTRY,
)
UPLOAD_BYTES = Counter(
    "python_coder_upload_bytes",
    "Bytes of uploaded input files accepted.",
    registry=REGISTRY,
)
UPLOAD_FILES = Counter(
    "python_coder_upload_files",
    "Uploaded input files accepted.",
    registry=REGISTRY,
)
LLM_CALLS = Counter(
    "python_coder_llm_calls",
    "Calls made to the LLM endpoint.",
    registry=REGISTRY,
)
LLM_TOKENS = Counter(
    "python_coder_llm_tokens",
    "LLM tokens used, by kind (prompt, completion).",
    ["kind"],
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "python_coder_http_requests",
    "HTTP requests by method, route template and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_SECONDS = Histogram(
    "python_coder_http_request_seconds",
    "HTTP request latency by route template.",
    ["route"],
    registry=REGISTRY,
)
CLEANUP_REMOVED = Counter(
    "python_coder_cleanup_removed",
    "Things the cleanup removed, by kind (container, job_dir, temp_dir).",
    ["kind"],
    registry=REGISTRY,
)


def observe_execution(engine: str, outcome: str, phase_timings: Mapping[str, float]) -> None:
    """Count one finished execution and record how long each phase took (seconds)."""
    EXECUTIONS.labels(engine=engine or "none", outcome=outcome).inc()
    for phase, seconds in phase_timings.items():
        if seconds is not None and seconds >= 0:
            PHASE_SECONDS.labels(phase=phase).observe(seconds)


def observe_phase(phase: str, seconds: float) -> None:
    PHASE_SECONDS.labels(phase=phase).observe(max(0.0, seconds))


@contextlib.contextmanager
def time_phase(phase: str, timings: dict[str, float] | None = None) -> Iterator[None]:
    """Time a block; store the seconds in ``timings[phase]`` (added up) when given."""
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - started
        if timings is not None:
            timings[phase] = timings.get(phase, 0.0) + elapsed


def observe_upload(nbytes: int, files: int = 1) -> None:
    UPLOAD_BYTES.inc(max(0, nbytes))
    UPLOAD_FILES.inc(max(0, files))


def observe_llm(calls: int = 1, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
    LLM_CALLS.inc(max(0, calls))
    LLM_TOKENS.labels(kind="prompt").inc(max(0, prompt_tokens or 0))
    LLM_TOKENS.labels(kind="completion").inc(max(0, completion_tokens or 0))


_active_lock = threading.Condition()
_active_runs = 0
_active_jobs: dict[str, str] = {}  # job id -> engine, for runs that said which job they are


def active_runs() -> int:
    """Scripts running right now in this process (graceful shutdown waits for zero)."""
    with _active_lock:
        return _active_runs


def active_jobs() -> dict[str, str]:
    """Job id -> engine of the runs going on now (shutdown kills these containers)."""
    with _active_lock:
        return dict(_active_jobs)


def wait_for_idle(timeout_s: float) -> bool:
    """Block until no script runs or ``timeout_s`` passed; True when idle."""
    with _active_lock:
        return _active_lock.wait_for(lambda: _active_runs == 0, timeout=max(0.0, timeout_s))


@contextlib.contextmanager
def track_active_container(engine: str, job_id: str | None = None) -> Iterator[None]:
    """Count a run as active while the block runs (works from worker threads)."""
    global _active_runs
    with _active_lock:
        _active_runs += 1
        if job_id:
            _active_jobs[job_id] = engine
    ACTIVE_EXECUTIONS.labels(engine=engine).inc()
    ACTIVE_CONTAINERS.inc()
    try:
        yield
    finally:
        ACTIVE_EXECUTIONS.labels(engine=engine).dec()
        ACTIVE_CONTAINERS.dec()
        with _active_lock:
            _active_runs -= 1
            if job_id:
                _active_jobs.pop(job_id, None)
            _active_lock.notify_all()


def pool_hooks() -> PoolHooks:
    """The warm pool's reports, as Prometheus metrics."""
    from service.executors.pool import PoolHooks

    return PoolHooks(
        hit=lambda engine: POOL_HITS.labels(engine=engine).inc(),
        miss=lambda engine, reason: POOL_MISSES.labels(engine=engine, reason=reason).inc(),
        provisioned=lambda engine, s: POOL_PROVISION_SECONDS.labels(engine=engine).observe(s),
        size=lambda engine, n: POOL_SIZE.labels(engine=engine).set(n),
    )


def outcome_of(result: RunResult) -> str:
    """The outcome label of a finished run."""
    if result.timed_out:
        return "timeout"
    if result.oom_killed:
        return "oom"
    if result.exit_code == 0:
        return "success"
    if result.exit_code is None:
        return "failed"
    return "error"


def render_metrics() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# --- request ids and JSON logs ---------------------------------------------------------------

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "python_coder_request_id", default=None
)
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# LogRecord attributes that are not "extra" fields.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()
    | {"message", "asctime", "request_id", "taskName", "color_message"}
)


def current_request_id() -> str | None:
    return request_id_var.get()


class RequestIdFilter(logging.Filter):
    """Stamp every record with the request id of the context it was logged in."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, request_id, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


_HANDLER_MARK = "_python_coder_json"


class _StderrHandler(logging.StreamHandler[Any]):
    """Writes to whatever ``sys.stderr`` is at emit time (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(level: str | int = "INFO", stream: Any = None) -> logging.Handler:
    """Route all logging (ours, uvicorn's, libraries') through one JSON handler on the root.

    Idempotent: calling it again replaces our handler instead of adding another. uvicorn's
    own loggers lose their handlers and propagate to the root, so their lines are JSON too
    (start uvicorn with ``log_config=None`` so it does not re-install its own).
    """
    root = logging.getLogger()
    for old in list(root.handlers):
        # Ours from an earlier call, and plain console handlers (``basicConfig``) that would
        # print every line a second time; test runners' capture handlers are subclasses.
        plain_console = type(old) is logging.StreamHandler and getattr(old, "stream", None) in (
            sys.stderr,
            sys.stdout,
            sys.__stderr__,
            sys.__stdout__,
        )
        if getattr(old, _HANDLER_MARK, False) or plain_console:
            root.removeHandler(old)
    handler: logging.StreamHandler[Any] = (
        logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    )
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uv = logging.getLogger(name)
        uv.handlers.clear()
        uv.propagate = True
    # Our middleware logs every request with its id; uvicorn's access line would repeat it.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    return handler


class RequestContextMiddleware:
    """Pure ASGI middleware: request id in a contextvar + ``X-Request-ID`` on the response,
    one ``request`` log line per HTTP request, and HTTP metrics by route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = logging.getLogger("python_coder.http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = incoming if incoming and _SANE_REQUEST_ID.fullmatch(incoming) else None
        request_id = request_id or uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            HTTP_REQUESTS.labels(
                method=scope.get("method", ""), route=template, status=str(status)
            ).inc()
            HTTP_SECONDS.labels(route=template).observe(elapsed)
            client = scope.get("client")
            self.log.info(
                "request",
                extra={
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 1),
                    "client": client[0] if client else None,
                },
            )
            request_id_var.reset(token)


# --- audit log -------------------------------------------------------------------------------


class AuditLog:
    """Append-only JSON lines, one per execution; safe from several threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, entry: Mapping[str, Any]) -> None:
        line = json.dumps(dict(entry), default=str, ensure_ascii=False, sort_keys=False)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]


_audit_logs: dict[Path, AuditLog] = {}
_audit_lock = threading.Lock()


def audit_log_for(settings: Settings) -> AuditLog:
    path = Path(settings.audit_log_file).absolute()
    with _audit_lock:
        return _audit_logs.setdefault(path, AuditLog(path))


def _caller_fields(caller: Principal) -> dict[str, Any]:
    return {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "request_id": request_id_var.get(),
        "caller": caller.identity,
        "key_id": caller.key_id,
        "role": caller.role.value,
    }


def _write_audit(settings: Settings, entry: dict[str, Any]) -> None:
    audit = audit_log_for(settings)
    try:
        audit.write(entry)
    except OSError as exc:
        log.error("audit log write failed", extra={"path": str(audit.path), "error": str(exc)})


def text_digest(text: str) -> dict[str, Any]:
    """What the audit log keeps of code or SQL: its sha256 and size, never the text."""
    data = text.encode("utf-8", "surrogatepass")
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def audit_event(
    settings: Settings,
    event: str,
    *,
    caller: Principal,
    outcome: str,
    duration_s: float,
    **fields: Any,
) -> dict[str, Any]:
    """One audit line for a call that is not a one-shot execution: a data tool, a session
    cell, script or package install. Like ``audit_execution``, never raises."""
    entry = _caller_fields(caller)
    entry["event"] = event
    entry.update(fields)
    entry["outcome"] = outcome
    entry["duration_s"] = round(duration_s, 4)
    _write_audit(settings, entry)
    return entry


def audit_execution(
    settings: Settings,
    *,
    caller: Principal,
    code: str,
    input_files: Iterable[tuple[str, int]] | Iterable[str],
    engine: str,
    outcome: str,
    duration_s: float,
    job_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Append one audit line for an execution; returns the entry.

    ``caller`` is the authenticated principal: its identity, key id and role are written,
    never a key. ``input_files`` holds ``(name, size)`` pairs or bare names. Failures to write are logged,
    never raised: the audit trail must not turn a finished run into an error.
    """
    files: list[dict[str, Any]] = []
    for item in input_files:
        if isinstance(item, str):
            files.append({"name": item})
        else:
            name, size = item
            files.append({"name": name, "size": size})
    digest = text_digest(code)
    entry: dict[str, Any] = {
        **_caller_fields(caller),
        "event": "execution",
        "job_id": job_id,
        "code_sha256": digest["sha256"],
        "code_bytes": digest["bytes"],
        "input_files": files,
        "engine": engine,
        "outcome": outcome,
        "duration_s": round(duration_s, 4),
    }
    if extra:
        entry.update(extra)
    _write_audit(settings, entry)
    return entry


def standard_phases(timings: Mapping[str, float]) -> dict[str, float]:
    """The pipeline's detailed timings folded into the histogram's phases.

    ``verify`` is the static policy plus the verify -> modify loop (model and overhead);
    detail keys (``model``, per-round averages, ...) stay in the response's ``timings``.
    """
    phases: dict[str, float] = {}
    for phase in ("intake", "generate", "execute", "repair", "total"):
        if phase in timings:
            phases[phase] = timings[phase]
    verify = [
        timings[k] for k in ("policy", "verify_loop_model", "verify_loop_overhead") if k in timings
    ]
    if verify:
        phases["verify"] = sum(verify)
    return phases


def record_execution(
    settings: Settings,
    *,
    caller: Principal,
    code: str,
    input_files: Iterable[tuple[str, int]],
    engine: str,
    outcome: str,
    phase_timings: Mapping[str, float],
    job_id: str | None = None,
) -> None:
    """Metrics + audit line for one finished (or rejected) execution, in one call."""
    observe_execution(engine, outcome, standard_phases(phase_timings))
    total = phase_timings.get("total")
    if total is None:
        total = sum(v for k, v in phase_timings.items() if k != "total")
    audit_execution(
        settings,
        caller=caller,
        code=code,
        input_files=input_files,
        engine=engine,
        outcome=outcome,
        duration_s=total,
        job_id=job_id,
    )
    log.info(
        "execution finished",
        extra={
            "job_id": job_id,
            "engine": engine,
            "outcome": outcome,
            "duration_s": round(total, 4),
        },
    )


# --- wiring ----------------------------------------------------------------------------------


def install_observability(app: FastAPI, settings: Settings) -> None:
    """Add the request-id middleware, the ``/metrics`` route and JSON logging to ``app``."""
    from fastapi import Response

    configure_logging(settings.log_level)
    app.add_middleware(RequestContextMiddleware)

    async def metrics() -> Response:
        body, content_type = render_metrics()
        return Response(content=body, media_type=content_type)

    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
