"""A cgroup per subprocess-engine job: memory (tmpfs pages included), pids and CPU.

rlimits bound each process, not the job: ``RLIMIT_AS`` times the pids budget is a lot of
memory, tmpfs pages count against no rlimit, and nothing caps CPU. The memory controller
charges every page a job's processes touch, its tmpfs files too, so one limit covers them
all; when it is hit the kernel OOM-kills inside the job (never the gateway), and the cgroup's
own ``oom_kill`` counter says so truthfully.

Layout: one cgroup per job, created inside the gateway's own cgroup (so whatever limits the
gateway lives under still apply) and removed after the job, its processes killed first.

* **v1** (``/sys/fs/cgroup/{memory,pids,cpu}``): ``memory.limit_in_bytes`` (and
  ``memory.memsw.limit_in_bytes``, no swap), ``pids.max``, ``cpu.cfs_quota_us``;
  ``oom_kill`` in ``memory.oom_control``.
* **v2** (one unified hierarchy with these controllers): ``memory.max``,
  ``memory.swap.max=0``, ``pids.max``, ``cpu.max``; ``oom_kill`` in ``memory.events``. A
  v2 child needs the controllers enabled in the parent's ``cgroup.subtree_control``, which
  the kernel refuses while the parent holds processes (the gateway itself): there the engine
  runs without cgroups unless the gateway's cgroup is delegated to it with the gateway in a
  leaf of its own.

The process enters its cgroup before it executes anything: ``enter_command`` wraps the argv
in ``/bin/sh``, which writes its own pid to every ``cgroup.procs`` and then ``exec``\\s the
sandbox, so bwrap, the harness and the script are all born inside.

Where none of that is writable (an unprivileged gateway, a read-only ``/sys/fs/cgroup``) the
engine runs without, logs why once, and does not claim the ``cgroup`` isolation label.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from service.executors.base import BACKGROUND_CPU_SHARES, DEFAULT_CPU_SHARES

log = logging.getLogger(__name__)

CONTROLLERS = ("memory", "pids", "cpu")
CFS_PERIOD_US = 100_000
V2_DEFAULT_WEIGHT = 100  # cgroup v2 ``cpu.weight``, the counterpart of v1's 1024 shares
# Tasks the plumbing adds on top of the job's pids budget: /bin/sh -> bwrap (outer and
# inner), setpriv/prlimit exec in place.
PIDS_HEADROOM = 8
_OOM_KILL = re.compile(rb"^oom_kill (\d+)$", re.M)

# sh enters every cgroup.procs named before ``--``, then becomes the command after it.
_ENTER = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
ENTER_FAILED = 125


@dataclass(frozen=True)
class CgroupSupport:
    """Where job cgroups go: ``parents[controller]`` (v1) or ``parents["unified"]`` (v2)."""

    version: int
    parents: dict[str, Path]


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(mount root, mount point, fs type, super options) of every cgroup mount."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(fields) < 5 or len(tail) < 3 or not tail[0].startswith("cgroup"):
                continue
            found.append((fields[3], fields[4], tail[0], set(tail[2].split(","))))
    return found


def _own_cgroups() -> dict[str, str]:
    """Controller (or "" for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    own: dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                own[name] = path
    return own


def _join(root: str, mount_point: str, path: str) -> Path:
    """The directory of cgroup ``path`` under a mount of hierarchy subtree ``root``."""
    if root != "/" and (path == root or path.startswith(root + "/")):
        path = path[len(root) :]
    return Path(mount_point) / path.lstrip("/")


def detect() -> tuple[CgroupSupport | None, str]:
    """Can this process make job cgroups? The support found, or None and why not."""
    try:
        mounts, own = _mounts(), _own_cgroups()
    except (OSError, ValueError) as exc:
        return None, f"cannot read the cgroup setup: {exc}"
    v1: dict[str, Path] = {}
    for root, point, fstype, options in mounts:
        for controller in CONTROLLERS:
            if fstype == "cgroup" and controller in options and controller in own:
                v1.setdefault(controller, _join(root, point, own[controller]))
    if len(v1) == len(CONTROLLERS):
        support = CgroupSupport(1, v1)
    else:
        unified = next(
            (
                _join(root, point, own.get("", "/"))
                for root, point, t, _ in mounts
                if t == "cgroup2"
            ),
            None,
        )
        if unified is None:
            return None, "no cgroup hierarchy with memory, pids and cpu controllers"
        try:
            available = set((unified / "cgroup.controllers").read_text().split())
        except OSError as exc:
            return None, f"cgroup v2 at {unified} unreadable: {exc}"
        if not set(CONTROLLERS) <= available:
            missing = sorted(set(CONTROLLERS) - available)
            return None, f"cgroup v2 lacks the {', '.join(missing)} controller(s)"
        support = CgroupSupport(2, {"unified": unified})
        problem = _enable_v2_controllers(unified)
        if problem:
            return None, problem
    try:
        probe = JobCgroup.create(support, "probe", memory_bytes=64 << 20, pids=8, cpus=1.0)
    except OSError as exc:
        return None, f"cgroup v{support.version} not writable: {exc}"
    probe.close()
    return support, f"cgroup v{support.version}"


def sweep_stale(
    support: CgroupSupport, older_than_s: float = 3600.0, pattern: str = "python-coder-*"
) -> int:
    """Remove empty job cgroups a crashed gateway left behind; how many went.

    Only those older than any job can be (a live job's cgroup is empty for a moment between
    its creation and the sandbox entering it), and ``rmdir`` refuses any that hold a task.
    """
    removed = 0
    now = time.time()
    for parent in support.parents.values():
        for path in parent.glob(pattern):
            try:
                if now - path.stat().st_mtime < older_than_s:
                    continue
                path.rmdir()
                removed += 1
            except OSError:
                continue
    if removed:
        log.info("removed %d stale job cgroup(s)", removed)
    return removed


def _enable_v2_controllers(parent: Path) -> str | None:
    control = parent / "cgroup.subtree_control"
    try:
        enabled = set(control.read_text().split())
        for controller in CONTROLLERS:
            if controller not in enabled:
                control.write_text(f"+{controller}")
    except OSError as exc:
        hint = " (the gateway's cgroup holds processes)" if exc.errno == errno.EBUSY else ""
        return f"cannot enable cgroup v2 controllers in {parent}: {exc}{hint}"
    return None


class JobCgroup:
    """One job's cgroup (a directory per v1 controller, one in v2); ``close()`` removes it."""

    def __init__(self, version: int, dirs: dict[str, Path]) -> None:
        self.version = version
        self.dirs = dirs

    @classmethod
    def create(
        cls,
        support: CgroupSupport,
        job: str,
        *,
        memory_bytes: int,
        pids: int,
        cpus: float,
        background: bool = False,
    ) -> JobCgroup:
        """Make the cgroup with its limits; ``OSError`` (nothing left behind) if it fails.
        ``background``: at a low CPU weight until ``foreground()``."""
        name = f"python-coder-{job[:40]}-{secrets.token_hex(4)}"
        group = cls(support.version, {})
        try:
            for controller, parent in support.parents.items():
                path = parent / name
                path.mkdir()
                group.dirs[controller] = path
            quota = max(1000, int(cpus * CFS_PERIOD_US))
            if support.version == 1:
                memory = group.dirs["memory"]
                _write(memory / "memory.limit_in_bytes", memory_bytes)
                with contextlib.suppress(FileNotFoundError):  # no swap accounting
                    _write(memory / "memory.memsw.limit_in_bytes", memory_bytes)
                _write(group.dirs["pids"] / "pids.max", pids + PIDS_HEADROOM)
                _write(group.dirs["cpu"] / "cpu.cfs_period_us", CFS_PERIOD_US)
                _write(group.dirs["cpu"] / "cpu.cfs_quota_us", quota)
            else:
                path = group.dirs["unified"]
                _write(path / "memory.max", memory_bytes)
                with contextlib.suppress(FileNotFoundError):
                    _write(path / "memory.swap.max", 0)
                _write(path / "pids.max", pids + PIDS_HEADROOM)
                _write(path / "cpu.max", f"{quota} {CFS_PERIOD_US}")
            if background:
                group._set_weight(BACKGROUND_CPU_SHARES)
        except OSError:
            group.close()
            raise
        return group

    def foreground(self) -> None:
        """Back to the default CPU weight (``OSError`` if the write fails)."""
        self._set_weight(DEFAULT_CPU_SHARES)

    def _set_weight(self, shares: int) -> None:
        """``shares`` on the v1 scale (default 1024); v2 gets the same share of its 100."""
        if self.version == 1:
            _write(self.dirs["cpu"] / "cpu.shares", shares)
        else:
            weight = max(1, shares * V2_DEFAULT_WEIGHT // DEFAULT_CPU_SHARES)
            _write(self.dirs["unified"] / "cpu.weight", weight)

    @property
    def procs_files(self) -> list[Path]:
        return [path / "cgroup.procs" for path in self.dirs.values()]

    def enter_command(self, argv: list[str]) -> list[str]:
        """``argv`` started from inside this cgroup (exit 125 if entering failed)."""
        return ["/bin/sh", "-c", _ENTER, "sh", *map(str, self.procs_files), "--", *argv]

    def oom_killed(self) -> bool:
        """Did the kernel OOM-kill a process of this cgroup (its own counter, not a guess)?"""
        memory = self.dirs.get("memory") or self.dirs.get("unified")
        if memory is None:
            return False
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            match = _OOM_KILL.search((memory / name).read_bytes())
        except OSError:
            return False
        return bool(match and int(match.group(1)) > 0)

    def pids(self) -> list[int]:
        found: set[int] = set()
        for procs in self.procs_files:
            with contextlib.suppress(OSError, ValueError):
                found.update(int(p) for p in procs.read_text().split())
        return sorted(found)

    def kill(self) -> None:
        """SIGKILL every process in the cgroup until none is left (bounded)."""
        if self.version == 2 and "unified" in self.dirs:
            with contextlib.suppress(OSError):
                _write(self.dirs["unified"] / "cgroup.kill", 1)
        for _ in range(100):
            left = self.pids()
            if not left:
                return
            for pid in left:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)
        log.error("processes survive in job cgroup %s: %s", self.dirs, self.pids())

    def close(self) -> None:
        """Kill what is left and remove the directories (retried while tasks exit)."""
        self.kill()
        for path in self.dirs.values():
            for _ in range(100):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        log.warning("cannot remove job cgroup %s: %s", path, exc)
                        break
                    time.sleep(0.01)
            else:
                log.error("job cgroup %s is still busy; left behind", path)
        self.dirs = {}


def _write(path: Path, value: object) -> None:
    with open(path, "w") as f:
        f.write(f"{value}\n")
