"""The job dir of a local sandbox: its layout on the host, removal, the matplotlib seed."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.executors.local.probe import PROBE_TIMEOUT_S, SYSTEM_PATH

log = logging.getLogger(__name__)

SANDBOX_HOME = "/home/sandbox"
MPL_SEED_DIR = Path(tempfile.gettempdir()) / f"python-coder-mplseed-{os.getuid()}"


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
