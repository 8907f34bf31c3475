"""The seccomp profile of the runner container: Docker's default, narrowed for untrusted code.

Docker 20.10's built-in profile lets a container call ``io_uring_setup`` and open sockets of
every family (vsock, packet, netlink, alg, ...): large kernel surfaces a data script never
needs. This module writes our own profile in Docker's JSON format (what
``docker run --security-opt seccomp=FILE`` reads):

* the default action is ``SCMP_ACT_ERRNO`` (``EPERM``): anything not listed is refused;
* the allow-list is Docker's default one for a container without capabilities (the runner
  drops them all, so the capability-gated entries of Docker's profile never apply), on
  x86_64 and aarch64 only: other ABIs of the same CPU (i386, x32, arm32) are refused as a
  whole, which also closes ``socketcall``, the 32-bit way around the ``socket`` rule;
* minus ``io_uring_*`` (also performs I/O that no filter sees), ``userfaultfd``, the kernel
  keyring (``add_key``, ``request_key``, ``keyctl``: not namespaced), ``bpf``,
  ``perf_event_open``, and ``ptrace``/``process_vm_*`` (Docker allows them on kernels >= 4.8;
  a job has no debugger);
* ``socket`` only for ``AF_UNIX``, ``AF_INET`` and ``AF_INET6`` (one rule per family:
  Docker ORs rules that name the same call and ANDs the conditions inside one);
* ``clone`` without namespace flags, ``clone3`` as ``ENOSYS`` (glibc falls back to
  ``clone``), ``personality`` for the personas Docker allows: as in Docker's profile.

Names a kernel or architecture lacks are skipped by the runtime, so one list serves both
architectures. ``runner_seccomp_profile()`` returns the JSON text the executor passes as
``security_opt=["seccomp=" + profile]``.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from service.executors.seccomp import (
    CLONE_NAMESPACES,
    ENOSYS,
    PERSONALITY_ALLOWED,
    SOCKET_FAMILIES,
)

# Every architecture the runner image is built for; no sub-architectures (see above).
ARCHITECTURES = ("SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64")

# Allowed without conditions: Docker's default allow-list minus what the docstring removes.
# Grouped by purpose to be reviewable; the order has no meaning.
ALLOWED: tuple[str, ...] = (
    # processes, threads, signals
    *("arch_prctl", "capget", "capset", "execve", "execveat", "exit", "exit_group"),
    *("fork", "vfork", "wait4", "waitid", "kill", "tkill", "tgkill", "getpid", "getppid"),
    *("gettid", "getpgid", "getpgrp", "setpgid", "getsid", "setsid", "prctl", "seccomp"),
    *("set_tid_address", "set_robust_list", "get_robust_list", "rseq", "membarrier"),
    *("pidfd_open", "pidfd_send_signal", "restart_syscall", "pause", "modify_ldt"),
    *("get_thread_area", "set_thread_area", "getcpu", "process_mrelease"),
    *("rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn"),
    *("rt_sigsuspend", "rt_sigtimedwait", "rt_tgsigqueueinfo", "sigaltstack", "signalfd"),
    *("signalfd4", "alarm", "getitimer", "setitimer"),
    # credentials and limits (inside the container's own, unprivileged ids)
    *("getuid", "geteuid", "getgid", "getegid", "getgroups", "getresuid", "getresgid"),
    *("setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups"),
    *("setfsuid", "setfsgid", "getrlimit", "setrlimit", "prlimit64", "getrusage", "times"),
    *("getpriority", "setpriority", "ioprio_get", "ioprio_set", "umask", "uname", "sysinfo"),
    # scheduling
    *("sched_getaffinity", "sched_setaffinity", "sched_getattr", "sched_setattr"),
    *("sched_getparam", "sched_setparam", "sched_getscheduler", "sched_setscheduler"),
    *("sched_get_priority_max", "sched_get_priority_min", "sched_rr_get_interval"),
    *("sched_yield",),
    # memory
    *("brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync"),
    *("mlock", "mlock2", "mlockall", "munlock", "munlockall", "remap_file_pages"),
    *("memfd_create", "memfd_secret", "pkey_alloc", "pkey_free", "pkey_mprotect"),
    *("futex", "futex_waitv"),
    # time
    *("clock_getres", "clock_gettime", "clock_nanosleep", "nanosleep", "gettimeofday"),
    *("time", "adjtimex", "clock_adjtime"),  # read-only without CAP_SYS_TIME
    *("timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_settime"),
    *("timerfd_create", "timerfd_gettime", "timerfd_settime"),
    # files and directories
    *("open", "openat", "openat2", "creat", "close", "close_range", "read", "write"),
    *("readv", "writev", "pread64", "pwrite64", "preadv", "preadv2", "pwritev", "pwritev2"),
    *("lseek", "dup", "dup2", "dup3", "fcntl", "flock", "ioctl", "pipe", "pipe2"),
    *("stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs", "access"),
    *("faccessat", "faccessat2", "readlink", "readlinkat", "getcwd", "chdir", "fchdir"),
    *("getdents", "getdents64", "mkdir", "mkdirat", "rmdir", "rename", "renameat"),
    *("renameat2", "link", "linkat", "symlink", "symlinkat", "unlink", "unlinkat"),
    *("mknod", "mknodat", "chmod", "fchmod", "fchmodat", "chown", "fchown", "fchownat"),
    *("lchown", "truncate", "ftruncate", "fallocate", "fadvise64", "readahead"),
    *("fsync", "fdatasync", "sync", "syncfs", "sync_file_range", "utime", "utimes"),
    *("utimensat", "futimesat", "copy_file_range", "sendfile", "splice", "tee", "vmsplice"),
    *("getxattr", "lgetxattr", "fgetxattr", "setxattr", "lsetxattr", "fsetxattr"),
    *("listxattr", "llistxattr", "flistxattr", "removexattr", "lremovexattr"),
    *("fremovexattr", "name_to_handle_at", "fanotify_mark"),
    *("inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch"),
    *("landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self"),
    # waiting on descriptors; classic async I/O (not io_uring)
    *("select", "pselect6", "poll", "ppoll", "epoll_create", "epoll_create1", "epoll_ctl"),
    *("epoll_ctl_old", "epoll_wait", "epoll_wait_old", "epoll_pwait", "epoll_pwait2"),
    *("eventfd", "eventfd2", "io_setup", "io_destroy", "io_submit", "io_cancel"),
    *("io_getevents", "io_pgetevents"),
    # sockets (creating one is the conditional rule below)
    *("socketpair", "bind", "listen", "accept", "accept4", "connect", "shutdown"),
    *("getsockname", "getpeername", "getsockopt", "setsockopt", "sendto", "sendmsg"),
    *("sendmmsg", "recvfrom", "recvmsg", "recvmmsg"),
    # System V and POSIX IPC (multiprocessing, shared memory; namespaced per container)
    *("shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl"),
    *("msgget", "msgsnd", "msgrcv", "msgctl", "mq_open", "mq_unlink", "mq_timedsend"),
    *("mq_timedreceive", "mq_notify", "mq_getsetattr"),
    # randomness
    *("getrandom",),
)

# Refused although Docker's default profile (for a container without capabilities) allows
# them; listed so a test can check that none slipped back into ``ALLOWED``.
REMOVED: dict[str, str] = {
    "io_uring_setup": "io_uring: huge attack surface, its I/O bypasses seccomp",
    "io_uring_enter": "io_uring",
    "io_uring_register": "io_uring",
    "userfaultfd": "stalls the kernel mid-copy: the classic race-exploit helper",
    "add_key": "kernel keyring (not namespaced)",
    "request_key": "kernel keyring (not namespaced)",
    "keyctl": "kernel keyring (not namespaced)",
    "bpf": "eBPF programs and maps (verifier exploits)",
    "perf_event_open": "perf events (side channels, kernel exploits)",
    "ptrace": "tracing processes",
    "process_vm_readv": "reading another process's memory",
    "process_vm_writev": "writing another process's memory",
}


def _rule(name: str, **condition: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {"names": [name], "action": "SCMP_ACT_ALLOW"}
    if condition:
        rule["args"] = [{"index": 0, **condition}]
    return rule


def runner_profile() -> dict[str, Any]:
    """The profile as a dict (Docker's seccomp JSON schema)."""
    overlap = set(ALLOWED) & set(REMOVED)
    if overlap:  # a maintenance slip, caught on first use
        raise AssertionError(f"seccomp profile allows removed syscalls: {sorted(overlap)}")
    syscalls: list[dict[str, Any]] = [
        {"names": sorted(set(ALLOWED)), "action": "SCMP_ACT_ALLOW"},
        *(_rule("socket", value=family, op="SCMP_CMP_EQ") for family in SOCKET_FAMILIES),
        *(_rule("personality", value=p, op="SCMP_CMP_EQ") for p in PERSONALITY_ALLOWED),
        # (flags & CLONE_NEW*) == 0: threads and fork, never new namespaces.
        _rule("clone", value=CLONE_NAMESPACES, valueTwo=0, op="SCMP_CMP_MASKED_EQ"),
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
    ]
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": list(ARCHITECTURES),
        "syscalls": syscalls,
    }


@cache
def runner_seccomp_profile() -> str:
    """The profile as compact JSON, for ``security_opt=["seccomp=" + ...]``."""
    return json.dumps(runner_profile(), separators=(",", ":"), sort_keys=True)
