"""The warm pool on the real engines: single use, fresh state, shapes, drains, shutdown.

Each test builds its own executor and pool (small, so the machine is not flooded) and closes
them; the suite's leak check then finds no container or job dir of ours.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from service.executors.base import (
    POOL_PREIMPORT,
    POOL_PREIMPORT_BUSY,
    Executor,
    RunLimits,
    Sandbox,
)
from service.executors.pool import WarmPool
from service.settings import Settings, get_settings
from tests.conftest import subprocess_engine_missing
from tests.executors.conftest import MakeRequest

ENGINES = [
    pytest.param("docker", marks=pytest.mark.docker, id="docker"),
    pytest.param("subprocess", id="subprocess"),
]
MB = 1024 * 1024


def build_executor(engine: str, tmp_path: Path, **overrides: Any) -> Executor:
    settings = get_settings().model_copy(
        update={"execution_dir": tmp_path / "exec", "engine": engine, **overrides}
    )
    if engine == "docker":
        from service.executors.docker.executor import DockerExecutor

        return DockerExecutor(settings)
    from service.executors.local.executor import SubprocessExecutor

    executor = SubprocessExecutor(settings)
    problem = executor.readiness()
    if not problem.ready:
        subprocess_engine_missing(f"subprocess engine not ready here: {problem.detail}")
    return executor


def wait_for(predicate: Callable[[], bool], timeout: float = 90.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or predicate}")


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def executor(engine: str, tmp_path: Path) -> Iterator[Executor]:
    built = build_executor(engine, tmp_path)
    yield built
    built.close()


def make_pool(executor: Executor, minimum: int = 2, maximum: int = 2, **kw: Any) -> WarmPool:
    pool = WarmPool(
        executor,
        RunLimits(timeout_s=20.0),
        minimum=minimum,
        maximum=maximum,
        input_room=kw.pop("input_room", 8 * MB),
        **kw,
    )
    executor.pool = pool
    pool.start()
    return pool


@pytest.fixture
def pool(executor: Executor) -> Iterator[WarmPool]:
    started = make_pool(executor)
    wait_for(lambda: started.snapshot()["idle"] == 2, what="the pool to fill")
    yield started
    executor.pool = None
    started.close()


PROBE = """
import json, os, random, socket, sys
import numpy
leftover = os.path.exists('/tmp/leftover') or os.path.exists('leftover.txt')
open('/tmp/leftover', 'w').write('x')
open('leftover.txt', 'w').write('x')
print(json.dumps({
    "host": socket.gethostname(), "leftover": leftover, "random": random.random(),
    "np": float(numpy.random.rand()), "warm": "pandas" in sys.modules
}))
"""


def probe(executor: Executor, make_request: MakeRequest) -> dict[str, Any]:
    result = executor.run(make_request(PROBE))
    assert result.success, result
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_a_pooled_sandbox_serves_once_with_fresh_state(
    engine: str, executor: Executor, pool: WarmPool, make_request: MakeRequest
) -> None:
    first = probe(executor, make_request)
    second = probe(executor, make_request)
    assert pool.stats.hits == 2, pool.snapshot()
    assert first["warm"] and second["warm"]  # pandas was imported before the request
    assert not first["leftover"] and not second["leftover"]  # nothing of the first run
    assert first["random"] != second["random"] and first["np"] != second["np"]
    if engine == "docker":
        assert first["host"] != second["host"]  # two containers
    # The pool refills behind the requests.
    wait_for(lambda: pool.snapshot()["idle"] == 2, what="the refill")


FAULTS = """
import resource
import pandas as pd
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
pd.DataFrame({'k': [1, 1, 2], 'v': [0.5, 1.5, 2.5]}).groupby('k').v.mean().sum()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_a_pooled_script_finds_the_pandas_pages_already_its_own(
    executor: Executor, pool: WarmPool, make_request: MakeRequest
) -> None:
    """The pre-forked process repeats the pandas warm-up while it waits in the pool, so the
    copy-on-write faults of a data script (~900, each ~10 us in a sandbox) are behind it."""
    result = executor.run(make_request(FAULTS))
    assert result.success, result
    assert pool.stats.hits == 1, pool.snapshot()
    assert int(result.stdout) < 300, f"{result.stdout.strip()} page faults"


def test_taken_sandboxes_are_distinct_and_never_taken_twice(
    executor: Executor, pool: WarmPool, make_request: MakeRequest
) -> None:
    request = make_request("print(1)")
    a = pool.take(request)
    b = pool.take(request)
    assert a is not None and b is not None and a is not b and a.ident != b.ident
    executor.serve(a, request)
    with pytest.raises(RuntimeError, match="already served"):
        executor.serve(a, request)
    pool.dispose(a)
    pool.dispose(b)


def test_an_empty_pool_still_serves(executor: Executor, make_request: MakeRequest) -> None:
    pool = make_pool(executor, minimum=0, maximum=1)
    try:
        result = executor.run(make_request("print('cold')"))
        assert result.success and result.stdout == "cold\n"
        assert pool.stats.misses == {"empty": 1} and pool.stats.hits == 0
        # The miss raised the target: the next request finds a warm sandbox.
        wait_for(lambda: pool.snapshot()["idle"] == 1, what="the pool to grow")
        assert executor.run(make_request("print('warm')")).stdout == "warm\n"
        assert pool.stats.hits == 1
    finally:
        executor.pool = None
        pool.close()


@pytest.fixture
def emptied_pool(executor: Executor, make_request: MakeRequest) -> Iterator[WarmPool]:
    """A pool of one whose sandbox is taken (held until the end): its refill is under way."""
    pool = make_pool(executor, minimum=1, maximum=1)
    held: Sandbox | None = None
    try:
        wait_for(lambda: pool.snapshot()["idle"] == 1, what="the pool to fill")
        held = pool.take(make_request("print(0)"))
        assert held is not None
        wait_for(lambda: pool.snapshot()["provisioning"] == 1, what="the refill to start")
        yield pool
    finally:
        if held is not None:
            pool.dispose(held)
        executor.pool = None
        pool.close()


def test_an_empty_pool_waits_for_a_provision_under_way_when_cold_would_be_slower(
    executor: Executor, emptied_pool: WarmPool, make_request: MakeRequest
) -> None:
    emptied_pool.cold_served(600.0)  # as if cold starts took minutes on this host
    result = executor.run(make_request("print('waited')"))
    assert result.success and result.stdout == "waited\n", result
    stats = emptied_pool.stats
    assert stats.waited == 1 and stats.hits == 2, emptied_pool.snapshot()
    assert stats.misses == {}


def test_an_empty_pool_starts_cold_when_that_is_sooner(
    executor: Executor, emptied_pool: WarmPool, make_request: MakeRequest
) -> None:
    emptied_pool.cold_served(0.0)  # as if a cold start were instant
    result = executor.run(make_request("print('cold')"))
    assert result.success and result.stdout == "cold\n", result
    stats = emptied_pool.stats
    assert stats.waited == 0 and stats.misses == {"empty": 1}, emptied_pool.snapshot()


def test_while_requests_outrun_the_pool_it_provisions_the_lighter_imports(
    executor: Executor, make_request: MakeRequest
) -> None:
    pool = make_pool(
        executor,
        minimum=1,
        maximum=1,
        preimport="numpy,pandas,matplotlib,matplotlib.pyplot",
        busy_preimport="numpy,pandas",
        pressure_window_s=600.0,
    )
    probe_code = "import sys\nprint('matplotlib' in sys.modules, 'pandas' in sys.modules)"
    try:
        wait_for(lambda: pool.snapshot()["idle"] == 1, what="the pool to fill")
        assert executor.run(make_request(probe_code)).stdout == "True True\n"  # quiet: all
        wait_for(lambda: pool.snapshot()["idle"] == 1, what="the refill")
        held = pool.take(make_request("print(0)"))
        assert held is not None
        wait_for(lambda: pool.snapshot()["provisioning"] == 1, what="the refill to start")
        pool.cold_served(0.0)  # so the next request goes cold at once: a miss
        assert executor.run(make_request("print(1)")).stdout == "1\n"
        assert pool.stats.misses == {"empty": 1}
        assert pool.snapshot()["preimport"] == "numpy,pandas"
        pool.dispose(held)
        # The refill under way began before the miss; the one after it is the lighter one.
        wait_for(lambda: pool.snapshot()["idle"] == 1, what="the refill")
        assert executor.run(make_request("print(2)")).stdout == "2\n"
        wait_for(lambda: pool.snapshot()["idle"] == 1, what="the refill under pressure")
        assert pool.stats.provisioned_busy == 1
        assert executor.run(make_request(probe_code)).stdout == "False True\n"
        pool.pressure_window_s = 0.0  # pressure over: back to everything
        assert pool.snapshot()["preimport"] == "numpy,pandas,matplotlib,matplotlib.pyplot"
    finally:
        executor.pool = None
        pool.close()


def test_the_timeout_starts_when_the_request_is_delivered(
    executor: Executor, pool: WarmPool, make_request: MakeRequest
) -> None:
    time.sleep(2.5)  # the pooled sandbox has been waiting longer than the script may run
    result = executor.run(make_request("import time\ntime.sleep(1)\nprint('done')", timeout_s=2))
    assert result.success and result.stdout == "done\n", result
    assert pool.stats.hits == 1


def test_a_dead_pooled_sandbox_is_replaced(
    executor: Executor, pool: WarmPool, make_request: MakeRequest
) -> None:
    victim = pool._idle[0][0]
    victim.kill()
    wait_for(lambda: not victim.alive(), what="the sandbox to die")
    result = executor.run(make_request("print('still served')"))
    assert result.success and result.stdout == "still served\n"
    wait_for(lambda: pool.stats.replaced_dead >= 1, what="the dead sandbox to be noticed")
    wait_for(lambda: pool.snapshot()["idle"] == 2, what="the refill")


def test_a_new_fingerprint_drains_the_pool(executor: Executor, make_request: MakeRequest) -> None:
    pool = make_pool(executor)
    try:
        wait_for(lambda: pool.snapshot()["idle"] == 2, what="the pool to fill")
        old = {sb.ident for sb, _ in pool._idle}
        real = executor.fingerprint

        def changed() -> str:
            return "new:" + real()

        executor.fingerprint = changed  # type: ignore[method-assign]
        wait_for(lambda: pool.stats.drained == 2, what="the drain")
        wait_for(lambda: pool.snapshot()["idle"] == 2, what="the refill")
        assert not old & {sb.ident for sb, _ in pool._idle}
        assert executor.run(make_request("print(2)")).stdout == "2\n"
    finally:
        executor.pool = None
        pool.close()


def test_close_leaves_nothing(engine: str, executor: Executor, tmp_path: Path) -> None:
    pool = make_pool(executor)
    wait_for(lambda: pool.snapshot()["idle"] == 2, what="the pool to fill")
    names = {sb.ident for sb, _ in pool._idle}
    executor.pool = None
    pool.close()
    assert pool.snapshot()["idle"] == 0
    if engine == "docker":
        from tests.conftest import our_containers

        assert len(names) == 2 and not names & set(our_containers())
    assert not list((tmp_path / "exec").glob("job-*"))


@pytest.mark.docker
def test_a_pool_hit_makes_no_engine_api_call(
    tmp_path: Path, make_request: MakeRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    executor = build_executor("docker", tmp_path)
    pool = make_pool(executor)
    try:
        wait_for(lambda: pool.snapshot()["idle"] == 2, what="the pool to fill")
        calls: list[str] = []
        client = executor.client  # type: ignore[attr-defined]
        real_request = client.request
        me = threading.current_thread()

        def counted(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            # The pool's refill threads share the client; only the request path counts.
            if threading.current_thread() is me:
                calls.append(f"{method} {url}")
            return real_request(method, url, *args, **kwargs)

        request = make_request("import pandas as pd\nprint(pd.DataFrame({'a': [1, 2]}).a.sum())")
        sandbox = pool.take(request)
        assert sandbox is not None
        monkeypatch.setattr(client, "request", counted)
        result = executor.serve(sandbox, request)
        monkeypatch.undo()
        pool.dispose(sandbox)
        assert result.success and result.stdout == "3\n", result
        assert calls == []
    finally:
        executor.pool = None
        pool.close()
        executor.close()


@pytest.mark.docker
def test_a_request_with_other_limits_gets_its_own_cold_container(
    tmp_path: Path, make_request: MakeRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    executor = build_executor("docker", tmp_path)
    pool = make_pool(executor, minimum=1, maximum=1)
    limits: list[int] = []  # the memory limit the engine gave each container we remove
    real_remove = executor.remove  # type: ignore[attr-defined]

    def remove(container_id: str) -> None:
        inspected = executor.client.inspect_container(container_id)  # type: ignore[attr-defined]
        limits.append(int(inspected["HostConfig"]["Memory"]))
        real_remove(container_id)

    monkeypatch.setattr(executor, "remove", remove)
    try:
        wait_for(lambda: pool.snapshot()["idle"] == 1, what="the pool to fill")
        cold = executor.run(make_request("print('cold')", memory_bytes=300 * MB))
        assert cold.success, cold
        assert limits == [300 * MB]  # no inputs: exactly the requested limit
        assert pool.stats.misses == {"shape": 1} and pool.stats.hits == 0
        warm = executor.run(make_request("print('warm')"))
        assert warm.success, warm
        assert pool.stats.hits == 1
        wait_for(lambda: len(limits) == 2, what="the pooled sandbox's disposal")
        assert limits[1] == RunLimits().memory_bytes + 8 * MB  # + the pool's input room
    finally:
        executor.pool = None
        pool.close()
        executor.close()


@pytest.mark.docker
def test_a_rebuilt_image_drains_the_pool(tmp_path: Path, make_request: MakeRequest) -> None:
    import docker

    client = docker.from_env(timeout=120)
    tag = f"pyc-pooltest:{tmp_path.name[-12:].lower().replace('_', '-')}"
    client.images.get(get_settings().image).tag(tag)
    executor = build_executor("docker", tmp_path, image=tag)
    pool = make_pool(executor, minimum=1, maximum=1)
    try:
        wait_for(lambda: pool.snapshot()["idle"] == 1, what="the pool to fill")
        (old,) = [sb.ident for sb, _ in pool._idle]
        # "Rebuild": a new image under the same tag (a label changes its id).
        dockerfile = tmp_path / "ctx"
        dockerfile.mkdir()
        (dockerfile / "Dockerfile").write_text(f"FROM {tag}\nLABEL rebuilt=1\n")
        client.images.build(path=str(dockerfile), tag=tag, rm=True)
        wait_for(lambda: pool.stats.drained == 1, what="the drain")
        wait_for(lambda: pool.snapshot()["idle"] == 1, what="the refill")
        assert [sb.ident for sb, _ in pool._idle] != [old]
        result = executor.run(make_request("print('rebuilt')"))
        assert result.success and result.stdout == "rebuilt\n"
    finally:
        executor.pool = None
        pool.close()
        executor.close()
        client.images.remove(tag, force=True)
        client.close()


def test_pool_settings_shape_the_registry_pool(tmp_path: Path) -> None:
    from service.executors.registry import ExecutorRegistry

    settings = Settings(
        execution_dir=tmp_path / "exec", engine="subprocess", pool_min=1, pool_max=3
    )
    registry = ExecutorRegistry(settings, pooled=True)
    try:
        executor = registry.get(None)
        assert executor.pool is not None
        snap = executor.pool.snapshot()
        assert (snap["min"], snap["max"]) == (1, 3)
        assert executor.pool.preimport == settings.pool_preimport == POOL_PREIMPORT
        assert executor.pool.busy_preimport == settings.pool_preimport_busy == POOL_PREIMPORT_BUSY
    finally:
        registry.close()
    assert executor.pool is None
    off = ExecutorRegistry(
        Settings(execution_dir=tmp_path / "e2", engine="subprocess", pool_max=0), pooled=True
    )
    try:
        assert off.get(None).pool is None
    finally:
        off.close()


def _cpu_weights(executor: Executor, sandbox: Sandbox | None = None) -> list[int]:
    """The CPU weight of ``sandbox``, or of every sandbox of ``executor`` being provisioned."""
    if executor.name == "docker":
        from docker.errors import NotFound

        from service.executors.docker.executor import DockerExecutor

        assert isinstance(executor, DockerExecutor)
        client = executor.client
        if sandbox is not None:
            ids = [sandbox.container_id]  # type: ignore[attr-defined]
        else:
            ids = [c["Id"] for c in client.containers(all=True, filters={"name": "pyc-pool"})]
        weights = []
        for container in ids:
            with contextlib.suppress(NotFound):  # gone meanwhile
                config = client.inspect_container(container)["HostConfig"]
                weights.append(int(config["CpuShares"] or 1024))
        return weights
    from service.executors.local.cgroups import V2_DEFAULT_WEIGHT
    from service.executors.local.executor import SubprocessExecutor

    assert isinstance(executor, SubprocessExecutor)
    support = executor._cgroups
    if support is None:
        pytest.skip("no per-job cgroups for the subprocess engine here (not root)")
    name = "cpu.shares" if support.version == 1 else "cpu.weight"
    if sandbox is not None:
        dirs = [sandbox.cgroup.dirs["cpu" if support.version == 1 else "unified"]]  # type: ignore[attr-defined]
    else:
        parent = support.parents["cpu" if support.version == 1 else "unified"]
        dirs = list(parent.glob("python-coder-pool-*"))
    weights = []
    for path in dirs:
        with contextlib.suppress(OSError):  # gone meanwhile
            scale = 1 if support.version == 1 else 1024 / V2_DEFAULT_WEIGHT
            weights.append(round(int((path / name).read_text()) * scale))
    return weights


def test_a_pooled_sandbox_imports_at_a_low_cpu_weight_and_serves_at_the_normal_one(
    executor: Executor, make_request: MakeRequest
) -> None:
    # While it imports pandas it yields the cores to the runs under way; once ready it is
    # as any other sandbox. A cold one (the request path) never starts low. gVisor cannot
    # raise a running sandbox's weight, so there it is never lowered.
    lowers = executor.name != "docker" or executor.lowers_priority()  # type: ignore[attr-defined]
    box: dict[str, Sandbox] = {}
    worker = threading.Thread(
        target=lambda: box.setdefault(
            "sandbox",
            executor.provision(
                RunLimits(timeout_s=20.0), preimport=POOL_PREIMPORT, background=True
            ),
        )
    )
    worker.start()
    seen: set[int] = set()
    while worker.is_alive():
        seen.update(_cpu_weights(executor))
        time.sleep(0.02)
    worker.join()
    sandbox = box["sandbox"]
    try:
        if lowers:
            assert seen and min(seen) < 1024 // 8, seen  # low while it imported
        else:
            assert seen == {1024}, seen
        assert _cpu_weights(executor, sandbox) == [1024]  # normal once ready
        assert executor.serve(sandbox, make_request("print('served')")).stdout == "served\n"
    finally:
        sandbox.dispose()
    cold = executor.provision(RunLimits(timeout_s=20.0), tag="coldweight")
    try:
        assert _cpu_weights(executor, cold) == [1024]
    finally:
        cold.dispose()


def test_a_refill_waits_for_the_run_under_way_unless_the_pool_ran_dry(
    executor: Executor, make_request: MakeRequest
) -> None:
    # Background work yields to the request path (here for up to a minute, so that waiting
    # cannot be mistaken for a slow start): the replacement for a taken sandbox is not
    # provisioned while its run is in flight, but right after; and at once if the pool is
    # empty, since the next request would wait for it.
    pool = make_pool(executor, minimum=2, maximum=2, yield_max_s=60.0)
    held: list[Sandbox] = []
    try:
        wait_for(lambda: pool.snapshot()["idle"] == 2, what="the pool to fill")
        first = pool.take(make_request("print(0)"))
        assert first is not None
        held.append(first)
        time.sleep(1.0)
        assert pool.snapshot()["provisioning"] == 0 and pool.stats.provisioned == 2
        second = pool.take(make_request("print(0)"))  # the pool is empty now
        assert second is not None
        held.append(second)
        wait_for(lambda: pool.snapshot()["provisioning"] > 0, timeout=5, what="a refill")
        for sandbox in held:
            pool.dispose(sandbox)
        held.clear()
        wait_for(lambda: pool.snapshot()["idle"] == 2, what="the refill after the runs")
        assert pool.stats.provisioned == 4
    finally:
        for sandbox in held:
            pool.dispose(sandbox)
        executor.pool = None
        pool.close()
