"""The seccomp filter of every local sandbox: the harness (via bubblewrap) and the intake workers.

Namespaces and a per-job uid do not stop a script from asking the kernel for *new*
namespaces: ``unshare(CLONE_NEWUSER)`` (e.g. via ctypes) makes it root with every capability
inside a fresh user namespace, and from there it can mount filesystems, reach io_uring, bpf
and other large kernel surfaces that are only safe behind a capability. This module builds a
classic-BPF program, in pure Python, that closes those doors; bubblewrap reads it from a file
descriptor (``--seccomp FD``), sets ``no_new_privs`` and loads it right before it executes
the command, so the filter covers the harness, the script and every process they start.

The program, in order:

1. ``seccomp_data.arch`` must be ``AUDIT_ARCH_X86_64``; anything else (an i386 ``int 0x80``
   call, which has other syscall numbers) kills the process.
2. x32 ABI calls (``nr >= 0x40000000``, the same syscalls under numbers the rest of the
   filter would not match) kill the process.
3. ``clone3`` fails with ``ENOSYS``: its flags live in a struct in memory, which BPF cannot
   read, so it is refused as if the kernel were old; glibc then falls back to ``clone``.
4. ``clone`` whose flags (``args[0]``) ask for any new namespace fails with ``EPERM``;
   plain fork/thread creation is untouched.
5. ``personality`` is allowed only for the personas Docker allows (query, Linux, 32-bit,
   uname26 and combinations); anything else (e.g. ``ADDR_NO_RANDOMIZE``,
   ``READ_IMPLIES_EXEC``) fails with ``EPERM``.
6. ``socket`` is allowed only for the families in ``SOCKET_FAMILIES`` (``AF_UNIX``,
   ``AF_INET``, ``AF_INET6``); any other (vsock, packet, netlink, bluetooth, alg, ...: kernel
   code a data script never needs, and where most socket CVEs live) fails with
   ``EAFNOSUPPORT``, as on a kernel built without it.
7. The syscalls in ``DENIED`` fail with ``EPERM`` (explicitly, with the reason beside each).
8. The syscalls of the allow-list (``sandboxing.syscalls.ALLOWED``, Docker's default
   for a container without capabilities, shared with the runner's Docker profile) are
   allowed; everything else fails with ``ENOSYS``, as on a kernel that lacks it, so a C
   library trying a syscall newer than this list (``fchmodat2``, ``mseal``, ...) takes its
   fallback path.

The intake workers (``files.confine``) load a stricter variant with no socket family at all
(``build_program(socket_families=())``) themselves, with ``install``: ``prctl`` sets
``no_new_privs`` and the filter, the way bwrap does it for the harness.

Nothing here touches what Python, numpy/BLAS, pandas, matplotlib or multiprocessing (fork,
semaphores in /dev/shm, pipes) need. Denied calls fail with an errno rather than kill, so a
library probing for a feature (io_uring, userfaultfd, ...) takes its fallback path.

Classic BPF jumps at most 255 instructions forward, so a list of syscall numbers becomes
blocks of ``JEQ`` checks, each block ending in its own return (``_match_block``). The whole
program stays under ``PIPE_BUF`` (it goes through a pipe in one write): about 400 of the
512 instructions that allows.
"""

from __future__ import annotations

import contextlib
import os
import platform
import select
import struct

from sandboxing.syscalls import (
    ALLOWED,
    CLONE_NAMESPACES,
    ENOSYS,
    PERSONALITY_ALLOWED,
    SOCKET_FAMILIES,
    X86_64,
)

# seccomp_data (include/uapi/linux/seccomp.h): int nr; __u32 arch; __u64 ip; __u64 args[6].
OFF_NR = 0
OFF_ARCH = 4
OFF_ARG0_LO = 16  # low 32 bits of args[0] (little-endian)

# Classic BPF opcodes (include/uapi/linux/filter.h, bpf_common.h).
BPF_LD_W_ABS = 0x00 | 0x00 | 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_JEQ_K = 0x05 | 0x10 | 0x00  # BPF_JMP | BPF_JEQ | BPF_K
BPF_JGE_K = 0x05 | 0x30 | 0x00  # BPF_JMP | BPF_JGE | BPF_K
BPF_JSET_K = 0x05 | 0x40 | 0x00  # BPF_JMP | BPF_JSET | BPF_K
BPF_JA = 0x05 | 0x00  # BPF_JMP | BPF_JA: unconditional, 32-bit offset in k
BPF_RET_K = 0x06 | 0x00  # BPF_RET | BPF_K

# Return actions (include/uapi/linux/seccomp.h).
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000

AUDIT_ARCH_X86_64 = 0xC000003E  # EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
X32_SYSCALL_BIT = 0x40000000
EPERM = 1
EAFNOSUPPORT = 97


# x86_64 syscall numbers, from the kernel's arch/x86/entry/syscalls/syscall_64.tbl (stable
# ABI: numbers are never reused).
NR_SOCKET = 41
NR_SOCKETPAIR = 53
NR_CLONE = 56
NR_PERSONALITY = 135
NR_CLONE3 = 435

# Syscalls that fail with EPERM, and why. A job needs none of them.
DENIED: dict[str, tuple[int, str]] = {
    # New namespaces: a user namespace gives full capabilities inside it (mount, netfilter,
    # ...), the path to most unprivileged kernel exploits. setns would join existing ones.
    "unshare": (272, "new namespaces (CLONE_NEWUSER gives all capabilities in it)"),
    "setns": (308, "joining other namespaces"),
    # Mounting and changing the root: only useful with capabilities from a user namespace.
    "mount": (165, "mounting filesystems"),
    "umount2": (166, "unmounting (uncovering what the sandbox hides)"),
    "pivot_root": (155, "changing the root filesystem"),
    "chroot": (161, "changing the root directory (chroot escapes)"),
    # The new mount API (Linux 5.2+), same purpose as mount(2).
    "open_tree": (428, "new mount API"),
    "move_mount": (429, "new mount API"),
    "fsopen": (430, "new mount API"),
    "fsconfig": (431, "new mount API"),
    "fsmount": (432, "new mount API"),
    "fspick": (433, "new mount API"),
    "mount_setattr": (442, "new mount API"),
    # io_uring: a large, frequently exploited kernel surface that also bypasses seccomp for
    # the operations it performs.
    "io_uring_setup": (425, "io_uring (bypasses syscall filtering, many kernel CVEs)"),
    "io_uring_enter": (426, "io_uring"),
    "io_uring_register": (427, "io_uring"),
    # eBPF: verifier bugs are a classic privilege escalation.
    "bpf": (321, "eBPF programs and maps (verifier exploits)"),
    # The kernel keyring is not namespaced: keys could leak between jobs or to the host.
    "keyctl": (250, "kernel keyring (not namespaced)"),
    "add_key": (248, "kernel keyring (not namespaced)"),
    "request_key": (249, "kernel keyring (not namespaced)"),
    # Debugging other processes of the job uid, reading/writing their memory.
    "ptrace": (101, "tracing processes (also a seccomp bypass on old kernels)"),
    "process_vm_readv": (310, "reading another process's memory"),
    "process_vm_writev": (311, "writing another process's memory"),
    # Performance counters: side channels and a history of exploits.
    "perf_event_open": (298, "perf events (side channels, kernel exploits)"),
    # Host administration: all need capabilities the job never has; refused up front.
    "kexec_load": (246, "loading a new kernel"),
    "kexec_file_load": (320, "loading a new kernel"),
    "open_by_handle_at": (304, "opening files by handle (bypasses the mount view)"),
    "userfaultfd": (323, "userfaultfd (stalls the kernel mid-copy: race exploits)"),
    "init_module": (175, "loading kernel modules"),
    "finit_module": (313, "loading kernel modules"),
    "delete_module": (176, "unloading kernel modules"),
    "acct": (163, "process accounting"),
    "swapon": (167, "swap devices"),
    "swapoff": (168, "swap devices"),
    "reboot": (169, "rebooting"),
    "settimeofday": (164, "setting the clock (not namespaced)"),
    "clock_settime": (227, "setting the clock (not namespaced)"),
    "clock_adjtime": (305, "adjusting the clock (not namespaced)"),
    "syslog": (103, "the kernel log (leaks kernel addresses)"),
    "iopl": (172, "I/O port access"),
    "ioperm": (173, "I/O port access"),
    "uselib": (134, "obsolete loader call (historical exploits)"),
}


def supported() -> bool:
    """The filter is written for x86_64 syscall numbers; elsewhere it is not applied."""
    return platform.machine() in ("x86_64", "AMD64")


def _ins(code: int, jt: int, jf: int, k: int) -> bytes:
    # struct sock_filter { __u16 code; __u8 jt; __u8 jf; __u32 k; }, native byte order.
    return struct.pack("=HBBI", code, jt, jf, k)


def _ret(action: int) -> bytes:
    return _ins(BPF_RET_K, 0, 0, action)


def build_program(socket_families: tuple[int, ...] = SOCKET_FAMILIES) -> bytes:
    """The compiled filter: ``sock_filter`` entries, 8 bytes each, as bwrap's --seccomp reads.

    ``socket_families`` are the families ``socket`` may create (``()``: none, and
    ``socketpair`` is refused too).
    """
    denied = sorted({nr for nr, _ in DENIED.values()})
    prog: list[bytes] = [
        _ins(BPF_LD_W_ABS, 0, 0, OFF_ARCH),
        _ins(BPF_JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        _ret(SECCOMP_RET_KILL_PROCESS),
        _ins(BPF_LD_W_ABS, 0, 0, OFF_NR),
        _ins(BPF_JGE_K, 0, 1, X32_SYSCALL_BIT),
        _ret(SECCOMP_RET_KILL_PROCESS),
        _ins(BPF_JEQ_K, 0, 1, NR_CLONE3),
        _ret(SECCOMP_RET_ERRNO | ENOSYS),
    ]
    # clone: namespace flags -> EPERM. personality: unknown personas -> EPERM.
    #   JEQ clone ? next : +3 | LD arg0 | JSET ns ? EPERM_LOCAL : ALLOW_LOCAL
    special: list[bytes] = [
        _ins(BPF_JEQ_K, 0, 4, NR_CLONE),
        _ins(BPF_LD_W_ABS, 0, 0, OFF_ARG0_LO),
        _ins(BPF_JSET_K, 1, 0, CLONE_NAMESPACES),
        _ret(SECCOMP_RET_ALLOW),
        _ret(SECCOMP_RET_ERRNO | EPERM),
    ]
    personas = PERSONALITY_ALLOWED
    personality = [
        _ins(BPF_JEQ_K, 0, len(personas) + 3, NR_PERSONALITY),
        _ins(BPF_LD_W_ABS, 0, 0, OFF_ARG0_LO),
    ]
    for i, value in enumerate(personas):
        personality.append(_ins(BPF_JEQ_K, len(personas) - i, 0, value))  # -> ALLOW
    personality += [_ret(SECCOMP_RET_ERRNO | EPERM), _ret(SECCOMP_RET_ALLOW)]
    # socket: a family outside SOCKET_FAMILIES -> EAFNOSUPPORT.
    families = socket_families
    if not families:
        denied = sorted({*denied, NR_SOCKETPAIR})
    sockets = [
        _ins(BPF_JEQ_K, 0, len(families) + 3, NR_SOCKET),
        _ins(BPF_LD_W_ABS, 0, 0, OFF_ARG0_LO),
    ]
    for i, family in enumerate(families):
        sockets.append(_ins(BPF_JEQ_K, len(families) - i, 0, family))  # -> ALLOW
    sockets += [_ret(SECCOMP_RET_ERRNO | EAFNOSUPPORT), _ret(SECCOMP_RET_ALLOW)]
    # After the clone/personality/socket blocks the accumulator still holds nr (they only
    # reload it on their own branch, which always returns).
    denied_block = _match_block(denied, SECCOMP_RET_ERRNO | EPERM)
    allowed = sorted({X86_64[name] for name in ALLOWED} - set(denied))
    allowed_block = _match_block(allowed, SECCOMP_RET_ALLOW)
    body = prog + special + personality + sockets + denied_block + allowed_block
    body.append(_ret(SECCOMP_RET_ERRNO | ENOSYS))
    assert all(len(b) == 8 for b in body)
    return b"".join(body)


# Checks per block: each must reach its block's return within one 8-bit jump.
BLOCK = 200


def _match_block(numbers: list[int], action: int) -> list[bytes]:
    """``numbers`` (syscall numbers, the accumulator holds nr) -> return ``action``; any other
    nr falls through past the block. One ``JEQ`` per number, in chunks of ``BLOCK``, each
    chunk followed by ``JA +1`` (no match: skip) and ``RET action``."""
    out: list[bytes] = []
    for start in range(0, len(numbers), BLOCK):
        chunk = numbers[start : start + BLOCK]
        k = len(chunk)
        out += [_ins(BPF_JEQ_K, k - i, 0, nr) for i, nr in enumerate(chunk)]
        out += [_ins(BPF_JA, 0, 0, 1), _ret(action)]
    return out


class ProgramFd:
    """The compiled filter in a pipe, ready for ``bwrap --seccomp FD`` (read end).

    The write end is closed once the bytes are in (the program is far smaller than a pipe
    buffer, so this never blocks). Pass ``fd`` to the child with ``pass_fds`` and close it in
    the parent right after the spawn; bwrap reads it to EOF and closes it before the
    sandboxed command starts, so it never reaches the script.
    """

    def __init__(self, program: bytes | None = None) -> None:
        data = build_program() if program is None else program
        if len(data) > select.PIPE_BUF:
            raise ValueError(f"seccomp program of {len(data)} bytes does not fit a pipe write")
        read, write = os.pipe()  # both O_CLOEXEC: only pass_fds hands one to a child
        try:
            os.write(write, data)
        except OSError:
            os.close(read)
            raise
        finally:
            os.close(write)
        self._fd: int | None = read

    @property
    def fd(self) -> int:
        if self._fd is None:
            raise ValueError("seccomp program fd already closed")
        return self._fd

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> ProgramFd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# prctl(2) options (include/uapi/linux/prctl.h) and seccomp modes (linux/seccomp.h).
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


def install(program: bytes) -> None:
    """Load ``program`` on the calling thread (and what it starts) with ``no_new_privs``.

    For a process that confines itself (a single-threaded one: the filter covers only the
    calling thread and its future children). ``OSError`` if the kernel refuses.
    """
    import ctypes

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [
        ctypes.c_int,
        ctypes.c_ulong,
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.c_ulong,
    ]
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"PR_SET_NO_NEW_PRIVS: {os.strerror(err)}")
    fprog = SockFprog(len(program) // 8, program)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"PR_SET_SECCOMP: {os.strerror(err)}")
