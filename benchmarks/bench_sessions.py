"""A session cell round trip over HTTP against a one-shot ``/v1/execute`` of the same code.

One live gateway (uvicorn on a loopback port, warm pool on as in production) per engine. The
cell is ``x += 1`` in an open session; the baseline is ``/v1/execute`` of the same code
(preceded by ``x = 0``, since a one-shot run has no state), measured in the same run. Also
reported: how long opening a session takes (its sandbox starts cold, never from the pool).

    .venv/bin/python benchmarks/bench_sessions.py [--repeat 50] [--engine docker]

Target (issue 9): p50 of the cell round trip <= 10 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import uvicorn

from service.api.app import create_app
from service.settings import Settings
from tests.deploy.gateway import free_port


def samples_ms(fn: Callable[[], object], repeat: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(url: str, repeat: int) -> dict[str, list[float]]:
    with httpx.Client(base_url=url, timeout=120) as http:
        opened = []
        for _ in range(3):
            started = time.perf_counter()
            sid = http.post("/v1/sessions", json={}).raise_for_status().json()["id"]
            opened.append((time.perf_counter() - started) * 1000)
            http.delete(f"/v1/sessions/{sid}").raise_for_status()
        sid = http.post("/v1/sessions", json={}).raise_for_status().json()["id"]
        http.post(f"/v1/sessions/{sid}/execute", json={"code": "x = 0"}).raise_for_status()

        def cell() -> object:
            answer = http.post(f"/v1/sessions/{sid}/execute", json={"code": "x += 1"})
            assert answer.raise_for_status().json()["success"]
            return answer

        def one_shot() -> object:
            answer = http.post("/v1/execute", json={"code": "x = 0\nx += 1"})
            assert answer.raise_for_status().json()["success"]
            return answer

        results = {
            "session cell `x += 1`": samples_ms(cell, repeat),
            "one-shot /v1/execute (baseline)": samples_ms(one_shot, max(5, repeat // 5)),
            "open a session (cold sandbox)": opened,
        }
        http.delete(f"/v1/sessions/{sid}").raise_for_status()
        return results


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--engine", default="subprocess", choices=["docker", "subprocess"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sessions-") as tmp:
        settings = Settings(
            execution_dir=Path(tmp) / "exec", engine=args.engine, pool_min=2, pool_max=2
        )
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(create_app(settings), port=port, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        try:
            time.sleep(3)  # let the pool fill, so the baseline is a pooled run
            results = measure(f"http://127.0.0.1:{port}", args.repeat)
        finally:
            server.should_exit = True
            thread.join(60)
    print(f"engine={args.engine}, HTTP round trips, {args.repeat} cells")
    print(f"{'what':34} {'n':>4} {'p50 ms':>9} {'p90 ms':>9}")
    for name, values in results.items():
        p50, p90 = statistics.median(values), quantile(values, 0.9)
        print(f"{name:34} {len(values):4d} {p50:9.1f} {p90:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
