"""The first code of every intake worker: confine this process, then run the worker module.

Started by ``files.sandbox.WorkerSandbox.command`` as ``python -I -B -c BOOT MODULE MEMORY
[ARGS]``. Before the module runs (and so before a single uploaded byte is read) the process:

- caps its address space (``RLIMIT_AS`` = MEMORY) and turns core dumps off;
- becomes non-dumpable, so other processes of its uid cannot read its memory or ``/proc``;
- with ``landlock`` (the confined mode where the kernel has it), restricts its file access to
  reading the Python install, the parser code and its own ``/proc`` entry
  (``sandboxing.landlock``); ``LANDLOCKED`` then tells the worker to read its inputs from a
  memfd copy, the one kind of reopened descriptor Landlock allows;
- loads the seccomp filter of ``sandboxing.seccomp`` with no socket family: no network, no
  unix socket (the Docker socket included), no new namespaces, mounts, io_uring, bpf, ptrace.

It exits with ``CONFINE_FAILED`` if the kernel refuses any of it: a worker is never started
less confined than its sandbox says.
"""

from __future__ import annotations

import ctypes
import os
import resource
import runpy
import sys
from pathlib import Path

from files.sandbox import CONFINE_FAILED
from sandboxing import landlock as landlock_lsm
from sandboxing import seccomp

PR_SET_DUMPABLE = 4
LANDLOCKED = False
# Read-only for the parsers besides the Python prefixes and the packages (bwrap shows these).
SYSTEM_READ = ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin",
               "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
               "/etc/mime.types", "/sys/devices/system/cpu", "/proc/meminfo",
               "/proc/cpuinfo")  # fmt: skip


def confine(memory_bytes: int, landlock: int = 0) -> None:
    global LANDLOCKED
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_DUMPABLE")
    if landlock:
        landlock_lsm.restrict(_landlock_rules(), abi=landlock)
        LANDLOCKED = True
    if seccomp.supported():
        seccomp.install(seccomp.build_program(socket_families=()))


def _landlock_rules() -> list[tuple[str, int]]:
    ro = landlock_lsm.READ_ONLY
    rules = [(path, ro) for path in SYSTEM_READ]
    rules += [(f"/proc/{os.getpid()}", ro), (os.devnull, landlock_lsm.READ_WRITE_FILE)]
    packages = Path(__file__).resolve().parent.parent
    rules += [(str(packages / name), ro) for name in ("files", "sandboxing")]
    # The interpreter's own path entries (stdlib, site-packages), not the folder the packages
    # live in (a repository may keep its .env there).
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for entry in [*sys.path, *prefixes]:
        if entry and Path(entry).resolve() != packages:
            rules.append((entry, ro))
    return rules


def main(argv: list[str], landlock: int = 0) -> None:
    module, memory = argv[0], int(argv[1])
    try:
        confine(memory, landlock)
    except OSError as exc:
        os.write(2, f"intake worker: cannot confine itself: {exc}\n".encode())
        os._exit(CONFINE_FAILED)
    sys.argv = [module, *argv[1:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
