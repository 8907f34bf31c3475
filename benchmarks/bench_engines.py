"""Latency of one request per engine: a trivial script and a pandas script.

Each engine is measured through its executor (the gateway's path) and through the HTTP API,
against a baseline measured in the same run: the bare interpreter the engine starts
(`docker run` of the runner image's python with the same hardening, or the local runner
venv's python), so the table shows what the sandbox machinery itself costs.

    .venv/bin/python benchmarks/bench_engines.py [--repeat 5] [--engines docker,subprocess]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi.testclient import TestClient

from service.api.app import create_app
from service.executors.base import RunRequest
from service.executors.registry import make_executor
from service.pipeline.jobs import run_limits
from service.settings import Settings

SCRIPTS = {
    "trivial": "print(1)",
    "pandas": "import pandas as pd\nprint(pd.DataFrame({'a': [1, 2, 3]}).a.sum())",
}


def median_s(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm caches (page cache, image layers, font cache)
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def baseline(engine: str, settings: Settings, code: str) -> Callable[[], object]:
    if engine == "docker":
        argv = [
            "docker", "run", "--rm", "--network", "none", "--read-only", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "--tmpfs", "/tmp", "--user", "10001",
            "--memory", f"{settings.max_memory}m", "--pids-limit", str(settings.pids_limit),
            "--entrypoint", "/opt/venv/bin/python", settings.image, "-c", code,
        ]  # fmt: skip
    else:
        argv = [str(settings.local_runner_python), "-c", code]
    return lambda: subprocess.run(argv, check=True, capture_output=True)


def through_executor(engine: str, settings: Settings, code: str) -> Callable[[], object]:
    executor = make_executor(settings, engine)

    def run() -> object:
        with tempfile.TemporaryDirectory(prefix="pyc-bench-") as out:
            request = RunRequest(uuid.uuid4().hex, code, (), Path(out), run_limits(settings, None))
            result = executor.run(request)
            assert result.success, result
        return result

    return run


def through_api(client: TestClient, code: str) -> Callable[[], object]:
    def run() -> object:
        response = client.post("/v1/execute", json={"code": code})
        assert response.status_code == 200 and response.json()["success"], response.text
        return response

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--engines", default="docker,subprocess")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="pyc-bench-") as tmp:
        for engine in args.engines.split(","):
            settings = Settings(execution_dir=Path(tmp) / engine, engine=engine)  # type: ignore[arg-type]
            # A loopback Host, as a real local client sends (the gateway checks Host).
            with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
                for name, code in SCRIPTS.items():
                    base = median_s(baseline(engine, settings, code), args.repeat)
                    executor = median_s(through_executor(engine, settings, code), args.repeat)
                    api = median_s(through_api(client, code), args.repeat)
                    rows.append((engine, name, base, executor, api))
    print(f"median of {args.repeat} runs, seconds")
    print(
        f"{'engine':<11} {'script':<8} {'baseline':>9} {'executor':>9} {'HTTP API':>9} {'overhead':>9}"
    )
    for engine, name, base, executor, api in rows:
        print(
            f"{engine:<11} {name:<8} {base:>9.3f} {executor:>9.3f} {api:>9.3f} {api - base:>+9.3f}"
        )
    print(
        "baseline: docker -> hardened `docker run` of the image's python; "
        "subprocess -> the runner venv's python, no sandbox"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
