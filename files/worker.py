"""Parsing and extraction of uploads in sandboxed, limited worker processes.

Every parser of uploaded bytes (metadata of every type, archive listing and extraction) and
of stored files (the storage tools' CSV and Parquet previews, ``files.tables``) runs in a child
process started through ``files.sandbox`` (``python -m files.worker`` behind
``files.confine``): no network, no socket at all, a clean environment, no view of the gateway's
files under bubblewrap, address space capped with RLIMIT_AS, one job at a time, a deadline per
job. A worker that overruns is killed (and reaped); one that runs out of memory or crashes
turns into ``{"error": ...}`` for that file only. Workers are reused across files and requests
(the pool is per memory limit and process-wide), so the per-file cost after the first is a
round trip plus the parse itself.

Protocol. Jobs go to the worker as one JSON object per message on a ``SOCK_SEQPACKET`` socket
(its stdin), with the job's file as a descriptor (``SCM_RIGHTS``): the worker opens nothing by
path, so a warm worker needs no view of any job's directory. Results come back on a private
copy of stdout, one JSON object per line; an extraction streams members first, as
``{"member": name}``, ``{"data": n}`` followed by n raw bytes, ``{"end": true}``, then its
result line. The child's real stdout and stderr go to /dev/null so chatty C libraries cannot
corrupt the stream.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from files.archives import MemberSink
from files.sandbox import CONFINE_FAILED, WorkerSandbox, worker_sandbox

MAX_JOBS_PER_WORKER = 200
MAX_LINE_BYTES = 16 << 20  # a result line longer than this is a broken (or hostile) worker
MAX_DATA_FRAME = 1 << 21


class WorkerProtocolError(Exception):
    """The worker broke the protocol: it is killed, its answer is not used."""


class _WorkerGone(Exception):
    """The worker was dead before it got the job (killed while idle): try a fresh one."""


class _Channel:
    """Buffered reads from the worker's result pipe, each bounded by a deadline."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.fd = stream.fileno()
        self.buf = bytearray()

    def _fill(self, deadline: float) -> bool | None:
        """More bytes: True, False at EOF, None at the deadline."""
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([self.fd], [], [], left)
        if not ready:
            return None
        chunk = os.read(self.fd, 1 << 16)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def line(self, deadline: float) -> bytes | None:
        """One line by ``deadline``: ``None`` on timeout, ``b""`` on EOF."""
        while (end := self.buf.find(b"\n")) < 0:
            if len(self.buf) > MAX_LINE_BYTES:
                raise WorkerProtocolError("result line too long")
            more = self._fill(deadline)
            if not more:
                return None if more is None else b""
        out = bytes(self.buf[: end + 1])
        del self.buf[: end + 1]
        return out

    def exact(self, n: int, deadline: float) -> bytes | None:
        while len(self.buf) < n:
            more = self._fill(deadline)
            if not more:
                return None
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


_spawner: ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def _spawn(start: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """Start a worker from one long-lived thread: bwrap's ``--die-with-parent`` (and so the
    worker's life) is tied to the thread that started it, and pool threads come and go."""
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = ThreadPoolExecutor(1, thread_name_prefix="intake-worker-spawner")
        spawner = _spawner
    return spawner.submit(start).result()


class _Worker:
    def __init__(self, memory_bytes: int, sandbox: WorkerSandbox) -> None:
        self.memory_bytes = memory_bytes
        argv, env = sandbox.command("files.worker", str(memory_bytes))
        # Jobs (and their descriptors) in, over a socketpair made before the sandbox's seccomp
        # filter refuses sockets; results out over a pipe.
        self.sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = _spawn(
                lambda: subprocess.Popen(
                    argv,
                    stdin=child.fileno(),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    env=env,
                    cwd="/",
                    start_new_session=True,
                )
            )
        except BaseException:
            self.sock.close()
            raise
        finally:
            child.close()
        assert self.proc.stdout is not None
        self.channel = _Channel(self.proc.stdout)
        self.jobs = 0
        self.broken = False

    def _send(self, job: dict[str, Any], fd: int | None) -> None:
        fds = [fd] if fd is not None else []
        try:
            socket.send_fds(self.sock, [json.dumps(job).encode()], fds)
        except OSError as exc:
            self.broken = True
            raise _WorkerGone from exc

    def _gone(self) -> str:
        self.broken = True
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode
        if code == CONFINE_FAILED:
            return "intake worker could not set up its sandbox (see the gateway log)"
        why = "ran out of memory or crashed" if code else "exited"
        return f"intake worker {why} while reading this file (exit code {code})"

    def _result(self, line: bytes) -> dict[str, Any]:
        try:
            result = json.loads(line)
        except ValueError as exc:
            raise WorkerProtocolError("result is not JSON") from exc
        if not isinstance(result, dict):
            raise WorkerProtocolError("result is not an object")
        if result.pop("_recycle", False):
            self.broken = True
        return result

    def request(
        self, job: dict[str, Any], timeout_s: float, fd: int | None = None
    ) -> dict[str, Any]:
        """One job, one result line; the file is ``job["path"]`` (opened here) or ``fd`` (the
        caller's, left open)."""
        self.jobs += 1
        sent = dict(job)
        path = sent.pop("path", None)
        opened = None
        if path is not None:
            try:
                opened = fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError as exc:
                return {"error": f"cannot open the file: {exc.strerror}"}
            sent.setdefault("name", Path(path).name)
        try:
            self._send(sent, fd)
        finally:
            if opened is not None:
                os.close(opened)
        line = self.channel.line(time.monotonic() + timeout_s)
        if line is None:
            self.kill()
            what = "reading the table" if job.get("op") == "table" else "metadata extraction"
            return {"error": f"{what} timed out after {timeout_s:g} s (worker killed)"}
        if not line:
            return {"error": self._gone()}
        return self._result(line)

    def extract(
        self, job: dict[str, Any], fd: int, sink: MemberSink, timeout_s: float
    ) -> dict[str, Any]:
        """Run an extraction job, feeding the streamed members to ``sink``; the result line.

        ``{"error": ...}`` when the worker times out, crashes or breaks the protocol (it is
        killed); whatever ``sink`` raises propagates (and the caller kills the worker).
        """
        self.jobs += 1
        self._send(job, fd)
        deadline = time.monotonic() + timeout_s
        while True:
            line = self.channel.line(deadline)
            if line is None:
                self.kill()
                return {"error": f"extraction timed out after {timeout_s:g} s (worker killed)",
                        "timed_out": True}  # fmt: skip
            if not line:
                return {"error": self._gone()}
            msg = self._result(line)
            if "member" in msg:
                sink.begin(str(msg["member"]))
            elif "data" in msg:
                n = msg["data"]
                if not isinstance(n, int) or not 0 < n <= MAX_DATA_FRAME:
                    raise WorkerProtocolError(f"bad data frame {n!r}")
                data = self.channel.exact(n, deadline)
                if data is None:
                    self.kill()
                    return {"error": f"extraction timed out after {timeout_s:g} s (worker killed)",
                            "timed_out": True}  # fmt: skip
                sink.write(data)
            elif msg.get("end"):
                sink.end()
            else:
                return msg

    def kill(self) -> None:
        self.broken = True
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self.sock.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.sock.shutdown(socket.SHUT_WR)  # the worker exits at EOF
                self.proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()


class WorkerPool:
    """Up to ``max_workers`` reusable workers with one address-space limit."""

    def __init__(
        self, memory_bytes: int, max_workers: int = 2, sandbox: WorkerSandbox | None = None
    ) -> None:
        self.memory_bytes = memory_bytes
        self.max_workers = max_workers
        self.sandbox = sandbox or worker_sandbox()
        self._idle: list[_Worker] = []
        self._live = 0
        self._cond = threading.Condition()
        self._closed = False

    def _checkout(self) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("worker pool is shut down")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.proc.poll() is None:
                        return worker
                    self._live -= 1  # died while idle (killed from outside): replace it
                    worker.kill()
                if self._live < self.max_workers:
                    self._live += 1
                    break
                self._cond.wait()
        try:
            return _Worker(self.memory_bytes, self.sandbox)
        except BaseException:
            with self._cond:
                self._live -= 1
                self._cond.notify()
            raise

    def _checkin(self, worker: _Worker) -> None:
        keep = (
            not worker.broken and worker.jobs < MAX_JOBS_PER_WORKER and worker.proc.poll() is None
        )
        with self._cond:
            if keep and not self._closed:
                self._idle.append(worker)
                self._cond.notify()
                return
            self._live -= 1
            self._cond.notify()
        worker.close()

    def _call(self, work: Callable[[_Worker], dict[str, Any]]) -> dict[str, Any]:
        """``work`` on a worker; once more on a fresh one if that worker was already dead."""
        for attempt in (1, 2):
            worker = self._checkout()
            try:
                return work(worker)
            except _WorkerGone:
                worker.kill()
                if attempt == 2:
                    return {"error": "intake worker is not running"}
            except WorkerProtocolError as exc:
                worker.kill()
                return {"error": f"intake worker broke its protocol ({exc}); killed"}
            except BaseException:
                worker.kill()
                raise
            finally:
                self._checkin(worker)
        raise AssertionError("unreachable")

    def run(self, job: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        return self._call(lambda worker: worker.request(job, timeout_s))

    def read_table(self, fd: int, job: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Rows and schema of the CSV or Parquet file open as ``fd`` (``files.tables``; the job
        carries its arguments). The caller keeps ``fd``: a retry on a fresh worker resends it."""
        return self._call(lambda worker: worker.request({**job, "op": "table"}, timeout_s, fd))

    def extract(
        self, path: Path, job: dict[str, Any], sink: MemberSink, timeout_s: float
    ) -> dict[str, Any]:
        """Extract the archive at ``path`` in a worker, streaming its members into ``sink``."""
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            return self._call(
                lambda worker: worker.extract({**job, "op": "extract"}, fd, sink, timeout_s)
            )
        finally:
            os.close(fd)

    def map(self, jobs: list[dict[str, Any]], timeout_s: float) -> list[dict[str, Any]]:
        if len(jobs) <= 1:
            return [self.run(job, timeout_s) for job in jobs]
        with ThreadPoolExecutor(min(len(jobs), self.max_workers)) as ex:
            return list(ex.map(lambda j: self.run(j, timeout_s), jobs))

    def warm(self, timeout_s: float = 60) -> None:
        """Start every worker and import the heavy libraries (call at application start)."""
        self.map([{"warm": True}] * self.max_workers, timeout_s)

    def worker_pids(self) -> list[int]:
        with self._cond:
            return [w.proc.pid for w in self._idle]

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.close()


_pools: dict[int, WorkerPool] = {}
_pools_lock = threading.Lock()


def shared_pool(memory_bytes: int) -> WorkerPool:
    """The process-wide pool for this memory limit (created on first use)."""
    with _pools_lock:
        pool = _pools.get(memory_bytes)
        if pool is None or pool._closed:
            pool = _pools[memory_bytes] = WorkerPool(
                memory_bytes, max_workers=min(2, os.cpu_count() or 1)
            )
        return pool


def shutdown_workers() -> None:
    """Stop every idle worker (call at application shutdown; tests use it to check cleanup)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()


atexit.register(shutdown_workers)


# --- the child side -----------------------------------------------------------------------
def _warm_imports() -> None:
    """Import the heavy readers once, so the first real file does not pay for it."""
    import importlib

    for module in ("pandas", "pyarrow.parquet", "openpyxl", "charset_normalizer", "PIL.Image"):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)


class _FrameSink:
    """The worker's end of an extraction: members go to the gateway as frames."""

    def __init__(self, proto: IO[bytes]) -> None:
        self.proto = proto

    def _header(self, obj: dict[str, Any]) -> None:
        self.proto.write(json.dumps(obj).encode() + b"\n")

    def begin(self, member: str) -> None:
        self._header({"member": member})

    def write(self, data: bytes) -> None:
        for start in range(0, len(data), MAX_DATA_FRAME):
            part = data[start : start + MAX_DATA_FRAME]
            self._header({"data": len(part)})
            self.proto.write(part)

    def end(self) -> None:
        self._header({"end": True})


def _extract(job: dict[str, Any], path: Path, proto: IO[bytes]) -> dict[str, Any]:
    from files.archives import ExtractionBudget, Extractor
    from files.errors import ArchiveRejected, CorruptFile, FileTooLarge
    from files.types import extension_of, is_accepted

    def accept(member: str) -> str | None:
        ext = extension_of(member)
        return None if is_accepted(ext) else f"unsupported type {ext or '(no extension)'}"

    budget = ExtractionBudget(**job["budget"])
    extractor = Extractor(path, job["name"], job["fmt"], budget, accept, _FrameSink(proto))
    try:
        report = extractor.run()
    except (ArchiveRejected, FileTooLarge, CorruptFile) as exc:
        out: dict[str, Any] = {"error": exc.message, "error_class": type(exc).__name__}
        if isinstance(exc, FileTooLarge):
            out["limit_bytes"] = exc.limit_bytes
        return out
    return {"skipped": report.skipped, "members_used": budget.members_used}


def _memfd_copy(fd: int) -> int:
    """A memfd holding the bytes of ``fd``: Landlock refuses to reopen the upload by its
    ``/proc/self/fd`` path (it lives outside the worker's rules), not an internal memfd."""
    copy = os.memfd_create("upload", os.MFD_CLOEXEC)
    size, offset = os.fstat(fd).st_size, 0
    while offset < size:
        sent = os.sendfile(copy, fd, offset, size - offset)
        if sent == 0:
            break
        offset += sent
    return copy


def _serve(memory_bytes: int) -> None:
    proto = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    jobs = socket.socket(fileno=0)

    import warnings

    warnings.simplefilter("ignore")  # library chatter is not metadata
    from files import confine
    from files.metadata import extract_metadata

    while True:
        raw, fds, _, _ = socket.recv_fds(jobs, 1 << 16, 1)
        if not raw:
            break
        recycle = False
        job: dict[str, Any] = {}
        try:
            job = json.loads(raw)
            # A table job reads its descriptor as is; the other readers open a path.
            if fds and confine.LANDLOCKED and job.get("op") != "table":
                fds.append(_memfd_copy(fds[0]))
            path = Path(f"/proc/self/fd/{fds[-1]}") if fds else None
            if job.get("warm"):
                _warm_imports()
                result: dict[str, Any] = {"warm": True}
            elif path is None:
                result = {"error": "no file descriptor came with the job"}
            elif job.get("op") == "extract":
                result = _extract(job, path, proto)
            elif job.get("op") == "table":
                from files.tables import preview_table

                # Read through the descriptor, not by reopening /proc/self/fd/N: that would
                # check the file's mode against the worker's uid (a root gateway's workers run
                # as uid 3101000, and stored files may be 0600).
                with os.fdopen(os.dup(fds[0]), "rb") as table:
                    result = preview_table(
                        table,
                        fmt=job["fmt"],
                        n_rows=job["n_rows"],
                        columns=job.get("columns"),
                        max_result_bytes=job["max_result_bytes"],
                        encoding=job.get("encoding"),
                    )
            else:
                result = extract_metadata(
                    path,
                    kind=job["kind"],
                    fmt=job["fmt"],
                    extension=job["extension"],
                    max_extracted_bytes=job.get("max_extracted_bytes", 500 * 2**20),
                    name=job.get("name"),
                )
        except MemoryError:
            result, recycle = (
                {
                    "error": f"ran out of memory (limit {memory_bytes // 2**20} MB) reading this file"
                },
                True,
            )
        except RecursionError:
            result = {"error": "structure nested too deeply to read"}
        except Exception as exc:
            detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            result = {"error": f"could not read as {job.get('kind', '?')}: {exc.__class__.__name__}"
                               + (f": {detail}" if detail else "")}  # fmt: skip
        finally:
            for fd in fds:
                os.close(fd)
        try:
            out = json.dumps({**result, "_recycle": recycle}, allow_nan=False, default=str)
        except (TypeError, ValueError) as exc:
            out = json.dumps({"error": f"metadata not serialisable: {exc}", "_recycle": recycle})
        proto.write(out.encode() + b"\n")
        proto.flush()
        if recycle:
            break


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
