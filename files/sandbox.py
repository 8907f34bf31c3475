"""The sandbox of the intake workers: chosen once per process, and the command that starts one.

Uploaded bytes meet C parsers (zlib/bz2/lzma and py7zr's codecs, HDF5, netCDF, libxml2,
Pillow, pyarrow, ...) only in the workers of ``files.worker``, and every worker starts through
``WorkerSandbox.command``: the one place that decides what a worker can touch. The gateway
holds the Docker socket (host root) and its secrets; a parser exploited by a hostile file must
reach neither. The strongest mode this host allows is chosen at first use, logged, and shown
by ``python-coder doctor`` and ``/readyz``:

* ``bwrap`` (bubblewrap works: a dev or CI host): new user (or, for a root gateway, a
  dedicated uid via setpriv), network, pid, ipc and uts namespaces; the worker sees ``/usr``,
  the Python prefixes, the ``files`` and ``sandboxing`` packages and a few ``/etc`` files, all
  read-only, and a small tmpfs ``/tmp``. No ``/var/run`` (no Docker socket), no repository
  (no ``.env``), no job directories: each job's file arrives as a file descriptor.
* ``confined`` (no bwrap: the compose gateway container, whose Docker seccomp profile refuses
  the user namespaces bwrap needs, and which has no capability to change uid): the worker is
  the gateway's uid, so the kernel must keep it away from the socket by other means. Its
  seccomp filter lets it create no socket at all (``socket``/``socketpair`` refused): it cannot
  connect to ``docker.sock`` whatever its groups, nor to any network; it inherits no
  descriptor but its job pipes. The gateway and every worker are non-dumpable, so a worker
  cannot read the gateway's ``/proc/<pid>/environ`` or memory. Where the kernel has Landlock
  (``sandboxing.landlock``) the worker also restricts itself to reading the Python install and
  the parser code: no other job's upload, no file of the gateway, and (ABI 6+) no signal to
  the gateway; its inputs are then copied into a memfd, which Landlock lets it reopen by
  path. Without Landlock it can read what the gateway's uid can read; said in the detail.
* ``unconfined`` (neither: not x86_64 and no bwrap): rlimits and a clean environment only.
  Logged as an error at start and reported as a problem by doctor.

Every mode: a clean environment (no gateway secret), ``RLIMIT_AS``, no core dumps, its own
session, no new privileges, and the seccomp filter of ``sandboxing.seccomp`` without socket
families, which the worker loads itself (``files.confine``) before it reads a job.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sandboxing import landlock, seccomp
from sandboxing.bwrap import (
    MB,
    SYSTEM_PATH,
    parent_dirs,
    probe,
    setpriv_args,
    system_binds,
    tmpfs_args,
)

log = logging.getLogger(__name__)

Mode = Literal["bwrap", "confined", "unconfined"]
# A root gateway's intake workers run as this uid: just above the local engine's per-job range
# (service/executors/local/uids.py), owned by nobody, in no group.
WORKER_UID = 3_101_000
# Where the packages appear inside bwrap.
SANDBOX_ROOT = "/opt/python-coder"
PACKAGES = ("files", "sandboxing")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "mime.types")
TMP_BYTES = 16 * MB
# Exit status of a worker that could not confine itself (files.confine).
CONFINE_FAILED = 70

_BOOT = (
    "import sys; sys.path[:0] = {paths!r}; "
    "from files.confine import main; main(sys.argv[1:], landlock={landlock!r})"
)


@dataclass(frozen=True)
class WorkerSandbox:
    mode: Mode
    detail: str
    bwrap: str | None = None
    setpriv: str | None = None
    uid: int | None = None  # drop to this uid (a root gateway), None: the gateway's own
    sized_tmpfs: bool = False
    landlock: int = 0  # the Landlock ABI the workers restrict themselves with (0: none)

    @property
    def labels(self) -> tuple[str, ...]:
        labels = ["clean-env", "rlimit-as", "non-dumpable"]
        if self.mode != "unconfined":
            labels.append("seccomp-no-sockets")
        if self.mode == "bwrap":
            labels += ["netns", "mountns", "pidns", "fd-inputs"]
            labels.append("uid" if self.uid is not None else "userns")
        elif self.uid is not None:
            labels.append("uid")
        else:
            labels.append("same-uid")
        if self.landlock:
            labels.append("landlock")
            if self.landlock >= 6:
                labels.append("landlock-signals")
        return tuple(labels)

    @property
    def ok(self) -> bool:
        """Parsers cannot reach the Docker socket, the network or the gateway's secrets."""
        return self.mode != "unconfined"

    def describe(self) -> str:
        return f"{self.mode} ({', '.join(self.labels)}): {self.detail}"

    def command(
        self, module: str, *args: str, extra_paths: tuple[Path, ...] = ()
    ) -> tuple[list[str], dict[str, str]]:
        """argv and environment that start ``python -m module args`` in this sandbox.

        The worker pool starts ``files.worker`` this way; tests start probe modules through
        exactly the same command to check what a worker can reach, adding the folder of the
        probe (``extra_paths``: shown read-only and put on ``sys.path``).
        """
        env = {
            "PATH": SYSTEM_PATH,
            "LANG": "C.UTF-8",
            "HOME": "/tmp" if self.mode == "bwrap" else "/nonexistent",
            "TMPDIR": "/tmp",
            # Thread pools and malloc arenas reserve address space; keep them small under
            # RLIMIT_AS.
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "NUMEXPR_NUM_THREADS": "1",
            "MALLOC_ARENA_MAX": "2",
            "ARROW_DEFAULT_MEMORY_POOL": "system",
        }
        if self.mode == "bwrap":
            shown = [f"{SANDBOX_ROOT}/extra{i}" for i in range(len(extra_paths))]
            paths = [*shown, SANDBOX_ROOT]
        else:
            paths = [*map(str, extra_paths), str(_package_root())]
        boot = _BOOT.format(paths=paths, landlock=self.landlock)
        python = [sys.executable, "-I", "-B", "-c", boot, module, *args]
        if self.mode != "bwrap":
            drop = setpriv_args(self.setpriv, self.uid) if self.setpriv and self.uid else []
            return [*drop, *python], env
        assert self.bwrap is not None
        argv = [self.bwrap, *self._bwrap_args(extra_paths)]
        if self.uid is not None and self.setpriv:
            argv += setpriv_args(self.setpriv, self.uid)
        return [*argv, *python], env

    def _bwrap_args(self, extra_paths: tuple[Path, ...]) -> list[str]:
        args = ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        # --die-with-parent: the parent-death signal follows the *thread* that started bwrap,
        # hence files.worker's one long-lived spawner thread.
        args += ["--unshare-cgroup-try", "--die-with-parent", "--new-session"]
        if self.uid is None:
            args += ["--unshare-user", "--cap-drop", "ALL"]
        args += system_binds()
        args += ["--perms", "0755", "--dir", "/etc"]
        for name in ETC_FILES:
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        made: set[str] = {"/", "/usr", "/etc", "/tmp"}
        if self.sized_tmpfs:
            # Before the binds: a checkout or venv under /tmp (a CI clone) is bound on top of
            # it, not hidden by it.
            args += tmpfs_args("/tmp", TMP_BYTES)
        for prefix in _python_prefixes():
            if prefix == Path("/usr") or Path("/usr") in prefix.parents:
                continue
            args += parent_dirs(prefix, made)
            args += ["--ro-bind", str(prefix), str(prefix)]
        args += parent_dirs(Path(SANDBOX_ROOT) / "x", made)
        for name in PACKAGES:
            args += ["--ro-bind", str(_package_root() / name), f"{SANDBOX_ROOT}/{name}"]
        for i, extra in enumerate(extra_paths):
            args += ["--ro-bind", str(extra), f"{SANDBOX_ROOT}/extra{i}"]
        args += ["--proc", "/proc", "--dev", "/dev"]
        return [*args, "--chdir", "/"]


def _package_root() -> Path:
    return Path(__file__).resolve().parent.parent


def _python_prefixes() -> list[Path]:
    """What this interpreter needs to start: its venv (by its own path, where pyvenv.cfg is
    found) and its base installation (by real path: a venv's python is a symlink into it)."""
    roots = {Path(os.path.abspath(Path(sys.executable).parent.parent))}
    roots.update(Path(os.path.realpath(p)) for p in (sys.prefix, sys.base_prefix))
    return sorted(p for p in roots if not any(q != p and q in p.parents for q in roots))


def detect(prefer: str = "auto") -> WorkerSandbox:
    """The strongest sandbox this host allows (``prefer="confined"`` skips bubblewrap)."""
    as_root = os.geteuid() == 0
    setpriv = shutil.which("setpriv", path=SYSTEM_PATH + ":/usr/sbin:/sbin")
    uid = WORKER_UID if as_root and setpriv else None
    filtered = seccomp.supported()
    notes: list[str] = []
    bwrap = shutil.which("bwrap", path=SYSTEM_PATH) if prefer == "auto" else None
    if bwrap:
        problem = probe(bwrap, as_root=as_root)
        if problem is None and as_root and not setpriv:
            problem = "setpriv is missing, so the worker would run as root"
        if problem is None:
            sized = probe(bwrap, as_root=as_root, sized=True) is None
            who = f"uid {uid}" if uid is not None else "an unprivileged user namespace"
            notes.append(f"bubblewrap ({bwrap}) as {who}: no network, no view of /var/run, ")
            notes[-1] += "the repository or job directories; inputs passed as descriptors"
            if not filtered:
                notes.append(f"no seccomp filter on {os.uname().machine} (written for x86_64)")
            return WorkerSandbox("bwrap", "; ".join(notes), bwrap, setpriv, uid, sized_tmpfs=sized)
        notes.append(f"bwrap unusable ({problem.splitlines()[0][:200]})")
    elif prefer == "auto":
        notes.append("bwrap not installed")
    else:
        notes.append(f"bwrap not used (intake sandbox {prefer!r})")
    if not filtered:
        notes.append(f"no seccomp filter on {os.uname().machine}: the Docker socket and network")
        notes[-1] += " are NOT out of the workers' reach"
        return WorkerSandbox("unconfined", "; ".join(notes), None, setpriv, uid)
    if uid is not None and setpriv and not _runs_as(setpriv, uid):
        notes.append(f"uid {uid} cannot run {sys.executable} (a prefix it may not read?)")
        uid = None
    who = f"uid {uid}, no groups" if uid is not None else "the gateway's uid and groups"
    notes.append(f"workers run as {who}; seccomp refuses every socket (no docker.sock, no ")
    notes[-1] += "network); gateway and workers non-dumpable"
    abi = landlock.abi_version()
    if abi:
        notes.append(f"Landlock ABI {abi}: read-only Python and parser code, no other file")
        if abi >= 6:
            notes[-1] += ", no signal to the gateway"
    else:
        notes.append("no Landlock: files of that uid stay readable")
    return WorkerSandbox("confined", "; ".join(notes), None, setpriv, uid, landlock=abi)


def _runs_as(setpriv: str, uid: int) -> bool:
    """This interpreter, with its own standard library, starts as ``uid``."""
    check = "import sys; print(sys.version, sys.prefix)"
    try:
        out = subprocess.run(
            [*setpriv_args(setpriv, uid), sys.executable, "-I", "-c", check],
            capture_output=True,
            text=True,
            timeout=30,
            env={"PATH": SYSTEM_PATH},
            cwd="/",
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and out.stdout.strip() == f"{sys.version} {sys.prefix}"


@functools.cache
def worker_sandbox() -> WorkerSandbox:
    """The sandbox every intake worker of this process starts in (probed once, logged)."""
    sandbox = detect()
    if sandbox.mode == "bwrap":
        log.info("intake workers: %s", sandbox.describe())
    elif sandbox.mode == "confined":
        log.warning("intake workers without bubblewrap: %s", sandbox.describe())
        protect_gateway()
    else:
        log.error("intake workers are NOT sandboxed: %s", sandbox.describe())
        protect_gateway()
    return sandbox


def protect_gateway() -> None:
    """Make this process non-dumpable: a worker of the same uid cannot then open its
    ``/proc/<pid>/environ``, ``mem`` or ``fd`` (they become root's), nor ptrace it."""
    import ctypes

    pr_set_dumpable = 4
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(pr_set_dumpable, 0, 0, 0, 0) != 0:
        log.error("could not make the gateway non-dumpable: errno %d", ctypes.get_errno())
