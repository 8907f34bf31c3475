"""Per-job unprivileged uids for a root gateway, and killing what runs under them."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import re
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from sandboxing.bwrap import SYSTEM_PATH
from service.errors import EngineUnavailable, ExecutorError

log = logging.getLogger(__name__)

# Per-job unprivileged uids (gateway as root). Far above normal and docker-remapped ranges.
UID_BASE = 3_100_000
UID_COUNT = 1000
# Only root leases uids; /run is root's own (no other user can plant files or links there).
UID_LOCK_DIR = Path("/run/python-coder-sandbox-uids")


def _procs() -> list[int]:
    return [int(n) for n in os.listdir("/proc") if n.isdigit()]


_UID_LINE = re.compile(rb"^Uid:\s+(\d+)", re.M)
_THREADS_LINE = re.compile(rb"^Threads:\s+(\d+)", re.M)
_ZOMBIE_LINE = re.compile(rb"^State:\s+Z", re.M)


def _status(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            return f.read()
    except OSError:
        return b""


def _real_uid(status: bytes) -> int | None:
    match = _UID_LINE.search(status)
    return int(match.group(1)) if match else None


def tasks_of(uid: int) -> int:
    """Tasks (threads) whose real uid is ``uid``: what ``RLIMIT_NPROC`` counts."""
    count = 0
    for pid in _procs():
        status = _status(pid)
        if _real_uid(status) == uid:
            threads = _THREADS_LINE.search(status)
            count += int(threads.group(1)) if threads else 1
    return count


def pids_of_uid(uid: int) -> list[int]:
    """Live processes of ``uid``. Zombies are left out: they run nothing and hold nothing
    but a pid, and SIGKILL cannot end them (their reaper, maybe not us, does)."""
    found = []
    for pid in _procs():
        status = _status(pid)
        if _real_uid(status) == uid and not _ZOMBIE_LINE.search(status):
            found.append(pid)
    return found


def kill_uid(uid: int) -> None:
    """SIGKILL every process of a job uid: one kill(-1) as that uid, then a /proc sweep.

    Under bwrap the pid namespace died with the harness, so the first scan is empty.
    """
    if not pids_of_uid(uid):
        return
    if os.path.exists("/bin/kill"):
        # kill(-1) from the uid itself: atomic against a fork bomb, unlike a pid-by-pid sweep.
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                ["/bin/kill", "-KILL", "-1"],
                user=uid,
                group=uid,
                extra_groups=[],
                env={"PATH": SYSTEM_PATH},
                cwd="/",
                capture_output=True,
                timeout=5,
            )
    if not _sigkill_until_gone(lambda: pids_of_uid(uid), rounds=50):
        log.error("processes of sandbox uid %d survive SIGKILL: %s", uid, pids_of_uid(uid))


def kill_marked(home: Path) -> None:
    """Unprivileged, no bwrap: kill our processes whose initial env names this job's HOME."""
    marker = f"HOME={home}".encode()

    def marked() -> list[int]:
        hits = []
        for pid in _procs():
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if marker in f.read().split(b"\0"):
                        hits.append(pid)
            except OSError:
                continue
        return hits

    _sigkill_until_gone(marked, rounds=20)


def _sigkill_until_gone(find: Callable[[], list[int]], *, rounds: int) -> bool:
    """SIGKILL what ``find`` lists until it lists nothing (True) or ``rounds`` run out."""
    for _ in range(rounds):
        left = find()
        if not left:
            return True
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
    return False


class UidLease:
    """A sandbox uid held exclusively (``flock``) by this job, across gateway processes."""

    def __init__(self, uid: int, fd: int) -> None:
        self.uid = uid
        self._fd = fd

    @classmethod
    def acquire(cls) -> UidLease:
        UID_LOCK_DIR.mkdir(mode=0o700, exist_ok=True)
        st = UID_LOCK_DIR.lstat()
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise ExecutorError(f"{UID_LOCK_DIR} is not a private directory of ours")
        start = random.randrange(UID_COUNT)
        for i in range(UID_COUNT):
            uid = UID_BASE + (start + i) % UID_COUNT
            fd = os.open(
                UID_LOCK_DIR / str(uid),
                os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
            )
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            kill_uid(uid)  # leftovers of a crashed gateway must not count against us
            return cls(uid, fd)
        raise EngineUnavailable(f"all {UID_COUNT} sandbox uids are in use")

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
