"""How a local job is isolated: the sandbox the subprocess engine starts the harness in.

Isolation, detected once per executor and reported in ``RunResult.isolation``:

* **bwrap** (bubblewrap works): new net/pid/ipc/uts/mount namespaces; the sandbox sees only
  ``/usr``, a few ``/etc`` files (plus a generated passwd/group), the runner interpreter
  (venv + base prefix) and the harness, all read-only. Its writable dirs are size-capped
  tmpfs, like the docker engine's: the work dir ``/sandbox`` (``workdir_bytes``; inputs come
  in and artifacts go out over the harness's pipes), ``/tmp`` and ``/dev/shm`` (a quarter of
  that each) and ``$HOME`` (64 MB). So a script cannot fill the host's disk, and the RAM it
  can park there (outside ``RLIMIT_AS``) is bounded. No gateway repo, ``/root``, ``/home``,
  ``/etc/shadow`` or artifact store. (A bwrap without ``--size`` gets dirs of the job dir.)
* **uid** (the gateway is root): the script runs as a per-job unprivileged uid with no
  capabilities. This is what makes ``RLIMIT_NPROC`` bite: the kernel never applies it to
  real uid 0, whatever the capabilities, so a user namespace mapped onto root (bwrap
  ``--unshare-user`` run by root) would not stop a fork bomb. Root runs bwrap (it can read
  every bind source, e.g. a base Python under ``/root``) and ``setpriv`` drops to the job
  uid inside. Uids come from a range and are held with ``flock`` so concurrent jobs, even
  in other gateway processes, never share one; afterwards every process of the uid is killed.
* **userns** (the gateway is a normal user): bwrap ``--unshare-user --cap-drop ALL``. The
  nproc limit then counts all of the gateway user's tasks, so it is set to the tasks that
  user has now plus the job's ``pids`` budget: a fork bomb is bounded, not confined per job.
* **seccomp** (bwrap on x86_64, probed once): bwrap loads ``seccomp``'s
  filter, so the script cannot make new namespaces (``unshare``/``clone`` with
  ``CLONE_NEW*``: a new user namespace would hand it every capability), mount, or reach
  io_uring, bpf, keyrings, ptrace, perf and friends. The program goes to bwrap over a pipe
  (``--seccomp FD``, ``pass_fds``), which bwrap closes before the harness starts. Elsewhere,
  or where bwrap refuses it (logged), the label is absent.
* Without bwrap: rlimits, scrubbed env, own session (+ the job uid when root); nothing stops
  network access or reading world-readable files, and the work dir is on the host's disk
  (only ``RLIMIT_FSIZE`` caps a file). Said at startup and in ``isolation``.

Memory is ``RLIMIT_AS`` (set by the harness on the script) = ``memory_bytes`` +
``AS_HEADROOM_BYTES``. Address space is not resident memory: the data stack maps ~250 MB of
shared libraries, and allocators reserve far more than they touch (pyarrow's mimalloc pool
reserves 1 GiB up front; each glibc thread arena 64 MB). So BLAS/OpenMP pools are pinned to
one thread, glibc to two arenas, pyarrow to the system allocator, and the limit gets 512 MiB
of headroom: pandas + scipy + statsmodels + sklearn + matplotlib peak at ~630 MB of address
space for ~270 MB resident. The docker engine limits resident memory (cgroup) instead.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from sandboxing import seccomp
from sandboxing.bwrap import SYSTEM_PATH
from sandboxing.bwrap import probe as bwrap_probe
from service.executors.local.uids import UID_BASE, tasks_of

log = logging.getLogger(__name__)

MB = 1024 * 1024
# Address space on top of memory_bytes for mappings that never become resident (see above).
AS_HEADROOM_BYTES = 512 * MB
PROBE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class RunnerInfo:
    python: Path  # the venv's interpreter, unresolved (a venv is found via its own path)
    prefixes: tuple[Path, ...]  # directories to bind read-only so that interpreter works

    @classmethod
    def from_prefixes(cls, python: Path, prefixes: list[Path]) -> RunnerInfo:
        """The venv by its unresolved path (pyvenv.cfg is found from there) and every prefix
        by its real path (the venv's python is a symlink into the base prefix)."""
        roots = {Path(os.path.abspath(python.parent.parent))}
        roots.update(Path(os.path.realpath(p)) for p in prefixes)
        return cls(python=python, prefixes=tuple(sorted(_outermost(roots))))


@dataclass(frozen=True)
class Isolation:
    bwrap: str | None  # path of a working bwrap, or None
    as_root: bool
    setpriv: str | None
    prlimit: str | None
    detail: str
    sized_tmpfs: bool = False  # bwrap has --size: the sandbox's writable dirs are capped tmpfs
    seccomp: bool = False  # bwrap loads our seccomp filter (``seccomp``)
    cgroup: bool = False  # each job runs in its own cgroup (``cgroups``)

    @property
    def labels(self) -> tuple[str, ...]:
        labels = ["rlimits"]
        if self.as_root:
            labels.append("uid")
        if self.bwrap:
            if not self.as_root:
                labels.append("userns")
            labels += ["netns", "mountns", "pidns", "ipcns", "utsns"]
            if self.seccomp:
                labels.append("seccomp")
        if self.cgroup:
            labels.append("cgroup")
        return tuple(labels)


def detect_isolation(sandbox: str) -> Isolation:
    """Probe what this host allows; ``sandbox="none"`` leaves bubblewrap out."""
    as_root = os.geteuid() == 0
    setpriv = shutil.which("setpriv", path=SYSTEM_PATH + ":/usr/sbin:/sbin")
    prlimit = shutil.which("prlimit", path=SYSTEM_PATH + ":/usr/sbin:/sbin")
    bwrap = shutil.which("bwrap", path=SYSTEM_PATH) if sandbox == "auto" else None
    notes = []
    sized = filtered = False
    if bwrap:
        problem = bwrap_probe(bwrap, as_root=as_root)
        sized = problem is None and bwrap_probe(bwrap, as_root=as_root, sized=True) is None
        if problem is None and seccomp.supported():
            refused = bwrap_probe(bwrap, as_root=as_root, filtered=True)
            filtered = refused is None
            if refused:
                log.warning("bwrap does not load the seccomp filter, running without: %s", refused)
        if problem:
            notes.append(f"bwrap unusable: {problem}")
            bwrap = None
        elif as_root and not setpriv:
            notes.append("bwrap works but setpriv is missing, so it would run as root")
            bwrap = None
    elif sandbox == "auto":
        notes.append("bwrap not installed")
    else:
        notes.append("bwrap disabled")
    if bwrap:
        notes.append(f"bubblewrap at {bwrap}")
        if sized:
            notes.append("writable dirs are size-capped tmpfs")
        else:
            notes.append("bwrap lacks --size: work dir on disk, only RLIMIT_FSIZE caps it")
        if filtered:
            notes.append("seccomp filter denies namespaces, mounts, io_uring, bpf, ...")
        elif not seccomp.supported():
            notes.append(f"no seccomp filter on {os.uname().machine} (written for x86_64)")
        else:
            notes.append("bwrap refused the seccomp filter: new user namespaces NOT blocked")
    else:
        notes.append("no namespaces: network and world-readable files are NOT isolated")
    notes.append(
        f"per-job uids {UID_BASE}+" if as_root else "unprivileged gateway: nproc shared by user"
    )
    if not prlimit:
        notes.append("prlimit missing: rlimits only from the harness")
    return Isolation(
        bwrap,
        as_root,
        setpriv,
        prlimit,
        "; ".join(notes),
        sized_tmpfs=sized,
        seccomp=bool(bwrap) and filtered,
    )


def nproc_limit(iso: Isolation, pids: int) -> int:
    """``RLIMIT_NPROC`` for a job: it counts every task of the real uid, and a job uid has
    none but the job's; an unprivileged gateway's own uid already has some."""
    return pids if iso.as_root else tasks_of(os.getuid()) + pids


def under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _outermost(paths: set[Path]) -> set[Path]:
    return {p for p in paths if not any(q != p and under(p, q) for q in paths)}
