"""Soak: a sustained mixed load through a real gateway, then a count of what it left behind.

Starts ``python -m service.cli serve`` on a loopback port (warm pool on, the operator's
defaults otherwise) and sends ``--runs`` jobs (default 2000) at ``--concurrency`` (16): pandas
scripts, plots, CSV uploads, scripts that fail, scripts that time out, and about 20% hostile
ones (memory bombs, thread bombs, output floods, fork bombs). The static policy refuses some
hostile scripts with 422: those count as refused, not as errors.

It reports p50/p99 latency per kind, the number of 5xx and 429 answers, the gateway's RSS over
time (mean of the first tenth of samples against the last tenth) and, after a SIGTERM stop,
leaked containers (labelled as this gateway's), processes (still in the gateway's session)
and directories (job dirs left under the execution dir).

    .venv/bin/python benchmarks/soak.py [--runs 2000] [--concurrency 16] [--engine docker]
    .venv/bin/python benchmarks/soak.py --runs 200 --check   # CI: exit 1 on any 5xx or leak
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from service.executors.base import CONTAINER_LABEL, GATEWAY_LABEL  # noqa: E402

PLOT = (
    "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
    "fig, ax = plt.subplots()\nax.plot([1, 3, 2])\nfig.savefig('plot.png')\nprint('saved')\n"
)
UPLOAD = "import pandas as pd\ndf = pd.read_csv('data.csv')\nprint(df.describe().to_json())\n"
CSV = "x,y\n" + "".join(f"{i},{i * i % 97}\n" for i in range(2000))


@dataclass(frozen=True)
class Kind:
    name: str
    weight: int  # out of 100
    code: str
    timeout_s: float = 20
    upload: bool = False
    hostile: bool = False


KINDS = [
    Kind("pandas", 25, "import pandas as pd\nprint(pd.DataFrame({'a': range(1000)}).a.sum())\n"),
    Kind("plot", 15, PLOT),
    Kind("upload", 15, UPLOAD, upload=True),
    Kind("trivial", 7, "print('hello')\n"),
    Kind("failure", 10, "raise ValueError('this script fails on purpose')\n"),
    Kind("timeout", 8, "while True:\n    pass\n", timeout_s=2),
    Kind(
        "memory_bomb",
        6,
        "blocks = []\nwhile True:\n    blocks.append(bytearray(50 * 1024 * 1024))\n",
        hostile=True,
    ),
    Kind(
        "thread_bomb",
        4,
        "import threading, time\nwhile True:\n"
        "    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n",
        timeout_s=5,
        hostile=True,
    ),
    Kind(
        "output_flood",
        6,
        "import sys\nfor _ in range(200_000):\n    sys.stdout.write('x' * 100 + '\\n')\n",
        hostile=True,
    ),
    Kind("fork_bomb", 4, "import os\nwhile True:\n    os.fork()\n", timeout_s=3, hostile=True),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Gateway:
    """A real gateway in its own session, so its leftover processes can be found by sid."""

    def __init__(self, tmp: Path, engine: str, extra_env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.execution_dir = tmp / "exec"
        env = {
            **os.environ,
            "PYTHON_CODE_ENGINE": engine,
            "PYTHON_CODE_EXECUTION_DIR": str(self.execution_dir),
            "PYTHON_CODE_LOG_LEVEL": "WARNING",
            **extra_env,
        }
        self.log_path = tmp / "gateway.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "service.cli", "serve", "--port", str(self.port)],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.owner = f"{socket.gethostname()}:{self.proc.pid}"

    def wait_ready(self, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("gateway not ready")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def session_processes(sid: int) -> list[str]:
    """Processes still in the gateway's session (its sandboxes' processes, if any leaked)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if int(fields[3]) == sid:
            found.append(f"{entry} {cmd.decode(errors='replace')[:120]}")
    return found


def leaked_containers(owner: str) -> list[str]:
    try:
        import docker
    except ImportError:
        return []
    try:
        client = docker.from_env(timeout=30)
    except Exception:  # no engine here: nothing to leak
        return []
    try:
        found = client.containers.list(
            all=True, filters={"label": [CONTAINER_LABEL, f"{GATEWAY_LABEL}={owner}"]}
        )
        return [c.name for c in found]
    except Exception:
        return []
    finally:
        client.close()


def leaked_dirs(execution_dir: Path) -> list[str]:
    """Job scratch dirs (and engine job dirs) left under the execution dir; kept artifacts,
    the audit log and stored query results are not leaks."""
    kept = {"artifacts", "owners", "audit.jsonl", "query-results", "jobs", "sample.db"}
    left = [str(p) for p in (execution_dir / "jobs").glob("*")] if execution_dir.exists() else []
    if execution_dir.exists():
        left += [str(p) for p in execution_dir.iterdir() if p.name not in kept]
    return left


def one_run(client: httpx.Client, kind: Kind) -> tuple[str, int, float, str]:
    started = time.perf_counter()
    try:
        if kind.upload:
            response = client.post(
                "/v1/execute",
                data={"code": kind.code, "timeout_s": str(kind.timeout_s)},
                files={"files": ("data.csv", CSV.encode(), "text/csv")},
            )
        else:
            response = client.post(
                "/v1/execute", json={"code": kind.code, "timeout_s": kind.timeout_s}
            )
    except httpx.HTTPError as exc:
        return kind.name, 0, time.perf_counter() - started, f"transport: {exc!r}"
    elapsed = time.perf_counter() - started
    outcome = str(response.status_code)
    if response.status_code == 200:
        outcome = "ok" if response.json().get("success") else "failed"
    elif response.status_code == 422:
        outcome = "refused"
    return kind.name, response.status_code, elapsed, outcome


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def soak(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    plan = rng.choices(KINDS, weights=[k.weight for k in KINDS], k=args.runs)
    extra = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory(prefix="pyc-soak-") as tmp:
        gateway = Gateway(Path(tmp), args.engine, extra)
        try:
            gateway.wait_ready()
            rss: list[tuple[float, float]] = []
            done = threading.Event()

            def sample() -> None:
                while not done.wait(args.rss_every_s):
                    rss.append((time.monotonic(), gateway.rss_mb()))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            results: list[tuple[str, int, float, str]] = []
            started = time.monotonic()
            with (
                httpx.Client(base_url=gateway.url, timeout=300) as client,
                ThreadPoolExecutor(args.concurrency) as workers,
            ):
                for i, result in enumerate(workers.map(lambda k: one_run(client, k), plan), 1):
                    results.append(result)
                    if args.progress and i % max(1, args.runs // 10) == 0:
                        print(f"  {i}/{args.runs} in {time.monotonic() - started:.0f} s")
            wall = time.monotonic() - started
            done.set()
            sampler.join()
            queue = httpx.get(gateway.url + "/readyz", timeout=10).json().get("queue")
        finally:
            exit_code = gateway.stop()
        time.sleep(1)  # let the last disposals land
        leaks = {
            "containers": leaked_containers(gateway.owner),
            "processes": session_processes(gateway.proc.pid),
            "dirs": leaked_dirs(gateway.execution_dir),
        }
    by_kind: dict[str, list[float]] = defaultdict(list)
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    for name, _status, elapsed, outcome in results:
        by_kind[name].append(elapsed)
        outcomes[name][outcome] += 1
    latencies = [elapsed for _, _, elapsed, _ in results]
    statuses = Counter(status for _, status, _, _ in results)
    samples = [mb for _, mb in rss]
    tenth = max(1, len(samples) // 10)
    first = statistics.mean(samples[:tenth]) if samples else 0.0
    last = statistics.mean(samples[-tenth:]) if samples else 0.0
    return {
        "engine": args.engine,
        "runs": args.runs,
        "concurrency": args.concurrency,
        "wall_s": round(wall, 1),
        "runs_per_s": round(args.runs / wall, 2),
        "p50_s": round(percentile(latencies, 0.50), 3),
        "p99_s": round(percentile(latencies, 0.99), 3),
        "status": {str(k): v for k, v in sorted(statuses.items())},
        "5xx": sum(v for k, v in statuses.items() if k >= 500),
        "429": statuses.get(429, 0),
        "transport_errors": statuses.get(0, 0),
        "hostile_share": round(sum(k.hostile for k in plan) / max(1, len(plan)), 3),
        "by_kind": {
            name: {
                "n": len(values),
                "p50_s": round(percentile(values, 0.5), 3),
                "p99_s": round(percentile(values, 0.99), 3),
                "outcomes": dict(outcomes[name]),
            }
            for name, values in sorted(by_kind.items())
        },
        "rss_mb": {
            "samples": len(samples),
            "start": round(samples[0], 1) if samples else 0.0,
            "peak": round(max(samples), 1) if samples else 0.0,
            "end": round(samples[-1], 1) if samples else 0.0,
            "first_tenth": round(first, 1),
            "last_tenth": round(last, 1),
            "growth": round((last - first) / first, 3) if first else 0.0,
            # The mean of each tenth of the run: a leak climbs, a warm-up steps once.
            "by_tenth": [
                round(statistics.mean(samples[i * tenth : (i + 1) * tenth]), 1)
                for i in range(min(10, len(samples) // tenth))
            ],
        },
        "queue_at_end": queue,
        "gateway_exit": exit_code,
        "leaks": leaks,
    }


def failures(report: dict[str, Any]) -> list[str]:
    """What makes ``--check`` fail: any 5xx, transport error or leak."""
    found = []
    if report["5xx"]:
        found.append(f"{report['5xx']} answers were 5xx")
    if report["transport_errors"]:
        found.append(f"{report['transport_errors']} requests got no answer")
    for what, items in report["leaks"].items():
        if items:
            found.append(f"leaked {what}: {items[:5]}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--engine", default="docker")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--rss-every-s", type=float, default=1.0)
    parser.add_argument("--env", action="append", default=[], help="NAME=value for the gateway")
    parser.add_argument("--check", action="store_true", help="exit 1 on any 5xx or leak")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()
    report = soak(args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    problems = failures(report)
    for problem in problems:
        print(f"SOAK FAILED: {problem}", file=sys.stderr)
    return 1 if args.check and problems else 0


if __name__ == "__main__":
    sys.exit(main())
