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
architectures. ``runner_seccomp_profile(runtime)`` returns the JSON text the executor passes
as ``security_opt=["seccomp=" + profile]``.

gVisor (runsc registered with ``--oci-seccomp``) applies the profile inside its own kernel,
but the version Debian ships ignores ``errnoRet``: ``clone3`` would answer ``EPERM``, glibc
would not fall back, and no thread could start. Its own kernel has no ``clone3`` (it answers
``ENOSYS`` itself), so for runsc that call is simply allowed through to it.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from sandboxing.syscalls import (
    ALLOWED,
    CLONE_NAMESPACES,
    ENOSYS,
    PERSONALITY_ALLOWED,
    SOCKET_FAMILIES,
)

# Every architecture the runner image is built for; no sub-architectures (see above).
ARCHITECTURES = ("SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64")


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


def runner_profile(runtime: str | None = None) -> dict[str, Any]:
    """The profile as a dict (Docker's seccomp JSON schema), for the OCI ``runtime``."""
    overlap = set(ALLOWED) & set(REMOVED)
    if overlap:  # a maintenance slip, caught on first use
        raise AssertionError(f"seccomp profile allows removed syscalls: {sorted(overlap)}")
    syscalls: list[dict[str, Any]] = [
        {"names": sorted(set(ALLOWED)), "action": "SCMP_ACT_ALLOW"},
        *(_rule("socket", value=family, op="SCMP_CMP_EQ") for family in SOCKET_FAMILIES),
        *(_rule("personality", value=p, op="SCMP_CMP_EQ") for p in PERSONALITY_ALLOWED),
        # (flags & CLONE_NEW*) == 0: threads and fork, never new namespaces.
        _rule("clone", value=CLONE_NAMESPACES, valueTwo=0, op="SCMP_CMP_MASKED_EQ"),
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS}
        if runtime != "runsc"
        else {"names": ["clone3"], "action": "SCMP_ACT_ALLOW"},  # gVisor: ENOSYS itself
    ]
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": list(ARCHITECTURES),
        "syscalls": syscalls,
    }


@cache
def runner_seccomp_profile(runtime: str | None = None) -> str:
    """The profile as compact JSON, for ``security_opt=["seccomp=" + ...]``."""
    return json.dumps(runner_profile(runtime), separators=(",", ":"), sort_keys=True)
