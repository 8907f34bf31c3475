"""The first code of every intake worker: confine this process, then run the worker module.

Started by ``files.sandbox.WorkerSandbox.command`` as ``python -I -B -c BOOT MODULE MEMORY
[ARGS]``. Before the module runs (and so before a single uploaded byte is read) the process:

- caps its address space (``RLIMIT_AS`` = MEMORY) and turns core dumps off;
- becomes non-dumpable, so other processes of its uid cannot read its memory or ``/proc``;
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

from files.sandbox import CONFINE_FAILED
from sandboxing import seccomp

PR_SET_DUMPABLE = 4


def confine(memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_DUMPABLE")
    if seccomp.supported():
        seccomp.install(seccomp.build_program(socket_families=()))


def main(argv: list[str]) -> None:
    module, memory = argv[0], int(argv[1])
    try:
        confine(memory)
    except OSError as exc:
        os.write(2, f"intake worker: cannot confine itself: {exc}\n".encode())
        os._exit(CONFINE_FAILED)
    sys.argv = [module, *argv[1:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
