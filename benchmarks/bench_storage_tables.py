"""What read_csv and read_parquet cost on a small stored file, end to end through the tool.

    .venv/bin/python benchmarks/bench_storage_tables.py [--repeat 50]

A 200-row, 4-column table (ints, floats, strings, dates) as CSV (about 7 KB) and Parquet
(about 5 KB) under a storage root; the intake workers are started and warmed first (as the
gateway does at start). Prints the median and p95 wall time of ``read_csv`` and
``read_parquet`` (all rows, and 10 rows of one column). Runs unchanged on commits before the
parse moved into the workers, for the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from files.intake import warm_up  # noqa: E402
from files.sandbox import detect, worker_sandbox  # noqa: E402
from files.worker import shutdown_workers  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.tools.models import ReadTableArgs  # noqa: E402
from service.tools.registry import DataTools  # noqa: E402
from service.tools.storage import read_csv, read_parquet  # noqa: E402

ROWS = 200


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), _pct(times, 0.95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument(
        "--sandbox",
        choices=("auto", "confined"),
        default="auto",
        help="confined: the compose container's mode (no bubblewrap), measured on this host",
    )
    args = parser.parse_args()
    sandbox = worker_sandbox() if args.sandbox == "auto" else detect(args.sandbox)
    if args.sandbox != "auto":
        from files import worker as worker_module

        worker_module.worker_sandbox = lambda: sandbox  # type: ignore[assignment]  # all pools
    import pandas as pd

    frame = pd.DataFrame(
        {
            "id": range(ROWS),
            "amount": [i * 1.25 for i in range(ROWS)],
            "region": [f"region-{i % 7}" for i in range(ROWS)],
            "day": pd.date_range("2024-01-01", periods=ROWS, freq="D").strftime("%Y-%m-%d"),
        }
    )
    with tempfile.TemporaryDirectory(prefix="bench-tables-") as tmp:
        settings = Settings(
            execution_dir=Path(tmp) / "exec", storage_roots=[Path(tmp) / "data"], s3_buckets=[]
        )
        tools = DataTools.from_settings(settings)
        root = settings.storage_roots[0]
        frame.to_csv(root / "t.csv", index=False)
        frame.to_parquet(root / "t.parquet")
        warm_up()
        cases: list[tuple[str, Callable[[], object]]] = [
            ("read_csv, all 200 rows", lambda: read_csv(tools, ReadTableArgs(file_path="t.csv"))),
            ("read_csv, 10 rows of 1 column", lambda: read_csv(
                tools, ReadTableArgs(file_path="t.csv", n_rows=10, columns=["region"]))),
            ("read_parquet, all 200 rows", lambda: read_parquet(
                tools, ReadTableArgs(file_path="t.parquet"))),
            ("read_parquet, 10 rows of 1 column", lambda: read_parquet(
                tools, ReadTableArgs(file_path="t.parquet", n_rows=10, columns=["region"]))),
        ]  # fmt: skip
        print(f"{ROOT} ({args.repeat} runs each, after one warm-up call)")
        print(f"  intake workers: {sandbox.mode} ({', '.join(sandbox.labels)})")
        for name, fn in cases:
            p50, p95 = measure(fn, args.repeat)
            print(f"  {name:<36} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms")
        tools.close()
        shutdown_workers()


if __name__ == "__main__":
    main()
