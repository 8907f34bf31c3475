"""Intake of 50 mixed files through the warm metadata workers: per-file latency and totals.

    .venv/bin/python benchmarks/bench_intake.py [--repeat 5]

The files are the test suite's generated samples (every supported type: CSV, Excel, Word,
PDF, XML, JSON, HDF5, netCDF, Parquet, images, zip/tar/7z archives, ...), 50 in all. The
workers are started and warmed first (as the gateway does at start), then:

- *metadata per file*: ``inspect_file`` of each file (sniff in the caller, parse in a warm
  worker), median and p95 over all files and repeats, and the bare round trip of a tiny text
  file (the worker's own cost);
- *intake*: ``FileIntake`` of the 50 files in batches of 20 (the per-request limit), archives
  extracted, metadata for every file and member: wall time per batch of 20.

Prints which sandbox the workers ran in; the baseline is the same run on the commit before.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from files.intake import FileIntake, IntakeLimits, inspect_file, warm_up  # noqa: E402
from files.worker import shutdown_workers  # noqa: E402
from tests.files.conftest import make_samples  # noqa: E402

N_FILES = 50
BATCH = 20


def _files(root: Path) -> list[Path]:
    samples = sorted(make_samples(root / "samples").values())
    return [samples[i % len(samples)] for i in range(N_FILES)]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--sandbox",
        choices=("auto", "confined"),
        default="auto",
        help="confined: the compose container's mode (no bubblewrap), measured on this host",
    )
    args = parser.parse_args()
    if args.sandbox != "auto":
        from files import worker as worker_module
        from files.sandbox import detect

        chosen = detect(args.sandbox)
        worker_module.worker_sandbox = lambda: chosen  # every pool of this run uses it
    limits = IntakeLimits()
    work = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    try:
        files = _files(work)
        t = time.perf_counter()
        warm_up(limits)
        warm_s = time.perf_counter() - t
        from files import worker as worker_module

        chooser = getattr(worker_module, "worker_sandbox", None)  # absent before the sandbox
        where = chooser().describe() if chooser else "unsandboxed (the gateway's env and uid)"
        tiny = work / "tiny.txt"
        tiny.write_text("hello\n")
        for path in files:  # one pass to settle imports of every reader
            inspect_file(path, limits=limits)
        per_file: list[float] = []
        for _ in range(args.repeat):
            for path in files:
                t = time.perf_counter()
                meta = inspect_file(path, limits=limits)
                per_file.append(time.perf_counter() - t)
                assert "error" not in meta, (path.name, meta.get("error"))
        tiny_times = []
        for _ in range(200):
            t = time.perf_counter()
            inspect_file(tiny, limits=limits)
            tiny_times.append(time.perf_counter() - t)
        batches: list[float] = []
        for r in range(args.repeat):
            for start in range(0, N_FILES, BATCH):
                job = work / f"job-{r}-{start}"
                job.mkdir()
                intake = FileIntake(job, limits)
                for i, path in enumerate(files[start : start + BATCH]):
                    intake.add_path(f"{i}-{path.name}", path)
                t = time.perf_counter()
                result = intake.finish()
                if start + BATCH <= N_FILES:
                    batches.append(time.perf_counter() - t)
                assert all("error" not in m for m in result.metadata.values())
                shutil.rmtree(job)
    finally:
        shutdown_workers()
        shutil.rmtree(work, ignore_errors=True)
    ms = 1000
    print(f"workers: {where}")
    print(f"warm-up of the worker pool: {warm_s * ms:.0f} ms")
    print(
        f"metadata per file ({N_FILES} mixed files x {args.repeat}): "
        f"median {statistics.median(per_file) * ms:.2f} ms, p95 {_pct(per_file, 0.95) * ms:.2f} ms, "
        f"mean {statistics.fmean(per_file) * ms:.2f} ms"
    )
    print(
        f"tiny text file round trip: median {statistics.median(tiny_times) * ms:.3f} ms, "
        f"p95 {_pct(tiny_times, 0.95) * ms:.3f} ms"
    )
    print(
        f"intake of {BATCH} mixed files (archives extracted, metadata of every file): "
        f"median {statistics.median(batches) * ms:.0f} ms, p95 {_pct(batches, 0.95) * ms:.0f} ms"
    )


if __name__ == "__main__":
    main()
