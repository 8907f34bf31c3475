"""Landlock: a process gives up file access (and, from ABI 6, signals) beyond a list of paths.

Unprivileged and stackable, so it works where bubblewrap cannot (a container without user
namespaces): the process builds a ruleset, adds one rule per directory or file it may use,
and restricts itself; from then on ``open`` of anything else fails with ``EACCES``, whatever
the file modes say. Descriptors opened before stay usable, but *reopening* one through
``/proc/self/fd/N`` is judged by the file's own path, hence refused; a memfd (an internal
file) is not. ABI 6 (Linux 6.12) adds scopes: no signal to a process outside the domain
(the gateway), no connection to an abstract unix socket outside it.

Syscalls ``landlock_create_ruleset`` (444), ``landlock_add_rule`` (445),
``landlock_restrict_self`` (446) are the same on every architecture (the generic table);
structures from include/uapi/linux/landlock.h.
"""

from __future__ import annotations

import ctypes
import os
import stat
import struct
from collections.abc import Iterable

NR_CREATE_RULESET = 444
NR_ADD_RULE = 445
NR_RESTRICT_SELF = 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38

EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
FILE_RIGHTS_MASK = EXECUTE | WRITE_FILE | READ_FILE | (1 << 14) | (1 << 15)  # + truncate, ioctl
# Every filesystem right each ABI knows: 13 in v1, REFER (v2), TRUNCATE (v3), IOCTL_DEV (v5).
_FS_BITS = {1: 13, 2: 14, 3: 15, 4: 15}
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
SCOPE_SIGNAL = 1 << 1

READ_ONLY = EXECUTE | READ_FILE | READ_DIR
READ_WRITE_FILE = READ_FILE | WRITE_FILE


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def abi_version() -> int:
    """The kernel's Landlock ABI (0: none, or refused by a seccomp filter)."""
    version = _libc().syscall(NR_CREATE_RULESET, None, 0, CREATE_RULESET_VERSION)
    return max(int(version), 0)


def restrict(rules: Iterable[tuple[str, int]], abi: int | None = None) -> int:
    """Allow only ``rules`` (path, rights) from now on; returns the ABI enforced.

    Paths that do not exist are skipped; rights are trimmed to what a file may carry.
    ``OSError`` when the kernel refuses (nothing is restricted then).
    """
    libc = _libc()
    abi = abi_version() if abi is None else abi
    if abi < 1:
        raise OSError(38, "Landlock is not available")
    handled = (1 << _FS_BITS.get(abi, 16)) - 1
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    attr = struct.pack("=QQQ", handled, 0, scoped)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = libc.syscall(NR_CREATE_RULESET, ctypes.c_char_p(attr), size, 0)
    if ruleset < 0:
        raise _error(libc, "landlock_create_ruleset")
    try:
        for path, rights in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
                allowed = (rights if is_dir else rights & FILE_RIGHTS_MASK) & handled
                rule = struct.pack("=Qi", allowed, fd)
                if libc.syscall(NR_ADD_RULE, ruleset, RULE_PATH_BENEATH, rule, 0) != 0:
                    raise _error(libc, f"landlock_add_rule {path}")
            finally:
                os.close(fd)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise _error(libc, "PR_SET_NO_NEW_PRIVS")
        if libc.syscall(NR_RESTRICT_SELF, ruleset, 0) != 0:
            raise _error(libc, "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return abi


def _error(libc: ctypes.CDLL, what: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")
