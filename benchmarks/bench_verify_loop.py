"""The verify -> modify loop's own overhead per round, excluding model time.

A scripted OpenAI-compatible server on 127.0.0.1 answers instantly; the client meters the
time spent waiting for each HTTP answer, so what remains of a round is the loop itself:
the static policy, prompt building, JSON/code extraction, bookkeeping.

    .venv/bin/python benchmarks/bench_verify_loop.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from security.policy import StaticPolicy
from service.llm.client import UsageMeter, build_llm
from service.llm.extract import extract_code, extract_json
from service.llm.prompts import Task
from service.llm.reviewer import review_prompt
from service.pipeline.verify_loop import verify_and_modify
from service.settings import Settings
from tests.llm.openai_server import ScriptedOpenAI
from tests.llm.scripts import approve, issue, modification, review


def script(lines: int) -> str:
    body = [
        "import json",
        "import pandas as pd",
        "df = pd.read_csv('employees.csv')",
    ]
    body += [f"x{i} = df['salary'].mean() * {i} + len(df)" for i in range(lines - 4)]
    body.append("print(json.dumps({'answer': x0}))")
    return "\n".join(body) + "\n"


FILES = {
    "employees.csv": {
        "type": "csv",
        "columns": ["name", "department", "salary"],
        "row_count": 1000,
        "sample_data": [{"name": "Ann", "department": "Sales", "salary": 50000}] * 3,
    }
}


def scenario(code: str, rounds: int) -> list[str]:
    """Answers for ``rounds`` verification rounds: rounds-1 rejections, then an approval."""
    answers: list[str] = []
    for n in range(rounds - 1):
        answers += [
            review(False, issue(f"problem {n}")),
            modification(code + f"# fix {n}\n", "fix"),
        ]
    return [*answers, approve()]


async def measure(
    server: ScriptedOpenAI, settings: Settings, code: str, rounds: int
) -> dict[str, float]:
    llm = build_llm(settings)
    meter = UsageMeter()
    server.push(*scenario(code, rounds))
    http_before = len(server.http_s)
    started = time.perf_counter()
    out = await verify_and_modify(
        code, Task(query="average salary", files=FILES), llm=llm, meter=meter,
        settings=settings, policy=StaticPolicy(),
    )  # fmt: skip
    wall = time.perf_counter() - started
    await llm.close()
    assert len(out.history) == rounds, out.history
    return {
        "wall": wall / rounds,
        "model": meter.model_s / rounds,
        "server": sum(server.http_s[http_before:]) / rounds,
        "overhead": sum(out.overhead_s) / rounds,
        "policy": out.policy_s / rounds,
        "rest": (sum(out.overhead_s) - out.policy_s) / rounds,
    }


def micro(fn: Callable[[], object], repeat: int = 200) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    rows = []
    with ScriptedOpenAI() as server:
        settings = Settings(
            _env_file=None, llm_base_url=server.base_url, llm_api_key="k",
            llm_max_retries=0, max_iterations=3,
        )  # fmt: skip
        for lines in (20, 200, 1000):
            code = script(lines)
            for rounds in (1, 2, 4):
                samples = [
                    asyncio.run(measure(server, settings, code, rounds)) for _ in range(args.repeat)
                ]
                med = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
                p95 = sorted(s["overhead"] for s in samples)[int(0.95 * (len(samples) - 1))]
                rows.append((lines, rounds, med, p95))

    print(f"verify loop, per round (median of {args.repeat}; times in ms)")
    header = f"{'lines':>6} {'rounds':>6} {'wall':>8} {'model':>8} {'server':>8} {'overhead':>9} {'p95':>7} {'policy':>8} {'rest':>7}"
    print(header)
    print("-" * len(header))
    for lines, rounds, med, p95 in rows:
        print(
            f"{lines:>6} {rounds:>6} {med['wall'] * 1e3:>8.2f} {med['model'] * 1e3:>8.2f} "
            f"{med['server'] * 1e3:>8.2f} {med['overhead'] * 1e3:>9.2f} {p95 * 1e3:>7.2f} "
            f"{med['policy'] * 1e3:>8.2f} {med['rest'] * 1e3:>7.2f}"
        )
    code = script(200)
    task = Task(query="average salary", files=FILES)
    answer = "```python\n" + code + "```"
    print("\nparts (200-line script, ms per call)")
    print(f"  static policy check     {micro(lambda: StaticPolicy().check(code)) * 1e3:8.3f}")
    print(f"  generate prompt build   {micro(task.generate_prompt) * 1e3:8.3f}")
    print(f"  review prompt build     {micro(lambda: review_prompt(task, code, [])) * 1e3:8.3f}")
    print(f"  extract code (fenced)   {micro(lambda: extract_code(answer)) * 1e3:8.3f}")
    bare = "Sure, here it is:\n" + code
    print(f"  extract code (bare)     {micro(lambda: extract_code(bare)) * 1e3:8.3f}")
    mod = modification(code, "c")
    print(f"  parse modification JSON {micro(lambda: extract_json(mod)) * 1e3:8.3f}")
    print("\nwall = overhead + model; model = client-side HTTP wait (server = its share spent in")
    print("the scripted server), so overhead is the loop's own cost per round; rest = overhead")
    print("minus the static policy (prompt building, parsing, bookkeeping).")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
