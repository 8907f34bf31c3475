"""DockerExecutor against the real engine and the runner image (``python-coder build-runner``).

Every test checks afterwards that no container with our label is left behind.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import struct
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import docker
import pytest

from runner_image.protocol import ProtocolError
from service.errors import EngineUnavailable, RunnerImageMissing
from service.executors.base import CONTAINER_LABEL, JOB_LABEL, RunRequest
from service.executors.docker import executor as docker_module
from service.executors.docker.executor import DockerExecutor
from service.executors.docker.orphans import remove_orphans
from service.executors.results import safe_artifact_path
from service.settings import Settings, get_settings
from tests.conftest import docker_problem
from tests.executors.conftest import MakeRequest

MB = 1024 * 1024


@pytest.fixture(scope="module")
def executor() -> Iterator[DockerExecutor]:
    ex = DockerExecutor(get_settings())
    yield ex
    ex.close()


def containers_of(job_ids: list[str]) -> list[str]:
    """Containers (any state) started for these jobs; other suites may run beside us."""
    client = docker.APIClient(version="1.41")
    try:
        listed = client.containers(all=True, filters={"label": CONTAINER_LABEL})
    finally:
        client.close()
    return [c["Names"][0] for c in listed if (c.get("Labels") or {}).get(JOB_LABEL) in job_ids]


@pytest.fixture(autouse=True)
def no_leftover_containers(make_request: MakeRequest) -> Iterator[None]:
    yield
    if docker_problem() is not None:
        return
    left = containers_of(make_request.job_ids)
    assert not left, f"containers left behind: {left}"


@pytest.mark.docker
def test_trivial_print(executor: DockerExecutor, make_request: MakeRequest) -> None:
    result = executor.run(make_request("print('hello from the sandbox')"))
    assert result.success, result
    assert result.engine == "docker"
    assert result.stdout == "hello from the sandbox\n" and result.stderr == ""
    assert result.error is None and result.artifacts == ()
    assert 0 < result.duration_s < result.wall_s
    assert "network:none" in result.isolation and "non-root" in result.isolation


@pytest.mark.docker
def test_pandas_groupby_on_an_uploaded_csv(
    executor: DockerExecutor, make_request: MakeRequest, csv_bytes: object
) -> None:
    code = (
        "import pandas as pd\n"
        "df = pd.read_csv('sales.csv')\n"
        "totals = df.groupby('region')['amount'].sum().sort_index()\n"
        "print(totals.to_json())\n"
        "totals.to_csv('totals.csv')\n"
    )
    body = csv_bytes(30)  # type: ignore[operator]
    result = executor.run(make_request(code, {"sales.csv": body}))
    assert result.success, result.stderr
    # the same computation on the host, with the standard library
    expected: dict[str, int] = {}
    for line in body.decode().splitlines()[1:]:
        region, _, amount = line.split(",")
        expected[region] = expected.get(region, 0) + int(amount)
    assert json.loads(result.stdout) == dict(sorted(expected.items()))
    (artifact,) = result.artifacts
    assert artifact.name == "totals.csv"
    assert artifact.path.read_text().splitlines()[0] == "region,amount"
    assert artifact.size == artifact.path.stat().st_size


@pytest.mark.docker
def test_input_in_a_subdirectory_and_nested_artifacts(
    executor: DockerExecutor, make_request: MakeRequest
) -> None:
    code = (
        "import os\n"
        "print(open('data/raw/a.txt').read())\n"
        "os.makedirs('out/deep', exist_ok=True)\n"
        "open('out/deep/b.txt', 'w').write('made inside')\n"
    )
    request = make_request(code, {"data/raw/a.txt": b"nested input"})
    result = executor.run(request)
    assert result.success, result.stderr
    assert result.stdout == "nested input\n"
    assert [a.name for a in result.artifacts] == ["out/deep/b.txt"]
    assert (request.output_dir / "out" / "deep" / "b.txt").read_text() == "made inside"


@pytest.mark.docker
def test_matplotlib_png_artifact(executor: DockerExecutor, make_request: MakeRequest) -> None:
    code = (
        "import matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots()\n"
        "ax.plot([1, 2, 3], [3, 1, 2])\n"
        "fig.savefig('plot.png')\n"
        "print(plt.get_backend())\n"
    )
    result = executor.run(make_request(code))
    assert result.success, result.stderr
    assert result.stdout.strip().lower() == "agg"
    (png,) = result.artifacts
    data = png.path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 100 and height > 100


@pytest.mark.docker
def test_infinite_loop_times_out_and_the_container_is_gone(
    executor: DockerExecutor, make_request: MakeRequest
) -> None:
    result = executor.run(
        make_request("print('spinning', flush=True)\nwhile True:\n    pass", timeout_s=2)
    )
    assert result.timed_out and not result.success
    assert result.error == "timed out after 2 s"
    assert result.stdout == "spinning\n"
    assert 2 <= result.duration_s < 4 and result.wall_s < 12


@pytest.mark.docker
def test_memory_bomb_is_oom_killed(executor: DockerExecutor, make_request: MakeRequest) -> None:
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))\n"
    result = executor.run(make_request(code, memory_bytes=256 * MB))
    assert result.oom_killed and not result.timed_out and not result.success
    assert result.error == "out of memory (limit 256 MB)"
    assert result.exit_code == -9


@pytest.mark.docker
def test_fork_bomb_is_contained(executor: DockerExecutor, make_request: MakeRequest) -> None:
    code = "import os\nwhile True:\n    os.fork()\n"
    result = executor.run(make_request(code, pids=64, timeout_s=5))
    assert not result.success
    assert result.timed_out or result.exit_code != 0
    after = executor.run(make_request("print('still here')"))
    assert after.success and after.stdout == "still here\n"


@pytest.mark.docker
def test_output_flood_is_truncated(executor: DockerExecutor, make_request: MakeRequest) -> None:
    code = "import sys\nfor i in range(200_000):\n    print('line', i, 'x' * 80)\nprint('tail', file=sys.stderr)"
    result = executor.run(make_request(code, max_output_bytes=100_000))
    assert result.success, result.stderr
    assert result.stdout_truncated and len(result.stdout) == 100_000
    assert result.stdout.startswith("line 0 ")
    assert result.stderr == "tail\n" and not result.stderr_truncated


@pytest.mark.docker
def test_huge_file_hits_the_file_size_limit(
    executor: DockerExecutor, make_request: MakeRequest
) -> None:
    code = (
        "with open('huge.bin', 'wb') as f:\n"
        "    for _ in range(100):\n"
        "        f.write(b'\\0' * (1024 * 1024))\n"
    )
    result = executor.run(make_request(code, fsize_bytes=20 * MB))
    assert result.exit_code == 1 and not result.oom_killed
    assert "OSError: [Errno 27] File too large" in result.stderr


@pytest.mark.docker
def test_full_work_dir_gives_no_space_left(
    executor: DockerExecutor, make_request: MakeRequest
) -> None:
    code = (
        "with open('huge.bin', 'wb') as f:\n"
        "    for _ in range(100):\n"
        "        f.write(b'\\0' * (1024 * 1024))\n"
    )
    result = executor.run(make_request(code, workdir_bytes=16 * MB, max_artifact_bytes=MB))
    assert result.exit_code == 1 and not result.oom_killed
    assert "No space left on device" in result.stderr
    assert [s.name for s in result.skipped] == ["huge.bin"]


@pytest.mark.docker
def test_network_is_unreachable(executor: DockerExecutor, make_request: MakeRequest) -> None:
    code = (
        "import socket\n"
        "for host in ('1.1.1.1', '172.17.0.1'):\n"
        "    try:\n"
        "        socket.create_connection((host, 80), timeout=3)\n"
        "        print(host, 'connected')\n"
        "    except OSError as e:\n"
        "        print(host, type(e).__name__)\n"
        # sysfs, not if_nameindex(): netlink sockets are refused by the seccomp profile
        "import os\n"
        "print(sorted(os.listdir('/sys/class/net')))\n"
    )
    result = executor.run(make_request(code))
    assert result.success, result.stderr
    assert "connected" not in result.stdout
    assert result.stdout.splitlines()[-1] == "['lo']"


@pytest.mark.docker
def test_privileged_files_are_unreadable(
    executor: DockerExecutor, make_request: MakeRequest
) -> None:
    code = (
        "import os\n"
        "print(os.getuid(), os.getgid())\n"
        "for path in ('/etc/shadow', '/proc/1/environ', '/proc/1/fd/1'):\n"
        "    try:\n"
        "        open(path, 'rb').read()\n"
        "        print(path, 'read')\n"
        "    except OSError as e:\n"
        "        print(path, type(e).__name__)\n"
        "try:\n"
        "    open('/opt/venv/evil', 'w')\n"
        "except OSError as e:\n"
        "    print('rootfs', e.strerror)\n"
    )
    result = executor.run(make_request(code))
    assert result.success, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "10001 10001"
    assert lines[1] == "/etc/shadow PermissionError"
    if executor.runtime == "runsc":
        # gVisor lets a process read PID 1's environ whatever its dumpable flag (the harness
        # holds no secret there: test_environment_has_no_gateway_secret); the result channel
        # still cannot be reopened.
        assert lines[2] in ("/proc/1/environ read", "/proc/1/environ PermissionError")
        assert lines[3] in ("/proc/1/fd/1 PermissionError", "/proc/1/fd/1 OSError")
    else:
        assert lines[2:4] == ["/proc/1/environ PermissionError", "/proc/1/fd/1 PermissionError"]
    # gVisor checks the directory's permissions before the read-only mount: either refuses.
    assert lines[4] in ("rootfs Read-only file system", "rootfs Permission denied")
    if executor.runtime != "runsc":
        assert lines[4] == "rootfs Read-only file system"


@pytest.mark.docker
def test_environment_has_no_gateway_secret(
    executor: DockerExecutor, make_request: MakeRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-test-never-in-the-sandbox-123"
    monkeypatch.setenv("PYTHON_CODE_LLM_API_KEY", secret)
    ex = DockerExecutor(Settings())
    try:
        assert ex.settings.llm_api_key == secret
        result = ex.run(make_request("import json, os\nprint(json.dumps(dict(os.environ)))"))
    finally:
        ex.close()
    assert result.success, result.stderr
    env = json.loads(result.stdout)
    assert secret not in result.stdout
    assert not any(key.startswith("PYTHON_CODE_") for key in env)
    assert env["HOME"] == "/tmp" and env["MPLBACKEND"] == "Agg"


@pytest.mark.docker
def test_missing_image_is_reported_not_pulled(make_request: MakeRequest) -> None:
    ex = DockerExecutor(Settings(image="python-coder-runner:does-not-exist"))
    try:
        with pytest.raises(RunnerImageMissing, match="python-coder build-runner"):
            ex.run(make_request("print(1)"))
        readiness = ex.readiness()
    finally:
        ex.close()
    assert not readiness.ready and readiness.checks["image_present"] is False


@pytest.mark.docker
def test_readiness(executor: DockerExecutor) -> None:
    readiness = executor.readiness()
    assert readiness.ready, readiness.detail
    assert readiness.checks["engine"] == "reachable" and readiness.checks["image_present"]


@pytest.mark.docker
def test_remove_orphans_spares_live_runs_and_foreign_containers() -> None:
    client = docker.APIClient(version="1.41")
    image = get_settings().image
    job = f"orphan-{uuid.uuid4().hex[:8]}"
    labels = {CONTAINER_LABEL: "1", JOB_LABEL: job}
    offline = client.create_host_config(network_mode="none")
    stopped = client.create_container(
        image, labels=labels, entrypoint=["true"], host_config=offline
    )
    live = client.create_container(
        image, labels=labels, entrypoint=["sleep", "60"], host_config=offline
    )
    foreign = client.create_container(
        image, labels={JOB_LABEL: job}, entrypoint=["true"], host_config=offline
    )
    created = [stopped, live, foreign]
    try:
        client.start(stopped["Id"])
        client.wait(stopped["Id"], timeout=30)
        client.start(live["Id"])
        # narrowed to this job: other suites' containers are not this test's to remove
        stopped_name = client.inspect_container(stopped["Id"])["Name"].lstrip("/")
        assert remove_orphans(client, only={JOB_LABEL: job}) == [stopped_name]
        ids = {c["Id"] for c in client.containers(all=True)}
        assert stopped["Id"] not in ids
        assert live["Id"] in ids and foreign["Id"] in ids
        # a "live" one older than any run may take is an orphan too
        removed = remove_orphans(client, only={JOB_LABEL: job}, live_for_s=0)
        assert len(removed) == 1
        ids = {c["Id"] for c in client.containers(all=True)}
        assert live["Id"] not in ids and foreign["Id"] in ids
    finally:
        for c in created:
            with contextlib.suppress(docker.errors.NotFound):
                client.remove_container(c["Id"], force=True)
        client.close()


@pytest.mark.docker
def test_a_runner_that_never_answers_is_killed_at_the_deadline(
    executor: DockerExecutor, make_request: MakeRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The harness enforces timeout_s itself; take that away to exercise the adapter's own
    # deadline (timeout + grace), which covers a wedged harness.
    real_encode = docker_module.encode_request

    def without_timeout(request: RunRequest, **wire: Any) -> bytes:
        return real_encode(replace(request, limits=replace(request.limits, timeout_s=0)), **wire)

    monkeypatch.setattr(docker_module, "encode_request", without_timeout)
    monkeypatch.setattr(docker_module, "GRACE_S", 1.0)
    request = make_request("import time\ntime.sleep(600)", timeout_s=1, max_artifacts_total_bytes=0)
    began = time.monotonic()
    result = executor.run(request)
    assert result.timed_out and not result.success
    assert result.error is not None and "runner did not answer" in result.error
    assert time.monotonic() - began < 10


# docker-py does not close the socket of a unix connect that failed; collected right here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_engine_unreachable(make_request: MakeRequest, tmp_path: Path) -> None:
    client = docker.APIClient(base_url=f"unix://{tmp_path}/no-engine.sock", version="1.41")
    ex = DockerExecutor(get_settings(), client=client)
    try:
        with pytest.raises(EngineUnavailable) as refused:
            ex.run(make_request("print(1)"))
        # The engine may be restarting: the 503 says when to come back (Retry-After).
        retry_after, message = refused.value.retry_after_s, refused.value.message
        del refused  # its traceback holds the socket docker-py leaked
        readiness = ex.readiness()
    finally:
        client.close()
        gc.collect()
    assert not readiness.ready and "unreachable" in readiness.detail
    assert retry_after is not None and retry_after > 0 and "retry in" in message


@pytest.mark.docker
def test_large_input_and_artifact_stream_through(
    executor: DockerExecutor, make_request: MakeRequest
) -> None:
    body = os.urandom(64 * MB)
    code = (
        "import hashlib\n"
        "data = open('big/input.bin', 'rb').read()\n"
        "print(len(data), hashlib.sha256(data).hexdigest())\n"
        "open('copy.bin', 'wb').write(data[::-1])\n"
    )
    request = make_request(
        code, {"big/input.bin": body}, memory_bytes=768 * MB, max_artifact_bytes=100 * MB
    )
    result = executor.run(request)
    assert result.success, result.stderr
    assert result.stdout == f"{len(body)} {hashlib.sha256(body).hexdigest()}\n"
    (copy,) = result.artifacts
    assert copy.path.read_bytes() == body[::-1]


@pytest.mark.docker
def test_inputs_larger_than_the_work_dir_are_reported(
    executor: DockerExecutor, make_request: MakeRequest
) -> None:
    request = make_request(
        "print('ran')", {"big.bin": b"\0" * (24 * MB), "small.txt": b"x"}, workdir_bytes=8 * MB
    )
    result = executor.run(request)
    assert not result.success and result.stdout == ""
    assert result.error is not None and "No space left on device" in result.error


@pytest.mark.parametrize(
    "name", ["../x", "/etc/passwd", "a/../../x", "a//b", "", "./a", "a\\b", "a\0b", None]
)
def test_artifact_names_from_the_runner_are_checked(tmp_path: Path, name: object) -> None:
    with pytest.raises(ProtocolError):
        safe_artifact_path(tmp_path, name)
    assert safe_artifact_path(tmp_path, "out/a b.png") == tmp_path / "out" / "a b.png"


@pytest.mark.docker
def test_concurrent_runs_do_not_mix(executor: DockerExecutor, make_request: MakeRequest) -> None:
    requests = [make_request(f"open('mine.txt', 'w').write('{i}')\nprint({i})") for i in range(3)]
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(executor.run, requests))
    for i, result in enumerate(results):
        assert result.success and result.stdout == f"{i}\n", result
        (artifact,) = result.artifacts
        assert artifact.path.read_text() == str(i)
        assert artifact.path.parent == requests[i].output_dir
