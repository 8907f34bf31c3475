"""MCP progress notifications carry a run's output while it runs (official client, both
transports): for ``execute_code`` one-shot and as a session cell."""

from __future__ import annotations

import time
from pathlib import Path

import mcp.types as types
from mcp.client import Client
from mcp.client.stdio import stdio_client

from tests.agent.conftest import Gateway
from tests.agent.test_mcp import stdio_params, texts

SLEEPY = "import sys, time\nprint('first', flush=True)\ntime.sleep(2)\nprint('second', file=sys.stderr)\n"


class Progress:
    def __init__(self) -> None:
        self.seen: list[tuple[float, float, str | None]] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.seen.append((time.monotonic(), progress, message))


async def first_arrives_early(client: Client, arguments: dict[str, object]) -> None:
    progress = Progress()
    result = await client.call_tool("execute_code", arguments, progress_callback=progress)
    done = time.monotonic()
    assert result.is_error is False, texts(result)
    messages = [m for _, _, m in progress.seen]
    assert messages == ["first\n", "[stderr] second\n"], progress.seen
    assert done - progress.seen[0][0] > 1.0, "the first line came only with the result"
    assert [p for _, p, _ in progress.seen] == [1, 2]  # it only increases


async def streams(client: Client) -> None:
    await first_arrives_early(client, {"code": SLEEPY})
    opened = await client.call_tool("create_session", {})
    assert isinstance(opened.structured_content, dict), texts(opened)
    session_id = opened.structured_content["id"]
    try:
        await first_arrives_early(client, {"code": SLEEPY, "session_id": session_id})
    finally:
        await client.call_tool("close_session", {"session_id": session_id})
    # Without a progress callback there is no token, and nothing is sent.
    quiet = await client.call_tool("execute_code", {"code": "print('hi')"})
    assert isinstance(quiet, types.CallToolResult) and "hi" in texts(quiet)


async def test_mcp_over_http_reports_output_as_progress(local_gateway: Gateway) -> None:
    async with Client(local_gateway.url + "/mcp") as client:
        await streams(client)


async def test_mcp_over_stdio_reports_output_as_progress(tmp_path: Path) -> None:
    with (tmp_path / "server.log").open("w") as errlog:
        async with Client(stdio_client(stdio_params(tmp_path), errlog=errlog)) as client:
            await streams(client)
