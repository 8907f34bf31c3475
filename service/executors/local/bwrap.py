"""The command that starts the harness in its local sandbox: bubblewrap, setpriv, prlimit."""

from __future__ import annotations

from pathlib import Path

from sandboxing.bwrap import SYSTEM_PATH, parent_dirs, setpriv_args, system_binds, tmpfs_args
from service.errors import ExecutorError
from service.executors.base import RunLimits
from service.executors.local.jobdir import SANDBOX_HOME, JobLayout
from service.executors.local.probe import MB, Isolation, RunnerInfo, under

HARNESS_DIR = Path(__file__).resolve().parents[3] / "runner_image"
HARNESS_FILES = ("harness.py", "protocol.py")
# Fixed paths inside the bwrap sandbox.
SANDBOX_WORK = "/sandbox"
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
HOME_BYTES = 64 * MB  # the sandbox's $HOME (a tmpfs under bwrap)


def sandbox_command(
    limits: RunLimits,
    runner: RunnerInfo,
    iso: Isolation,
    layout: JobLayout,
    *,
    uid: int | None,
    nproc: int,
    seed: Path | None,
    seccomp_fd: int | None = None,
    preimport: str = "",
) -> tuple[list[str], dict[str, str], str]:
    """argv, environment and cwd that start the harness in a sandbox sized by ``limits``.

    ``uid`` is the job's leased uid (None: the gateway's own), ``nproc`` its task budget
    (``nproc_limit``) and ``seed`` the prebuilt matplotlib font cache to show it.
    ``seccomp_fd`` (required when ``iso.seccomp``) holds the filter program
    (``seccomp.ProgramFd``); the caller passes it to bwrap with ``pass_fds``.
    ``preimport`` names the modules the harness imports before it says it is ready (a
    pooled sandbox); a cold one imports nothing ahead, scripts import what they use.
    """
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
        "PYC_PREIMPORT": preimport,
        "PYC_HELLO": "1",
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
    drop = setpriv_args(iso.setpriv, uid) if uid is not None and iso.setpriv else []
    bwrap = _bwrap_args(runner, layout, limits, seed, iso)
    if iso.seccomp:
        if seccomp_fd is None:
            raise ExecutorError("the sandbox needs its seccomp program fd")
        bwrap += ["--seccomp", str(seccomp_fd)]
    argv = [iso.bwrap, *bwrap, *drop, *inner]
    return argv, env, "/"


def _bwrap_args(
    runner: RunnerInfo,
    layout: JobLayout,
    limits: RunLimits,
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
        *system_binds(),
    ]
    if not iso.as_root:
        args += ["--unshare-user", "--cap-drop", "ALL"]
    args += ["--perms", "0755", "--dir", "/etc"]
    for name in ETC_FILES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    args += ["--ro-bind", str(layout.etc / "passwd"), "/etc/passwd"]
    args += ["--ro-bind", str(layout.etc / "group"), "/etc/group"]
    # The job's own dirs first: a runner prefix may live under /tmp and must stay visible.
    made: set[str] = {"/", "/usr", "/etc", "/tmp"}
    args += parent_dirs(Path(SANDBOX_HOME), made)
    mpl = f"{SANDBOX_HOME}/.config/matplotlib"
    if iso.sized_tmpfs:
        # Size-capped tmpfs: nothing the script writes reaches the host's disk, and all of it
        # is bounded (the pages are RAM outside RLIMIT_AS, hence the caps).
        work, scratch = limits.workdir_bytes, max(limits.workdir_bytes // 4, MB)
        args += tmpfs_args(SANDBOX_WORK, work) + tmpfs_args("/tmp", scratch)
        args += tmpfs_args(SANDBOX_HOME, HOME_BYTES)
        if seed is not None:
            args += ["--perms", "1777", "--dir", f"{SANDBOX_HOME}/.config"]
            args += ["--perms", "1777", "--dir", mpl]
            for item in sorted(seed.iterdir()):
                args += ["--ro-bind", str(item), f"{mpl}/{item.name}"]
    else:  # an old bwrap without --size: the job dir on disk (capped per file by RLIMIT_FSIZE)
        args += ["--bind", str(layout.work), SANDBOX_WORK, "--bind", str(layout.home), SANDBOX_HOME]
        args += ["--bind", str(layout.tmp), "/tmp"]
    for prefix in runner.prefixes:
        if under(prefix, Path("/usr")):
            continue
        args += parent_dirs(prefix, made)
        args += ["--ro-bind", str(prefix), str(prefix)]
    args += parent_dirs(Path(SANDBOX_HARNESS) / "x", made)
    for name in HARNESS_FILES:
        args += ["--ro-bind", str(HARNESS_DIR / name), f"{SANDBOX_HARNESS}/{name}"]
    args += ["--proc", "/proc", "--dev", "/dev"]
    if iso.sized_tmpfs:
        args += tmpfs_args("/dev/shm", max(limits.workdir_bytes // 4, MB))
    else:
        args += ["--bind", str(layout.shm), "/dev/shm"]
    args += ["--chdir", SANDBOX_WORK]
    return args
