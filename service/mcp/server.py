"""One MCP server for both transports: list the catalogue, call a tool, translate results.

Every failure comes back as a tool result with ``isError`` and a message (the model sees it
and can react), never as a protocol error. A call that carries a progress token gets the
output of the code it runs as progress notifications while it runs (``output_progress``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import mcp.types as types
from mcp.server import Server, ServerRequestContext

from files.errors import IntakeError
from service import __version__
from service.agent_tools import Catalogue, Tool, ToolContext, ToolResult
from service.agent_tools.catalogue import Progress
from service.errors import PythonCoderError

log = logging.getLogger(__name__)

# How a transport turns an MCP request into the caller and the app's objects.
ContextOf = Callable[[ServerRequestContext[Any, Any]], ToolContext]

INSTRUCTIONS = (
    "python-coder runs Python in isolated sandboxes without network. Use execute_code to run "
    "code against files you pass inline; plots saved as PNG come back as images. "
    "get_environment lists the installed packages and limits. Read-only SQL (execute_query, "
    "list_tables, get_schema, describe_table, get_table_sample) and file storage (read_file, "
    "read_csv, read_parquet, list_files, write_file) are offered as your key's role allows."
)


def mcp_tool(tool: Tool) -> types.Tool:
    return types.Tool(
        name=tool.name, description=tool.description, input_schema=tool.input_schema()
    )


def call_result(result: ToolResult) -> types.CallToolResult:
    content: list[types.ContentBlock] = [types.TextContent(text=result.text)]
    content += [types.ImageContent(data=i.data, mime_type=i.media_type) for i in result.images]
    return types.CallToolResult(
        content=content, structured_content=result.data, is_error=result.is_error
    )


def output_progress(ctx: ServerRequestContext[Any, Any]) -> Progress | None:
    """Progress notifications with a run's output, when the caller sent a progress token:
    ``progress`` counts the chunks, ``message`` is the text (stderr's prefixed ``[stderr]``)."""
    if (ctx.meta or {}).get("progress_token") is None:
        return None
    sent = 0

    async def report(stream: str, text: str) -> None:
        nonlocal sent
        sent += 1
        await ctx.session.report_progress(
            sent, None, text if stream == "stdout" else f"[stderr] {text}"
        )

    return report


def build_server(catalogue: Catalogue, context_of: ContextOf) -> Server[Any]:
    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[mcp_tool(tool) for tool in catalogue.tools_for(context_of(ctx))]
        )

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        try:
            tool_ctx = replace(context_of(ctx), progress=output_progress(ctx))
            result = await catalogue.call(params.name, params.arguments, tool_ctx)
        except PythonCoderError as exc:  # unknown tool, missing permission, no key
            result = ToolResult.failure(type(exc).__name__, exc.message)
        except IntakeError as exc:
            result = ToolResult.failure(type(exc).__name__, str(exc))
        except Exception as exc:  # our bug: logged in full, the model gets a short reason
            log.exception("MCP tool %s failed", params.name)
            result = ToolResult.failure(
                "InternalError", f"{params.name} failed inside the gateway ({type(exc).__name__})"
            )
        return call_result(result)

    return Server(
        "python-coder",
        version=__version__,
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
