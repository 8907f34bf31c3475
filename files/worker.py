"""Metadata extraction in limited worker processes.

Parsers of hostile files (XML, PDF, spreadsheets, HDF5 ...) run in a child process started with
``python -m files.worker``: address space capped with RLIMIT_AS, one job at a time, a deadline
per file. A worker that overruns is killed (and reaped); one that runs out of memory or crashes
turns into ``{"error": ...}`` for that file only. Workers are reused across files and requests
(the pool is per memory limit and process-wide), so the per-file cost after the first is a
JSON round trip plus the parse itself.

Protocol: one JSON object per line on stdin (a job) and on a private copy of stdout (the
result); the child's real stdout and stderr go to /dev/null so chatty C libraries cannot
corrupt the stream.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
MAX_JOBS_PER_WORKER = 200


class _Worker:
    def __init__(self, memory_bytes: int) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        # Thread pools and malloc arenas reserve address space; keep them small under RLIMIT_AS.
        for var in (
            "OPENBLAS_NUM_THREADS",
            "OMP_NUM_THREADS",
            "MKL_NUM_THREADS",
            "NUMEXPR_NUM_THREADS",
        ):
            env[var] = "1"
        env["MALLOC_ARENA_MAX"] = "2"
        env["ARROW_DEFAULT_MEMORY_POOL"] = "system"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "files.worker", str(memory_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd="/",
            start_new_session=True,
        )
        self.jobs = 0
        self.broken = False

    def request(self, job: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.jobs += 1
        try:
            self.proc.stdin.write(json.dumps(job).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.broken = True
            return {"error": "metadata worker is not running"}
        line = _read_line(self.proc.stdout, time.monotonic() + timeout_s)
        if line is None:
            self.kill()
            return {"error": f"metadata extraction timed out after {timeout_s:g} s (worker killed)"}
        if not line:
            self.broken = True
            code = self.proc.wait(timeout=5)
            why = "ran out of memory or crashed" if code else "exited"
            return {"error": f"metadata worker {why} while reading this file (exit code {code})"}
        result: dict[str, Any] = json.loads(line)
        if result.pop("_recycle", False):
            self.broken = True
        return result

    def kill(self) -> None:
        self.broken = True
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.close()  # the worker exits at EOF
                self.proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()


def _read_line(stream: IO[bytes], deadline: float) -> bytes | None:
    """One line from ``stream`` by ``deadline``: ``None`` on timeout, ``b""`` on EOF."""
    fd = stream.fileno()
    buf = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return None
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b""
        buf += chunk
        if buf.endswith(b"\n"):
            return bytes(buf)


class WorkerPool:
    """Up to ``max_workers`` reusable workers with one address-space limit."""

    def __init__(self, memory_bytes: int, max_workers: int = 2) -> None:
        self.memory_bytes = memory_bytes
        self.max_workers = max_workers
        self._idle: list[_Worker] = []
        self._live = 0
        self._cond = threading.Condition()
        self._closed = False

    def _checkout(self) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("worker pool is shut down")
                if self._idle:
                    return self._idle.pop()
                if self._live < self.max_workers:
                    self._live += 1
                    break
                self._cond.wait()
        try:
            return _Worker(self.memory_bytes)
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

    def run(self, job: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        worker = self._checkout()
        try:
            return worker.request(job, timeout_s)
        except BaseException:
            worker.kill()
            raise
        finally:
            self._checkin(worker)

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


def _serve(memory_bytes: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    proto = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process

    import warnings

    warnings.simplefilter("ignore")  # library chatter is not metadata
    from files.metadata import extract_metadata

    for raw in sys.stdin.buffer:
        recycle = False
        try:
            job = json.loads(raw)
            if job.get("warm"):
                _warm_imports()
                result: dict[str, Any] = {"warm": True}
                proto.write(json.dumps({**result, "_recycle": False}).encode() + b"\n")
                proto.flush()
                continue
            result = extract_metadata(
                Path(job["path"]),
                kind=job["kind"],
                fmt=job["fmt"],
                extension=job["extension"],
                max_extracted_bytes=job.get("max_extracted_bytes", 500 * 2**20),
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
