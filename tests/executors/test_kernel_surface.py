"""The kernel surface a script can reach, probed from inside both sandboxes.

Each probe calls the syscall itself through ctypes ``syscall()`` (no library in between to
take a fallback) inside a real run, and reports the errno. Denied: io_uring, socket families
other than unix/inet/inet6 (vsock, packet, netlink, alg), userfaultfd, the kernel keyring,
bpf and perf events. Still there: unix and IP sockets (with no network behind them).
"""

from __future__ import annotations

import json
import platform
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandboxing import seccomp
from service.executors.base import Executor
from service.executors.docker import seccomp_profile
from service.executors.local.executor import SubprocessExecutor
from service.executors.registry import make_executor
from service.settings import Settings, get_settings
from tests.conftest import subprocess_engine_missing
from tests.executors.conftest import MakeRequest
from tests.executors.test_subprocess_executor import runner_dir, sandbox_processes

pytestmark = pytest.mark.skipif(
    platform.machine() != "x86_64", reason="the probes use x86_64 syscall numbers"
)

ENGINES = [
    pytest.param("docker", marks=pytest.mark.docker, id="docker"),
    pytest.param("subprocess", id="subprocess"),
]

# Refused answers: EPERM (filtered), ENOSYS (as if the kernel lacked it), EAFNOSUPPORT (a
# family the kernel "does not have").
REFUSED = {"EPERM", "ENOSYS", "EAFNOSUPPORT"}

PROBE = """
import ctypes, errno, json, socket
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
buf = ctypes.create_string_buffer(256)
def answer(rc):
    return "ok" if rc >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
def sock(family, kind):
    return answer(libc.syscall(41, family, kind, 0))
out = {
    "io_uring_setup": answer(libc.syscall(425, 4, buf)),
    "socket(AF_VSOCK)": sock(40, socket.SOCK_STREAM),
    "socket(AF_PACKET)": sock(17, socket.SOCK_RAW),
    "socket(AF_NETLINK)": sock(16, socket.SOCK_RAW),
    "socket(AF_ALG)": sock(38, socket.SOCK_SEQPACKET),
    "userfaultfd": answer(libc.syscall(323, 0)),
    "add_key": answer(libc.syscall(248, b"user", b"probe", b"secret", 6, -2)),
    "keyctl": answer(libc.syscall(250, 0, -3, 0)),
    "bpf": answer(libc.syscall(321, 0, buf, 72)),
    "perf_event_open": answer(libc.syscall(298, buf, 0, -1, -1, 0)),
}
allowed = {}
for name, family, kind in [("AF_UNIX", socket.AF_UNIX, socket.SOCK_STREAM),
                           ("AF_INET", socket.AF_INET, socket.SOCK_STREAM),
                           ("AF_INET6", socket.AF_INET6, socket.SOCK_DGRAM)]:
    with socket.socket(family, kind) as s:
        allowed[name] = "ok"
a, b = socket.socketpair()
a.sendall(b"ping")
allowed["socketpair"] = b.recv(4).decode()
a.close(); b.close()
with socket.socket() as s:
    try:
        s.settimeout(2)
        s.connect(("1.1.1.1", 53))
        allowed["network"] = "reachable"
    except OSError:
        allowed["network"] = "none"
print(json.dumps({"denied": out, "allowed": allowed}))
"""


@pytest.fixture(params=ENGINES)
def executor(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Executor]:
    if request.param == "docker":
        ex = make_executor(get_settings(), "docker")
        yield ex
        ex.close()
        return
    settings = Settings(local_runner_dir=runner_dir(), execution_dir=tmp_path / "exec")
    sub = make_executor(settings, "subprocess")
    assert isinstance(sub, SubprocessExecutor)
    iso = sub.isolation_info()
    if not (iso.bwrap and iso.seccomp):
        subprocess_engine_missing(
            f"no bubblewrap sandbox with the seccomp filter here: {iso.detail}"
        )
    yield sub
    sub.close()
    assert list(settings.execution_dir.iterdir()) == []
    assert sandbox_processes(settings.execution_dir) == []


def probe(executor: Executor, make_request: MakeRequest) -> dict[str, dict[str, str]]:
    result = executor.run(make_request(PROBE, timeout_s=30.0))
    assert result.success, (result.stderr, result.error)
    assert "seccomp" in result.isolation
    found: dict[str, dict[str, str]] = json.loads(result.stdout)
    return found


def test_large_kernel_surfaces_are_refused(executor: Executor, make_request: MakeRequest) -> None:
    denied = probe(executor, make_request)["denied"]
    assert {name: answer for name, answer in denied.items() if answer not in REFUSED} == {}


def test_unix_and_ip_sockets_still_work_without_a_network(
    executor: Executor, make_request: MakeRequest
) -> None:
    allowed = probe(executor, make_request)["allowed"]
    assert allowed == {
        "AF_UNIX": "ok",
        "AF_INET": "ok",
        "AF_INET6": "ok",
        "socketpair": "ping",
        "network": "none",
    }


def test_other_syscall_abis_kill_the_process(executor: Executor, make_request: MakeRequest) -> None:
    """x32 numbers (the same calls under other numbers) never reach the rules above."""
    code = (
        "import subprocess, sys\n"
        "x32_getpid = ('import ctypes; libc = ctypes.CDLL(None, use_errno=True); '\n"
        "              'print(libc.syscall(0x40000000 + 39), ctypes.get_errno())')\n"
        "run = subprocess.run([sys.executable, '-c', x32_getpid], capture_output=True, text=True)\n"
        "print(run.returncode, run.stdout.strip())\n"
    )
    result = executor.run(make_request(code, timeout_s=30.0))
    assert result.success, (result.stderr, result.error)
    if "runtime:runsc" in result.isolation:
        # gVisor's kernel has no x32 ABI: the call is refused (the profile's EPERM, or ENOSYS
        # from gVisor itself), never run.
        assert result.stdout in ("-31 \n", "0 -1 1\n", "0 -1 38\n"), result.stdout
    else:
        assert result.stdout == "-31 \n"  # killed by SIGSYS before it printed anything


def test_the_subprocess_filter_answers_other_families_with_eafnosupport(
    make_request: MakeRequest, tmp_path: Path
) -> None:
    """The bwrap filter says "no such family", so a library probing one takes its fallback."""
    settings = Settings(local_runner_dir=runner_dir(), execution_dir=tmp_path / "exec")
    sub = SubprocessExecutor(settings)
    if not (sub.isolation_info().bwrap and sub.isolation_info().seccomp):
        subprocess_engine_missing("no bubblewrap sandbox with the seccomp filter here")
    try:
        denied = probe(sub, make_request)["denied"]
    finally:
        sub.close()
    sockets = {k: v for k, v in denied.items() if k.startswith("socket(")}
    assert set(sockets.values()) == {"EAFNOSUPPORT"}, sockets


# ------------------------------------------------------------------------ the docker profile


def test_profile_is_dockers_allow_list_minus_the_removed_calls() -> None:
    profile = seccomp_profile.runner_profile()
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert profile["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"]
    unconditional = profile["syscalls"][0]
    assert unconditional["action"] == "SCMP_ACT_ALLOW" and "args" not in unconditional
    names = set(unconditional["names"])
    for removed in seccomp_profile.REMOVED:
        assert removed not in names
    # Needed by every Python process and the data stack; a slip here breaks every run.
    assert {"read", "mmap", "futex", "clone3", "execve", "wait4", "socketpair"} - names == {
        "clone3"
    }
    conditional = {
        (rule["names"][0], arg["value"]): rule["action"]
        for rule in profile["syscalls"][1:]
        for arg in rule.get("args", [])
    }
    families = {value for (name, value) in conditional if name == "socket"}
    assert families == set(seccomp.SOCKET_FAMILIES) == {1, 2, 10}
    assert ("clone", seccomp.CLONE_NAMESPACES) in conditional
    assert json.loads(seccomp_profile.runner_seccomp_profile()) == profile


def test_the_gvisor_profile_differs_only_in_leaving_clone3_to_gvisor() -> None:
    """Debian's gVisor ignores errnoRet (clone3 would be EPERM and no thread could start)."""
    runc = seccomp_profile.runner_profile()
    runsc = seccomp_profile.runner_profile("runsc")
    differ = [(a, b) for a, b in zip(runc["syscalls"], runsc["syscalls"], strict=True) if a != b]
    assert differ == [
        (
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["clone3"], "action": "SCMP_ACT_ALLOW"},
        )
    ]
