"""``/mcp``: streamable HTTP inside the gateway, with the same caller resolution as REST.

The session manager is built and run in the app lifespan (``mcp_lifespan``) and found on
``app.state``; the endpoint resolves the caller first, so a bad key is an HTTP 401 like
anywhere else, then hands the request to the SDK.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from service.agent_tools import CATALOGUE, ToolContext
from service.api.deps import resolve_principal
from service.api.errors import error_body, status_for
from service.errors import InvalidRequest, PythonCoderError
from service.mcp.server import build_server
from service.settings import Settings

PATH = "/mcp"


def http_tool_context(ctx: ServerRequestContext[Any, Any]) -> ToolContext:
    request = ctx.request
    if not isinstance(request, Request):
        raise InvalidRequest("MCP over HTTP without an HTTP request")
    state = request.app.state
    return ToolContext(
        principal=resolve_principal(request.headers, state),
        settings=state.settings,
        executors=state.executors,
        policy=state.policy,
        data_tools=state.data_tools,
        base_url=str(request.base_url).rstrip("/"),
        sessions=getattr(state, "sessions", None),
    )


@asynccontextmanager
async def mcp_lifespan(state: Any, settings: Settings) -> AsyncIterator[None]:
    """Run the MCP session manager for the app's lifetime; it lives on ``state.mcp``."""
    manager = StreamableHTTPSessionManager(
        app=build_server(CATALOGUE, http_tool_context),
        # Stateless: any worker answers any request; our own sessions are tools, not MCP
        # sessions. Answers are SSE streams, not plain JSON: only a stream carries the
        # progress notifications (a run's output) before the result.
        stateless=True,
        json_response=False,
        max_request_body_size=settings.max_json_body * 1024 * 1024,
    )
    async with manager.run():
        state.mcp = manager
        try:
            yield
        finally:
            state.mcp = None


class MCPEndpoint:
    """The ASGI app at ``/mcp`` (a class: Starlette routes a plain function as a view)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope["app"].state
        try:
            resolve_principal(Headers(scope=scope), state)
        except PythonCoderError as exc:
            await JSONResponse(error_body(exc), status_for(exc))(scope, receive, send)
            return
        manager: StreamableHTTPSessionManager | None = getattr(state, "mcp", None)
        if manager is None:
            await JSONResponse(
                {"error": "EngineUnavailable", "message": "the MCP endpoint is not running"}, 503
            )(scope, receive, send)
            return
        await manager.handle_request(scope, receive, send)
