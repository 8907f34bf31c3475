"""The seccomp filter of the subprocess engine's bubblewrap sandbox.

Real runs through ``make_executor(settings, "subprocess")``: the script tries what the filter
denies (new namespaces, mount, io_uring, x32 calls) and what data work needs (numpy, pandas,
matplotlib, multiprocessing, threads, fork). The program itself is also loaded into a root
child on the host, next to an unfiltered control, so each denial is shown to be the filter's.
"""

from __future__ import annotations

import os
import re
import select
import stat
import struct
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandboxing import seccomp, syscalls
from service.executors.base import RunLimits, RunRequest, RunResult
from service.executors.local import probe as sandbox
from service.executors.local.executor import SubprocessExecutor
from service.executors.registry import make_executor
from service.settings import Settings
from tests.conftest import subprocess_engine_missing
from tests.executors.test_subprocess_executor import runner_dir, runner_has, sandbox_processes

IS_ROOT = os.geteuid() == 0
pytestmark = pytest.mark.skipif(not seccomp.supported(), reason="the filter is x86_64-only")

LIBC = "import ctypes, errno, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"


class Sandbox:
    def __init__(self, executor: SubprocessExecutor, tmp: Path) -> None:
        self.executor = executor
        self.tmp = tmp

    def run(self, code: str, **limits: object) -> RunResult:
        out = self.tmp / "out" / uuid.uuid4().hex
        out.mkdir(parents=True)
        request = RunRequest(
            job_id=uuid.uuid4().hex,
            code=code,
            inputs=(),
            output_dir=out,
            limits=RunLimits(**{"timeout_s": 30.0, **limits}),  # type: ignore[arg-type]
        )
        return self.executor.run(request)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Sandbox]:
    settings = Settings(local_runner_dir=runner_dir(), execution_dir=tmp_path / "exec")
    executor = make_executor(settings, "subprocess")
    assert isinstance(executor, SubprocessExecutor)
    iso = executor.isolation_info()
    if not iso.bwrap:
        subprocess_engine_missing(f"no bubblewrap sandbox here: {iso.detail}")
    assert iso.seccomp, iso.detail  # bwrap works on x86_64: the filter must be on
    assert "seccomp" in iso.labels
    yield Sandbox(executor, tmp_path)
    executor.close()
    assert list(settings.execution_dir.iterdir()) == []
    assert sandbox_processes(settings.execution_dir) == []


def lines(result: RunResult) -> list[str]:
    assert result.success, (result.stderr, result.error)
    assert "seccomp" in result.isolation
    return result.stdout.splitlines()


# --------------------------------------------------------------------------- denied


def test_new_namespaces_are_denied(box: Sandbox) -> None:
    code = LIBC + (
        "def errno_of(rc):\n"
        "    return 'ok' if rc >= 0 else errno.errorcode[ctypes.get_errno()]\n"
        "print(errno_of(libc.unshare(0x10000000)))\n"  # CLONE_NEWUSER
        "print(errno_of(libc.unshare(0x10000000 | 0x40000000 | 0x00020000)))\n"  # +NET, NS
        "libc.syscall.restype = ctypes.c_long\n"
        "rc = libc.syscall(56, ctypes.c_ulong(0x10000000 | 17), None, None, None, None)\n"
        "if rc == 0:\n"
        "    os._exit(0)\n"  # the clone worked: the child leaves at once
        "if rc > 0:\n"
        "    os.waitpid(rc, 0)\n"
        "print(errno_of(rc))\n"
        "print(errno_of(libc.setns(0, 0)))\n"
    )
    assert lines(box.run(code)) == ["EPERM"] * 4


def test_mount_chroot_io_uring_and_bpf_are_denied(box: Sandbox) -> None:
    code = LIBC + (
        "libc.syscall.restype = ctypes.c_long\n"
        "def errno_of(rc):\n"
        "    return 'ok' if rc >= 0 else errno.errorcode[ctypes.get_errno()]\n"
        "print(errno_of(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)))\n"
        "print(errno_of(libc.chroot(b'/tmp')))\n"
        "params = ctypes.create_string_buffer(120)\n"
        "print(errno_of(libc.syscall(425, 4, params)))\n"  # io_uring_setup
        "print(errno_of(libc.syscall(321, 0, None, 0)))\n"  # bpf
        "print(errno_of(libc.syscall(323, 0)))\n"  # userfaultfd
        "print(errno_of(libc.syscall(435, None, 0)))\n"  # clone3: ENOSYS, glibc uses clone
        "print(errno_of(libc.personality(0x0040000)))\n"  # ADDR_NO_RANDOMIZE
        "print(errno_of(libc.personality(0xffffffff)))\n"  # a query is fine
    )
    assert lines(box.run(code)) == ["EPERM"] * 5 + ["ENOSYS", "EPERM", "ok"]


def test_x32_syscalls_kill_the_process(box: Sandbox) -> None:
    code = (
        "import subprocess, sys\n"
        "x32_getpid = 'import ctypes; ctypes.CDLL(None).syscall(0x40000000 + 39)'\n"
        "print(subprocess.run([sys.executable, '-c', x32_getpid]).returncode)\n"
    )
    assert lines(box.run(code)) == ["-31"]  # SIGSYS


def test_status_shows_the_filter_and_no_fd_leaks_into_the_script(box: Sandbox) -> None:
    code = (
        "import os\n"
        "status = open('/proc/self/status').read()\n"
        "print([l for l in status.splitlines() if l.startswith(('Seccomp:', 'NoNewPrivs:'))])\n"
        "open_fds = []\n"
        "for fd in os.listdir('/proc/self/fd'):\n"
        "    try:\n"
        "        open_fds.append((int(fd), os.readlink(f'/proc/self/fd/{fd}')[:5]))\n"
        "    except OSError:\n"
        "        pass\n"  # the listing's own fd, closed by now
        "print(sorted(open_fds))\n"
    )
    status, fds = lines(box.run(code))
    assert status == "['Seccomp:\\t2', 'NoNewPrivs:\\t1']" or status == (
        "['NoNewPrivs:\\t1', 'Seccomp:\\t2']"
    )
    # 0-2 and the harness's completion pipe (3: close-on-exec, it only carries the
    # script's own exit status); no result channel, no upload, no gateway descriptor.
    assert fds == "[(0, '/dev/'), (1, 'pipe:'), (2, 'pipe:'), (3, 'pipe:')]"


# --------------------------------------------------------------------------- still works


def test_data_stack_multiprocessing_threads_and_fork_still_work(box: Sandbox) -> None:
    for module in ("pandas", "matplotlib"):
        if not runner_has(module):
            subprocess_engine_missing(f"runner lacks {module}")
    code = (
        "import os, threading, multiprocessing as mp\n"
        "import numpy as np, pandas as pd\n"
        "import matplotlib.pyplot as plt\n"
        "def square(x):\n"
        "    return x * x\n"
        "if __name__ == '__main__':\n"
        "    df = pd.DataFrame({'x': np.arange(10)})\n"
        "    print(int(df.x.sum()), float(np.linalg.inv(np.eye(3)).trace()))\n"
        "    plt.plot(df.x, df.x ** 2)\n"
        "    plt.savefig('plot.png')\n"
        "    print(os.path.getsize('plot.png') > 1000)\n"
        "    with mp.Pool(2) as pool:\n"
        "        print(pool.map(square, [1, 2, 3]))\n"
        "    seen = []\n"
        "    threads = [threading.Thread(target=seen.append, args=(i,)) for i in range(4)]\n"
        "    for t in threads:\n"
        "        t.start()\n"
        "    for t in threads:\n"
        "        t.join()\n"
        "    print(sorted(seen))\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        os._exit(7)\n"
        "    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n"
    )
    result = box.run(code)
    assert lines(result) == ["45 3.0", "True", "[1, 4, 9]", "[0, 1, 2, 3]", "7"]
    assert [a.name for a in result.artifacts] == ["plot.png"]


# --------------------------------------------------------------------------- the program itself

_LOAD_AND_TRY = """
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
prog = sys.stdin.buffer.read()
if prog:
    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    buf = ctypes.create_string_buffer(prog, len(prog))
    fprog = Fprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
    assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
    assert libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) == 0, ctypes.get_errno()
def errno_of(rc):
    return "ok" if rc >= 0 else errno.errorcode[ctypes.get_errno()]
out = [errno_of(libc.unshare(0x00020000))]  # CLONE_NEWNS, then mount in it
libc.mount(None, b"/", None, 16384 | 262144, None)  # MS_REC | MS_PRIVATE: nothing leaks out
out.append(errno_of(libc.mount(b"none", os.environ["MNT"].encode(), b"tmpfs", 0, None)))
out.append(errno_of(libc.unshare(0x10000000)))  # CLONE_NEWUSER
out.append(errno_of(os.getpid()))
print(" ".join(out))
"""


@pytest.mark.skipif(not IS_ROOT, reason="the unfiltered control needs root to mount")
@pytest.mark.parametrize("filtered", [False, True])
def test_the_program_is_what_denies_namespaces_and_mounts(tmp_path: Path, filtered: bool) -> None:
    program = seccomp.build_program() if filtered else b""
    out = subprocess.run(
        [sys.executable, "-c", _LOAD_AND_TRY],
        input=program,
        capture_output=True,
        env={"MNT": str(tmp_path), "PATH": "/usr/bin:/bin"},
        timeout=30,
    )
    assert out.returncode == 0, out.stderr.decode()
    expected = "EPERM EPERM EPERM ok" if filtered else "ok ok ok ok"
    assert out.stdout.decode().strip() == expected


def test_program_layout() -> None:
    program = seccomp.build_program()
    assert len(program) % 8 == 0 and 0 < len(program) <= select.PIPE_BUF
    assert len({nr for nr, _ in seccomp.DENIED.values()}) == len(seccomp.DENIED)
    for name, (nr, _) in seccomp.DENIED.items():
        assert syscalls.X86_64.get(name, nr) == nr, name
    # No jump lands past the end: every JEQ/JA target exists.
    count = len(program) // 8
    for index in range(count):
        code, jt, jf, k = struct.unpack_from("=HBBI", program, index * 8)
        if code == seccomp.BPF_JA:
            assert index + 1 + k < count
        elif code & 0x07 == 0x05:
            assert index + 1 + max(jt, jf) < count


def test_syscall_numbers_match_the_c_headers() -> None:
    header = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
    if not header.exists():
        pytest.skip("no kernel headers installed")
    known = {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"#define __NR_(\w+) (\d+)", header.read_text())
    }
    assert {n: nr for n, nr in syscalls.X86_64.items() if known.get(n) != nr} == {}
    assert set(syscalls.ALLOWED) == set(syscalls.X86_64)


def test_a_syscall_off_the_allow_list_is_enosys(box: Sandbox) -> None:
    code = LIBC + (
        "libc.syscall.restype = ctypes.c_long\n"
        "def errno_of(rc):\n"
        "    return 'ok' if rc >= 0 else errno.errorcode[ctypes.get_errno()]\n"
        "print(errno_of(libc.syscall(312, os.getpid(), os.getpid(), 0, 0, 0)))\n"  # kcmp
        "print(errno_of(libc.syscall(239, 0, 0, 0)))\n"  # get_mempolicy
        "print(errno_of(libc.syscall(39)))\n"  # getpid: listed
    )
    out = lines(box.run(code))
    assert out[:2] == ["ENOSYS", "ENOSYS"] and out[2] == "ok"


# --------------------------------------------------------------------------- falling back


def test_probe_reports_a_bwrap_that_refuses_the_filter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = "/usr/bin/bwrap"
    if not os.access(real, os.X_OK):
        subprocess_engine_missing("no bwrap")
    fake = tmp_path / "bwrap"
    fake.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do [ "$a" = --seccomp ] && { echo "seccomp refused" >&2; exit 1; }; done\n'
        f'exec {real} "$@"\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    as_root = IS_ROOT
    assert sandbox.bwrap_probe(str(fake), as_root=as_root) is None
    assert sandbox.bwrap_probe(str(fake), as_root=as_root, filtered=True) == "seccomp refused"
    assert sandbox.bwrap_probe(real, as_root=as_root, filtered=True) is None

    # Where bwrap takes --seccomp but the filter does not apply (another architecture), the
    # sandbox runs without it and does not claim it.
    monkeypatch.setattr(seccomp, "supported", lambda: False)
    iso = sandbox.detect_isolation("auto")
    assert iso.bwrap and not iso.seccomp
    assert "seccomp" not in iso.labels
    assert "no seccomp filter" in iso.detail
