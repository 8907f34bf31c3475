"""Metadata extraction for a 50 MB CSV and a 50 MB Parquet file vs. a naive full load.

    .venv/bin/python benchmarks/bench_metadata.py [--mb 50] [--repeat 3]

Ours: ``inspect_file`` through a fresh limited worker pool (time = median of the repeats after
one warm-up; peak RSS = the worker's VmHWM). Baseline, measured in the same run in a fresh
Python process: ``pd.read_csv`` / ``pd.read_parquet`` of the whole file to get the row count.
Also prints the per-file overhead of the worker round trip on a tiny file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from files.intake import IntakeLimits, inspect_file  # noqa: E402
from files.metadata import extract_metadata  # noqa: E402
from files.worker import WorkerPool, _pools  # noqa: E402

BASELINE = r"""
import json, resource, sys, time
import pandas as pd
path, kind = sys.argv[1], sys.argv[2]
times = []
for _ in range(int(sys.argv[3])):
    t = time.perf_counter()
    df = pd.read_csv(path) if kind == "csv" else pd.read_parquet(path)
    rows = len(df)
    del df
    times.append(time.perf_counter() - t)
print(json.dumps({"times": times, "rows": rows,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_files(folder: Path, mb: int) -> tuple[Path, Path]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    rows = int(mb * 2**20 / 53)  # ~53 bytes per CSV row
    df = pd.DataFrame(
        {
            "id": np.arange(rows),
            "ts": pd.date_range("2024-01-01", periods=rows, freq="s").astype(str),
            "region": rng.choice(["north", "south", "east", "west"], rows),
            "amount": rng.normal(100, 25, rows).round(4),
            "qty": rng.integers(0, 1000, rows),
            "score": rng.random(rows).round(6),
        }
    )
    csv = folder / "big.csv"
    df.to_csv(csv, index=False)
    prows = int(mb * 2**20 / 24)  # incompressible doubles + ints
    pq_df = pd.DataFrame(
        {"a": rng.random(prows), "b": rng.random(prows), "c": rng.integers(0, 2**62, prows)}
    )
    parquet = folder / "big.parquet"
    pq_df.to_parquet(parquet, compression="snappy", row_group_size=1_000_000)
    return csv, parquet


def ours(path: Path, repeat: int) -> dict[str, float]:
    limits = IntakeLimits(metadata_memory_bytes=1024 * 2**20 + 1)  # a pool of its own
    _pools.pop(limits.metadata_memory_bytes, None)
    start = time.perf_counter()
    meta = inspect_file(path, limits=limits)
    cold = time.perf_counter() - start
    assert "error" not in meta, meta
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        inspect_file(path, limits=limits)
        times.append(time.perf_counter() - start)
    pool = _pools.pop(limits.metadata_memory_bytes)
    (pid,) = pool.worker_pids()
    hwm = next(
        line
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmHWM")
    )
    pool.close()
    return {"median_s": statistics.median(times), "cold_s": cold, "rows": meta["row_count"],
            "peak_rss_mb": int(hwm.split()[1]) / 1024}  # fmt: skip


def baseline(path: Path, kind: str, repeat: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", BASELINE, str(path), kind, str(repeat)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    data = json.loads(out.stdout)
    return {
        "median_s": statistics.median(data["times"]),
        "rows": data["rows"],
        "peak_rss_mb": data["peak_rss_mb"],
    }


def first_after_warm_up(path: Path) -> tuple[float, float]:
    pool = WorkerPool(1024 * 2**20 + 2, max_workers=1)
    start = time.perf_counter()
    pool.warm()
    warm = time.perf_counter() - start
    job = {"path": str(path), "kind": "csv", "fmt": "text", "extension": ".csv"}
    start = time.perf_counter()
    pool.run(job, 30)
    first = time.perf_counter() - start
    pool.close()
    return warm, first


def overhead(folder: Path, n: int = 50) -> tuple[float, float]:
    tiny = folder / "tiny.txt"
    tiny.write_text("hello\n")
    pool = WorkerPool(1024 * 2**20, max_workers=1)
    job = {"path": str(tiny), "kind": "text", "fmt": "text", "extension": ".txt"}
    pool.run(job, 10)
    start = time.perf_counter()
    for _ in range(n):
        pool.run(job, 10)
    via_worker = (time.perf_counter() - start) / n
    pool.close()
    start = time.perf_counter()
    for _ in range(n):
        extract_metadata(tiny, kind="text", fmt="text", extension=".txt")
    in_process = (time.perf_counter() - start) / n
    return via_worker, in_process


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-meta-") as tmp:
        folder = Path(tmp)
        csv, parquet = make_files(folder, args.mb)
        rows = []
        for kind, path in (("csv", csv), ("parquet", parquet)):
            size = path.stat().st_size / 2**20
            o, b = ours(path, args.repeat), baseline(path, kind, args.repeat)
            assert o["rows"] == b["rows"], (o["rows"], b["rows"])
            rows.append((kind, size, o, b))
        via_worker, in_process = overhead(folder)
        warm_s, first_s = first_after_warm_up(csv)
    print(f"\nmetadata extraction, median of {args.repeat} (fresh worker pool per file type)\n")
    print(f"{'file':<9}{'MB':>6}{'rows':>11} | {'ours s':>8}{'cold s':>8}{'peak MB':>9} | "
          f"{'naive s':>8}{'peak MB':>9} | {'speed-up':>8}")  # fmt: skip
    for kind, size, o, b in rows:
        print(f"{kind:<9}{size:>6.1f}{o['rows']:>11,} | {o['median_s']:>8.3f}{o['cold_s']:>8.3f}"
              f"{o['peak_rss_mb']:>9.0f} | {b['median_s']:>8.3f}{b['peak_rss_mb']:>9.0f} | "
              f"{b['median_s'] / o['median_s']:>7.1f}x")  # fmt: skip
    print(f"\nper-file overhead of the worker round trip (tiny .txt): {via_worker * 1000:.1f} ms "
          f"via worker vs {in_process * 1000:.1f} ms in-process")  # fmt: skip
    print(f"cold = first file on a new worker (spawn + imports); warm_up() takes {warm_s:.2f} s "
          f"at start-up, after which the first CSV takes {first_s:.3f} s")  # fmt: skip
    print("ours: streamed row count + 1000-row pandas head (CSV); parquet footer + first batch.")
    print(
        "naive: pd.read_csv / pd.read_parquet of the whole file, len(df); peak MB = process max RSS."
    )


if __name__ == "__main__":
    main()
