"""Bubblewrap argument pieces and the probe that says whether bwrap works on this host."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from sandboxing import seccomp

MB = 1024 * 1024
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
_SYSTEM_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


def system_binds() -> list[str]:
    """``/usr`` read-only, and the merged-/usr links (or directories) beside it."""
    args = ["--ro-bind", "/usr", "/usr"]
    for link in _SYSTEM_LINKS:
        target = Path("/") / link
        if target.is_symlink():
            args += ["--symlink", os.readlink(target), f"/{link}"]
        elif target.is_dir():
            args += ["--ro-bind", str(target), f"/{link}"]
    return args


def parent_dirs(path: Path, made: set[str]) -> list[str]:
    """``--dir`` for each missing ancestor with mode 0755 (bwrap would make them 0700)."""
    args: list[str] = []
    for parent in reversed(path.parents):
        key = str(parent)
        if key in made:
            continue
        made.add(key)
        args += ["--perms", "0755", "--dir", key]
    return args


def tmpfs_args(path: str, size: int) -> list[str]:
    return ["--size", str(size), "--perms", "1777", "--tmpfs", path]


def setpriv_args(setpriv: str, uid: int) -> list[str]:
    """``setpriv`` dropping to ``uid`` with no groups, capabilities or new privileges."""
    return [
        setpriv,
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--no-new-privs",
        "--bounding-set=-all",
        "--inh-caps=-all",
        "--",
    ]


def probe(bwrap: str, *, as_root: bool, sized: bool = False, filtered: bool = False) -> str | None:
    """Start ``true`` in the namespaces we use (and a sized tmpfs, or under our seccomp
    filter); None when that works, else why not."""
    args = [bwrap, "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    if not as_root:
        args += ["--unshare-user", "--cap-drop", "ALL"]
    args += ["--die-with-parent", "--new-session", *system_binds()]
    args += ["--proc", "/proc", "--dev", "/dev"]
    if sized:
        args += tmpfs_args("/tmp", MB)
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
