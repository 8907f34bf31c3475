"""Stateful sessions: a dedicated sandbox per session whose interpreter keeps its state.

``SessionManager`` is built in the app lifespan and handed out by dependency. It opens a
session sandbox (``Executor.open_session``), runs cells, uploads, scripts and installs in it
one at a time (``service.executors.session.exchange``), and ends sessions on ``DELETE``, on
their idle TTL or maximum lifetime (a sweeper task), and all of them at shutdown. Caps: per
caller (429) and in total (503). State lives only in the sandbox: a gateway restart loses
every session (the sandboxes end with the gateway: the harness sees its stdin close).
"""

from __future__ import annotations

import contextlib
import json
import logging
import mimetypes
import secrets
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import anyio

from security.policy import StaticPolicy
from service.auth.permissions import Principal
from service.errors import (
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PythonCoderError,
    SessionGone,
    SessionLimit,
    SessionsExhausted,
)
from service.executors.base import Executor, InputFile, ProducedFile, RunLimits, Sandbox
from service.executors.registry import ExecutorRegistry
from service.executors.session import ChannelBroken, exchange
from service.models import Artifact, CellResponse, Display, SessionFile, SessionInfo
from service.observability import audit_event, text_digest
from service.pipeline.execute import screen_code
from service.pipeline.jobs import Upload
from service.pipeline.live import LiveOutput
from service.settings import MB, Settings

log = logging.getLogger(__name__)

# Engine-independent: what the session's own interpreter reports about itself.
ENVIRONMENT_CODE = (
    "print(__import__('json').dumps({'python': __import__('sys').version.split()[0], "
    "'packages': sorted(({'name': d.metadata['Name'], 'version': d.version} "
    "for d in __import__('importlib.metadata').metadata.distributions() "
    "if d.metadata['Name']), key=lambda p: p['name'].lower())}))"
)


@dataclass
class Audited:
    """What a session call's audit line learns from its result."""

    response: CellResponse | None = None

    def outcome(self) -> str:
        r = self.response
        if r is None:
            return "failed"
        if r.timed_out:
            return "timeout"
        return "success" if r.success else "error"


@dataclass
class Session:
    id: str
    owner: str
    executor: Executor
    sandbox: Sandbox
    limits: RunLimits
    idle_ttl_s: float
    created: float = field(default_factory=time.monotonic)
    created_at: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.monotonic)
    cells: int = 0
    busy: int = 0
    installed: dict[str, str] = field(default_factory=dict)
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    closed: bool = False

    def expires_in(self, max_lifetime_s: float) -> float:
        now = time.monotonic()
        return min(self.last_used + self.idle_ttl_s, self.created + max_lifetime_s) - now

    def info(self, max_lifetime_s: float) -> SessionInfo:
        return SessionInfo(
            id=self.id,
            engine=self.executor.name,
            isolation=list(self.executor.isolation()),
            created_at=round(self.created_at, 3),
            expires_at=round(time.time() + max(self.expires_in(max_lifetime_s), 0.0), 3),
            idle_ttl_s=self.idle_ttl_s,
            timeout_s=self.limits.timeout_s,
            memory_mb=self.limits.memory_bytes // MB,
            cpus=self.limits.cpus,
            cells=self.cells,
            installed=dict(self.installed),
        )


@dataclass(frozen=True)
class Answer:
    """One exchange's result frame and the files it carried (in a temp dir)."""

    header: dict[str, Any]
    files: tuple[ProducedFile, ...]
    elapsed_s: float


class SessionManager:
    """Every open session of this gateway process."""

    def __init__(self, registry: ExecutorRegistry, settings: Settings, policy: StaticPolicy):
        self.registry = registry
        self.settings = settings
        self.policy = policy
        self._sessions: dict[str, Session] = {}
        self._opening: dict[str, int] = {}  # caller -> sessions being provisioned
        self._scratch = settings.execution_dir / "sessions"
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    async def run_sweeper(self) -> None:
        """End sessions past their idle TTL or lifetime, every ``session_sweep_interval``."""
        while True:
            await anyio.sleep(self.settings.session_sweep_interval)
            await self.sweep()

    async def sweep(self) -> list[str]:
        lifetime = self.settings.session_max_lifetime
        expired = [
            s.id
            for s in list(self._sessions.values())
            if s.expires_in(lifetime) <= 0
            and (not s.busy or time.monotonic() - s.created > lifetime)
        ]
        for session_id in expired:
            log.info("session %s expired", session_id)
            await self.close_session(session_id)
        return expired

    async def close(self) -> None:
        """Shutdown: every session sandbox goes."""
        self._closed = True
        for session_id in list(self._sessions):
            await self.close_session(session_id)
        shutil.rmtree(self._scratch, ignore_errors=True)

    def __len__(self) -> int:
        return len(self._sessions)

    # ------------------------------------------------------------------ open / find / close

    async def create(
        self,
        caller: Principal,
        *,
        engine: str | None = None,
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        cpus: float | None = None,
        idle_ttl_s: float | None = None,
    ) -> SessionInfo:
        s = self.settings
        limits = session_limits(s, timeout_s=timeout_s, memory_mb=memory_mb, cpus=cpus)
        if idle_ttl_s is not None and not 0 < idle_ttl_s <= s.session_idle_ttl:
            raise InvalidRequest(
                f"idle_ttl_s must be > 0 and at most {s.session_idle_ttl} (the operator's limit)"
            )
        if self._closed:
            raise SessionsExhausted("the gateway is shutting down")
        owner = caller.identity
        mine = sum(1 for x in self._sessions.values() if x.owner == owner)
        mine += self._opening.get(owner, 0)
        if mine >= s.sessions_per_caller:
            raise SessionLimit(
                f"you already hold {mine} session(s), the most allowed per caller "
                f"({s.sessions_per_caller}); DELETE one first",
                retry_after_s=int(s.session_sweep_interval) + 1,
            )
        if len(self._sessions) + sum(self._opening.values()) >= s.max_sessions:
            raise SessionsExhausted(
                f"the gateway holds its maximum of {s.max_sessions} sessions; try again later"
            )
        executor = self.registry.get(engine)
        session_id = "s-" + secrets.token_hex(8)
        self._opening[owner] = self._opening.get(owner, 0) + 1
        try:
            sandbox = await anyio.to_thread.run_sync(
                lambda: executor.open_session(limits, tag=session_id)
            )
        finally:
            self._opening[owner] -= 1
            if not self._opening[owner]:
                del self._opening[owner]
        session = Session(
            id=session_id,
            owner=owner,
            executor=executor,
            sandbox=sandbox,
            limits=limits,
            idle_ttl_s=float(idle_ttl_s or s.session_idle_ttl),
        )
        self._sessions[session_id] = session
        if self._closed:  # shutdown began while it was provisioned
            await self.close_session(session_id)
            raise SessionsExhausted("the gateway is shutting down")
        log.info("session %s opened for %s in %s", session_id, owner, sandbox.ident)
        return session.info(s.session_max_lifetime)

    def get(self, session_id: str, caller: Principal) -> Session:
        """The caller's session (another caller's is as unknown as a missing one)."""
        session = self._sessions.get(session_id)
        if session is None or session.owner != caller.identity:
            raise NotFound(f"no session {session_id!r} (it may have expired or been closed)")
        return session

    def info(self, session: Session) -> SessionInfo:
        return session.info(self.settings.session_max_lifetime)

    async def close_session(self, session_id: str) -> bool:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        session.closed = True
        await anyio.to_thread.run_sync(session.sandbox.dispose)
        log.info("session %s closed after %d cell(s)", session_id, session.cells)
        return True

    # ------------------------------------------------------------------ talking to it

    async def _exchange(
        self,
        session: Session,
        header: dict[str, Any],
        *,
        inputs: tuple[InputFile, ...] = (),
        wait_s: float = 30.0,
        limits: RunLimits | None = None,
        live: LiveOutput | None = None,
    ) -> tuple[Answer, Path]:
        """One frame out and back, serialised per session; the caller removes the dir.
        ``live``: begun once the session is ours, the output streamed to it."""
        limits = limits or session.limits
        self._scratch.mkdir(parents=True, exist_ok=True)
        out_dir = Path(tempfile.mkdtemp(prefix=f"{session.id}-", dir=self._scratch))
        session.busy += 1
        try:
            async with session.lock:
                if session.closed:
                    raise SessionGone(f"session {session.id} was closed")
                if live is not None:
                    live.begin()
                started = time.perf_counter()
                try:
                    header_out, files = await anyio.to_thread.run_sync(
                        lambda: exchange(
                            session.sandbox,
                            header,
                            inputs=inputs,
                            output_dir=out_dir,
                            limits=limits,
                            wait_s=wait_s,
                            on_output=live.output if live is not None else None,
                        )
                    )
                except ChannelBroken as exc:
                    was_closed = session.closed
                    await self.close_session(session.id)
                    if was_closed:
                        raise SessionGone(f"session {session.id} was closed") from exc
                    log.warning("session %s broke: %s", session.id, exc)
                    raise SessionGone(
                        f"session {session.id}'s sandbox stopped answering and was removed; "
                        "its state is lost: open a new session"
                    ) from exc
                return Answer(header_out, files, time.perf_counter() - started), out_dir
        except BaseException:
            shutil.rmtree(out_dir, ignore_errors=True)
            raise
        finally:
            session.busy -= 1
            session.last_used = time.monotonic()

    def _timeout(self, timeout_s: float | None, session: Session) -> float:
        if timeout_s is None:
            return session.limits.timeout_s
        if not 0 < timeout_s <= self.settings.max_timeout:
            raise InvalidRequest(f"timeout_s must be > 0 and at most {self.settings.max_timeout}")
        return float(timeout_s)

    async def execute(
        self,
        session: Session,
        code: str,
        *,
        caller: Principal,
        inputs: tuple[InputFile, ...] = (),
        timeout_s: float | None = None,
        live: LiveOutput | None = None,
    ) -> CellResponse:
        """Run a cell: the static policy first, as for one-shot code; ``live``: its output as
        it comes. ``caller`` is who runs it (the audit line's)."""
        digest = text_digest(code)
        fields = {"code_sha256": digest["sha256"], "code_bytes": digest["bytes"]}
        fields["input_files"] = [{"name": f.name, "size": f.size} for f in inputs]
        async with self._audited("session_cell", session, caller, fields) as audit:
            audit.response = await self._execute(session, code, inputs, timeout_s, live)
            return audit.response

    async def _execute(
        self,
        session: Session,
        code: str,
        inputs: tuple[InputFile, ...],
        timeout_s: float | None,
        live: LiveOutput | None,
    ) -> CellResponse:
        warnings = await screen_code(code, self.policy, self.settings.policy)
        timeout = self._timeout(timeout_s, session)
        header = {
            "op": "cell",
            "code": code,
            "timeout_s": timeout,
            "interrupt_grace_s": self.settings.session_interrupt_grace,
            "limits": session.sandbox.wire_limits(session.limits),
        }
        wait = timeout + self.settings.session_interrupt_grace
        answer, out_dir = await self._exchange(
            session, header, inputs=inputs, wait_s=wait, live=live
        )
        try:
            session.cells += 1
            return self._cell_response(session, answer, warnings)
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)

    async def run_script(
        self,
        session: Session,
        path: str,
        args: list[str],
        *,
        caller: Principal,
        timeout_s: float | None = None,
        live: LiveOutput | None = None,
    ) -> CellResponse:
        """``path`` (a work-dir ``.py``) as ``__main__`` with ``args``, in a fresh process."""
        fields = {"path": path, "arg_count": len(args)}
        async with self._audited("session_script", session, caller, fields) as audit:
            audit.response = await self._run_script(session, path, args, timeout_s, live)
            return audit.response

    async def _run_script(
        self,
        session: Session,
        path: str,
        args: list[str],
        timeout_s: float | None,
        live: LiveOutput | None,
    ) -> CellResponse:
        name = check_session_path(path)
        if not name.endswith(".py"):
            raise InvalidRequest(f"run_script runs .py files; {name!r} is not one")
        if not all(isinstance(a, str) and "\x00" not in a for a in args):
            raise InvalidRequest("args must be strings")
        listing = {f.name for f in await self.list_files(session)}
        if name not in listing:
            raise NotFound(f"no file {name!r} in session {session.id}: upload it or write it")
        timeout = self._timeout(timeout_s, session)
        header = {
            "op": "script",
            "path": name,
            "argv": args,
            "timeout_s": timeout,
            "limits": session.sandbox.wire_limits(replace(session.limits, timeout_s=timeout)),
        }
        answer, out_dir = await self._exchange(session, header, wait_s=timeout, live=live)
        try:
            session.cells += 1
            return self._cell_response(session, answer, [])
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)

    @contextlib.asynccontextmanager
    async def _audited(
        self, event: str, session: Session, caller: Principal, fields: dict[str, Any]
    ) -> AsyncIterator[Audited]:
        """The audit line of a session call, written however it ends: a cell's outcome as
        for one-shot runs (``success``, ``error``, ``timeout``, plus ``state_lost``), or the
        name of the error that refused it (``PolicyViolation``, ...)."""
        audit = Audited()
        started = time.perf_counter()
        outcome = "failed"
        try:
            yield audit
            outcome = audit.outcome()
        except PythonCoderError as exc:
            outcome = type(exc).__name__
            raise
        finally:
            response = audit.response
            if response is not None:
                fields = {**fields, "cell": response.cell, "state_lost": response.state_lost}
            audit_event(
                self.settings,
                event,
                caller=caller,
                outcome=outcome,
                duration_s=time.perf_counter() - started,
                session_id=session.id,
                engine=session.executor.name,
                **fields,
            )

    def _cell_response(self, session: Session, answer: Answer, warnings: list[str]) -> CellResponse:
        h = answer.header
        exit_code = h.get("exit_code") if isinstance(h.get("exit_code"), int) else None
        timed_out = bool(h.get("timed_out"))
        stderr = str(h.get("stderr") or "")
        error = h.get("error") if isinstance(h.get("error"), str) else None
        success = exit_code == 0 and not timed_out
        reasons = [r for r in (error, stderr) if r]
        display = [
            Display(mime=str(d.get("mime")), data=str(d.get("data")))
            for d in h.get("display") or []
            if isinstance(d, dict) and d.get("mime") in ("text/html", "image/png")
        ]
        return CellResponse(
            session_id=session.id,
            cell=session.cells,
            success=success,
            output=str(h.get("stdout") or ""),
            error=("\n".join(reasons) or None) if not success else (stderr or None),
            exit_code=exit_code,
            timed_out=timed_out,
            state_lost=bool(h.get("state_lost")),
            value=h.get("value") if isinstance(h.get("value"), str) else None,
            display=display,
            output_truncated=bool(h.get("stdout_truncated")),
            error_truncated=bool(h.get("stderr_truncated")),
            execution_time=round(float(h.get("duration_s") or 0.0), 4),
            artifacts=[self._artifact(session, f) for f in answer.files],
            warnings=warnings,
        )

    @staticmethod
    def _artifact(session: Session, produced: ProducedFile) -> Artifact:
        return Artifact(
            name=produced.name,
            size=produced.size,
            media_type=mimetypes.guess_type(produced.name)[0] or "application/octet-stream",
            url=f"/v1/sessions/{session.id}/files/{produced.name}",
        )

    async def upload(self, session: Session, inputs: tuple[InputFile, ...]) -> list[SessionFile]:
        if not inputs:
            raise InvalidRequest("no files to upload")
        answer, out_dir = await self._exchange(session, {"op": "upload"}, inputs=inputs)
        shutil.rmtree(out_dir, ignore_errors=True)
        if answer.header.get("error"):
            raise InvalidRequest(f"upload failed: {answer.header['error']}")
        return [SessionFile(name=f.name, size=f.size) for f in inputs]

    async def list_files(self, session: Session) -> list[SessionFile]:
        answer, out_dir = await self._exchange(session, {"op": "list"})
        shutil.rmtree(out_dir, ignore_errors=True)
        return [
            SessionFile(name=str(e.get("name")), size=int(e.get("size") or 0))
            for e in answer.header.get("listing") or []
            if isinstance(e, dict)
        ]

    @contextlib.asynccontextmanager
    async def download(self, session: Session, name: str) -> Any:
        """Yields the local path of a copy of the session's file; removed afterwards."""
        name = check_session_path(name)
        answer, out_dir = await self._exchange(
            session,
            {"op": "read", "name": name, "limits": session.limits.to_wire()},
        )
        try:
            if not answer.files:
                skipped = answer.header.get("skipped") or []
                why = skipped[0].get("reason") if skipped and isinstance(skipped[0], dict) else None
                raise NotFound(
                    f"no file {name!r} in session {session.id}" + (f" ({why})" if why else "")
                )
            yield answer.files[0].path
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)

    async def environment(self, session: Session) -> dict[str, Any]:
        """Python version, packages (session installs marked), limits, engine, isolation."""
        header = {
            "op": "cell",
            "code": ENVIRONMENT_CODE,
            "timeout_s": 30.0,
            "limits": session.sandbox.wire_limits(session.limits),
        }
        answer, out_dir = await self._exchange(session, header, wait_s=30.0)
        shutil.rmtree(out_dir, ignore_errors=True)
        try:
            found = json.loads(str(answer.header.get("stdout") or ""))
        except ValueError:
            found = {"python": None, "packages": []}
        packages = [
            {**p, "session_install": p.get("name", "").lower() in session.installed}
            for p in found.get("packages") or []
            if isinstance(p, dict)
        ]
        return {
            "session_id": session.id,
            "python": found.get("python"),
            "engine": session.executor.name,
            "isolation": list(session.executor.isolation()),
            "limits": {
                "timeout_s": session.limits.timeout_s,
                "memory_mb": session.limits.memory_bytes // MB,
                "cpus": session.limits.cpus,
                "pids": session.limits.pids,
                "max_output_bytes": session.limits.max_output_bytes,
            },
            "packages": packages,
            "installed": dict(session.installed),
        }

    async def send_wheels(self, session: Session, wheels: list[Path]) -> dict[str, Any]:
        inputs = tuple(InputFile(name=w.name, path=w, size=w.stat().st_size) for w in wheels)
        answer, out_dir = await self._exchange(session, {"op": "install"}, inputs=inputs)
        shutil.rmtree(out_dir, ignore_errors=True)
        return answer.header


def session_limits(
    settings: Settings,
    *,
    timeout_s: float | None = None,
    memory_mb: int | None = None,
    cpus: float | None = None,
) -> RunLimits:
    """A session's limits: the caller's choice within the operator's."""
    if timeout_s is not None and not 0 < timeout_s <= settings.max_timeout:
        raise InvalidRequest(f"timeout_s must be > 0 and at most {settings.max_timeout}")
    if memory_mb is not None and not 32 <= memory_mb <= settings.max_memory:
        raise InvalidRequest(f"memory_mb must be between 32 and {settings.max_memory}")
    if cpus is not None and not 0 < cpus <= settings.cpus:
        raise InvalidRequest(f"cpus must be > 0 and at most {settings.cpus}")
    from service.executors.base import limits_from_settings

    base = limits_from_settings(settings, timeout_s)
    return RunLimits(
        timeout_s=base.timeout_s,
        memory_bytes=(memory_mb * MB) if memory_mb else base.memory_bytes,
        cpus=cpus or base.cpus,
        pids=base.pids,
        max_output_bytes=base.max_output_bytes,
        max_artifact_bytes=base.max_artifact_bytes,
        max_artifacts_total_bytes=base.max_artifacts_total_bytes,
        max_artifacts=base.max_artifacts,
        workdir_bytes=base.workdir_bytes,
    )


async def store_uploads(
    uploads: list[Upload], directory: Path, settings: Settings
) -> tuple[InputFile, ...]:
    """Session uploads of any type (scripts too): names checked, sizes and count capped.

    Unlike the one-shot intake nothing is sniffed or extracted: a session's code can write
    any file anyway; these only save it the upload in a cell."""
    if len(uploads) > settings.max_files:
        raise PayloadTooLarge(f"{len(uploads)} files, more than the {settings.max_files} allowed")
    stored: list[InputFile] = []
    total = 0
    for upload in uploads:
        name = check_session_path(upload.filename)
        if name in {f.name for f in stored}:
            raise InvalidRequest(f"file {name!r} sent twice")
        path = directory / f"{len(stored)}.upload"
        size = 0
        with path.open("xb") as out:
            async for chunk in upload.chunks:
                size += len(chunk)
                total += len(chunk)
                if size > settings.max_file_bytes:
                    raise PayloadTooLarge(
                        f"{name}: larger than the {settings.max_file_size} MB per-file limit"
                    )
                if total > settings.max_total_upload_bytes:
                    raise PayloadTooLarge(
                        f"the files exceed the {settings.max_total_upload} MB upload limit"
                    )
                out.write(chunk)
        stored.append(InputFile(name=name, path=path, size=size))
    return tuple(stored)


def check_session_path(name: str) -> str:
    """A relative path inside the session's work dir (no ``..``, no absolute path)."""
    if not isinstance(name, str) or not name or "\x00" in name or "\\" in name:
        raise InvalidRequest(f"bad file name {name!r}")
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidRequest(f"file name {name!r} must be a relative path without '.' or '..'")
    return name
