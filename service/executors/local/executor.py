"""The local engine: the harness in a local process, sandboxed as far as the host allows.

Used where no Docker engine is reachable. Every sandbox gets a fresh job dir under
``settings.execution_dir`` (mode 0700, removed on dispose), a scrubbed environment, its own
session, rlimits, and an outer SIGKILL backstop to the harness's own timeout.

Provisioning starts the harness in its sandbox and waits for its ready frame (pre-imports
done); ``run`` writes the request on its stdin and reads the result from its stdout;
``dispose`` kills what is left and removes the job dir. How the job is isolated (bubblewrap
namespaces, per-job uids, rlimits, the address-space headroom, seccomp) is ``probe``,
``bwrap``, ``uids`` and ``seccomp`` beside this module.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import select
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import IO, Any, Literal

from runner_image import protocol
from sandboxing.seccomp import ProgramFd
from service.errors import DiskFull, EngineUnavailable, ExecutorError
from service.executors.base import Executor, Readiness, RunLimits, RunRequest, RunResult, Sandbox
from service.executors.local import cgroups
from service.executors.local.bwrap import (
    HARNESS_DIR,
    HARNESS_FILES,
    sandbox_command,
    setpriv_args,
)
from service.executors.local.jobdir import JobLayout, build_matplotlib_seed, remove_tree
from service.executors.local.probe import (
    AS_HEADROOM_BYTES,
    PROBE_TIMEOUT_S,
    Isolation,
    RunnerInfo,
    detect_isolation,
    nproc_limit,
)
from service.executors.local.uids import SYSTEM_PATH, UidLease, kill_marked, kill_uid
from service.executors.request import encode_request
from service.executors.results import ReceivedResult, receive_result, result_from_header
from service.settings import Settings

log = logging.getLogger(__name__)

BUILD_COMMAND = "python-coder build-runner --local"
WEAK_SANDBOX_SETTING = "PYTHON_CODE_ALLOW_WEAK_SANDBOX"
# The harness's own subdirectories of the execution dir start with this (swept at start).
JOB_PREFIX = "job-"
# The harness has its own timeout; ours fires only if it is wedged. Covers writing inputs
# and sending artifacts back.
OUTER_GRACE_S = 15.0
READY_TIMEOUT_S = 60.0
HARNESS_STDERR_KEEP = 16 * 1024


class LocalSandbox(Sandbox):
    """A sandboxed harness process waiting for its request on stdin."""

    engine = "subprocess"

    def __init__(
        self,
        executor: SubprocessExecutor,
        proc: subprocess.Popen[bytes],
        layout: JobLayout,
        lease: UidLease | None,
        limits: RunLimits,
        nproc: int,
        tail: _Tail,
        threads: list[threading.Thread],
        cgroup: cgroups.JobCgroup | None,
    ) -> None:
        super().__init__()
        self.cgroup = cgroup
        self.executor = executor
        self.proc = proc
        self.layout = layout
        self.lease = lease
        self.limits = limits
        self.nproc = nproc
        self.tail = tail
        self.threads = threads
        self.ident = layout.root.name
        self._disposed = False
        self._dispose_lock = threading.Lock()

    def alive(self) -> bool:
        return not self._disposed and self.proc.poll() is None

    def kill(self) -> None:
        # bubblewrap starts the harness in a session of its own: the process group alone
        # misses the script, so the job's cgroup and uid are killed too (cancellation).
        _kill_group(self.proc.pid)
        if self.cgroup is not None:
            self.cgroup.kill()
        if self.lease is not None:
            kill_uid(self.lease.uid)

    def wire_limits(self, limits: RunLimits) -> dict[str, Any]:
        # As encode_request here: RLIMIT_AS with headroom, the uid's task budget.
        wire = limits.to_wire()
        wire["memory_bytes"] = limits.memory_bytes + AS_HEADROOM_BYTES
        wire["nproc"] = self.nproc
        return wire

    def send_bytes(self, data: bytes, deadline: float) -> None:
        assert self.proc.stdin
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def reader(self, deadline: float) -> Callable[[int], bytes]:
        assert self.proc.stdout
        fd = self.proc.stdout.fileno()

        def read(n: int) -> bytes:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError("the session's runner did not answer in time")
            return os.read(fd, n)  # unbuffered: frames follow each other on this pipe

        return read

    def run(self, request: RunRequest) -> RunResult:
        started = time.monotonic()
        result = self._drive(request)
        return replace(result, wall_s=round(time.monotonic() - started, 6))

    def _drive(self, request: RunRequest) -> RunResult:
        proc = self.proc
        assert proc.stdin and proc.stdout
        frame = encode_request(
            request,
            memory_bytes=request.limits.memory_bytes + AS_HEADROOM_BYTES,
            nproc=self.nproc,
        )
        reader = _ResultReader(proc.stdout, request)
        writer = threading.Thread(
            target=_send_request, args=(proc.stdin, frame, request), daemon=True
        )
        reading = threading.Thread(target=reader.run, daemon=True)
        self.threads += [writer, reading]
        writer.start()
        reading.start()
        outer = request.limits.timeout_s + self.executor.outer_grace_s
        # The harness answers, then exits: the answer is all a run waits for. What is left
        # of the process goes in dispose (off the request path in a pool).
        reading.join(outer)
        isolation = self.executor.isolation()
        if reading.is_alive():
            log.warning(
                "job %s: harness still running after %.0f s, killing", request.job_id, outer
            )
            self.kill()
            reading.join(5)
            return RunResult(
                engine=self.engine,
                exit_code=None,
                timed_out=True,
                error=f"the sandbox did not finish within {outer:g} s and was killed",
                isolation=isolation,
            )
        if reader.disk_full is not None:
            raise reader.disk_full
        if reader.received is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            if self.cgroup is not None and self.cgroup.oom_killed():
                # The harness itself was the victim (the script had little of its own).
                return _out_of_memory(request, RunResult(engine=self.engine, isolation=isolation))
            code = proc.returncode
            if code is not None and (code < 0 or code >= 128):
                # Killed from inside (a script may signal the harness when no pidns
                # protects it), or by the kernel.
                signum = -code if code < 0 else code - 128
                return RunResult(
                    engine=self.engine,
                    exit_code=None,
                    error=f"the sandbox was killed (signal {signum}) before it reported a result",
                    isolation=isolation,
                )
            if reader.error is not None:  # it answered, but not in our protocol: a bug
                raise ExecutorError(
                    f"local runner failed (exit {code}): {reader.error}; "
                    f"harness stderr: {self.tail.text()[-2000:] or '(empty)'}"
                )
            # The sandbox died without answering: a failed run with the reason, not a 500.
            log.warning(
                "local runner of %s gave no result (exit %s): %s",
                request.job_id,
                code,
                self.tail.text()[-2000:],
            )
            return RunResult(
                engine=self.engine,
                exit_code=None,
                error=(
                    f"the sandbox died before it reported a result (exit {code}); the script "
                    "may have exhausted its process, memory or file limits"
                ),
                isolation=isolation,
            )
        result = result_from_header(
            reader.received.header,
            engine=self.engine,
            artifacts=reader.received.artifacts,
            isolation=isolation,
            limits=request.limits,
        )
        # The job cgroup's own OOM-kill counter is the authority (as the docker engine's
        # OOMKilled): a script that outlived the loss of a subprocess still succeeded.
        if self.cgroup is not None and self.cgroup.oom_killed() and result.exit_code != 0:
            return _out_of_memory(request, result)
        return result

    def dispose(self) -> None:
        with self._dispose_lock:
            if self._disposed:
                return
            self._disposed = True
        proc = self.proc
        try:
            # Not reaped yet, so the group id cannot have been reused by anyone else.
            _kill_group(proc.pid)
            if self.lease is None and not self.executor.isolation_info().bwrap:
                kill_marked(self.layout.home)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                with contextlib.suppress(OSError):
                    if stream is not None:
                        stream.close()
            for t in self.threads:
                t.join(timeout=5)
        finally:
            if self.cgroup is not None:
                self.cgroup.close()
            if self.lease is not None:
                kill_uid(self.lease.uid)
            remove_tree(self.layout.root)
            if self.lease is not None:
                self.lease.release()


class SubprocessExecutor(Executor):
    """Provisions sandboxed local harness processes; each serves one request."""

    name = "subprocess"

    def __init__(
        self,
        settings: Settings,
        *,
        sandbox: Literal["auto", "none"] = "auto",
        outer_grace_s: float = OUTER_GRACE_S,
    ) -> None:
        """``sandbox="none"`` skips bubblewrap even where it works (tests, debugging);
        ``outer_grace_s`` is the backstop's slack over the script timeout."""
        super().__init__()
        self.settings = settings
        self._sandbox = sandbox
        self.outer_grace_s = outer_grace_s
        self._lock = threading.Lock()
        self._isolation: Isolation | None = None
        self._runner: RunnerInfo | None = None
        self._mpl_seed: dict[Path, Path | None] = {}
        self._weak_logged = False
        self._cgroups: cgroups.CgroupSupport | None = None

    @property
    def charges_inputs_to_memory(self) -> bool:  # type: ignore[override]
        """With per-job cgroups the sandbox's tmpfs pages count against its memory limit."""
        self.isolation_info()
        return self._cgroups is not None

    # ------------------------------------------------------------------ discovery

    @property
    def runner_python(self) -> Path:
        return Path(os.path.abspath(self.settings.local_runner_python))

    def _missing_runner(self) -> str:
        return (
            f"local runner environment missing: {self.runner_python} does not exist; "
            f"run `{BUILD_COMMAND}` (or set PYTHON_CODE_LOCAL_RUNNER_DIR to a venv)"
        )

    def isolation(self) -> tuple[str, ...]:
        return self.isolation_info().labels

    def describe(self) -> str:
        return f"isolation: {','.join(self.isolation())}"

    def isolation_info(self) -> Isolation:
        """Detect what the host allows, once; logged the first time."""
        with self._lock:
            if self._isolation is None:
                self._isolation = self._with_cgroups(detect_isolation(self._sandbox))
                log.info(
                    "subprocess engine isolation: %s (%s)",
                    ",".join(self._isolation.labels),
                    self._isolation.detail,
                )
            return self._isolation

    def _with_cgroups(self, iso: Isolation) -> Isolation:
        """Per-job cgroups where this process can make them (root, writable hierarchy)."""
        if iso.as_root and not iso.bwrap and not iso.setpriv:
            support, note = None, "no cgroups: setpriv is missing to enter them before the drop"
        else:
            support, note = cgroups.detect()
        if support is None:
            log.warning("subprocess engine runs jobs without a cgroup: %s", note)
            return replace(iso, detail=f"{iso.detail}; no per-job cgroup ({note})")
        self._cgroups = support
        cgroups.sweep_stale(support)
        return replace(iso, cgroup=True, detail=f"{iso.detail}; per-job {note}")

    def weak_sandbox(self) -> str | None:
        """Why this host's sandbox is below namespaces + seccomp and not allowed to run code
        that way (None: strong enough, or the operator opted in)."""
        iso = self.isolation_info()
        if iso.bwrap and iso.seccomp:
            return None
        if self.settings.allow_weak_sandbox:
            with self._lock:
                if not self._weak_logged:
                    self._weak_logged = True
                    log.warning(
                        "subprocess engine runs code WITHOUT namespaces + seccomp (%s), "
                        "because %s=true",
                        iso.detail,
                        WEAK_SANDBOX_SETTING,
                    )
            return None
        return (
            "the subprocess engine refuses to run code: its sandbox lacks bubblewrap "
            f"namespaces + seccomp ({iso.detail}); install bubblewrap, or set "
            f"{WEAK_SANDBOX_SETTING}=true to accept the weaker sandbox"
        )

    def runner(self) -> RunnerInfo:
        """Locate the runner interpreter and what must be visible for it to start."""
        python = self.runner_python
        if not python.exists():
            raise EngineUnavailable(self._missing_runner())
        with self._lock:
            if self._runner is not None and self._runner.python == python:
                return self._runner
        try:
            out = subprocess.run(
                [str(python), "-I", "-c", _PREFIX_PROBE],
                capture_output=True,
                timeout=PROBE_TIMEOUT_S,
                env={"PATH": SYSTEM_PATH, "LANG": "C.UTF-8"},
                check=True,
            )
            prefixes = [Path(p) for p in json.loads(out.stdout)]
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            raise EngineUnavailable(
                f"local runner {python} does not start ({exc}); run `{BUILD_COMMAND}`"
            ) from exc
        iso = self.isolation_info()
        if iso.as_root and not iso.bwrap:
            _check_runs_unprivileged(python)
        info = RunnerInfo.from_prefixes(python, prefixes)
        with self._lock:
            self._runner = info
        return info

    def readiness(self) -> Readiness:
        checks: dict[str, Any] = {"runner_python": str(self.runner_python)}
        iso = self.isolation_info()
        checks["isolation"] = list(iso.labels)
        checks["isolation_detail"] = iso.detail
        weak = self.weak_sandbox()
        if weak is not None:
            return Readiness(False, self.name, weak, checks)
        try:
            runner = self.runner()
        except EngineUnavailable as exc:
            return Readiness(False, self.name, exc.message, checks)
        checks["runner_prefixes"] = [str(p) for p in runner.prefixes]
        if iso.as_root and not iso.setpriv and iso.bwrap:
            return Readiness(False, self.name, "setpriv (util-linux) is missing", checks)
        return Readiness(
            True,
            self.name,
            f"local runner {runner.python}; isolation: {','.join(iso.labels)}",
            checks,
        )

    def matplotlib_seed(self, runner: RunnerInfo) -> Path | None:
        """A prebuilt matplotlib font cache for this runner (None without matplotlib).

        Every run has a fresh HOME, so without it each ``import matplotlib`` rescans the
        fonts. Built once by our own import (never by a user script), shared via /tmp.
        """
        with self._lock:
            if runner.python in self._mpl_seed:
                return self._mpl_seed[runner.python]
            seed = build_matplotlib_seed(runner.python)
            self._mpl_seed[runner.python] = seed
            log.info("matplotlib font cache for %s: %s", runner.python, seed or "no matplotlib")
            return seed

    def fingerprint(self) -> str:
        """The runner interpreter and the harness sources new sandboxes start from."""
        digest = hashlib.sha256(str(self.runner_python).encode())
        with contextlib.suppress(OSError):
            digest.update(str(os.stat(self.runner_python).st_mtime_ns).encode())
        for name in HARNESS_FILES:
            with contextlib.suppress(OSError):
                digest.update((HARNESS_DIR / name).read_bytes())
        return digest.hexdigest()[:16]

    def sweep_orphans(
        self, *, everything: bool = False, jobs: list[str] | None = None
    ) -> list[str]:
        """Job dirs of sandboxes no process of ours serves any more (a crash's leftovers).

        Their processes died with the gateway (bwrap ``--die-with-parent``), and a job
        uid's leftovers are killed when the uid is next leased.
        """
        root = Path(os.path.abspath(self.settings.execution_dir))
        if not root.is_dir():
            return []
        with self._running_lock:
            busy = {sb.ident for sb in self._running.values()}
        removed = []
        for entry in root.iterdir():
            if not entry.name.startswith(JOB_PREFIX) or entry.name in busy:
                continue
            remove_tree(entry)
            removed.append(entry.name)
        return removed

    # ------------------------------------------------------------------ provision

    def provision(
        self,
        limits: RunLimits,
        *,
        preimport: str = "",
        input_room: int = 0,
        tag: str | None = None,
        session: bool = False,
        background: bool = False,
    ) -> LocalSandbox:
        weak = self.weak_sandbox()
        if weak is not None:
            raise EngineUnavailable(weak)
        runner = self.runner()
        iso = self.isolation_info()
        root = Path(os.path.abspath(self.settings.execution_dir))
        root.mkdir(parents=True, exist_ok=True)
        nproc = nproc_limit(iso, limits.pids)
        lease = UidLease.acquire() if iso.as_root else None
        uid = lease.uid if lease else None
        job_dir: Path | None = None
        program: ProgramFd | None = None
        proc: subprocess.Popen[bytes] | None = None
        cgroup: cgroups.JobCgroup | None = None
        try:
            if self._cgroups is not None:
                cgroup = _job_cgroup(
                    self._cgroups, tag or "pool", limits, input_room, background=background
                )
            prefix = f"{JOB_PREFIX}{_safe(tag or 'pool')}-"
            job_dir = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
            layout = JobLayout.create(job_dir, uid, traversable=not iso.bwrap)
            seed = self.matplotlib_seed(runner)
            if not (iso.bwrap and iso.sized_tmpfs):
                layout.seed_matplotlib(seed, uid)
            if iso.bwrap and iso.seccomp:
                program = ProgramFd()
            argv, env, cwd = sandbox_command(
                limits,
                runner,
                iso,
                layout,
                uid=uid,
                nproc=nproc,
                seed=seed,
                seccomp_fd=program.fd if program else None,
                preimport=preimport,
            )
            env["PYC_MODE"] = "session" if session else "oneshot"
            drop_to = uid if not iso.bwrap else None
            if cgroup is not None:
                if drop_to is not None and iso.setpriv:
                    # Only root may enter the cgroup: the uid is dropped after that, by setpriv.
                    argv = [*setpriv_args(iso.setpriv, drop_to), *argv]
                    drop_to = None
                argv = cgroup.enter_command(argv)
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=env,
                    cwd=cwd,
                    start_new_session=True,
                    close_fds=True,
                    # Without bwrap the job uid is taken here (with bwrap, setpriv inside).
                    user=drop_to,
                    group=drop_to,
                    extra_groups=[] if drop_to is not None else None,
                    # bwrap reads the seccomp program from this fd and closes it before the
                    # harness starts.
                    pass_fds=(program.fd,) if program else (),
                )
            except OSError as exc:
                raise ExecutorError(f"cannot start the local runner: {exc}") from exc
            finally:
                if program is not None:
                    program.close()  # bwrap has its own copy now
            assert proc.stdin and proc.stdout and proc.stderr
            tail = _Tail(proc.stderr)
            tail_thread = threading.Thread(target=tail.run, daemon=True)
            tail_thread.start()
            sandbox = LocalSandbox(
                self, proc, layout, lease, limits, nproc, tail, [tail_thread], cgroup
            )
            try:
                hello = _await_ready(proc.stdout, READY_TIMEOUT_S)
                if session and hello.get("mode") != "session":
                    raise protocol.ProtocolError("the local harness has no session mode")
                if background and cgroup is not None:
                    cgroup.foreground()  # ready: it runs its request at the normal weight
            except (protocol.ProtocolError, OSError, TimeoutError) as exc:
                sandbox.dispose()
                raise ExecutorError(
                    f"the local runner did not report ready ({exc}); harness stderr: "
                    f"{tail.text()[-1000:] or '(empty)'}"
                ) from exc
            job_dir = lease = proc = cgroup = None  # the sandbox owns them now
            return sandbox
        finally:
            if cgroup is not None:
                cgroup.close()
            if proc is not None:
                _kill_group(proc.pid)
                proc.wait()
            if uid is not None and lease is not None:
                kill_uid(uid)
            if job_dir is not None:
                remove_tree(job_dir)
            if lease is not None:
                lease.release()


def _job_cgroup(
    support: cgroups.CgroupSupport,
    tag: str,
    limits: RunLimits,
    input_room: int,
    *,
    background: bool = False,
) -> cgroups.JobCgroup:
    """A sandbox's cgroup: memory for the script plus room for its inputs (its tmpfs)."""
    try:
        return cgroups.JobCgroup.create(
            support,
            _safe(tag),
            memory_bytes=limits.memory_bytes + input_room,
            pids=limits.pids,
            cpus=limits.cpus,
            background=background,
        )
    except OSError as exc:
        raise ExecutorError(f"cannot create the job's cgroup: {exc}") from exc


def _out_of_memory(request: RunRequest, result: RunResult) -> RunResult:
    limit_mb = request.limits.memory_bytes // (1024 * 1024)
    return replace(
        result,
        oom_killed=True,
        exit_code=result.exit_code if result.exit_code is not None else -9,
        error=f"out of memory (limit {limit_mb} MB)",
    )


def _check_runs_unprivileged(python: Path) -> None:
    """Without bwrap the job uid itself must be able to start the runner (not under /root)."""
    lease = UidLease.acquire()
    try:
        out = subprocess.run(
            [str(python), "-I", "-c", "pass"],
            capture_output=True,
            timeout=PROBE_TIMEOUT_S,
            env={"PATH": SYSTEM_PATH},
            cwd="/",
            user=lease.uid,
            group=lease.uid,
            extra_groups=[],
        )
        problem = out.stderr.decode("utf-8", "replace").strip()[-300:] if out.returncode else None
    except (OSError, subprocess.SubprocessError) as exc:
        problem = str(exc)
    finally:
        kill_uid(lease.uid)
        lease.release()
    if problem is not None:
        raise EngineUnavailable(
            f"local runner {python} cannot be started by the unprivileged sandbox uid "
            f"({problem}); without bubblewrap the runner must live where other users can "
            f"read it (not under /root): rebuild it with `{BUILD_COMMAND}` from a system "
            f"Python, or install bubblewrap"
        )


_PREFIX_PROBE = (
    "import json, sys; "
    "print(json.dumps(sorted({sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix})))"
)


def _safe(job_id: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "_" for c in job_id)
    return cleaned[:40] or "x"


# ---------------------------------------------------------------------- talking to the harness


def _await_ready(stdout: IO[bytes], timeout: float) -> dict[str, Any]:
    """Read the harness's ready frame, giving up after ``timeout`` seconds."""
    fd = stdout.fileno()
    deadline = time.monotonic() + timeout

    def read(n: int) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError(f"no ready frame within {timeout:g} s")
        return os.read(fd, n)  # unbuffered: not a byte of the result may be read ahead

    hello = protocol.read_header(read)
    if not hello.get("ready"):
        raise protocol.ProtocolError(f"expected the ready frame, got {hello!r}")
    return hello


def _send_request(stdin: IO[bytes], frame: bytes, request: RunRequest) -> None:
    try:
        stdin.write(frame)
        for f in request.inputs:
            with open(f.path, "rb") as src:
                protocol.copy_exact(src.read, stdin.write, f.size)
        stdin.flush()
    except (OSError, ValueError, protocol.ProtocolError) as exc:
        # The harness died or stopped reading; the exit status and its stderr say why.
        log.debug("job %s: request not fully sent: %s", request.job_id, exc)
    finally:
        with contextlib.suppress(OSError, ValueError):
            stdin.close()


class _ResultReader:
    """Receives the result frame; on a bad one keeps draining so the harness never blocks."""

    def __init__(self, stdout: IO[bytes], request: RunRequest) -> None:
        self._stdout = stdout
        self._request = request
        self.received: ReceivedResult | None = None
        self.error: str | None = None
        self.disk_full: DiskFull | None = None  # raised on the request's thread

    def run(self) -> None:
        try:
            self.received = receive_result(self._stdout.read, self._request)
        except (protocol.ProtocolError, OSError, ValueError, DiskFull) as exc:
            if isinstance(exc, DiskFull):
                self.disk_full = exc
            self.error = f"bad result frame: {exc}"
            with contextlib.suppress(OSError, ValueError):
                while self._stdout.read(1 << 16):
                    pass


class _Tail:
    """Drains the harness's own stderr (diagnostics), keeping the last few KB."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._data = bytearray()

    def run(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := self._stream.read1(1 << 16):  # type: ignore[attr-defined]
                self._data += chunk
                del self._data[:-HARNESS_STDERR_KEEP]

    def text(self) -> str:
        return bytes(self._data).decode("utf-8", "replace")


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pgid, signal.SIGKILL)
