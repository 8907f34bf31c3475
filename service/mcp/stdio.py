"""``python-coder mcp``: the catalogue over stdin/stdout for desktop agents.

The tools run in this process against its own app state (engines, policy, settings), as the
local operator: whoever starts the process already has the machine. There is no gateway to
download from, so artifacts are named by their path on disk.
"""

from __future__ import annotations

import logging
import sys

import anyio
from mcp.server.stdio import stdio_server

from security.policy import StaticPolicy
from service.agent_tools import CATALOGUE, ToolContext
from service.auth.permissions import LOCAL_OPERATOR
from service.cleanup import ArtifactSweeper, shutdown
from service.executors.registry import ExecutorRegistry
from service.mcp.server import build_server
from service.pipeline.sessions import SessionManager
from service.settings import Settings
from service.tools.registry import DataTools

log = logging.getLogger(__name__)


async def serve_stdio(settings: Settings) -> None:
    settings.execution_dir.mkdir(parents=True, exist_ok=True)
    # Databases (the sample SQLite one when none is configured) and storage roots, first: a
    # bad DATABASE_URL stops the start before any engine is up.
    data_tools = DataTools.from_settings(settings)
    # A desktop agent calls again and again: keep a warm pool like the HTTP gateway does.
    registry = ExecutorRegistry(settings, pooled=True)
    registry.open_slots()
    sweeper = ArtifactSweeper(settings)
    sweeper.start()
    policy = StaticPolicy()
    sessions = SessionManager(registry, settings, policy)
    ctx = ToolContext(
        principal=LOCAL_OPERATOR,
        settings=settings,
        executors=registry,
        policy=policy,
        data_tools=data_tools,
        sessions=sessions,
    )
    server = build_server(CATALOGUE, lambda _request: ctx)
    log.info("python-coder MCP on stdio: %s", registry.describe())
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(sessions.run_sweeper)
            async with stdio_server() as (read_stream, write_stream):
                await server.run(read_stream, write_stream, server.create_initialization_options())
            tasks.cancel_scope.cancel()
    finally:
        try:
            await sessions.close()
            # Drain the pool, wait for running jobs, then kill leftovers.
            await shutdown(settings, registry, sweeper)
            await anyio.to_thread.run_sync(registry.close)
        finally:
            data_tools.close()


def mcp_command() -> int:
    import anyio

    from service.settings import get_settings

    settings = get_settings()
    # stdout carries the protocol: every log line goes to stderr.
    logging.basicConfig(
        stream=sys.stderr,
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    anyio.run(serve_stdio, settings)
    return 0
