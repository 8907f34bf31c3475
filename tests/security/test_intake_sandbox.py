"""The intake workers' sandbox: what a parser exploited by a hostile upload could reach.

No backdoor in the worker: ``intake_probe/intake_probe.py`` plays the exploited parser and is
started through ``WorkerSandbox.command``, the same function (same confinement, same
environment, same binds) that starts every ``files.worker``. Each test runs in both modes the
host can give: ``bwrap`` (dev and CI hosts) and ``confined`` (the compose gateway container,
no bubblewrap). The gateway's stand-ins: a secret in this process's environment, a unix socket
it can reach (the Docker socket), and a 0600 file beside the job (its ``.env``).
"""

from __future__ import annotations

import ctypes
import gzip
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from files import FileIntake, IntakeLimits
from files.archives import ArchiveReport, ExtractionBudget, MemberWriter
from files.errors import ArchiveRejected, FileTooLarge
from files.sandbox import SANDBOX_ROOT, WorkerSandbox, detect, worker_sandbox
from files.worker import WorkerPool, shutdown_workers
from tests.conftest import intake_bwrap_missing

PROBE_DIR = Path(__file__).resolve().parent / "intake_probe"
SECRET = "sk-gateway-secret-4d1c9e"
MEMORY = 512 * 2**20
EAFNOSUPPORT = "errno 97"


@pytest.fixture(params=["bwrap", "confined"])
def sandbox(request: pytest.FixtureRequest) -> WorkerSandbox:
    if request.param == "bwrap":
        found = detect("auto")
        if found.mode != "bwrap":
            intake_bwrap_missing(f"no bubblewrap sandbox for intake workers: {found.detail}")
        return found
    found = detect("confined")
    assert found.mode == "confined", found.detail  # x86_64: the no-socket filter applies
    return found


@pytest.fixture
def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A secret in the environment, a reachable unix socket and a private file."""
    monkeypatch.setenv("PYTHON_CODE_LLM_API_KEY", SECRET)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"PYTHON_CODE_LLM_API_KEY={SECRET}\n")
    dotenv.chmod(0o600)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(tmp_path / "docker.sock"))
    server.listen(4)
    os.chmod(tmp_path / "docker.sock", 0o660)
    server.setblocking(False)
    try:
        yield {"socket": server, "docker_socket": str(tmp_path / "docker.sock"), "dotenv": dotenv}
    finally:
        server.close()


def probe(sandbox: WorkerSandbox, spec: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    spec = {"secret": SECRET, "gateway_pid": os.getpid(), "files": [], **spec}
    argv, env = sandbox.command(
        "intake_probe", str(MEMORY), json.dumps(spec), extra_paths=(PROBE_DIR,)
    )
    out = subprocess.run(argv, env=env, capture_output=True, timeout=timeout, cwd="/")
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_the_worker_command_is_the_probed_command(sandbox: WorkerSandbox) -> None:
    """The pool builds its workers with the same function the probes go through."""
    worker_argv, worker_env = sandbox.command("files.worker", str(MEMORY))
    probe_argv, probe_env = sandbox.command("p", str(MEMORY), extra_paths=(PROBE_DIR,))
    assert worker_argv[-2:] == ["files.worker", str(MEMORY)] and worker_env == probe_env
    boot = worker_argv.index("-c")
    assert "files.confine" in worker_argv[boot + 1]
    if sandbox.mode == "bwrap":  # the probe's folder is one more read-only bind
        at = probe_argv.index(str(PROBE_DIR))
        assert probe_argv[at - 1 : at + 2] == [
            "--ro-bind",
            str(PROBE_DIR),
            f"{SANDBOX_ROOT}/extra0",
        ]
        del probe_argv[at - 1 : at + 2]
    assert probe_argv[:boot] == worker_argv[:boot]
    assert WorkerPool(MEMORY).sandbox == worker_sandbox()
    assert worker_sandbox().ok, worker_sandbox().detail


def test_no_network_and_no_socket_at_all(sandbox: WorkerSandbox, gateway: dict) -> None:
    found = probe(sandbox, {"docker_socket": gateway["docker_socket"]})
    for family in ("inet", "inet6", "unix", "netlink", "packet"):
        assert found["sockets"][family] == EAFNOSUPPORT, (family, found["sockets"])
    assert found["socketpair"].startswith("errno"), found["socketpair"]
    assert found["status"]["Seccomp"] == "2" and found["status"]["NoNewPrivs"] == "1"


def test_cannot_reach_a_docker_like_socket(sandbox: WorkerSandbox, gateway: dict) -> None:
    found = probe(sandbox, {"docker_socket": gateway["docker_socket"]})
    assert not found["docker_socket"]["connect"].startswith("ok"), found["docker_socket"]
    with pytest.raises(BlockingIOError):
        gateway["socket"].accept()  # nobody knocked
    if sandbox.mode == "bwrap":  # not even visible
        assert found["docker_socket"]["stat"] == "errno 2", found["docker_socket"]
    # The standard streams and the probe's own listing: no descriptor of the gateway leaks in.
    fds = found["fds"]
    assert fds, found
    assert [int(n) for n in sorted(fds, key=int)[:3]] == [0, 1, 2], fds
    others = {n: target for n, target in fds.items() if int(n) > 2}
    assert all("socket" not in t and "docker" not in t for t in others.values()), fds
    assert len(others) <= 1, fds


def test_no_gateway_secret_in_the_environment(sandbox: WorkerSandbox, gateway: dict) -> None:
    assert os.environ["PYTHON_CODE_LLM_API_KEY"] == SECRET
    found = probe(sandbox, {"docker_socket": gateway["docker_socket"]})
    assert found["secret_in_environ"] is False
    assert not found["proc_environ"].endswith("True"), found["proc_environ"]
    assert not any(k.startswith(("PYTHON_CODE", "DOCKER", "OPENAI")) for k in found["env_keys"])
    assert set(found["env_keys"]) <= {
        "PWD", "PATH", "LANG", "HOME", "TMPDIR", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
        "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "MALLOC_ARENA_MAX", "ARROW_DEFAULT_MEMORY_POOL",
    }  # fmt: skip
    assert found["dumpable"] == 0


def test_gateway_process_is_out_of_reach(sandbox: WorkerSandbox, gateway: dict) -> None:
    found = probe(sandbox, {"docker_socket": gateway["docker_socket"]})
    if sandbox.mode == "confined" and found["euid"] == 0 and "landlock" not in sandbox.labels:
        pytest.skip("a root worker (this host's interpreter is unreadable to other uids)")
    # bwrap: another pid namespace; confined: the gateway is non-dumpable (files.sandbox
    # makes it so when it picks this mode), so its /proc entries are root's; and Landlock
    # leaves the worker no /proc entry but its own.
    if sandbox.mode == "confined":
        from files.sandbox import protect_gateway

        protect_gateway()
        try:
            found = probe(sandbox, {"docker_socket": gateway["docker_socket"]})
        finally:  # the rest of the suite runs in this process
            ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE
    assert not found["gateway_environ"].startswith("ok"), found["gateway_environ"]
    assert not found["gateway_mem"].startswith("ok"), found["gateway_mem"]


def test_cannot_read_gateway_files(sandbox: WorkerSandbox, gateway: dict, tmp_path: Path) -> None:
    repo_env = Path(__file__).resolve().parents[2] / ".env"
    other_job = tmp_path / "other-job" / "input" / "upload.csv"
    other_job.parent.mkdir(parents=True)
    other_job.write_text("someone else's data\n")
    files = [str(gateway["dotenv"]), str(repo_env), str(other_job), "/etc/shadow"]
    found = probe(sandbox, {"docker_socket": gateway["docker_socket"], "files": files})
    if sandbox.mode == "bwrap" or "landlock" in sandbox.labels:
        for path in files:
            assert not found["files"][path].startswith("ok"), (path, found["files"][path])
    else:  # the documented gap of a kernel without Landlock: the gateway's uid reads its files
        assert "no Landlock" in sandbox.detail


def test_cannot_signal_the_gateway(sandbox: WorkerSandbox, gateway: dict) -> None:
    found = probe(sandbox, {"docker_socket": gateway["docker_socket"]})
    if sandbox.mode == "bwrap" or "landlock-signals" in sandbox.labels:
        assert not found["signal_gateway"].startswith("ok"), found["signal_gateway"]
    else:
        pytest.skip(f"a same-uid worker without Landlock ABI 6 can signal: {sandbox.detail}")


def test_memory_cap_applies_before_the_parser_runs(sandbox: WorkerSandbox, gateway: dict) -> None:
    found = probe(sandbox, {"docker_socket": gateway["docker_socket"], "allocate_mb": 1024})
    assert found["allocate"] == "MemoryError"


def test_pool_workers_run_confined(sandbox: WorkerSandbox, tmp_path: Path) -> None:
    text = tmp_path / "a.txt"
    text.write_text("one\ntwo\n")
    pool = WorkerPool(MEMORY, max_workers=1, sandbox=sandbox)
    try:
        job = {"path": str(text), "kind": "text", "fmt": "text", "extension": ".txt"}
        assert pool.run(job, 30)["line_count"] == 2
        (pid,) = pool.worker_pids()
        statuses = [_status(p) for p in [pid, *_descendants(pid)]]
        python = [s for s in statuses if s.get("Name", "").startswith("python")]
        assert python, statuses
        assert all(s["Seccomp"] == "2" and s["NoNewPrivs"] == "1" for s in python), python
    finally:
        pool.close()
    assert not _alive(pid)


def test_extraction_overrun_is_killed_and_reported(job_dir: Path) -> None:
    data = gzip.compress(b"\0" * (64 * 2**20), compresslevel=1)
    limits = IntakeLimits(extraction_timeout_s=0.001, max_compression_ratio=1e9)
    intake = FileIntake(job_dir, limits)
    intake.add_stream("zeros.txt.gz", iter([data]))  # a supported member: decompressed
    start = time.monotonic()
    with pytest.raises(ArchiveRejected, match=r"timed out after 0\.001 s \(worker killed\)"):
        intake.finish()
    assert time.monotonic() - start < 10
    assert sorted(p.name for p in job_dir.iterdir()) == ["zeros.txt.gz"]


def test_gateway_distrusts_what_an_extractor_streams(tmp_path: Path) -> None:
    """A worker that lies about member names or sizes writes nothing outside its budget."""
    budget = ExtractionBudget(max_bytes=10, max_members=2, max_ratio=100)
    report = ArchiveReport("a.zip")
    writer = MemberWriter("a.zip", budget, lambda m: tmp_path / m, report)
    with pytest.raises(ArchiveRejected, match="escapes"):
        writer.begin("../outside.csv")
    with pytest.raises(ArchiveRejected, match="unexpected member name"):
        writer.begin("a//b.csv")
    writer.begin("ok.csv")
    writer.write(b"0123456789")
    with pytest.raises(FileTooLarge):
        writer.write(b"x")
    writer.end()
    report.cleanup()
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    d = tmp_path / "job" / "input"
    d.mkdir(parents=True)
    return d


def _status(pid: int) -> dict[str, str]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                out.append(child)
                todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(")")[-1].split()[0] != "Z"


@pytest.fixture(autouse=True, scope="module")
def _stop_workers() -> Iterator[None]:
    yield
    shutdown_workers()


def test_tar_members_named_like_descriptors_extract(job_dir: Path) -> None:
    """The worker reads its archive as /proc/self/fd/N: tarfile's filter must not resolve a
    member called "1" against the worker's own descriptors."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name in ("0", "1", "2", "3.csv"):
            info = tarfile.TarInfo(name)
            info.size = 4
            tf.addfile(info, io.BytesIO(b"a,b\n"))
    intake = FileIntake(job_dir)
    intake.add_stream("fds.tar", iter([buf.getvalue()]))
    result = intake.finish()
    assert "fds/3.csv" in result.metadata


def test_a_checkout_under_tmp_is_not_hidden_by_the_workers_tmp() -> None:
    """CI clones under /tmp: the worker's own /tmp goes first, the binds land on top of it."""
    sandbox = detect("auto")
    if sandbox.mode != "bwrap" or not sandbox.sized_tmpfs:
        intake_bwrap_missing(f"no bubblewrap sandbox with a sized /tmp: {sandbox.detail}")
    argv, _env = sandbox.command("files.worker", str(MEMORY))
    tmpfs = next(i for i, a in enumerate(argv) if a == "--tmpfs" and argv[i + 1] == "/tmp")
    prefixes = {os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)}
    ours = [
        i
        for i, a in enumerate(argv[:-2])
        if a in ("--ro-bind", "--bind")
        and (argv[i + 2] in prefixes or argv[i + 2].startswith(SANDBOX_ROOT))
    ]
    assert ours and tmpfs < min(ours), argv
