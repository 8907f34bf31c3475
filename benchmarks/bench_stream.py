"""Streaming output: what it costs a plain pooled run, and how soon the first line arrives.

For each engine it starts a real gateway (``python -m service.cli serve``) with a warm pool
of two and measures, one request at a time:

1. the pooled hit path of a trivial script (``print(1)``) over HTTP, plain JSON and
   streamed (``Accept: text/event-stream``), p50/p95 of the whole request, each request sent
   once the pool is full again (so each is a hit; ``python_coder_pool_size``);
2. time to the first chunk and to the result event of ``print('first', flush=True);
   time.sleep(1); print('second')``, streamed.

``--gateway-src DIR`` serves from another checkout (e.g. ``git archive main | tar -x -C DIR``)
for a before/after comparison of the plain path; its streamed rows are skipped.

    .venv/bin/python benchmarks/bench_stream.py [--engines docker,subprocess] [--runs 40]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from service.settings import Settings  # noqa: E402

T = TypeVar("T")
POOL = 2
SLEEPY = "import time\nprint('first', flush=True)\ntime.sleep(1)\nprint('second')\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start_gateway(engine: str, src: Path, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    settings = Settings()
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(src),
        "PYTHON_CODE_ENGINE": engine,
        "PYTHON_CODE_IMAGE": settings.image,
        "PYTHON_CODE_EXECUTION_DIR": str(tmp / "exec"),
        "PYTHON_CODE_LOCAL_RUNNER_DIR": str(settings.local_runner_dir.resolve()),
        "PYTHON_CODE_POOL_MIN": str(POOL),
        "PYTHON_CODE_POOL_MAX": str(POOL),
        "PYTHON_CODE_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
        cwd=src,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            ready = httpx.get(url + "/readyz", timeout=2).json()
            if ready.get("pool", {}).get(engine, {}).get("idle", 0) >= 2 or ready.get("ready"):
                break
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    return proc, url


def plain(url: str, code: str) -> float:
    began = time.perf_counter()
    response = httpx.post(url + "/v1/execute", json={"code": code}, timeout=60)
    response.raise_for_status()
    assert response.json()["success"], response.text
    return time.perf_counter() - began


def streamed(url: str, code: str) -> tuple[float, float]:
    """Seconds to the first output event and to the result event."""
    began = time.perf_counter()
    first = None
    with httpx.stream(
        "POST",
        url + "/v1/execute",
        json={"code": code},
        headers={"Accept": "text/event-stream"},
        timeout=60,
    ) as response:
        for line in response.iter_lines():
            if line.startswith("event: stdout") and first is None:
                first = time.perf_counter() - began
            if line.startswith("data: ") and '"success"' in line:
                assert json.loads(line[6:])["success"]
                return first or 0.0, time.perf_counter() - began
    raise RuntimeError("no result event")


def metric(url: str, name: str) -> float:
    """The sum of a counter or gauge over its labels, from ``/metrics``."""
    text = httpx.get(url + "/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.split("{", 1)[0].split(" ", 1)[0] in (name, name + "_total")
    )


def pool_full(url: str, size: int, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while metric(url, "python_coder_pool_size") < size and time.monotonic() < deadline:
        time.sleep(0.1)


def paced(url: str, runs: int, measure: Callable[[], T]) -> list[T]:
    """``measure()`` ``runs`` times, each on a full pool, so each one is a pool hit."""
    samples = []
    for _ in range(runs):
        pool_full(url, POOL)
        samples.append(measure())
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="docker,subprocess")
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--gateway-src", type=Path, default=REPO)
    args = parser.parse_args()
    ours = args.gateway_src.resolve() == REPO
    print(f"gateway from {args.gateway_src}; {args.runs} paced runs per row")
    print(f"{'engine':<11} {'measure':<38} {'p50 ms':>8} {'p95 ms':>8}")
    for engine in args.engines.split(","):
        with tempfile.TemporaryDirectory(prefix="pyc-bench-stream-") as tmp:
            proc, url = start_gateway(engine, args.gateway_src, Path(tmp))
            try:
                paced(url, 3, partial(plain, url, "print(1)"))  # warm-up
                hits_before = metric(url, "python_coder_pool_hits")
                rows = [
                    (
                        "pooled print(1), plain JSON",
                        paced(url, args.runs, partial(plain, url, "print(1)")),
                    )
                ]
                if ours:
                    quick = paced(url, args.runs, partial(streamed, url, "print(1)"))
                    rows.append(("pooled print(1), streamed", [s[1] for s in quick]))
                    slow = paced(url, max(5, args.runs // 4), partial(streamed, url, SLEEPY))
                    rows.append(("sleep(1) script: first chunk", [s[0] for s in slow]))
                    rows.append(("sleep(1) script: result event", [s[1] for s in slow]))
                for name, samples in rows:
                    print(
                        f"{engine:<11} {name:<38} {1000 * statistics.median(samples):>8.1f} "
                        f"{1000 * pct(samples, 0.95):>8.1f}"
                    )
                sent = sum(len(samples) for name, samples in rows if "result event" not in name)
                hits = metric(url, "python_coder_pool_hits") - hits_before
                print(f"{engine:<11} pool hits: {hits:.0f} of {sent} measured requests")
            finally:
                proc.terminate()
                proc.wait(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
