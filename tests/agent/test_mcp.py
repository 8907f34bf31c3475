"""The official MCP client against ``/mcp`` (streamable HTTP) and ``python-coder mcp`` (stdio)."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import httpx
import mcp.types as types
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from service.tools.registry import TOOLS as DATA_TOOLS
from tests.agent.conftest import PLOT_CODE, SALES_CSV, Gateway

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REPO = Path(__file__).resolve().parents[2]


def texts(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


def images(result: types.CallToolResult) -> list[types.ImageContent]:
    return [c for c in result.content if isinstance(c, types.ImageContent)]


async def exercise(client: Client) -> types.CallToolResult:
    """List the tools, run a plot, and check what every transport must give back."""
    listed = await client.list_tools()
    tools = {tool.name: tool for tool in listed.tools}
    assert {"execute_code", "get_environment"} <= set(tools)
    assert "generate_and_run" not in tools  # no LLM configured
    schema = tools["execute_code"].input_schema
    assert schema["type"] == "object"
    assert schema["required"] == ["code"]
    assert {"code", "files", "timeout_s"} <= set(schema["properties"])

    result = await client.call_tool(
        "execute_code", {"code": PLOT_CODE, "files": [{"name": "sales.csv", "content": SALES_CSV}]}
    )
    assert result.is_error is False, texts(result)
    assert "total 46" in texts(result)
    [png] = images(result)
    assert png.mime_type == "image/png"
    assert base64.b64decode(png.data).startswith(PNG_MAGIC)
    data = result.structured_content
    assert isinstance(data, dict)
    assert data["success"] is True
    assert {a["name"] for a in data["artifacts"]} == {"revenue.png", "summary.csv"}
    return result


async def tool_errors(client: Client) -> None:
    refused = await client.call_tool(
        "execute_code", {"code": "import subprocess\nsubprocess.run(['id'])"}
    )
    assert refused.is_error is True
    assert "static policy rejected" in texts(refused)
    assert "subprocess" in texts(refused)

    bad = await client.call_tool("execute_code", {"source": "print(1)"})
    assert bad.is_error is True
    assert "invalid arguments for execute_code" in texts(bad)
    assert "code: Field required" in texts(bad)

    unknown = await client.call_tool("no_such_tool", {})
    assert unknown.is_error is True
    assert "no tool named 'no_such_tool'" in texts(unknown)

    failing = await client.call_tool("execute_code", {"code": "raise ValueError('boom')"})
    assert failing.is_error is True
    assert "ValueError: boom" in texts(failing)


async def test_mcp_over_http_runs_code_and_returns_the_plot_as_an_image(gateway: Gateway) -> None:
    async with Client(gateway.url + "/mcp") as client:
        result = await exercise(client)
    csv_url = next(
        a["url"] for a in result.structured_content["artifacts"] if a["name"] == "summary.csv"
    )
    assert csv_url.startswith(gateway.url + "/v1/executions/")
    assert csv_url in texts(result)
    download = httpx.get(csv_url)
    assert download.status_code == 200
    assert download.text.startswith(",month,revenue")


async def test_mcp_over_http_reports_failures_as_tool_errors(local_gateway: Gateway) -> None:
    async with Client(local_gateway.url + "/mcp") as client:
        await tool_errors(client)
        env = await client.call_tool("get_environment", {})
    assert env.is_error is False
    assert isinstance(env.structured_content, dict)
    assert env.structured_content["engine"] == "subprocess"
    assert "pandas" in {p["name"].lower() for p in env.structured_content["packages"]}


def stdio_params(tmp_path: Path) -> StdioServerParameters:
    env = {
        "PYTHON_CODE_EXECUTION_DIR": str(tmp_path / "exec"),
        "PYTHON_CODE_ENGINE": "subprocess",
        "PYTHON_CODE_LOCAL_RUNNER_DIR": str(REPO / ".runner-venv"),
        # Whatever a developer's .env says: no model, so generate_and_run is not offered.
        "PYTHON_CODE_LLM_BASE_URL": "",
        "PYTHON_CODE_LLM_API_KEY": "",
        # The data tools: the sample database (made in the execution dir) and one root.
        "PYTHON_CODE_STORAGE_ROOTS": str(tmp_path / "data"),
    }
    return StdioServerParameters(
        command=sys.executable, args=["-m", "service.cli", "mcp"], env=env, cwd=str(REPO)
    )


async def data_tools(client: Client, root: Path) -> None:
    """The database and storage tools, as the local operator (who may use them all)."""
    listed = {tool.name for tool in (await client.list_tools()).tools}
    assert {spec.name for spec in DATA_TOOLS} <= listed
    query = await client.call_tool("execute_query", {"query": "SELECT count(*) FROM customers"})
    assert query.is_error is False, texts(query)
    assert isinstance(query.structured_content, dict)
    assert query.structured_content["row_count"] == 1
    written = await client.call_tool("write_file", {"file_path": "sales.csv", "content": SALES_CSV})
    assert written.is_error is False, texts(written)
    assert (root / "sales.csv").read_text() == SALES_CSV
    table = await client.call_tool("read_csv", {"file_path": "sales.csv", "n_rows": 2})
    assert table.is_error is False, texts(table)
    assert isinstance(table.structured_content, dict)
    assert table.structured_content["rows"] == [[1, 10], [2, 12]]
    assert table.structured_content["truncated"] is True
    outside = await client.call_tool("read_file", {"file_path": "/etc/hostname"})
    assert outside.is_error is True and "storage roots" in texts(outside)


async def test_mcp_over_stdio_serves_the_same_tools(tmp_path: Path) -> None:
    with (tmp_path / "server.log").open("w") as errlog:
        async with Client(stdio_client(stdio_params(tmp_path), errlog=errlog)) as client:
            result = await exercise(client)
            await tool_errors(client)
            await data_tools(client, tmp_path / "data")
    # No gateway to download from: artifacts are named by their path on disk.
    paths = {a["name"]: a["path"] for a in result.structured_content["artifacts"]}
    summary = Path(paths["summary.csv"])
    assert summary.is_file() and summary.is_relative_to(tmp_path / "exec")
    assert str(summary) in texts(result)
    assert not list((tmp_path / "exec" / "jobs").iterdir())
