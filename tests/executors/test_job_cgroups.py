"""Per-job cgroups of the subprocess engine: memory with tmpfs counted, pids, CPU, OOM truth.

Real cgroups on this host (skipped where the tests cannot make any, e.g. not root), real
sandboxed runs. After every run no cgroup of ours is left in any hierarchy.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.executors.base import RunResult
from service.executors.local import cgroups
from service.executors.local.executor import SubprocessExecutor
from service.executors.registry import make_executor
from service.settings import Settings
from tests.executors.conftest import MakeRequest
from tests.executors.test_subprocess_executor import runner_dir, sandbox_processes

MB = 1024 * 1024


@pytest.fixture(scope="module")
def support() -> cgroups.CgroupSupport:
    found, note = cgroups.detect()
    if found is None:
        pytest.skip(f"no job cgroups on this host: {note}")
    return found


def ours(support: cgroups.CgroupSupport) -> list[Path]:
    """Job cgroups of cold runs that exist now, in every hierarchy we use (a warm pool's,
    ``python-coder-pool-*``, belong to whatever gateway runs beside the tests)."""
    return sorted(
        p
        for parent in support.parents.values()
        for p in parent.glob("python-coder-*")
        if not p.name.startswith("python-coder-pool-")
    )


@pytest.fixture
def sub(support: cgroups.CgroupSupport, tmp_path: Path) -> Iterator[SubprocessExecutor]:
    before = ours(support)
    settings = Settings(local_runner_dir=runner_dir(), execution_dir=tmp_path / "exec")
    executor = make_executor(settings, "subprocess")
    assert isinstance(executor, SubprocessExecutor)
    if executor.weak_sandbox() is not None:
        pytest.skip(executor.weak_sandbox() or "")
    assert "cgroup" in executor.isolation(), executor.isolation_info().detail
    yield executor
    executor.close()
    assert ours(support) == before
    assert sandbox_processes(settings.execution_dir) == []


def oom(result: RunResult) -> None:
    assert result.oom_killed, (result.stdout, result.stderr, result.error)
    assert not result.success
    assert result.error is not None and "out of memory" in result.error
    assert "cgroup" in result.isolation


def test_tmpfs_files_count_against_the_memory_limit(
    sub: SubprocessExecutor, make_request: MakeRequest
) -> None:
    """Pages parked in the sandbox's tmpfs are outside RLIMIT_AS, not outside the cgroup."""
    code = (
        "import os\n"
        "block = b'x' * (1 << 20)\n"
        "with open('/dev/shm/fill', 'wb') as shm, open('fill', 'wb') as work:\n"
        "    for i in range(400):\n"
        "        (shm if i % 2 else work).write(block)\n"
        "print('survived')\n"
    )
    result = sub.run(make_request(code, memory_bytes=96 * MB, workdir_bytes=1024 * MB))
    oom(result)
    assert "survived" not in result.stdout


def test_memory_of_all_processes_is_one_budget(
    sub: SubprocessExecutor, make_request: MakeRequest
) -> None:
    """Each child stays far below RLIMIT_AS; together they exceed the job's memory."""
    code = (
        "import multiprocessing as mp, time\n"
        "def hold(_):\n"
        "    block = bytearray(60 << 20)\n"
        "    block[::4096] = b'x' * len(block[::4096])\n"
        "    time.sleep(3)\n"
        "    return len(block)\n"
        "if __name__ == '__main__':\n"
        "    with mp.Pool(4) as pool:\n"
        "        print(sum(pool.map(hold, range(4))))\n"
    )
    oom(sub.run(make_request(code, memory_bytes=128 * MB)))


def test_a_job_within_its_limits_is_not_called_oom(
    sub: SubprocessExecutor, make_request: MakeRequest
) -> None:
    code = "block = bytearray(32 << 20)\nblock[::4096] = b'x' * len(block[::4096])\nprint('ok')\n"
    result = sub.run(make_request(code, memory_bytes=128 * MB))
    assert result.success, (result.stderr, result.error)
    assert not result.oom_killed and result.stdout == "ok\n"
    assert "cgroup" in result.isolation


def test_limits_are_written_and_the_command_starts_inside(
    support: cgroups.CgroupSupport,
) -> None:
    group = cgroups.JobCgroup.create(support, "t-limits", memory_bytes=100 * MB, pids=5, cpus=0.5)
    try:
        if support.version == 1:
            memory = group.dirs["memory"] / "memory.limit_in_bytes"
            assert int(memory.read_text()) == 100 * MB
            assert int((group.dirs["pids"] / "pids.max").read_text()) == 5 + cgroups.PIDS_HEADROOM
            assert int((group.dirs["cpu"] / "cpu.cfs_quota_us").read_text()) == 50_000
        else:
            unified = group.dirs["unified"]
            assert int((unified / "memory.max").read_text()) == 100 * MB
            assert (unified / "cpu.max").read_text().split() == ["50000", "100000"]
        out = subprocess.run(
            group.enter_command(["cat", "/proc/self/cgroup"]),
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert out.returncode == 0, out.stderr
        [name] = {d.name for d in group.dirs.values()}
        inside = [line for line in out.stdout.splitlines() if line.endswith("/" + name)]
        assert len(inside) == len(group.dirs), out.stdout
    finally:
        group.close()
    assert group.dirs == {}


FORK_MANY = """
import os, signal, time
kids = []
for _ in range(40):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    kids.append(pid)
print(len(kids))
for pid in kids:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
"""


def test_pids_limit_holds_whatever_the_uid(support: cgroups.CgroupSupport) -> None:
    """pids.max counts every task in the cgroup (RLIMIT_NPROC would spare root)."""
    group = cgroups.JobCgroup.create(support, "t-pids", memory_bytes=256 * MB, pids=2, cpus=1.0)
    try:
        out = subprocess.run(
            group.enter_command([sys.executable, "-c", FORK_MANY]),
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        group.close()
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == 2 + cgroups.PIDS_HEADROOM - 1  # the forking process is one


def test_close_kills_what_is_left_and_removes_the_cgroup(support: cgroups.CgroupSupport) -> None:
    group = cgroups.JobCgroup.create(support, "t-close", memory_bytes=64 * MB, pids=4, cpus=1.0)
    dirs = list(group.dirs.values())
    proc = subprocess.Popen(group.enter_command(["sleep", "60"]), start_new_session=True)
    try:
        for _ in range(200):
            if group.pids():
                break
            time.sleep(0.01)
        assert group.pids() == [proc.pid]
        group.close()
        assert proc.wait(timeout=10) == -9
    finally:
        proc.kill()
        proc.wait()
    assert not any(d.exists() for d in dirs)


def test_stale_empty_cgroups_are_swept_live_ones_stay(support: cgroups.CgroupSupport) -> None:
    stale = cgroups.JobCgroup.create(support, "t-stale", memory_bytes=64 * MB, pids=4, cpus=1.0)
    busy = cgroups.JobCgroup.create(support, "t-busy", memory_bytes=64 * MB, pids=4, cpus=1.0)
    proc = subprocess.Popen(busy.enter_command(["sleep", "60"]), start_new_session=True)
    try:
        # Entered into every hierarchy (the shell joins them one after the other).
        while not all(str(proc.pid) in f.read_text().split() for f in busy.procs_files):
            time.sleep(0.01)
        cgroups.sweep_stale(support)  # both are new: neither goes
        assert all(d.exists() for d in [*stale.dirs.values(), *busy.dirs.values()])
        # Only this test's cgroups: other runs on the host may have fresh empty ones.
        cgroups.sweep_stale(support, older_than_s=0, pattern="python-coder-t-stale-*")
        cgroups.sweep_stale(support, older_than_s=0, pattern="python-coder-t-busy-*")
        assert not any(d.exists() for d in stale.dirs.values())
        assert all(d.exists() for d in busy.dirs.values())
    finally:
        busy.close()
        proc.wait(timeout=10)
        stale.close()  # already gone: nothing to do
