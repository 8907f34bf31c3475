"""What the agent surfaces add to a run: ``/v1/execute`` vs ``/v1/tools/call`` vs MCP.

The same trivial script goes through each surface of one live gateway (uvicorn on a loopback
port); ``/v1/execute`` is the baseline measured in the same run, so the table shows the
translation cost of the tool layer and of the MCP protocol. A second table does the same for a
data tool: one query on the sample database, ``/v1/db/query`` being the baseline.

    .venv/bin/python benchmarks/bench_agent_tools.py [--repeat 10] [--engine subprocess]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import uvicorn
from mcp.client import Client as MCPClient

from service.api.app import create_app
from service.settings import Settings
from tests.deploy.gateway import free_port

CODE = "print(1)"
QUERY = "SELECT region, revenue FROM revenue_by_region ORDER BY region"


async def median_s(fn: Callable[[], Awaitable[object]], repeat: int) -> float:
    await fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def measure(url: str, repeat: int) -> dict[str, dict[str, float]]:
    async with httpx.AsyncClient(base_url=url, timeout=120) as http, MCPClient(url + "/mcp") as mcp:

        async def rest() -> object:
            return (await http.post("/v1/execute", json={"code": CODE})).raise_for_status()

        async def tools() -> object:
            body = {"name": "execute_code", "arguments": {"code": CODE}}
            return (await http.post("/v1/tools/call", json=body)).raise_for_status()

        async def mcp_call() -> object:
            result = await mcp.call_tool("execute_code", {"code": CODE})
            assert not result.is_error
            return result

        async def db_rest() -> object:
            return (await http.post("/v1/db/query", json={"query": QUERY})).raise_for_status()

        async def db_tools() -> object:
            body = {"name": "execute_query", "arguments": {"query": QUERY}}
            return (await http.post("/v1/tools/call", json=body)).raise_for_status()

        async def db_mcp() -> object:
            result = await mcp.call_tool("execute_query", {"query": QUERY})
            assert not result.is_error
            return result

        return {
            f"script `{CODE}`": {
                "POST /v1/execute (baseline)": await median_s(rest, repeat),
                "POST /v1/tools/call": await median_s(tools, repeat),
                "MCP tools/call over /mcp": await median_s(mcp_call, repeat),
            },
            "execute_query on the sample database": {
                "POST /v1/db/query (baseline)": await median_s(db_rest, repeat),
                "POST /v1/tools/call": await median_s(db_tools, repeat),
                "MCP tools/call over /mcp": await median_s(db_mcp, repeat),
            },
        }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--engine", default="subprocess", choices=["docker", "subprocess"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        settings = Settings(
            execution_dir=Path(tmp) / "exec",
            engine=args.engine,
            storage_roots=[Path(tmp) / "data"],
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
            results = asyncio.run(measure(f"http://127.0.0.1:{port}", args.repeat))
        finally:
            server.should_exit = True
            thread.join(30)
    print(f"engine={args.engine}, median of {args.repeat}")
    for title, table in results.items():
        base = next(iter(table.values()))
        print(f"\n{title}")
        print(f"{'surface':32} {'median ms':>10} {'vs baseline':>12}")
        for name, seconds in table.items():
            print(f"{name:32} {seconds * 1000:10.1f} {(seconds - base) * 1000:+11.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
