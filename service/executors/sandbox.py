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
* **seccomp** (bwrap on x86_64, probed once): bwrap loads ``service.executors.seccomp``'s
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

import contextlib
import fcntl
import hashlib
import logging
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.errors import EngineUnavailable, ExecutorError
from service.executors import seccomp
from service.executors.base import RunRequest

log = logging.getLogger(__name__)

HARNESS_DIR = Path(__file__).resolve().parents[2] / "runner_image"
HARNESS_FILES = ("harness.py", "protocol.py")
# Fixed paths inside the bwrap sandbox.
SANDBOX_WORK = "/sandbox"
SANDBOX_HOME = "/home/sandbox"
SANDBOX_HARNESS = "/opt/python-coder"
# /etc entries a data-science script may need; nothing secret.
ETC_FILES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "alternatives",
    "fonts",
    "ssl",
    "mime.types",
    "hosts",
    "nsswitch.conf",
    "os-release",
)
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"

# Per-job unprivileged uids (gateway as root). Far above normal and docker-remapped ranges.
UID_BASE = 3_100_000
UID_COUNT = 1000
# Only root leases uids; /run is root's own (no other user can plant files or links there).
UID_LOCK_DIR = Path("/run/python-coder-sandbox-uids")
MPL_SEED_DIR = Path(tempfile.gettempdir()) / f"python-coder-mplseed-{os.getuid()}"

MB = 1024 * 1024
HOME_BYTES = 64 * MB  # the sandbox's $HOME (a tmpfs under bwrap)
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
    seccomp: bool = False  # bwrap loads our seccomp filter (``service.executors.seccomp``)
    cgroup: bool = False  # each job runs in its own cgroup (``service.executors.cgroups``)

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
        problem = _probe_bwrap(bwrap, as_root=as_root)
        sized = problem is None and _probe_bwrap(bwrap, as_root=as_root, sized=True) is None
        if problem is None and seccomp.supported():
            refused = _probe_bwrap(bwrap, as_root=as_root, filtered=True)
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


def _probe_bwrap(
    bwrap: str, *, as_root: bool, sized: bool = False, filtered: bool = False
) -> str | None:
    """Start ``true`` in the namespaces we use (and a sized tmpfs, or under our seccomp
    filter); None when that works."""
    args = [bwrap, "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    if not as_root:
        args += ["--unshare-user", "--cap-drop", "ALL"]
    args += ["--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr"]
    for link in ("bin", "lib", "lib64"):
        target = Path("/") / link
        if target.is_symlink():
            args += ["--symlink", os.readlink(target), f"/{link}"]
        elif target.is_dir():
            args += ["--ro-bind", str(target), f"/{link}"]
    args += ["--proc", "/proc", "--dev", "/dev"]
    if sized:
        args += _tmpfs("/tmp", MB)
    program: seccomp.ProgramFd | None = None
    try:
        if filtered:
            program = seccomp.ProgramFd()
            args += ["--seccomp", str(program.fd)]
        args += ["--", "true"]
        out = subprocess.run(
            args,
            capture_output=True,
            timeout=10,
            env={"PATH": SYSTEM_PATH},
            pass_fds=(program.fd,) if program else (),
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    finally:
        if program is not None:
            program.close()
    if out.returncode != 0:
        return out.stderr.decode("utf-8", "replace").strip() or f"exit {out.returncode}"
    return None


def nproc_limit(iso: Isolation, pids: int) -> int:
    """``RLIMIT_NPROC`` for a job: it counts every task of the real uid, and a job uid has
    none but the job's; an unprivileged gateway's own uid already has some."""
    return pids if iso.as_root else tasks_of(os.getuid()) + pids


# ---------------------------------------------------------------------- the job dir


@dataclass(frozen=True)
class JobLayout:
    """``work`` (the script's cwd, seen as /sandbox), ``home``, ``tmp``, ``shm`` (the
    sandbox's /dev/shm, for multiprocessing's semaphores) and a tiny ``etc``."""

    root: Path
    work: Path
    home: Path
    tmp: Path
    shm: Path
    etc: Path

    @classmethod
    def create(cls, root: Path, uid: int | None, *, traversable: bool) -> JobLayout:
        os.chmod(root, 0o700)
        layout = cls(root, *(root / d for d in ("work", "home", "tmp", "shm", "etc")))
        for d in (layout.work, layout.home, layout.tmp, layout.shm):
            d.mkdir(mode=0o700)
            if uid is not None:
                os.chown(d, uid, uid)
        layout.etc.mkdir(mode=0o755)
        shown = uid if uid is not None else os.getuid()
        shown_gid = uid if uid is not None else os.getgid()
        (layout.etc / "passwd").write_text(
            f"root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
            f"sandbox:x:{shown}:{shown_gid}:sandbox:{SANDBOX_HOME}:/usr/sbin/nologin\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        )
        (layout.etc / "group").write_text(f"root:x:0:\nsandbox:x:{shown_gid}:\n")
        if uid is not None and traversable:
            # The job uid must traverse to its dirs when no bwrap binds them for it.
            os.chmod(root, 0o711)
        return layout

    def seed_matplotlib(self, seed: Path | None, uid: int | None) -> None:
        if seed is None:
            return
        target = self.home / ".config" / "matplotlib"
        shutil.copytree(seed, target)
        if uid is not None:
            for path in (self.home / ".config", target, *target.iterdir()):
                os.chown(path, uid, uid)


def remove_tree(path: Path) -> None:
    """Remove the job dir even if the script chmod-ed parts of it away."""

    def fix(func: Any, failed: str, _exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(failed), 0o700)
            st = os.lstat(failed)
            if stat.S_ISDIR(st.st_mode):
                os.chmod(failed, 0o700)
        with contextlib.suppress(FileNotFoundError):
            func(failed)

    for _ in range(3):
        try:
            shutil.rmtree(path, onerror=fix)
        except OSError as exc:
            log.warning("could not remove job dir %s: %s", path, exc)
        if not path.exists():
            return
        time.sleep(0.05)


def build_matplotlib_seed(python: Path) -> Path | None:
    """Build (once per runner, shared via /tmp) the font cache our own matplotlib import
    writes; None without matplotlib. Never built by a user script."""
    try:
        key = f"{python}:{os.stat(python).st_mtime_ns}:{os.stat(python.parent.parent).st_mtime_ns}"
    except OSError:
        return None
    seed = MPL_SEED_DIR / hashlib.sha256(key.encode()).hexdigest()[:16]
    try:
        MPL_SEED_DIR.mkdir(mode=0o755, exist_ok=True)
        st = MPL_SEED_DIR.lstat()
        if st.st_uid != os.getuid() or st.st_mode & 0o022 or not stat.S_ISDIR(st.st_mode):
            log.warning("not using %s: not a private dir of ours", MPL_SEED_DIR)
            return None
        if seed.is_dir():
            return seed
        partial = Path(tempfile.mkdtemp(dir=MPL_SEED_DIR, prefix=".partial-"))
    except OSError as exc:
        log.warning("could not prebuild the matplotlib font cache: %s", exc)
        return None
    env = {
        "PATH": SYSTEM_PATH,
        "HOME": str(partial),
        "MPLCONFIGDIR": str(partial),
        "MPLBACKEND": "Agg",
        "LANG": "C.UTF-8",
        "OPENBLAS_NUM_THREADS": "1",
    }
    try:
        out = subprocess.run(
            [str(python), "-I", "-c", "import matplotlib.font_manager"],
            env=env,
            cwd=partial,
            capture_output=True,
            timeout=PROBE_TIMEOUT_S * 4,
        )
        if out.returncode != 0 or not any(partial.glob("fontlist-*.json")):
            return None
        partial.chmod(0o755)
        with contextlib.suppress(OSError):  # another process may have won the race
            partial.rename(seed)
        return seed if seed.is_dir() else None
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("could not prebuild the matplotlib font cache: %s", exc)
        return None
    finally:
        shutil.rmtree(partial, ignore_errors=True)


# ---------------------------------------------------------------------- the command


def sandbox_command(
    request: RunRequest,
    runner: RunnerInfo,
    iso: Isolation,
    layout: JobLayout,
    *,
    uid: int | None,
    nproc: int,
    seed: Path | None,
    seccomp_fd: int | None = None,
) -> tuple[list[str], dict[str, str], str]:
    """argv, environment and cwd that start the harness for ``request`` in its sandbox.

    ``uid`` is the job's leased uid (None: the gateway's own), ``nproc`` its task budget
    (``nproc_limit``) and ``seed`` the prebuilt matplotlib font cache to show it.
    ``seccomp_fd`` (required when ``iso.seccomp``) holds the filter program
    (``seccomp.ProgramFd``); the caller passes it to bwrap with ``pass_fds``.
    """
    limits = request.limits
    prlimit = (
        [
            iso.prlimit,
            f"--nproc={nproc}",
            "--core=0",
            f"--fsize={limits.fsize_bytes}",
            f"--nofile={max(limits.nofile, 64)}",
            "--",
        ]
        if iso.prlimit
        else []
    )
    python = [str(runner.python), "-I", "-B"]
    venv_bin = str(runner.python.parent)
    if iso.bwrap:
        home, tmp, work = SANDBOX_HOME, "/tmp", SANDBOX_WORK
        harness = f"{SANDBOX_HARNESS}/harness.py"
    else:
        home, tmp, work = str(layout.home), str(layout.tmp), str(layout.work)
        harness = str(HARNESS_DIR / "harness.py")
    env = {
        "PATH": f"{venv_bin}:{SYSTEM_PATH}",
        "HOME": home,
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": f"{home}/.config/matplotlib",
        # Every run is a cold process: pre-importing would only tax scripts that do not
        # use pandas, and those that do pay the same either way.
        "PYC_PREIMPORT": "",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NUMEXPR_MAX_THREADS": "1",
        "MALLOC_ARENA_MAX": "2",
        "ARROW_DEFAULT_MEMORY_POOL": "system",
    }
    inner = [*prlimit, *python, harness, work]
    if not iso.bwrap:
        return inner, env, work
    drop: list[str] = []
    if uid is not None and iso.setpriv:
        drop = [
            iso.setpriv,
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--no-new-privs",
            "--bounding-set=-all",
            "--inh-caps=-all",
            "--",
        ]
    bwrap = _bwrap_args(runner, layout, request, seed, iso)
    if iso.seccomp:
        if seccomp_fd is None:
            raise ExecutorError("the sandbox needs its seccomp program fd")
        bwrap += ["--seccomp", str(seccomp_fd)]
    argv = [iso.bwrap, *bwrap, *drop, *inner]
    return argv, env, "/"


def _bwrap_args(
    runner: RunnerInfo,
    layout: JobLayout,
    request: RunRequest,
    seed: Path | None,
    iso: Isolation,
) -> list[str]:
    args = [
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
        "--die-with-parent",
        "--new-session",
        "--as-pid-1",  # the harness is PID 1: kill(-1) from it empties the namespace
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    for link in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        target = Path("/") / link
        if target.is_symlink():
            args += ["--symlink", os.readlink(target), f"/{link}"]
        elif target.is_dir():
            args += ["--ro-bind", str(target), f"/{link}"]
    if not iso.as_root:
        args += ["--unshare-user", "--cap-drop", "ALL"]
    args += ["--perms", "0755", "--dir", "/etc"]
    for name in ETC_FILES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    args += ["--ro-bind", str(layout.etc / "passwd"), "/etc/passwd"]
    args += ["--ro-bind", str(layout.etc / "group"), "/etc/group"]
    # The job's own dirs first: a runner prefix may live under /tmp and must stay visible.
    made: set[str] = {"/", "/usr", "/etc", "/tmp"}
    args += _parents(Path(SANDBOX_HOME), made)
    mpl = f"{SANDBOX_HOME}/.config/matplotlib"
    if iso.sized_tmpfs:
        # Size-capped tmpfs: nothing the script writes reaches the host's disk, and all of it
        # is bounded (the pages are RAM outside RLIMIT_AS, hence the caps).
        work, scratch = request.limits.workdir_bytes, max(request.limits.workdir_bytes // 4, MB)
        args += _tmpfs(SANDBOX_WORK, work) + _tmpfs("/tmp", scratch)
        args += _tmpfs(SANDBOX_HOME, HOME_BYTES)
        if seed is not None:
            args += ["--perms", "1777", "--dir", f"{SANDBOX_HOME}/.config"]
            args += ["--perms", "1777", "--dir", mpl]
            for item in sorted(seed.iterdir()):
                args += ["--ro-bind", str(item), f"{mpl}/{item.name}"]
    else:  # an old bwrap without --size: the job dir on disk (capped per file by RLIMIT_FSIZE)
        args += ["--bind", str(layout.work), SANDBOX_WORK, "--bind", str(layout.home), SANDBOX_HOME]
        args += ["--bind", str(layout.tmp), "/tmp"]
    for prefix in runner.prefixes:
        if _under(prefix, Path("/usr")):
            continue
        args += _parents(prefix, made)
        args += ["--ro-bind", str(prefix), str(prefix)]
    args += _parents(Path(SANDBOX_HARNESS) / "x", made)
    for name in HARNESS_FILES:
        args += ["--ro-bind", str(HARNESS_DIR / name), f"{SANDBOX_HARNESS}/{name}"]
    args += ["--proc", "/proc", "--dev", "/dev"]
    if iso.sized_tmpfs:
        args += _tmpfs("/dev/shm", max(request.limits.workdir_bytes // 4, MB))
    else:
        args += ["--bind", str(layout.shm), "/dev/shm"]
    args += ["--chdir", SANDBOX_WORK]
    return args


def _tmpfs(path: str, size: int) -> list[str]:
    return ["--size", str(size), "--perms", "1777", "--tmpfs", path]


def _parents(path: Path, made: set[str]) -> list[str]:
    """``--dir`` for each missing ancestor with mode 0755 (bwrap would make them 0700)."""
    args: list[str] = []
    for parent in reversed(path.parents):
        key = str(parent)
        if key in made:
            continue
        made.add(key)
        args += ["--perms", "0755", "--dir", key]
    return args


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _outermost(paths: set[Path]) -> set[Path]:
    return {p for p in paths if not any(q != p and _under(p, q) for q in paths)}


# ---------------------------------------------------------------------- processes and uids


def _procs() -> list[int]:
    return [int(n) for n in os.listdir("/proc") if n.isdigit()]


_UID_LINE = re.compile(rb"^Uid:\s+(\d+)", re.M)
_THREADS_LINE = re.compile(rb"^Threads:\s+(\d+)", re.M)


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
    return [pid for pid in _procs() if _real_uid(_status(pid)) == uid]


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
