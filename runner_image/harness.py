"""Runs one script and reports what it did: PID 1 of a runner container (or a local child).

Standard library only. Reads one request frame (``protocol``) from stdin, writes the input
files into the work dir, forks the script into its own process group with rlimits, drains its
stdout/stderr with caps, enforces the wall-clock timeout, then writes one result frame with
the new or changed files to the stdout it had at start. A request with ``"stream": true``
also gets the script's output as chunk frames on that channel while it runs (``Relay``). The script never sees that channel:
the descriptor is closed in the child and the harness makes itself non-dumpable, so the child
cannot reopen it through ``/proc/<pid>/fd``.

The work dir is ``argv[1]``, else ``$PYC_WORKDIR``, else the current directory, so the same
file serves the docker engine (``WORKDIR /work``) and the subprocess engine. The script runs
as ``__main__`` from ``script.py`` in that dir (written there unless an input has the name);
modules named in ``$PYC_PREIMPORT`` (default ``numpy,pandas``) are imported before the request
is read, so a runner started ahead of its request is warm. With ``PYC_HELLO=1`` it then writes
a ready frame (``{"ready": true, ...}``) on the result channel, so whoever started it knows the
imports are done; the request frame is read only after that.
"""

from __future__ import annotations

import builtins
import codecs
import contextlib
import ctypes
import fcntl
import functools
import gc
import json
import os
import re
import resource
import selectors
import signal
import stat
import sys
import time
import traceback
import types
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

if TYPE_CHECKING:
    from runner_image.protocol import ProtocolError, encode_header, read_header
else:
    from protocol import ProtocolError, encode_header, read_header

PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
SCRIPT_NAME = "script.py"
# Files not returned are listed by name up to this many, then only counted: a script making
# 60,000 files must not make the result header (and the gateway's response) huge.
MAX_SKIPPED_LISTED = 50
MAX_NAME_CHARS = 300
CHUNK = 64 * 1024
# After the script exits, how long to wait for pipes still held by stragglers before giving up.
DRAIN_GRACE_S = 2.0
# Children that outlive a script and must not be swept with it (a session's kernel).
SPARED: set[int] = set()

_RLIMITS = (
    ("cpu_s", resource.RLIMIT_CPU),
    ("fsize_bytes", resource.RLIMIT_FSIZE),
    ("nofile", resource.RLIMIT_NOFILE),
    ("nproc", resource.RLIMIT_NPROC),
    ("memory_bytes", resource.RLIMIT_AS),
)


def log(message: str) -> None:
    """Harness diagnostics go to the harness's own stderr, never into the result."""
    with contextlib.suppress(OSError):
        os.write(2, f"harness: {message}\n".encode("utf-8", "replace"))


# --------------------------------------------------------------------------- request intake


def _read_fd0(n: int) -> bytes:
    # Unbuffered on purpose: a buffered reader would read ahead, and the child inherits memory.
    return os.read(0, n)


def check_name(name: Any) -> str:
    """A relative path with no empty, ``.`` or ``..`` part (the gateway checked; check again)."""
    if not isinstance(name, str) or not name or "\x00" in name or "\\" in name:
        raise ValueError(f"bad input file name {name!r}")
    if name.startswith("/"):
        raise ValueError(f"absolute input file name {name!r}")
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"input file name {name!r} has an empty, '.' or '..' part")
    return name


def write_inputs(header: dict[str, Any], workdir: str, *, replace: bool = False) -> None:
    """Stream every listed file body from stdin into ``workdir``.

    Bodies are consumed even when a name is bad or the disk is full, so the sender never
    blocks on a full pipe; the first problem is raised after the whole frame has been read.
    ``replace``: an existing file of the same name is replaced (session uploads).
    """
    files = header.get("files") or []
    if not isinstance(files, list):
        raise ProtocolError("'files' is not a list")
    problem: Exception | None = None
    for entry in files:
        size = entry.get("size") if isinstance(entry, dict) else None
        if not isinstance(size, int) or size < 0:
            raise ProtocolError(f"bad size in file entry {entry!r}")
        target: int | None = None
        if problem is None:
            try:
                name = check_name(entry.get("name"))
                path = os.path.join(workdir, *name.split("/"))
                os.makedirs(os.path.dirname(path), exist_ok=True)
                if replace and os.path.lexists(path) and not os.path.isdir(path):
                    os.unlink(path)
                target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            except (ValueError, OSError) as exc:
                problem = exc
        remaining = size
        try:
            while remaining > 0:
                data = _read_fd0(min(remaining, 1 << 20))
                if not data:
                    raise ProtocolError(f"stream ended {remaining} bytes before the file did")
                remaining -= len(data)
                if target is None:
                    continue
                try:
                    _write_all(target, data)
                except OSError as exc:  # e.g. ENOSPC: keep reading, report afterwards
                    problem = OSError(
                        exc.errno, f"writing input {entry.get('name')!r}: {exc.strerror}"
                    )
                    os.close(target)
                    target = None
        finally:
            if target is not None:
                os.close(target)
    if problem is not None:
        raise problem


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


# --------------------------------------------------------------------------- work dir scans

Stamp = tuple[int, int, int]  # size, mtime_ns, inode


def walk_files(workdir: str) -> dict[str, os.stat_result]:
    """Regular files under ``workdir`` by relative posix name; symlinks are never followed."""
    found: dict[str, os.stat_result] = {}
    stack = [("", workdir)]
    while stack:
        prefix, directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError as exc:
            log(f"cannot list {directory}: {exc}")
            continue
        for entry in entries:
            name = f"{prefix}{entry.name}"
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append((f"{name}/", entry.path))
            elif stat.S_ISREG(st.st_mode):
                found[name] = st
    return found


def snapshot(workdir: str) -> dict[str, Stamp]:
    return {n: (st.st_size, st.st_mtime_ns, st.st_ino) for n, st in walk_files(workdir).items()}


@dataclass
class Artifact:
    name: str
    size: int
    fd: int


@dataclass
class Collected:
    artifacts: list[Artifact] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    skipped_more: int = 0  # skipped beyond MAX_SKIPPED_LISTED, counted only

    def skip(self, name: str, size: int, reason: str) -> None:
        if len(self.skipped) >= MAX_SKIPPED_LISTED:
            self.skipped_more += 1
            return
        if len(name) > MAX_NAME_CHARS:
            name = name[:MAX_NAME_CHARS] + "..."
        self.skipped.append({"name": name, "size": size, "reason": reason})


def portable_name(name: str) -> str | None:
    """Why ``name`` cannot travel as an artifact name (UTF-8, ``/``-separated), or None."""
    if "\\" in name:
        return "its name contains a backslash"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not valid UTF-8"
    return None


def collect_artifacts(workdir: str, before: dict[str, Stamp], limits: dict[str, Any]) -> Collected:
    """New or changed regular files, opened now (``O_NOFOLLOW``) so a later swap cannot bite."""
    max_one = _limit(limits, "max_artifact_bytes")
    max_count = _limit(limits, "max_artifacts")
    max_total = _limit(limits, "max_artifacts_total_bytes")
    out = Collected()
    total = 0
    for name, st in sorted(walk_files(workdir).items()):
        if before.get(name) == (st.st_size, st.st_mtime_ns, st.st_ino):
            continue
        unportable = portable_name(name)
        if unportable is not None:
            shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            out.skip(shown, st.st_size, unportable)
            continue
        try:
            fd = os.open(os.path.join(workdir, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            out.skip(name, st.st_size, f"unreadable: {exc.strerror}")
            continue
        fst = os.fstat(fd)
        reason = None
        if not stat.S_ISREG(fst.st_mode):
            reason = "not a regular file"
        elif max_one is not None and fst.st_size > max_one:
            reason = f"larger than the per-file limit of {max_one} bytes"
        elif max_count is not None and len(out.artifacts) >= max_count:
            reason = f"more than {max_count} files were produced"
        elif max_total is not None and total + fst.st_size > max_total:
            reason = f"would exceed the total artifact limit of {max_total} bytes"
        if reason is not None:
            os.close(fd)
            out.skip(name, fst.st_size, reason)
            continue
        total += fst.st_size
        out.artifacts.append(Artifact(name, fst.st_size, fd))
    return out


def _limit(limits: dict[str, Any], key: str) -> int | None:
    value = limits.get(key)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# --------------------------------------------------------------------------- the child


def _child_setup(out_w: int, err_w: int, keep: tuple[int, ...] = ()) -> None:
    """The part of becoming the script that needs no request: its own process group, the
    output pipes as stdout/stderr, every other descriptor closed (the result channel first
    among them; ``keep`` become fds 3, 4, ..., closed on exec)."""
    os.setpgid(0, 0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    # Copies above the targets first (a kept fd may sit on another's target number).
    above = 3 + len(keep)
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, above) for fd in keep]
    for i, fd in enumerate(high):
        os.dup2(fd, 3 + i, inheritable=False)
    os.closerange(3 + len(keep), _max_fd())
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _set_dumpable(True)  # /proc/self works again; the parent (PID 1) stays non-dumpable
    _prefer_as_oom_victim()


def _child_run(launch: dict[str, Any]) -> int:
    """The request's part: its limits, fresh random state, its work dir, then the script.
    ``launch``: what ``Prefork.start`` sent (code, workdir, limits, script, argv, extra_path)."""
    limits, workdir = launch["limits"], launch["workdir"]
    _apply_rlimits(limits)
    _reseed()
    os.chdir(workdir)
    return _exec_script(
        launch["code"], workdir, launch["script"], launch["argv"], tuple(launch["extra_path"])
    )


def _child_exit(status: int, done: tuple[int, os.stat_result, int] | None = None) -> None:
    """Flush and exit. ``done``: the completion pipe (fd, its stat when set up, the pid of
    the script's process). The script's output is closed and its status sent there first,
    so the harness can answer while the kernel is still tearing down this process's memory
    (milliseconds for an interpreter that imported pandas). Sent only by that process (a
    child the script forked may run to the end of the script too, and must not speak for
    it) and only if that fd is still the pipe (a script that closed it may have opened a
    file of its own there)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    if done is not None and os.getpid() == done[2]:
        fd, was, _pid = done
        with contextlib.suppress(OSError):
            now = os.fstat(fd)
            if (now.st_dev, now.st_ino) == (was.st_dev, was.st_ino):
                for out in (1, 2):
                    with contextlib.suppress(OSError):
                        os.close(out)
                os.write(fd, f"done {status & 0xFF}\n".encode())
    os._exit(status)


class Prefork:
    """The script's process, forked before the request arrives (one-shot mode): a forked
    copy of an interpreter that imported pandas costs milliseconds of page-table copying,
    paid here while the sandbox waits in the pool instead of on the request's path. The
    child does all the set-up that needs no request, then blocks on a pipe; ``start`` sends
    it the code, limits and work dir (written and snapshotted by then) and it becomes the
    script exactly as a child forked on request would. ``cancel``: it exits unused."""

    def __init__(self) -> None:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        go_r, go_w = os.pipe()
        done_r, done_w = os.pipe()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        pid = os.fork()
        if pid == 0:
            for fd in (out_r, err_r, go_w, done_r):
                os.close(fd)
            self._child(out_w, err_w, go_r, done_w)
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)  # also done by the child; whoever is first wins the race
        for fd in (out_w, err_w, go_r, done_w):
            os.close(fd)
        self.pid, self.out_r, self.err_r, self.done_r = pid, out_r, err_r, done_r
        self._go_w = go_w
        self.used = False

    @staticmethod
    def _child(out_w: int, err_w: int, go_r: int, done_w: int) -> None:
        status = 1
        done: tuple[int, os.stat_result, int] | None = None
        try:
            # fd 3: the completion pipe, the one descriptor the script sees beyond 0-2;
            # fd 4: the request, closed before the script runs.
            _child_setup(out_w, err_w, keep=(done_w, go_r))
            done = (3, os.fstat(3), os.getpid())
            _prefault()
            chunks = []
            while chunk := os.read(4, 1 << 16):
                chunks.append(chunk)
            os.close(4)
            if not chunks:  # cancelled: the request never came, or went elsewhere
                os._exit(0)
            status = _child_run(json.loads(b"".join(chunks)))
        except BaseException:
            with contextlib.suppress(BaseException):
                traceback.print_exc()
        finally:
            _child_exit(status, done)

    def start(
        self,
        code: str,
        workdir: str,
        limits: dict[str, Any],
        script: str,
        argv: list[str] | None,
        extra_path: tuple[str, ...],
    ) -> None:
        self.used = True  # from here on the pipes are run_request's to close
        launch = {
            "code": code,
            "workdir": workdir,
            "limits": limits,
            "script": script,
            "argv": argv,
            "extra_path": list(extra_path),
        }
        try:
            _write_all(self._go_w, json.dumps(launch).encode())
        finally:
            os.close(self._go_w)
            self._go_w = -1

    def cancel(self) -> None:
        """The request did not get as far as the script: let the child go, and reap it."""
        if self.used:
            return
        self.used = True
        os.close(self._go_w)
        self._go_w = -1
        for fd in (self.out_r, self.err_r, self.done_r):
            with contextlib.suppress(OSError):
                os.close(fd)
        _wait_blocking(self.pid)


def _prefault() -> None:
    """Copy-on-write happens here, in the forked process, at a page fault for each page of
    the shared interpreter it first writes to (reference counts, mostly): about 900 for a
    small pandas script, 8-11 ms inside a sandbox, where each fault is also charged to the
    cgroup. The pandas warm-up and a reseed run again while the sandbox waits in the pool,
    so the pages a data script touches are this process's own before the request comes.
    Nothing is printed, and the request's reseed still gives the script fresh random state."""
    _reseed()
    if "pandas" in sys.modules:
        with contextlib.suppress(Exception):
            _pandas_workout()


def _prefer_as_oom_victim() -> None:
    """Raise the script's OOM score (allowed unprivileged) so the kernel kills it, not us."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass


def _reseed() -> None:
    """Fresh random state for this script. ``random`` reseeds itself after fork; numpy's
    global generator, created when numpy was pre-imported, does not."""
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        with contextlib.suppress(Exception):
            numpy_random.seed()


def _max_fd() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if 0 < soft < 1 << 20 else 65536


def _apply_rlimits(limits: dict[str, Any]) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for key, which in _RLIMITS:
        value = _limit(limits, key)
        if value is None:
            continue
        soft = hard = max(int(value), 1)
        if which == resource.RLIMIT_CPU:
            hard = soft + 1  # SIGXCPU at the soft limit, so the report can name the cause
        _, current_hard = resource.getrlimit(which)
        if current_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, current_hard), min(hard, current_hard)
        resource.setrlimit(which, (soft, hard))


def _exec_script(
    code: str,
    workdir: str,
    script: str = SCRIPT_NAME,
    argv: list[str] | None = None,
    extra_path: tuple[str, ...] = (),
) -> int:
    """Run ``code`` as ``__main__`` the way ``python script.py`` would; return the exit status."""
    import io
    import linecache

    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(
        io.FileIO(1, "w", closefd=False),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,  # a timed-out script still shows what it printed
    )
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )
    sys.argv = [script, *(argv or [])]
    harness_dir = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [workdir] + [p for p in sys.path if p != harness_dir] + list(extra_path)
    sys.modules.pop("protocol", None)
    sys.dont_write_bytecode = True  # no __pycache__ artifacts from imported uploads
    linecache.cache[script] = (len(code), None, code.splitlines(True), script)

    main = types.ModuleType("__main__")
    main.__file__ = script
    main.__builtins__ = builtins  # type: ignore[attr-defined]
    sys.modules["__main__"] = main
    try:
        compiled = compile(code, script, "exec", dont_inherit=True)
    except SyntaxError as exc:
        traceback.print_exception(type(exc), exc, None)
        return 1
    try:
        exec(compiled, main.__dict__)
        status = 0
    except SystemExit as exc:
        status = _system_exit_status(exc)
    except BaseException as exc:
        # Skip the harness's own frame so the traceback starts at the script, like python's.
        traceback.print_exception(
            type(exc), exc, exc.__traceback__.tb_next if exc.__traceback__ else None
        )
        status = 1
    with contextlib.suppress(BaseException):
        import threading

        threading._shutdown()  # type: ignore[attr-defined]  # join non-daemon threads
    with contextlib.suppress(BaseException):
        import atexit

        atexit._run_exitfuncs()
    return status


def _system_exit_status(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int) and not isinstance(code, bool):
        return code & 0xFF
    with contextlib.suppress(BaseException):
        print(code, file=sys.stderr)
    return 1


# --------------------------------------------------------------------------- the parent


# Chunk frames: at most one flush per FLUSH_S, unless FLUSH_BYTES are waiting.
FLUSH_S = 0.05
FLUSH_BYTES = 64 * 1024


class Relay:
    """Sends what the script writes as chunk frames while it runs (``"stream": true``).

    It gets exactly the bytes a ``Capture`` keeps, so the chunks of a stream never exceed
    the output cap and, joined, equal the result's text: each stream is decoded
    incrementally with the same error handling as ``Capture.text``. Writes are coalesced
    (``FLUSH_S``, ``FLUSH_BYTES``); order across stdout and stderr is kept as read.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pending: list[tuple[str, bytearray]] = []
        self.pending_bytes = 0
        self.last_flush = 0.0
        self.decoders = {
            name: codecs.getincrementaldecoder("utf-8")(errors="replace")
            for name in ("stdout", "stderr")
        }
        self.broken = False

    def feed(self, stream: str, data: bytes) -> None:
        if self.pending and self.pending[-1][0] == stream:
            self.pending[-1][1].extend(data)
        else:
            self.pending.append((stream, bytearray(data)))
        self.pending_bytes += len(data)
        if self.pending_bytes >= FLUSH_BYTES:
            self.flush()

    def due(self) -> float | None:
        """When the pending output is to be sent (monotonic), None when there is none."""
        return self.last_flush + FLUSH_S if self.pending else None

    def flush(self, final: bool = False) -> None:
        """Send what is pending; ``final``: also what the decoders hold (the run is over)."""
        segments = [(s, self.decoders[s].decode(bytes(d))) for s, d in self.pending]
        if final:
            segments += [(s, d.decode(b"", final=True)) for s, d in self.decoders.items()]
        self.pending.clear()
        self.pending_bytes = 0
        self.last_flush = time.monotonic()
        for stream, text in segments:
            if text and not self.broken:
                try:
                    _write_all(self.fd, encode_header({"chunk": stream, "text": text}))
                except OSError as exc:  # the result write then reports it
                    log(f"chunk not sent: {exc}")
                    self.broken = True


def wants_relay(header: dict[str, Any], result_fd: int) -> Relay | None:
    return Relay(result_fd) if header.get("stream") is True else None


@dataclass
class Capture:
    limit: int
    data: bytearray = field(default_factory=bytearray)
    truncated: bool = False
    relay: Relay | None = None
    stream: str = "stdout"

    def feed(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if room > 0:
            kept = chunk[:room]
            self.data += kept
            if self.relay is not None:
                self.relay.feed(self.stream, kept)
        if len(chunk) > room:
            self.truncated = True  # keep draining: the writer must never block on us

    def text(self) -> str:
        return bytes(self.data).decode("utf-8", errors="replace")


@dataclass
class Outcome:
    status: int | None = None  # raw wait status
    timed_out: bool = False
    duration_s: float = 0.0


def supervise(
    pid: int,
    out_r: int,
    err_r: int,
    out: Capture,
    err: Capture,
    timeout_s: float | None,
    relay: Relay | None = None,
    done_r: int | None = None,
) -> Outcome:
    """Drain both pipes, enforce the timeout, reap the child and anything it left behind;
    ``relay`` (streaming) gets its due flushes on the way. ``done_r``: the pre-forked
    child's completion pipe (its exit status, sent before its slow teardown)."""
    started = time.monotonic()
    deadline = started + timeout_s if timeout_s is not None else None
    outcome = Outcome()
    sel = selectors.DefaultSelector()
    sel.register(out_r, selectors.EVENT_READ, out)
    sel.register(err_r, selectors.EVENT_READ, err)
    if done_r is not None:
        sel.register(done_r, selectors.EVENT_READ, DONE)
    pidfd: int | None = None
    try:
        pidfd = os.pidfd_open(pid)
        sel.register(pidfd, selectors.EVENT_READ, None)
    except (AttributeError, OSError):  # old kernel or a seccomp profile without pidfd_open
        pidfd = None
    open_pipes = 2
    drain_until: float | None = None
    try:
        while open_pipes or outcome.status is None:
            now = time.monotonic()
            if outcome.status is None and deadline is not None and now >= deadline:
                outcome.timed_out = True
                outcome.status = stop_script(pid)
                outcome.duration_s = time.monotonic() - started
                drain_until = time.monotonic() + DRAIN_GRACE_S
            if outcome.status is None:
                outcome.status = _wait_nohang(pid)
                if outcome.status is not None:
                    outcome.duration_s = time.monotonic() - started
                    kill_tree(pid)  # the script is done; whatever it started goes with it
                    drain_until = time.monotonic() + DRAIN_GRACE_S
            if not open_pipes and outcome.status is not None:
                break
            if drain_until is not None and time.monotonic() >= drain_until:
                log("output pipes still open after the script ended; giving up on them")
                break
            due = relay.due() if relay is not None else None
            waits = [
                t for t in (deadline if outcome.status is None else None, drain_until, due) if t
            ]
            wait = min(waits) - time.monotonic() if waits else None
            if pidfd is None and outcome.status is None:
                wait = 0.02 if wait is None else min(wait, 0.02)
            if outcome.status is not None and pidfd is not None:
                sel.unregister(pidfd)
                os.close(pidfd)
                pidfd = None
            for key, _ in sel.select(None if wait is None else max(wait, 0.0)):
                if key.data is None:
                    continue  # the pidfd: the loop's wait check picks the exit up
                if key.data is DONE:
                    sel.unregister(key.fd)
                    code = _done_status(key.fd)
                    if code is not None and outcome.status is None:
                        outcome.status = code << 8  # as waitpid would report the exit
                        outcome.duration_s = time.monotonic() - started
                        kill_tree(pid)
                        drain_until = time.monotonic() + DRAIN_GRACE_S
                    continue
                try:
                    chunk = os.read(key.fd, CHUNK)
                except BlockingIOError:
                    continue
                if chunk:
                    key.data.feed(chunk)
                else:
                    sel.unregister(key.fd)
                    open_pipes -= 1
            if relay is not None and (due := relay.due()) is not None and time.monotonic() >= due:
                relay.flush()
    finally:
        sel.close()
        if pidfd is not None:
            os.close(pidfd)
        if outcome.status is None:
            outcome.status = stop_script(pid)
        reap_orphans()
    return outcome


DONE = object()  # the selector's tag for the completion pipe
_DONE_LINE = re.compile(rb"done (\d{1,3})\n")


def _done_status(fd: int) -> int | None:
    """The exit status the child sent, or None (nothing, or not our message: the script can
    write there too, and then its result is only what it wrote)."""
    try:
        data = os.read(fd, 64)
    except OSError:
        return None
    match = _DONE_LINE.fullmatch(data)
    return int(match.group(1)) & 0xFF if match else None


def _wait_nohang(pid: int) -> int | None:
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return 0
    return status if done == pid else None


def _wait_blocking(pid: int) -> int:
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return 0


def stop_script(pid: int) -> int:
    """Kill a running script and everything it started; return its wait status."""
    kill_tree(pid)
    status = _wait_blocking(pid)
    # Descendants that left its process group become ours only once it has been reaped.
    kill_tree(pid)
    return status


def kill_tree(pid: int) -> None:
    """SIGKILL the script, its process group and every process that escaped the group."""
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)  # it may have left its group (setpgid) itself
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    if os.getpid() == 1 and not SPARED:
        # PID 1 of a container: kill(-1) reaches every other process in the namespace.
        with contextlib.suppress(OSError):
            os.kill(-1, signal.SIGKILL)
        return
    # Elsewhere we are a subreaper, so escaped descendants become our children. SIGKILL is
    # delivered asynchronously: keep going until every one is dead *and reaped* (a zombie
    # still counts as a child), or give up after ~2 s (a process stuck in the kernel).
    # Descendants, not only children: the script may still be alive (it reported its end on
    # the completion pipe and is being torn down), and what it started is then its child.
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        left = _descendants_of(os.getpid()) - SPARED
        left.discard(pid)
        if not left:
            return
        for child in left:
            with contextlib.suppress(OSError):
                os.kill(child, signal.SIGKILL)
        time.sleep(0.005)
        reap_orphans()


def _descendants_of(root: int) -> set[int]:
    """Every process below ``root`` (zombies included: gone only once reaped)."""
    parents: dict[int, int] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return set()
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        # Fields after the ")" that closes the command name: state, ppid, ...
        fields = raw[raw.rfind(b")") + 2 :].split()
        if len(fields) > 1:
            parents[int(name)] = int(fields[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def reap_orphans() -> None:
    while True:
        try:
            done, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if done == 0:
            return


def describe_exit(
    outcome: Outcome, timeout_s: float | None, limits: dict[str, Any]
) -> dict[str, Any]:
    """Exit code, signal and a human reason for the result header."""
    status = outcome.status if outcome.status is not None else 0
    result: dict[str, Any] = {"exit_code": None, "signal": None, "error": None}
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        result["exit_code"] = -signum
        result["signal"] = signum
    else:
        result["exit_code"] = os.waitstatus_to_exitcode(status)
    signum = result["signal"]
    if outcome.timed_out:
        result["error"] = f"timed out after {timeout_s:g} s"
    elif signum == signal.SIGKILL:
        result["error"] = "killed (SIGKILL) — most likely out of memory"
    elif signum == signal.SIGXCPU:
        result["error"] = f"CPU time limit exceeded ({limits.get('cpu_s')} s)"
    elif signum == signal.SIGXFSZ:
        result["error"] = f"file size limit exceeded ({limits.get('fsize_bytes')} bytes)"
    elif signum is not None:
        try:
            name = signal.Signals(signum).name
        except ValueError:  # real-time signals have no name
            name = f"{signum}"
        result["error"] = f"killed by signal {name}"
    return result


def run_request(
    header: dict[str, Any],
    workdir: str,
    script: str | None = None,
    argv: list[str] | None = None,
    extra_path: tuple[str, ...] = (),
    relay: Relay | None = None,
    prefork: Prefork | None = None,
) -> tuple[dict[str, Any], Collected]:
    """Fork, supervise and collect. Returns the result header (without files) and artifacts.

    ``script``: run that file of the work dir (a session's ``run_script``) with ``argv``
    instead of the request's code. ``relay``: stream the output as it comes. ``prefork``:
    the script's process, forked ahead (one-shot mode); forked here when there is none."""
    code = header.get("code")
    if script is not None:
        with open(os.path.join(workdir, check_name(script)), encoding="utf-8") as f:
            code = f.read()
    if not isinstance(code, str):
        raise ProtocolError("'code' is not a string")
    limits = header.get("limits") or {}
    if not isinstance(limits, dict):
        raise ProtocolError("'limits' is not an object")
    timeout = header.get("timeout_s")
    timeout_s = float(timeout) if isinstance(timeout, int | float) and timeout > 0 else None
    out = Capture(_limit(limits, "max_output_bytes") or 1024 * 1024, relay=relay)
    err = Capture(_limit(limits, "max_output_bytes") or 1024 * 1024, relay=relay, stream="stderr")

    # The source also goes on disk, as with `python script.py`: multiprocessing's spawn start
    # method, inspect.getsource and tracebacks read it from there. It is in the snapshot, so
    # it is no artifact unless the script changes it; an uploaded script.py is kept.
    script_path = os.path.join(workdir, SCRIPT_NAME)
    if script is None and not os.path.lexists(script_path):
        with open(script_path, "x", encoding="utf-8") as f:
            f.write(code)
    before = snapshot(workdir)
    if prefork is None:  # none waiting (a session's script): fork one now
        prefork = Prefork()
    pid, out_r, err_r, done_r = prefork.pid, prefork.out_r, prefork.err_r, prefork.done_r
    prefork.start(code, workdir, limits, script or SCRIPT_NAME, argv, extra_path)
    for fd in (out_r, err_r):
        os.set_blocking(fd, False)
    try:
        outcome = supervise(pid, out_r, err_r, out, err, timeout_s, relay, done_r)
    finally:
        for fd in (out_r, err_r, done_r):
            os.close(fd)
    if relay is not None:
        relay.flush(final=True)  # before collecting: the output is complete now
    result: dict[str, Any] = {
        "stdout": out.text(),
        "stderr": err.text(),
        "stdout_truncated": out.truncated,
        "stderr_truncated": err.truncated,
        "timed_out": outcome.timed_out,
        "duration_s": round(outcome.duration_s, 6),
    }
    result.update(describe_exit(outcome, timeout_s, limits))
    return result, collect_artifacts(workdir, before, limits)


def write_result(fd: int, result: dict[str, Any], collected: Collected) -> None:
    result["files"] = [{"name": a.name, "size": a.size} for a in collected.artifacts]
    result["skipped"] = collected.skipped
    result["skipped_more"] = collected.skipped_more
    try:
        header = encode_header(result)
    except (ProtocolError, UnicodeError, ValueError) as exc:
        # Never leave the gateway without an answer: report the failure, drop the files.
        log(f"result not encodable: {exc}")
        for artifact in collected.artifacts:
            os.close(artifact.fd)
        collected.artifacts.clear()
        fallback = empty_result(f"the run's result could not be encoded: {exc}")
        fallback.update(files=[], skipped=[], skipped_more=0)
        header = encode_header(fallback)
    _write_all(fd, header)
    for artifact in collected.artifacts:
        remaining = artifact.size
        while remaining > 0:
            data = os.read(artifact.fd, min(remaining, 1 << 20))
            if not data:  # shrank since it was listed: keep the frame well-formed
                log(f"{artifact.name} shrank while being sent; padding {remaining} bytes")
                data = b"\x00" * min(remaining, 1 << 20)
            _write_all(fd, data[:remaining])
            remaining -= len(data[:remaining])
        os.close(artifact.fd)


def empty_result(error: str | None) -> dict[str, Any]:
    return {
        "stdout": "",
        "stderr": "",
        "stdout_truncated": False,
        "stderr_truncated": False,
        "exit_code": None,
        "signal": None,
        "timed_out": False,
        "duration_s": 0.0,
        "error": error,
    }


# --------------------------------------------------------------------------- session mode
#
# With PYC_MODE=session the harness answers many request frames, one at a time, until stdin
# ends. Each header has an "op":
#   "cell"    {"code", "files", "timeout_s", "limits", "interrupt_grace_s"}: the input files
#             go into the work dir (replacing older ones), the code runs in the persistent
#             kernel; the result adds "value", "display" and "state_lost".
#   "upload"  {"files"}: only the files.
#   "install" {"files"}: wheels, unpacked into the session's private site dir.
#   "script"  {"path", "argv", "timeout_s", "limits"}: a fresh process runs that work-dir
#             file as __main__ (one-shot style); the kernel is untouched.
# "cell" and "script" take "stream": true as a one-shot request does (chunk frames first).
#   "list"    {}: "listing" of the work dir's files.
#   "read"    {"name", "limits"}: that file as the one artifact.
# The kernel is a child forked once (again after it was lost) that keeps the variables. It
# hears cells on a private pipe and answers on another; its stdout/stderr are pipes the
# harness drains per cell. A cell past its timeout gets SIGINT (KeyboardInterrupt, state
# kept); a kernel that does not stop within the grace is killed and a fresh one forked.

INTERRUPT_GRACE_S = 3.0
# A listing names at most this many files (the answer must fit its frame), then counts.
MAX_LISTED = 1000
CELL_NAME = "<cell-{}>"


class Kernel:
    """The harness's handle on the persistent interpreter."""

    def __init__(self, workdir: str, site: str, limits: dict[str, Any]) -> None:
        cmd_r, self.cmd_w = os.pipe()
        self.rep_r, rep_w = os.pipe()
        self.out_r, out_w = os.pipe()
        self.err_r, err_w = os.pipe()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        pid = os.fork()
        if pid == 0:
            for fd in (self.cmd_w, self.rep_r, self.out_r, self.err_r):
                os.close(fd)
            kernel_child(workdir, site, limits, cmd_r, rep_w, out_w, err_w)
        self.pid = pid
        SPARED.add(pid)
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)
        for fd in (cmd_r, rep_w, out_w, err_w):
            os.close(fd)
        for fd in (self.out_r, self.err_r):
            os.set_blocking(fd, False)
        self.cells = 0

    def close(self) -> None:
        SPARED.discard(self.pid)
        stop_script(self.pid)
        for fd in (self.cmd_w, self.rep_r, self.out_r, self.err_r):
            with contextlib.suppress(OSError):
                os.close(fd)


def _close_all_but(keep: set[int]) -> None:
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, _max_fd())


def kernel_child(
    workdir: str, site: str, limits: dict[str, Any], cmd_r: int, rep_w: int, out_w: int, err_w: int
) -> None:
    """In the forked kernel: serve cells until the command pipe ends. Never returns."""
    status = 0
    try:
        os.setpgid(0, 0)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        _close_all_but({cmd_r, rep_w})
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _set_dumpable(True)
        _prefer_as_oom_victim()
        # No CPU-seconds limit: it would add up over the whole session (the engine's CPU
        # quota and each cell's timeout bound it instead).
        _apply_rlimits({k: v for k, v in limits.items() if k != "cpu_s"})
        _reseed()
        os.chdir(workdir)
        namespace = _kernel_namespace(workdir, site)
        kernel_loop(namespace, cmd_r, rep_w, limits)
    except BaseException:
        status = 1
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):
                stream.flush()
        os._exit(status)


def _kernel_namespace(workdir: str, site: str) -> dict[str, Any]:
    import io

    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(
        io.FileIO(1, "w", closefd=False),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )
    sys.argv = [""]
    harness_dir = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [workdir] + [p for p in sys.path if p != harness_dir] + [site]
    sys.modules.pop("protocol", None)
    sys.dont_write_bytecode = True
    main = types.ModuleType("__main__")
    main.__builtins__ = builtins  # type: ignore[attr-defined]
    sys.modules["__main__"] = main
    return main.__dict__


def kernel_loop(namespace: dict[str, Any], cmd_r: int, rep_w: int, limits: dict[str, Any]) -> None:
    def read(n: int) -> bytes:
        return os.read(cmd_r, n)

    cells = 0
    while True:
        try:
            request = read_header(read)
        except ProtocolError:
            return  # the harness is gone or closed the pipe
        except KeyboardInterrupt:
            continue  # a late interrupt for a cell that had already finished
        cells += 1
        try:
            reply = run_cell(str(request.get("code") or ""), namespace, cells, limits)
        except KeyboardInterrupt:  # arrived after the cell, while the answer was made
            reply = {"status": 1, "interrupted": True, "value": None, "display": []}
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):
                stream.flush()
        _write_all(rep_w, encode_header(reply))


def run_cell(
    code: str, namespace: dict[str, Any], number: int, limits: dict[str, Any]
) -> dict[str, Any]:
    """Run one cell; the value of a last bare expression comes back as text (and rich)."""
    import ast
    import importlib
    import linecache

    name = CELL_NAME.format(number)
    linecache.cache[name] = (len(code), None, code.splitlines(True), name)
    reply: dict[str, Any] = {"status": 0, "interrupted": False, "value": None, "display": []}
    importlib.invalidate_caches()  # packages installed since the last cell
    try:
        tree = ast.parse(code, name, "exec")
        last: ast.Expression | None = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body[-1].value)
            tree.body.pop()
        exec(compile(tree, name, "exec", dont_inherit=True), namespace)
        if last is not None:
            value = eval(compile(last, name, "eval", dont_inherit=True), namespace)
            if value is not None:
                namespace["_"] = value
                reply["value"], reply["display"] = _rich(value, limits)
    except SystemExit as exc:
        reply["status"] = _system_exit_status(exc)
    except BaseException as exc:
        reply["status"] = 1
        reply["interrupted"] = isinstance(exc, KeyboardInterrupt)
        tb = exc.__traceback__.tb_next if exc.__traceback__ else None
        traceback.print_exception(type(exc), exc, None if isinstance(exc, SyntaxError) else tb)
    # Everything shown, together, within one output cap: the answer must fit its frame.
    room = _limit(limits, "max_output_bytes") or 1024 * 1024
    shown = []
    for item in reply["display"] + _figures(limits):
        if len(item["data"]) <= room:
            shown.append(item)
            room -= len(item["data"])
    reply["display"] = shown
    return reply


def _rich(value: Any, limits: dict[str, Any]) -> tuple[str, list[dict[str, str]]]:
    cap = _limit(limits, "max_output_bytes") or 1024 * 1024
    try:
        text = repr(value)
    except BaseException as exc:
        text = f"<repr failed: {exc.__class__.__name__}>"
    display: list[dict[str, str]] = []
    to_html = getattr(value, "_repr_html_", None)
    if callable(to_html) and not isinstance(value, type):
        with contextlib.suppress(BaseException):
            html = to_html()
            if isinstance(html, str) and len(html) <= cap:
                display.append({"mime": "text/html", "data": html})
    return text[:cap], display


def _figures(limits: dict[str, Any]) -> list[dict[str, str]]:
    """Open matplotlib figures as PNG (then closed, as a notebook does)."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return []
    import base64
    import io

    cap = _limit(limits, "max_output_bytes") or 1024 * 1024
    shown: list[dict[str, str]] = []
    try:
        for num in plt.get_fignums():
            buf = io.BytesIO()
            plt.figure(num).savefig(buf, format="png", bbox_inches="tight")
            data = base64.b64encode(buf.getvalue()).decode("ascii")
            if len(data) <= cap:
                shown.append({"mime": "image/png", "data": data})
        plt.close("all")
    except Exception as exc:
        log(f"figure capture failed: {exc}")
    return shown


def serve_session(workdir: str, result_fd: int) -> int:
    """Answer request frames until stdin ends; the kernel keeps state between cells."""
    import tempfile

    site = os.path.join(tempfile.gettempdir(), "pyc-site")
    os.makedirs(site, exist_ok=True)
    kernel: Kernel | None = None
    try:
        while True:
            try:
                header = read_header(_read_fd0)
            except ProtocolError as exc:
                if "ended 8 bytes" not in str(exc):  # not a clean end of stdin
                    log(f"unreadable request: {exc}")
                return 0
            collected = Collected()
            try:
                op = header.get("op", "cell")
                if op == "install":
                    result = install_wheels(header, site)
                else:
                    write_inputs(header, workdir, replace=True)
                    result = empty_result(None)
                    result["exit_code"] = 0
                if op == "cell":
                    kernel, result, collected = session_cell(
                        kernel, header, workdir, site, wants_relay(header, result_fd)
                    )
                elif op == "script":
                    argv = header.get("argv") or []
                    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
                        raise ProtocolError("'argv' is not a list of strings")
                    result, collected = run_request(
                        header,
                        workdir,
                        str(header.get("path")),
                        argv,
                        (site,),
                        wants_relay(header, result_fd),
                    )
                elif op == "list":
                    found = sorted(walk_files(workdir).items())
                    result["listing"] = [
                        {"name": n, "size": st.st_size}
                        for n, st in found[:MAX_LISTED]
                        if portable_name(n) is None and len(n) <= MAX_NAME_CHARS
                    ]
                    result["listing_more"] = max(0, len(found) - MAX_LISTED)
                elif op == "read":
                    try:
                        collected = read_one(workdir, header)
                    except FileNotFoundError:
                        result["error"] = "no such file"
                        result["exit_code"] = 1
            except Exception as exc:
                log("session request failed:\n" + traceback.format_exc())
                result, collected = (
                    empty_result(f"harness error: {exc.__class__.__name__}: {exc}"),
                    Collected(),
                )
            try:
                write_result(result_fd, result, collected)
            except BrokenPipeError:
                log("the result reader went away")
                return 3
    finally:
        if kernel is not None:
            kernel.close()


def session_cell(
    kernel: Kernel | None,
    header: dict[str, Any],
    workdir: str,
    site: str,
    relay: Relay | None = None,
) -> tuple[Kernel | None, dict[str, Any], Collected]:
    """Run a cell in the kernel (forked first if there is none); enforce its timeout;
    ``relay``: stream its output as it comes."""
    code = header.get("code")
    if not isinstance(code, str):
        raise ProtocolError("'code' is not a string")
    limits = header.get("limits") or {}
    if not isinstance(limits, dict):
        raise ProtocolError("'limits' is not an object")
    timeout = header.get("timeout_s")
    timeout_s = float(timeout) if isinstance(timeout, int | float) and timeout > 0 else None
    grace = header.get("interrupt_grace_s")
    grace_s = float(grace) if isinstance(grace, int | float) and grace >= 0 else INTERRUPT_GRACE_S
    if kernel is None:
        kernel = Kernel(workdir, site, limits)
    out = Capture(_limit(limits, "max_output_bytes") or 1024 * 1024, relay=relay)
    err = Capture(_limit(limits, "max_output_bytes") or 1024 * 1024, relay=relay, stream="stderr")
    before = snapshot(workdir)
    started = time.monotonic()
    reply: dict[str, Any] | None = None
    timed_out = lost = False
    try:
        _write_all(kernel.cmd_w, encode_header({"code": code}))
    except OSError:
        lost = True
    deadline = started + timeout_s if timeout_s is not None else None
    sel = selectors.DefaultSelector()
    sel.register(kernel.out_r, selectors.EVENT_READ, out)
    sel.register(kernel.err_r, selectors.EVENT_READ, err)
    sel.register(kernel.rep_r, selectors.EVENT_READ, None)
    try:
        while reply is None and not lost:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                if not timed_out:
                    timed_out = True
                    with contextlib.suppress(OSError):
                        os.kill(kernel.pid, signal.SIGINT)
                    deadline = now + grace_s
                else:
                    lost = True  # it ignored the interrupt
                    break
            due = relay.due() if relay is not None else None
            waits = [t for t in (deadline, due) if t is not None]
            wait = max(min(waits) - now, 0.0) if waits else None
            for key, _ in sel.select(wait):
                if key.data is None:
                    try:
                        reply = read_header(functools.partial(os.read, kernel.rep_r))
                    except (ProtocolError, OSError):
                        lost = True  # the kernel died
                    break
                with contextlib.suppress(BlockingIOError):
                    chunk = os.read(key.fd, CHUNK)
                    if chunk:
                        key.data.feed(chunk)
                    else:
                        sel.unregister(key.fd)
            if relay is not None and (due := relay.due()) is not None and time.monotonic() >= due:
                relay.flush()
        for fd, capture in ((kernel.out_r, out), (kernel.err_r, err)):
            with contextlib.suppress(OSError):
                while chunk := os.read(fd, CHUNK):
                    capture.feed(chunk)
        if relay is not None:
            relay.flush(final=True)
    finally:
        sel.close()
    duration = time.monotonic() - started
    result: dict[str, Any] = {
        "stdout": out.text(),
        "stderr": err.text(),
        "stdout_truncated": out.truncated,
        "stderr_truncated": err.truncated,
        "timed_out": timed_out,
        "duration_s": round(duration, 6),
        "signal": None,
        "state_lost": lost,
        "value": None,
        "display": [],
        "error": None,
    }
    if lost:
        pid = kernel.pid
        kernel.close()
        _wait_nohang(pid)
        kernel = None
        result["exit_code"] = None
        if timed_out:
            result["error"] = (
                f"timed out after {timeout_s:g} s and did not stop on KeyboardInterrupt: "
                "the interpreter was restarted, its state is lost"
            )
        else:
            result["error"] = (
                "the session's interpreter died (most likely out of memory or killed): "
                "it was restarted, its state is lost"
            )
    else:
        assert reply is not None
        code_ = reply.get("status")
        result["exit_code"] = code_ if isinstance(code_, int) else 1
        result["value"] = reply.get("value")
        result["display"] = reply.get("display") or []
        if timed_out:
            result["error"] = f"timed out after {timeout_s:g} s (interrupted; state kept)"
    return kernel, result, collect_artifacts(workdir, before, limits)


def install_wheels(header: dict[str, Any], site: str) -> dict[str, Any]:
    """Unpack the frame's wheels into the session's site dir (the next cell imports them)."""
    import shutil
    import tempfile
    import zipfile

    staging = tempfile.mkdtemp(prefix="pyc-wheels-")
    try:
        write_inputs(header, staging)
        installed = []
        for entry in header.get("files") or []:
            name = check_name(entry.get("name"))
            if not name.endswith(".whl") or "/" in name:
                raise ValueError(f"{name!r} is not a wheel file name")
            with zipfile.ZipFile(os.path.join(staging, name)) as wheel:
                for member in wheel.namelist():
                    check_name(member.rstrip("/") or ".")
                wheel.extractall(site)
            installed.append(name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result = empty_result(None)
    result["exit_code"] = 0
    result["installed"] = installed
    return result


def read_one(workdir: str, header: dict[str, Any]) -> Collected:
    """One work-dir file as an artifact (a session download)."""
    name = check_name(header.get("name"))
    limits = header.get("limits") or {}
    out = Collected()
    fd = os.open(os.path.join(workdir, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    st = os.fstat(fd)
    cap = _limit(limits, "max_artifact_bytes")
    if not stat.S_ISREG(st.st_mode) or (cap is not None and st.st_size > cap):
        os.close(fd)
        out.skip(name, st.st_size, "not a regular file or over the per-file limit")
        return out
    out.artifacts.append(Artifact(name, st.st_size, fd))
    return out


def _set_dumpable(on: bool) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_DUMPABLE, 1 if on else 0, 0, 0, 0) != 0:
            log(f"prctl(PR_SET_DUMPABLE) failed: errno {ctypes.get_errno()}")
    except OSError as exc:
        log(f"prctl unavailable: {exc}")


def _become_subreaper() -> None:
    if os.getpid() == 1:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def preimport() -> list[str]:
    """Import the heavy modules before the request arrives, so a started runner is warm.

    The cyclic garbage collector is off meanwhile: importing numpy, pandas and matplotlib
    allocates hundreds of thousands of objects and would set off collections that walk them
    all again and again, for nothing (module objects live as long as the interpreter): 15-25%
    of the pre-import's CPU, which every pooled sandbox pays. What was imported then goes to
    the permanent generation (``gc.freeze``), so the script's own collections never walk (and
    copy-on-write) the pages it shares with the harness; the script runs with it back on.
    The cyclic garbage the imports left goes there too (about 80,000 small objects, under
    1 MB of RSS): collecting it first would cost as much CPU as the pause saves."""
    names = os.environ.get("PYC_PREIMPORT", "numpy,pandas")
    gc.disable()
    try:
        return _import_all(names)
    finally:
        gc.freeze()
        gc.enable()


def _import_all(names: str) -> list[str]:
    done = []
    for name in filter(None, (n.strip() for n in names.split(","))):
        try:
            __import__(name)
            done.append(name)
        except Exception as exc:  # a missing module only costs the warm start
            log(f"pre-import of {name} failed: {exc.__class__.__name__}: {exc}")
    if "pandas" in done:
        _warm_pandas()
    return done


def _warm_pandas() -> None:
    """pandas initialises much on first use (dtype machinery, groupby and reduction kernels,
    formatting): 10-25 ms that every data script would otherwise pay on its request."""
    try:
        _pandas_workout()
    except Exception as exc:
        log(f"pandas warm-up failed: {exc.__class__.__name__}: {exc}")


def _pandas_workout() -> None:
    import pandas

    frame = pandas.DataFrame({"k": [1, 1, 2], "v": [0.5, 1.5, 2.5], "s": ["a", "b", "c"]})
    frame.v.sum()
    frame.groupby("k").v.mean()
    frame.describe()
    repr(frame)


def main(argv: list[str]) -> int:
    workdir = os.path.abspath(
        argv[1] if len(argv) > 1 else os.environ.get("PYC_WORKDIR") or os.getcwd()
    )
    # Keep the result channel private, and point fd 1 at stderr so a stray print (ours or a
    # pre-imported module's) cannot corrupt the frame.
    result_fd = os.dup(1)
    os.dup2(2, 1)
    # A script may signal its parent; the harness must still answer (it is PID 1, and only
    # SIGKILL from outside the namespace can end it then).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _set_dumpable(False)
    _become_subreaper()
    imported = preimport()
    session = os.environ.get("PYC_MODE") == "session"
    # One-shot: the script's process is forked now, before the ready frame, so a pooled
    # sandbox is ready only once it exists.
    prefork = None if session else Prefork()
    if os.environ.get("PYC_HELLO") == "1":
        try:
            hello: dict[str, Any] = {"ready": True, "preimported": imported}
            if session:
                hello["mode"] = "session"  # a harness without session mode would not say so
            _write_all(result_fd, encode_header(hello))
        except OSError:
            log("nobody is listening for the ready frame")
            if prefork is not None:
                prefork.cancel()
            return 3
    if prefork is None:
        return serve_session(workdir, result_fd)
    try:
        header = read_header(_read_fd0)
    except ProtocolError as exc:
        log(f"unreadable request: {exc}")
        prefork.cancel()
        return 2
    try:
        write_inputs(header, workdir)
        relay = wants_relay(header, result_fd)
        result, collected = run_request(header, workdir, relay=relay, prefork=prefork)
    except Exception as exc:
        prefork.cancel()
        log("run failed:\n" + traceback.format_exc())
        result, collected = (
            empty_result(f"harness error: {exc.__class__.__name__}: {exc}"),
            Collected(),
        )
    try:
        write_result(result_fd, result, collected)
    except BrokenPipeError:
        log("the result reader went away")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
