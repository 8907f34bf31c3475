"""Warm pool over HTTP against cold baselines measured in the same run.

For each engine it starts a real gateway (``python -m service.cli serve``) with a warm pool
and measures, in this order:

1. latency (p50/p95/p99) of trivial, pandas and matplotlib-plot scripts over HTTP at a light,
   paced load (``--rate`` requests/s, below the host's churn ceiling), against a cold
   baseline: a hardened ``docker run`` of the same image with the same flags (docker), or the
   runner venv's ``python -c`` with no sandbox (subprocess);
2. sustained throughput at concurrency 4 (pandas script) against the raw churn ceiling of the
   engine: hardened create+start+wait+remove of the runner image running ``true``, 4 at a
   time (docker), or 4 concurrent bare sandboxes (subprocess: cold provision+run+dispose);
3. pool refill (provisions per second while the throughput run drains it) and the idle
   memory of one pooled sandbox;
4. gateway RSS over ``--rss-runs`` pooled runs (first and last tenth compared);
5. with ``--cpu-requests N``: the host CPU one pooled pandas request costs, its sandbox's
   provisioning and disposal included (N requests at 0.5/s, less the idle host's CPU),
   against the CPU of one cold run of the same script measured during the cold churn. Two
   cores divided by it is the request rate the host can sustain with single-use sandboxes.

    .venv/bin/python benchmarks/bench_pool.py [--engines docker,subprocess] [--runtime runsc]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from service.settings import Settings  # noqa: E402

SCRIPTS = {
    "trivial": "print(1)",
    "pandas": "import pandas as pd\nprint(pd.DataFrame({'a': [1, 2, 3]}).a.sum())",
    "plot": (
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3], [3, 1, 2])\nplt.savefig('plot.png')\nprint('ok')"
    ),
}


def host_cpu_s() -> float:
    """CPU-seconds the host has spent busy since boot (all cores, from /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # less idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Host CPU-seconds spent while it is open, less what the idle host spends meanwhile."""

    idle_per_s = 0.0

    @classmethod
    def calibrate(cls, seconds: float = 3.0) -> None:
        start, began = host_cpu_s(), time.monotonic()
        time.sleep(seconds)
        cls.idle_per_s = (host_cpu_s() - start) / (time.monotonic() - began)

    def __enter__(self) -> CpuMeter:
        self.start, self.began = host_cpu_s(), time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.monotonic() - self.began
        self.cpu_s = host_cpu_s() - self.start - self.idle_per_s * self.elapsed


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Gateway:
    def __init__(
        self,
        engine: str,
        tmp: Path,
        runtime: str | None,
        pool: tuple[int, int],
        preimport: str | None = None,
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "PYTHON_CODE_ENGINE": engine,
            "PYTHON_CODE_EXECUTION_DIR": str(tmp / "exec"),
            "PYTHON_CODE_POOL_MIN": str(pool[0]),
            "PYTHON_CODE_POOL_MAX": str(pool[1]),
            "PYTHON_CODE_LOG_LEVEL": "WARNING",
        }
        if runtime:
            env["PYTHON_CODE_DOCKER_RUNTIME"] = runtime
        if preimport is not None:
            env["PYTHON_CODE_POOL_PREIMPORT"] = preimport
        self.log = (tmp / f"gateway-{engine}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(self.port)],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.client = httpx.Client(base_url=self.url, timeout=120)

    def wait_healthy(self) -> None:
        for _ in range(600):
            try:
                if self.client.get("/healthz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("gateway did not come up")

    def metric(self, name: str) -> float:
        total = 0.0
        for line in self.client.get("/metrics").text.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def pool_counts(self) -> dict[str, float]:
        return {
            "hits": self.metric("python_coder_pool_hits_total"),
            "misses": self.metric("python_coder_pool_misses_total"),
        }

    def wait_pool(self, size: int, timeout: float = 180) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.metric("python_coder_pool_size{") >= size:
                return time.monotonic() - started
            time.sleep(0.05)
        raise RuntimeError(f"pool did not reach {size}")

    def execute(self, code: str) -> float:
        started = time.perf_counter()
        response = self.client.post("/v1/execute", json={"code": code})
        elapsed = time.perf_counter() - started
        body = response.json()
        assert response.status_code == 200 and body["success"], response.text[:500]
        return elapsed

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.client.close()
        self.log.close()


def docker_run_argv(settings: Settings, runtime: str | None, code: str, seccomp: Path) -> list[str]:
    """A hardened ``docker run``; ``seccomp``: a file for the runner's profile (as the
    executor passes it: without it gVisor with --oci-seccomp applies Docker's default one)."""
    from service.executors.docker.seccomp_profile import runner_seccomp_profile

    seccomp.write_text(runner_seccomp_profile(runtime))
    argv = ["docker", "run", "--rm", "--network", "none", "--read-only", "--cap-drop", "ALL"]
    argv += ["--security-opt", "no-new-privileges", "--security-opt", f"seccomp={seccomp}"]
    argv += ["--tmpfs", "/tmp", "--user", "10001:10001"]
    argv += ["--tmpfs", "/work:rw,nosuid,nodev,noexec,uid=10001,gid=10001", "-w", "/work"]
    argv += ["-e", "MPLBACKEND=Agg", "-e", "HOME=/tmp"]
    argv += ["--memory", f"{settings.max_memory}m", "--pids-limit", str(settings.pids_limit)]
    if runtime:
        argv += ["--runtime", runtime]
    return [*argv, "--entrypoint", "/opt/venv/bin/python", settings.image, "-c", code]


def cold_baseline(engine: str, runtime: str | None, code: str, repeat: int) -> list[float]:
    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="pyc-bench-") as tmp:
        if engine == "docker":
            argv = docker_run_argv(settings, runtime, code, Path(tmp) / "seccomp.json")
        else:
            argv = [os.path.abspath(settings.local_runner_python), "-c", code]
        samples = []
        # In the temp dir: the plot script writes plot.png where it runs.
        subprocess.run(argv, check=True, capture_output=True, cwd=tmp)  # warm the page cache
        for _ in range(repeat):
            started = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True, cwd=tmp)
            samples.append(time.perf_counter() - started)
    return samples


def _hit_ratio(before: dict[str, float], after: dict[str, float]) -> float:
    hits = after["hits"] - before["hits"]
    misses = after["misses"] - before["misses"]
    return hits / (hits + misses) if hits + misses else 0.0


def paced(fn: Callable[[], float], n: int, rate: float) -> list[float]:
    samples = []
    interval = 1.0 / rate
    next_at = time.monotonic()
    for _ in range(n):
        now = time.monotonic()
        if next_at > now:
            time.sleep(next_at - now)
        next_at = max(next_at + interval, time.monotonic())
        samples.append(fn())
    return samples


def throughput(fn: Callable[[], Any], n: int, concurrency: int = 4) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as workers:
        list(workers.map(lambda _i: fn(), range(n)))
    return n / (time.perf_counter() - started)


def docker_churn(runtime: str | None, seconds: float, code: str | None = None) -> float:
    """Hardened create+start+wait+remove of the runner image running ``true`` (or ``python
    -c code``), 4 at a time."""
    import docker

    from service.executors.docker.seccomp_profile import runner_seccomp_profile

    settings = Settings()
    client = docker.APIClient(**docker.utils.kwargs_from_env(), version="1.41", timeout=60)
    host_config = client.create_host_config(
        network_mode="none",
        cap_drop=["ALL"],
        security_opt=["no-new-privileges", f"seccomp={runner_seccomp_profile(runtime)}"],
        read_only=True,
        tmpfs={"/tmp": "rw,nosuid,nodev,noexec,size=64m"},
        pids_limit=settings.pids_limit,
        mem_limit=settings.max_memory_bytes,
        runtime=runtime,
    )
    done = 0
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def loop() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            c = client.create_container(
                settings.image,
                entrypoint=["/bin/true"] if code is None else ["python", "-c", code],
                user="10001",
                host_config=host_config,
                labels={"io.python-coder.bench": "1"},
            )
            client.start(c["Id"])
            client.wait(c["Id"], timeout=60)
            client.remove_container(c["Id"], force=True)
            with lock:
                done += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=loop) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rate = done / (time.perf_counter() - started)
    client.close()
    return rate


def local_churn(n: int, code: str = "pass") -> float:
    """Cold local sandboxes (provision + run + dispose), 4 at a time, through the executor."""
    from service.executors.base import RunLimits, RunRequest
    from service.executors.local.executor import SubprocessExecutor

    with tempfile.TemporaryDirectory(prefix="pyc-bench-") as tmp:
        executor = SubprocessExecutor(Settings(execution_dir=Path(tmp) / "exec"))

        def one() -> None:
            with tempfile.TemporaryDirectory(prefix="pyc-bench-out-") as out:
                r = executor.run(RunRequest(uuid.uuid4().hex, code, (), Path(out), RunLimits()))
                assert r.success, r

        one()
        return throughput(one, n)


def idle_memory_mb(engine: str) -> float | None:
    """Memory of one idle pooled sandbox: the container's cgroup usage less page cache, or
    the PSS of a local harness process tree."""
    if engine == "docker":
        import docker

        client = docker.APIClient(**docker.utils.kwargs_from_env(), version="1.41")
        try:
            found = client.containers(filters={"label": "io.python-coder.managed"})
            usages = []
            for c in found:
                if c["Labels"].get("io.python-coder.job"):
                    continue  # a cold run's container, not a pooled one
                try:
                    mem = client.stats(c["Id"], stream=False).get("memory_stats", {})
                except docker.errors.NotFound:
                    continue  # disposed of (or recycled) since the listing
                cache = (mem.get("stats") or {}).get("cache", 0)
                usages.append((mem.get("usage", 0) - cache) / 2**20)
            return statistics.median(usages) if usages else None
        finally:
            client.close()
    pss: dict[int, float] = {}
    parent: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
            if b"harness.py" not in cmd or b"bwrap" in cmd or b"setpriv" in cmd:
                continue
            stat = (proc / "stat").read_text()
            parent[int(proc.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            for line in (proc / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss[int(proc.name)] = int(line.split()[1]) / 1024
        except (OSError, ValueError):
            continue
    # One sandbox: a harness and the script process it forked ahead (a child of it).
    trees: dict[int, float] = {}
    for pid, mb in pss.items():
        root = parent[pid] if parent.get(pid) in pss else pid
        trees[root] = trees.get(root, 0.0) + mb
    totals = list(trees.values())
    return statistics.median(totals) if totals else None


def cpu_per_request(args: argparse.Namespace, gateway: Gateway) -> dict[str, float]:
    """Host CPU per pooled pandas request, its refill and disposal included: requests at
    0.5/s, then until the pool is full again and its disposals are done. It starts after
    12 quiet seconds, so the pool is out of its 10 s pressure window: the refills import
    the full pre-import list, as they do at a light load."""
    gateway.wait_pool(args.pool_min)
    time.sleep(12.0)
    n = args.cpu_requests
    gateway_before = gateway.cpu_s()
    with CpuMeter() as meter:
        paced(lambda: gateway.execute(SCRIPTS["pandas"]), n, 0.5)
        gateway.wait_pool(args.pool_min)
        time.sleep(3.0)  # the last disposal
    return {
        "cpu_per_request_s": meter.cpu_s / n,
        "gateway_cpu_per_request_s": (gateway.cpu_s() - gateway_before) / n,
    }


def bench_engine(args: argparse.Namespace, engine: str, runtime: str | None) -> dict[str, Any]:
    label = engine if not runtime else f"{engine}+{runtime}"
    report: dict[str, Any] = {"engine": label, "latency": {}}
    with tempfile.TemporaryDirectory(prefix="pyc-bench-") as tmp:
        gateway = Gateway(
            engine, Path(tmp), runtime, (args.pool_min, args.pool_max), args.preimport
        )
        try:
            gateway.wait_healthy()
            report["pool_fill_s"] = round(gateway.wait_pool(args.pool_min), 2)
            for name, code in SCRIPTS.items():
                cold = cold_baseline(engine, runtime, code, args.cold_repeat)
                for rate in args.rate or [3.0]:
                    gateway.execute(code)  # warm the gateway's own path
                    gateway.wait_pool(args.pool_min)
                    time.sleep(args.settle)  # let the refill and disposals of before finish
                    before = gateway.pool_counts()
                    warm = paced(lambda code=code: gateway.execute(code), args.requests, rate)
                    after = gateway.pool_counts()
                    key = f"{name} @ {rate:g}/s"
                    report["latency"][key] = {
                        "p50": statistics.median(warm),
                        "p95": pct(warm, 0.95),
                        "p99": pct(warm, 0.99),
                        "cold_p50": statistics.median(cold),
                        "speedup": statistics.median(cold) / statistics.median(warm),
                        "hit_ratio": _hit_ratio(before, after),
                    }
                    print(f"  {label} {key}: {json.dumps(report['latency'][key])}", flush=True)
            if args.cpu_requests:
                report.update(cpu_per_request(args, gateway))
            report["idle_mb"] = idle_memory_mb(engine)
            provisioned_before = gateway.metric("python_coder_pool_provision_seconds_count")
            started = time.perf_counter()
            report["throughput"] = throughput(
                lambda: gateway.execute(SCRIPTS["pandas"]), args.throughput_runs
            )
            took = time.perf_counter() - started
            provisioned = gateway.metric("python_coder_pool_provision_seconds_count")
            report["refill_per_s"] = (provisioned - provisioned_before) / took
            print(f"  {label} throughput {report['throughput']:.2f}/s", flush=True)
            if args.rss_runs:
                gateway.wait_pool(args.pool_min)
                rss = []
                for i in range(args.rss_runs):
                    gateway.execute(SCRIPTS["trivial"])
                    if i % max(1, args.rss_runs // 20) == 0:
                        rss.append(gateway.rss_mb())
                tenth = max(1, len(rss) // 10)
                first, last = statistics.mean(rss[:tenth]), statistics.mean(rss[-tenth:])
                report["rss"] = {"runs": args.rss_runs, "first_mb": first, "last_mb": last}
        finally:
            gateway.stop()
    if engine == "docker":
        report["churn_per_s"] = docker_churn(runtime, args.churn_seconds)
        with CpuMeter() as meter:
            report["cold_throughput"] = docker_churn(runtime, args.churn_seconds, SCRIPTS["pandas"])
    else:
        report["churn_per_s"] = local_churn(args.throughput_runs)
        with CpuMeter() as meter:
            report["cold_throughput"] = local_churn(args.throughput_runs // 2, SCRIPTS["pandas"])
    report["cold_cpu_s"] = meter.cpu_s / (report["cold_throughput"] * meter.elapsed)
    report["throughput_vs_churn"] = report["throughput"] / report["churn_per_s"]
    report["throughput_vs_cold"] = report["throughput"] / report["cold_throughput"]
    print(
        f"  {label} churn {report['churn_per_s']:.2f}/s, cold pandas "
        f"{report['cold_throughput']:.2f}/s, refill {report['refill_per_s']:.2f}/s, "
        f"idle {report.get('idle_mb')} MB, cold run {report['cold_cpu_s']:.3f} CPU-s",
        flush=True,
    )
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engines", default="docker,subprocess")
    parser.add_argument("--runtime", action="append", default=[], help="also docker+RUNTIME")
    parser.add_argument("--requests", type=int, default=60, help="paced requests per script")
    parser.add_argument(
        "--rate", type=float, action="append", help="paced requests per second (repeatable)"
    )
    parser.add_argument("--settle", type=float, default=5.0, help="quiet seconds before each")
    parser.add_argument("--cold-repeat", type=int, default=7)
    parser.add_argument("--throughput-runs", type=int, default=60)
    parser.add_argument("--churn-seconds", type=float, default=15.0)
    parser.add_argument("--rss-runs", type=int, default=0)
    parser.add_argument("--cpu-requests", type=int, default=0, help="pooled requests metered")
    parser.add_argument("--pool-min", type=int, default=2)
    parser.add_argument("--pool-max", type=int, default=6)
    parser.add_argument("--preimport", default=None, help="PYTHON_CODE_POOL_PREIMPORT")
    args = parser.parse_args()
    runs: list[tuple[str, str | None]] = [(e, None) for e in args.engines.split(",") if e]
    runs += [("docker", r) for r in args.runtime]
    CpuMeter.calibrate()
    reports = []
    for engine, runtime in runs:
        print(f"== {engine} {runtime or ''}", flush=True)
        reports.append(bench_engine(args, engine, runtime))
    print()
    print(
        "| engine | script @ rate | p50 ms | p95 ms | p99 ms | hits | cold p50 ms | cold / warm |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in reports:
        for name, lat in r["latency"].items():
            print(
                f"| {r['engine']} | {name} | {lat['p50'] * 1000:.0f} | {lat['p95'] * 1000:.0f} | "
                f"{lat['p99'] * 1000:.0f} | {lat['hit_ratio']:.0%} | "
                f"{lat['cold_p50'] * 1000:.0f} | {lat['speedup']:.1f}x |"
            )
    print()
    print(
        "| engine | throughput c=4 /s | churn ceiling /s | ratio | cold pandas c=4 /s | ratio "
        "| refill /s | idle MB | RSS |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in reports:
        rss = r.get("rss")
        rss_text = (
            f"{rss['first_mb']:.0f} -> {rss['last_mb']:.0f} MB over {rss['runs']}" if rss else "-"
        )
        idle = f"{r['idle_mb']:.0f}" if r.get("idle_mb") else "-"
        print(
            f"| {r['engine']} | {r['throughput']:.2f} | {r['churn_per_s']:.2f} | "
            f"{r['throughput_vs_churn']:.0%} | {r['cold_throughput']:.2f} | "
            f"{r['throughput_vs_cold']:.0%} | {r['refill_per_s']:.2f} | {idle} | {rss_text} |"
        )
    if args.cpu_requests:
        print()
        print(
            "| engine | CPU-s per pooled request | of which gateway | CPU-s per cold run "
            "| pooled / cold | sustainable req/s on this host |"
        )
        print("|---|---|---|---|---|---|")
        cores = os.cpu_count() or 1
        for r in reports:
            per = r["cpu_per_request_s"]
            print(
                f"| {r['engine']} | {per:.3f} | {r['gateway_cpu_per_request_s']:.3f} | "
                f"{r['cold_cpu_s']:.3f} | {per / r['cold_cpu_s']:.0%} | {cores / per:.1f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
