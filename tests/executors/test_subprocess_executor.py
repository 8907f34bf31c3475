"""The subprocess engine against the real harness, real processes and real namespaces.

The runner is the settings default (``.runner-venv``) when it was built, else the dev venv,
which has the same data packages. Every test checks afterwards that no job dir and no
sandbox process is left.
"""

from __future__ import annotations

import ast
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.errors import EngineUnavailable
from service.executors.base import InputFile, RunLimits, RunRequest, RunResult
from service.executors.local.executor import BUILD_COMMAND, SubprocessExecutor
from service.executors.local.uids import UID_BASE, UID_COUNT
from service.runner_build import LOCAL_STAMP
from service.settings import Settings
from tests.conftest import REQUIRE_SUBPROCESS_ENGINE, subprocess_engine_missing

REPO = Path(__file__).resolve().parents[2]
IS_ROOT = os.geteuid() == 0
SYSTEM_PYTHON = Path("/usr/bin/python3")


def runner_dir() -> Path:
    """The settings default once fully built (its stamp is written last), else the dev venv
    (same data packages)."""
    default = Settings().local_runner_dir
    if (default / "bin" / "python").exists() and (default / LOCAL_STAMP).exists():
        return default.absolute()
    if REQUIRE_SUBPROCESS_ENGINE or sys.prefix == sys.base_prefix:
        subprocess_engine_missing(f"no runner venv: run `{BUILD_COMMAND}`")
    return Path(sys.prefix)


def runner_has(module: str) -> bool:
    python = runner_dir() / "bin" / "python"
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0


def sandbox_processes(execution_dir: Path, uid: int | None = None) -> list[int]:
    """Live processes of a sandbox: ``uid`` (a job uid), or a cwd inside a job dir.

    Other test runs may use the sandbox uid range at the same time, so uids are checked
    one job at a time (scripts print theirs first).
    """
    found = []
    root = str(execution_dir.resolve())
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                real = int(next(line for line in f if line.startswith("Uid:")).split()[1])
            cwd = os.readlink(f"/proc/{name}/cwd")
        except (OSError, StopIteration, ValueError):
            continue
        if real == uid or cwd.startswith(root):
            found.append(int(name))
    return found


def job_uid(result: RunResult) -> int | None:
    """The uid a script printed as ``uid=<n>`` on its first line (a job uid when root)."""
    first = result.stdout.split("\n", 1)[0]
    if not first.startswith("uid="):
        raise AssertionError(f"script did not report its uid: {result.stdout[:200]!r}")
    uid = int(first[4:])
    return uid if UID_BASE <= uid < UID_BASE + UID_COUNT else None


PRINT_UID = "import os as _os\nprint(f'uid={_os.getuid()}', flush=True)\n"


class Runs:
    """Runs scripts through one executor, with generated input files."""

    def __init__(self, executor: SubprocessExecutor, tmp: Path) -> None:
        self.executor = executor
        self.tmp = tmp
        self.last_output_dir = tmp

    def file(self, name: str, data: bytes) -> InputFile:
        path = self.tmp / "inputs" / uuid.uuid4().hex
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return InputFile(name=name, path=path, size=len(data))

    def run(self, code: str, *inputs: InputFile, **limits: object) -> RunResult:
        out = self.tmp / "out" / uuid.uuid4().hex
        out.mkdir(parents=True)
        self.last_output_dir = out
        request = RunRequest(
            job_id=uuid.uuid4().hex,
            code=code,
            inputs=inputs,
            output_dir=out,
            limits=RunLimits(**{"timeout_s": 20.0, **limits}),  # type: ignore[arg-type]
        )
        return self.executor.run(request)

    @property
    def isolation(self) -> tuple[str, ...]:
        return self.executor.isolation()


def make_runs(tmp: Path, runner: Path, **executor_kwargs: object) -> Iterator[Runs]:
    """Runs through a fresh executor; ``sandbox="none"`` opts in to the weak sandbox."""
    settings = Settings(
        local_runner_dir=runner,
        execution_dir=tmp / "exec",
        allow_weak_sandbox=executor_kwargs.get("sandbox") == "none",
    )
    executor = SubprocessExecutor(settings, **executor_kwargs)  # type: ignore[arg-type]
    yield Runs(executor, tmp)
    executor.close()
    leftovers = list(settings.execution_dir.iterdir()) if settings.execution_dir.exists() else []
    assert leftovers == [], f"job dirs left behind: {leftovers}"
    assert sandbox_processes(settings.execution_dir) == []


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[Runs]:
    yield from make_runs(tmp_path, runner_dir())


# --------------------------------------------------------------------------- ordinary work


def test_trivial_print(runs: Runs) -> None:
    result = runs.run("print('hello from the sandbox')")
    assert result.success, result
    assert result.engine == "subprocess"
    assert result.stdout == "hello from the sandbox\n"
    assert result.wall_s >= result.duration_s > 0
    assert "rlimits" in result.isolation


def test_pandas_on_nested_csv_inputs_and_artifacts(runs: Runs) -> None:
    csv = b"region,amount\nnorth,10\nsouth,32\nnorth,5\n"
    code = (
        "import os, pandas as pd\n"
        "df = pd.read_csv('data/in/sales.csv')\n"
        "print(df.groupby('region')['amount'].sum().to_dict())\n"
        "print(open('notes/readme.txt').read())\n"
        "os.makedirs('out', exist_ok=True)\n"
        "df.describe().to_csv('out/summary.csv')\n"
    )
    result = runs.run(
        code, runs.file("data/in/sales.csv", csv), runs.file("notes/readme.txt", b"nested ok")
    )
    assert result.success, result.stderr
    assert "{'north': 15, 'south': 32}" in result.stdout
    assert "nested ok" in result.stdout
    names = {a.name for a in result.artifacts}
    assert names == {"out/summary.csv"}  # inputs are not artifacts
    summary = next(a for a in result.artifacts if a.name == "out/summary.csv")
    assert summary.path == runs.last_output_dir / "out" / "summary.csv"
    assert summary.path.read_bytes().startswith(b",amount")
    assert summary.size == summary.path.stat().st_size


def test_import_pandas_and_numpy_fit_the_default_memory_limit(runs: Runs) -> None:
    assert RunLimits().memory_bytes == 512 * 1024 * 1024
    result = runs.run("import numpy, pandas\nprint(numpy.ones(1000).sum())")
    assert result.success, result.stderr
    assert result.stdout.strip() == "1000.0"


def test_heavy_data_stack_fits_the_default_memory_limit(runs: Runs) -> None:
    """Address-space hungry imports (two OpenBLAS copies, pyarrow's allocator) still work
    under the default 512 MB (RLIMIT_AS gets headroom for mappings that are never resident)."""
    wanted = ["scipy.stats", "statsmodels.api", "sklearn.linear_model", "pyarrow.parquet"]
    present = [m for m in wanted if runner_has(m)]
    if len(present) < 2:
        subprocess_engine_missing(f"runner lacks most of {wanted}")
    code = (
        "import pandas as pd\n"
        + "".join(f"import {m}\n" for m in present)
        + (
            "s = pd.Series(['a', 'b']).str.upper()\n"
            "print(len(s))\n"
            "print([l for l in open('/proc/self/status') if l.startswith('VmPeak')][0].split()[1])\n"
        )
    )
    result = runs.run(code)
    assert result.success, result.stderr
    assert result.stdout.splitlines()[0] == "2"
    assert int(result.stdout.splitlines()[1]) > 0


def test_png_artifact_via_matplotlib(runs: Runs) -> None:
    if not runner_has("matplotlib"):
        subprocess_engine_missing("matplotlib is not installed in the runner venv")
    code = (
        "import glob, os\n"
        "seeded = glob.glob(os.environ['MPLCONFIGDIR'] + '/fontlist-*.json')\n"
        "stamp = os.stat(seeded[0]).st_mtime_ns if seeded else None\n"
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3], [3, 1, 2])\n"
        "plt.savefig('plot.png')\n"
        "print('seeded' if seeded and os.stat(seeded[0]).st_mtime_ns == stamp else 'rescanned')\n"
    )
    result = runs.run(code)
    assert result.success, result.stderr
    assert result.stdout == "seeded\n"  # the prebuilt font cache was used, not rebuilt
    (png,) = result.artifacts
    assert png.name == "plot.png"
    assert png.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_script_failure_is_a_result(runs: Runs) -> None:
    result = runs.run("raise ValueError('nope')")
    assert not result.success
    assert result.exit_code == 1
    assert "ValueError: nope" in result.stderr


# --------------------------------------------------------------------------- hostile scripts


def test_infinite_loop_times_out_and_leaves_no_process(runs: Runs, tmp_path: Path) -> None:
    code = PRINT_UID + (
        "import subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-c', 'while True: pass'], start_new_session=True)\n"
        "print('looping', flush=True)\n"
        "while True:\n"
        "    pass\n"
    )
    result = runs.run(code, timeout_s=1.5)
    assert result.timed_out
    assert not result.success
    assert "looping" in result.stdout
    assert result.wall_s < 10
    assert sandbox_processes(tmp_path / "exec", job_uid(result)) == []


def test_memory_bomb_fails_cleanly(runs: Runs) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code = PRINT_UID + "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))\n"
    result = runs.run(code, memory_bytes=256 * 1024 * 1024)
    assert not result.success
    assert "MemoryError" in result.stderr or result.exit_code == -9, result
    assert sandbox_processes(runs.tmp / "exec", job_uid(result)) == []
    # The gateway's own memory did not grow with the script's.
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert after - before < 100 * 1024  # KiB
    assert runs.run("print('still fine')").stdout == "still fine\n"


def test_fork_bomb_is_contained(runs: Runs, tmp_path: Path) -> None:
    code = PRINT_UID + (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    result = runs.run(code, timeout_s=3.0, pids=64)
    assert result.timed_out
    assert result.wall_s < 20
    assert sandbox_processes(tmp_path / "exec", job_uid(result)) == []
    assert runs.run("print('after the bomb')").stdout == "after the bomb\n"


def test_fork_limit_is_enforced(runs: Runs) -> None:
    code = (
        "import os, time\n"
        "kids = 0\n"
        "try:\n"
        "    for _ in range(200):\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(30)\n"
        "            os._exit(0)\n"
        "        kids += 1\n"
        "except OSError as exc:\n"
        "    print('refused after', kids, type(exc).__name__)\n"
    )
    result = runs.run(code, pids=20, timeout_s=10.0)
    assert "refused after" in result.stdout, result
    assert int(result.stdout.split()[2]) < 20


def test_output_flood_is_truncated(runs: Runs) -> None:
    code = "import sys\nfor _ in range(200):\n    sys.stdout.write('x' * 65536)\n"
    result = runs.run(code, max_output_bytes=100_000)
    assert result.success, result.stderr
    assert result.stdout_truncated
    assert len(result.stdout) == 100_000


def test_huge_file_write_hits_the_file_size_limit(runs: Runs) -> None:
    code = "with open('big.bin', 'wb') as f:\n    f.write(b'0' * (8 * 1024 * 1024))\n"
    result = runs.run(code, fsize_bytes=1024 * 1024)
    assert not result.success
    assert "File too large" in result.stderr or "file size limit" in (result.error or ""), result
    assert all(a.size <= 1024 * 1024 for a in result.artifacts)


def test_work_dir_is_capped_and_off_the_host_disk(runs: Runs) -> None:
    if not runs.executor.isolation_info().sized_tmpfs:
        subprocess_engine_missing(
            f"no size-capped tmpfs here: {runs.executor.isolation_info().detail}"
        )
    code = (
        "import os\n"
        "try:\n"
        "    for i in range(10):\n"
        "        with open(f'chunk{i}.bin', 'wb') as f:\n"
        "            f.write(b'0' * (4 * 1024 * 1024))\n"
        "except OSError as exc:\n"
        "    print('stopped at', i, exc.strerror)\n"
        "    os.remove(f'chunk{i}.bin')\n"
    )
    result = runs.run(code, workdir_bytes=10 * 1024 * 1024)
    assert result.success, result.stderr
    assert result.stdout == "stopped at 2 No space left on device\n"
    assert [a.name for a in result.artifacts] == ["chunk0.bin", "chunk1.bin"]


def test_network_is_unreachable(runs: Runs) -> None:
    if "netns" not in runs.isolation:
        subprocess_engine_missing(
            f"no network namespace here: {runs.executor.isolation_info().detail}"
        )
    # A server the gateway can reach on loopback; the sandbox has its own, empty loopback.
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted: list[object] = []
    thread = threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True)
    thread.start()
    code = (
        "import socket\n"
        f"for host, port in [('127.0.0.1', {port}), ('1.1.1.1', 80), ('pypi.org', 443)]:\n"
        "    try:\n"
        "        socket.create_connection((host, port), timeout=3).close()\n"
        "        print('CONNECTED', host)\n"
        "    except OSError as exc:\n"
        "        print('refused', host, type(exc).__name__)\n"
    )
    try:
        result = runs.run(code)
    finally:
        server.close()
    assert result.success, result.stderr
    assert "CONNECTED" not in result.stdout
    assert result.stdout.count("refused") == 3
    assert accepted == []


def test_host_files_are_out_of_sight(runs: Runs) -> None:
    if "mountns" not in runs.isolation:
        subprocess_engine_missing(
            f"no mount namespace here: {runs.executor.isolation_info().detail}"
        )
    secret_paths = ["/etc/shadow", str(REPO / "pyproject.toml"), "/root/.bashrc"]
    code = (
        "import os\n"
        f"for p in {secret_paths!r}:\n"
        "    try:\n"
        "        open(p).read()\n"
        "        print('READ', p)\n"
        "    except OSError as exc:\n"
        "        print('denied', p, type(exc).__name__)\n"
        "print(sorted(os.listdir('/home')))\n"
    )
    result = runs.run(code)
    assert result.success, result.stderr
    assert "READ" not in result.stdout
    assert result.stdout.count("denied") == 3
    assert result.stdout.strip().splitlines()[-1] == "['sandbox']"


def test_environment_is_scrubbed(runs: Runs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHON_CODE_LLM_API_KEY", "sekrit")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sekrit-too")
    code = (
        "import os\n"
        "print(sorted(os.environ))\n"
        "for pid in os.listdir('/proc'):\n"
        "    try:\n"
        "        data = open(f'/proc/{pid}/environ', 'rb').read()\n"
        "    except OSError:\n"
        "        continue\n"
        "    if b'sekrit' in data:\n"
        "        print('LEAK in', pid)\n"
    )
    result = runs.run(code)
    assert result.success, result.stderr
    assert "sekrit" not in result.stdout and "LEAK" not in result.stdout
    names = ast.literal_eval(result.stdout.splitlines()[0])
    assert not [n for n in names if n.startswith("PYTHON_CODE_") or n.startswith("AWS")]
    assert {"PATH", "HOME", "LANG", "MPLBACKEND", "MPLCONFIGDIR", "TMPDIR"} <= set(names)


def test_home_and_tmp_are_private_and_writable(runs: Runs) -> None:
    code = (
        "import os, tempfile\n"
        "with tempfile.NamedTemporaryFile(delete=False) as f:\n"
        "    f.write(b'x')\n"
        "open(os.path.expanduser('~/cache.txt'), 'w').write('x')\n"
        "os.makedirs(os.environ['MPLCONFIGDIR'], exist_ok=True)\n"
        "print('ok')\n"
    )
    result = runs.run(code)
    assert result.success, result.stderr
    assert result.artifacts == ()  # home and tmp files are not artifacts


def test_job_dirs_are_removed_even_when_the_script_locks_them(plain_runs: Runs) -> None:
    """Without bwrap the work dir is on disk (under bwrap it is a tmpfs that just vanishes)."""
    code = (
        "import os\n"
        "os.makedirs('locked/inner')\n"
        "open('locked/inner/f', 'w').write('x')\n"
        "os.chmod('locked/inner', 0)\n"
        "os.chmod('locked', 0)\n"
    )
    result = plain_runs.run(code)
    assert result.success, result.stderr
    assert list((plain_runs.tmp / "exec").iterdir()) == []


def test_concurrent_runs_get_distinct_sandboxes(runs: Runs) -> None:
    results: list[RunResult] = []
    code = "import os, time\ntime.sleep(0.5)\nprint(os.getuid())\nopen('mine.txt', 'w').write('x')"
    threads = [threading.Thread(target=lambda: results.append(runs.run(code))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.success for r in results), [r.stderr for r in results]
    assert all(len(r.artifacts) == 1 for r in results)
    if IS_ROOT and "userns" not in runs.isolation:
        assert len({r.stdout for r in results}) == 3  # one uid per concurrent job


# --------------------------------------------------------------------------- setup problems


def test_missing_runner_names_the_build_command(tmp_path: Path) -> None:
    settings = Settings(local_runner_dir=tmp_path / "nope", execution_dir=tmp_path / "exec")
    executor = SubprocessExecutor(settings)
    readiness = executor.readiness()
    assert not readiness.ready
    assert BUILD_COMMAND in readiness.detail
    with pytest.raises(EngineUnavailable, match="build-runner --local"):
        executor.run(RunRequest(job_id="x", code="print(1)", inputs=(), output_dir=tmp_path))


def test_a_sandbox_without_namespaces_is_refused_without_the_opt_in(tmp_path: Path) -> None:
    settings = Settings(local_runner_dir=runner_dir(), execution_dir=tmp_path / "exec")
    executor = SubprocessExecutor(settings, sandbox="none")
    readiness = executor.readiness()
    assert not readiness.ready
    assert "PYTHON_CODE_ALLOW_WEAK_SANDBOX=true" in readiness.detail
    request = RunRequest(job_id="weak", code="print(1)", inputs=(), output_dir=tmp_path)
    with pytest.raises(EngineUnavailable, match="PYTHON_CODE_ALLOW_WEAK_SANDBOX"):
        executor.run(request)
    assert not settings.execution_dir.exists()  # refused before anything was made


def test_readiness_reports_isolation(runs: Runs) -> None:
    readiness = runs.executor.readiness()
    assert readiness.ready, readiness.detail
    assert readiness.checks["isolation"] == list(runs.isolation)
    if IS_ROOT:
        assert "uid" in runs.isolation  # never run user code as root


# --------------------------------------------------------------------------- other host setups


@pytest.fixture(scope="module")
def shared_tmp() -> Iterator[Path]:
    """A dir other uids can traverse (pytest's tmp dirs are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="pyc-test-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def system_venv(shared_tmp: Path) -> Path:
    """A stdlib-only runner from the system Python, usable by any uid (the harness needs
    nothing else)."""
    if not SYSTEM_PYTHON.exists():
        pytest.skip("no /usr/bin/python3")
    venv = shared_tmp / "sysvenv"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", venv], check=True)
    return venv


@pytest.fixture
def plain_runs(shared_tmp: Path, system_venv: Path) -> Iterator[Runs]:
    tmp = shared_tmp / uuid.uuid4().hex
    tmp.mkdir(mode=0o711)
    tmp.chmod(0o711)
    yield from make_runs(tmp, system_venv, sandbox="none")


def test_without_bwrap_rlimits_and_uid_still_contain_a_fork_bomb(plain_runs: Runs) -> None:
    assert "netns" not in plain_runs.isolation
    expected = ("rlimits", "uid") if IS_ROOT else ("rlimits",)
    assert tuple(x for x in plain_runs.isolation if x != "cgroup") == expected
    assert plain_runs.run("print('plain')").stdout == "plain\n"
    bomb = PRINT_UID + (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    result = plain_runs.run(bomb, timeout_s=2.0, pids=64)
    assert result.timed_out
    assert sandbox_processes(plain_runs.tmp / "exec", job_uid(result)) == []


def test_backstop_kills_a_harness_the_script_stopped(shared_tmp: Path, system_venv: Path) -> None:
    """Without a pid namespace the script can SIGSTOP its harness (same uid): the outer
    deadline still ends the run and every process of the job goes."""
    tmp = shared_tmp / uuid.uuid4().hex
    tmp.mkdir(mode=0o711)
    tmp.chmod(0o711)
    for runs in make_runs(tmp, system_venv, sandbox="none", outer_grace_s=2.0):
        code = "import os, signal, time\nos.kill(os.getppid(), signal.SIGSTOP)\ntime.sleep(60)\n"
        result = runs.run(code, timeout_s=1.0)
        assert result.timed_out
        assert result.error is not None and "was killed" in result.error
        assert 3.0 <= result.wall_s < 10
        # make_runs then checks that no process is left with its cwd in a job dir.


def test_multiprocessing_works_in_the_sandbox(runs: Runs) -> None:
    code = (
        "import multiprocessing as mp\n"
        "if __name__ == '__main__':\n"
        "    with mp.Pool(2) as pool:\n"
        "        print(pool.map(abs, [-1, -2, -3]))\n"
    )
    result = runs.run(code)
    assert result.success, result.stderr
    assert result.stdout == "[1, 2, 3]\n"


def test_without_bwrap_a_runner_under_root_is_refused(tmp_path: Path) -> None:
    dev = Path(sys.prefix)
    if not IS_ROOT or not str(Path(sys.base_prefix).resolve()).startswith("/root/"):
        pytest.skip("needs a root gateway and a runner whose base Python lives under /root")
    settings = Settings(
        local_runner_dir=dev, execution_dir=tmp_path / "exec", allow_weak_sandbox=True
    )
    readiness = SubprocessExecutor(settings, sandbox="none").readiness()
    assert not readiness.ready
    assert "unprivileged sandbox uid" in readiness.detail


_UNPRIVILEGED_GATEWAY = """
import json, sys, uuid
from pathlib import Path
from service.executors.base import RunLimits, RunRequest
from service.executors.local.executor import SubprocessExecutor
from service.settings import Settings
venv, work, sandbox = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
settings = Settings(
    local_runner_dir=venv, execution_dir=work / "exec", allow_weak_sandbox=sandbox == "none"
)
ex = SubprocessExecutor(settings, sandbox=sandbox)
bomb = "import os\\nwhile True:\\n    try:\\n        os.fork()\\n    except OSError:\\n        pass\\n"
out = []
for code, timeout in [("import os; print(os.getuid())", 10.0), (bomb, 2.0)]:
    r = ex.run(RunRequest(job_id=uuid.uuid4().hex, code=code, inputs=(), output_dir=work,
                          limits=RunLimits(timeout_s=timeout, pids=64)))
    out.append({"stdout": r.stdout, "timed_out": r.timed_out, "isolation": r.isolation})
print(json.dumps(out))
"""


@pytest.mark.parametrize("sandbox", ["auto", "none"])
def test_unprivileged_gateway_contains_a_fork_bomb(
    shared_tmp: Path, system_venv: Path, sandbox: str
) -> None:
    """The gateway as an ordinary user: nproc counts the user's tasks, bwrap adds a userns."""
    if not IS_ROOT:
        pytest.skip("needs root to become an ordinary user for the test")
    site = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
    )
    if probe.stdout.strip() != str(tuple(sys.version_info[:2])):
        pytest.skip("system Python differs from the dev venv's; cannot reuse its packages")
    work = shared_tmp / f"unpriv-{sandbox}"
    work.mkdir()
    os.chown(work, 65534, 65534)
    seed_cache = Path(tempfile.gettempdir()) / "python-coder-mplseed-65534"
    had_seed_cache = seed_cache.exists()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(work),
        "PYTHONPATH": f"{REPO}:{site / 'site-packages'}",
    }
    out = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            str(SYSTEM_PYTHON),
            "-c",
            _UNPRIVILEGED_GATEWAY,
            str(system_venv),
            str(work),
            sandbox,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=work,
    )
    if not had_seed_cache:
        shutil.rmtree(seed_cache, ignore_errors=True)
    if "Permission denied" in out.stderr and "site-packages" in out.stderr:
        pytest.skip("dev venv packages are not readable by nobody")
    assert out.returncode == 0, out.stderr[-3000:]

    trivial, bomb = json.loads(out.stdout.strip().splitlines()[-1])
    assert "uid" not in trivial["isolation"]
    assert "cgroup" not in trivial["isolation"]  # nobody cannot make cgroups: runs without
    assert ("userns" in trivial["isolation"]) == (sandbox == "auto")
    if sandbox == "none":
        assert trivial["stdout"].strip() == "65534"
    assert bomb["timed_out"]
    assert list((work / "exec").iterdir()) == []
    assert live_processes_of(65534) == []


def live_processes_of(uid: int, settle_s: float = 5.0) -> list[str]:
    """Processes of ``uid`` still alive after up to ``settle_s`` (a killed pid namespace's
    zombies wait for their reaper outside it; they run nothing and are not counted)."""
    deadline = time.monotonic() + settle_s
    while True:
        out = subprocess.run(
            ["ps", "-u", str(uid), "-o", "pid=,stat="], capture_output=True, text=True
        ).stdout
        live = [line.split()[0] for line in out.splitlines() if "Z" not in line.split()[1]]
        if not live or time.monotonic() > deadline:
            return live
        time.sleep(0.1)
