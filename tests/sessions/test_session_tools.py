"""Session tools through the official MCP client (HTTP on both engines, stdio) and
``/v1/tools/call``: a session's cells keep state, plots come back as image content."""

from __future__ import annotations

import base64
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mcp.types as types
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.agent.conftest import Gateway, agent_settings, run_gateway
from tests.sessions.conftest import ENGINES, build_demo_wheel

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REPO = Path(__file__).resolve().parents[2]
SESSION_TOOLS = {"create_session", "close_session", "install_package", "run_script"}


@pytest.fixture(params=ENGINES)
def gateway(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Gateway]:
    settings = agent_settings(tmp_path, str(request.param))
    build_demo_wheel(settings.wheelhouse)
    with run_gateway(settings) as running:
        yield running


def texts(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def session_workflow(client: Client) -> dict[str, Any]:
    listed = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(listed) >= SESSION_TOOLS
    assert "session_id" in listed["execute_code"].input_schema["properties"]

    opened = await client.call_tool("create_session", {})
    assert opened.is_error is False, texts(opened)
    sid = opened.structured_content["id"]  # type: ignore[index]

    async def run(code: str) -> types.CallToolResult:
        return await client.call_tool("execute_code", {"code": code, "session_id": sid})

    first = await run("import pandas as pd\ndf = pd.DataFrame({'x': [1, 2, 3]})")
    assert first.is_error is False, texts(first)
    plot = await run("import matplotlib.pyplot as plt\ndf.plot()\nint(df.x.sum())")
    assert plot.is_error is False, texts(plot)
    assert "value: 6" in texts(plot)
    [png] = [c for c in plot.content if isinstance(c, types.ImageContent)]
    assert png.mime_type == "image/png" and base64.b64decode(png.data).startswith(PNG_MAGIC)

    installed = await client.call_tool(
        "install_package", {"session_id": sid, "name": "pyc-demo-pkg"}
    )
    assert installed.is_error is False, texts(installed)
    imported = await run("import pyc_demo_pkg\npyc_demo_pkg.VALUE + int(df.x.max())")
    assert "value: 45" in texts(imported)
    env = await client.call_tool("get_environment", {"session_id": sid})
    assert env.structured_content["installed"] == {"pyc-demo-pkg": "1.0.0"}  # type: ignore[index]
    assert "pyc-demo-pkg==1.0.0 (session install)" in texts(env)

    await run("open('job.py', 'w').write('import sys\\nprint(sys.argv[1:])')")
    script = await client.call_tool(
        "run_script", {"session_id": sid, "path": "job.py", "args": ["7"]}
    )
    assert script.is_error is False and "['7']" in texts(script)

    blocked = await client.call_tool("install_package", {"session_id": sid, "name": "pandas"})
    assert blocked.is_error is True and "runner image" in texts(blocked)
    closed = await client.call_tool("close_session", {"session_id": sid})
    assert closed.is_error is False
    gone = await run("1")
    assert gone.is_error is True and "no session" in texts(gone)
    return {"sid": sid}


async def test_session_tools_over_mcp_http(gateway: Gateway) -> None:
    async with Client(gateway.url + "/mcp") as client:
        await session_workflow(client)


async def test_session_tools_over_mcp_stdio(tmp_path: Path) -> None:
    build_demo_wheel(tmp_path / "exec" / "wheelhouse")
    env = {
        "PYTHON_CODE_EXECUTION_DIR": str(tmp_path / "exec"),
        "PYTHON_CODE_ENGINE": "subprocess",
        "PYTHON_CODE_LOCAL_RUNNER_DIR": str(REPO / ".runner-venv"),
        "PYTHON_CODE_POOL_MAX": "0",
        "PYTHON_CODE_LLM_BASE_URL": "",
        "PYTHON_CODE_LLM_API_KEY": "",
    }
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "service.cli", "mcp"], env=env, cwd=str(REPO)
    )
    with (tmp_path / "server.log").open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            await session_workflow(client)


def test_session_tools_over_v1_tools_call(tmp_path: Path) -> None:
    with run_gateway(agent_settings(tmp_path, "subprocess")) as gw:

        def call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
            response = httpx.post(
                gw.url + "/v1/tools/call", json={"name": name, "arguments": arguments}, timeout=60
            )
            assert response.status_code == 200, response.text
            return dict(response.json())

        sid = call("create_session", {})["data"]["id"]
        call("execute_code", {"session_id": sid, "code": "open('a.txt', 'w').write('x')\nn = 5"})
        result = call("execute_code", {"session_id": sid, "code": "n * 2"})
        assert result["is_error"] is False and result["data"]["value"] == "10"
        wrote = call("execute_code", {"session_id": sid, "code": "open('b.txt', 'w').write('y')"})
        [artifact] = wrote["data"]["artifacts"]
        assert artifact["url"] == f"{gw.url}/v1/sessions/{sid}/files/b.txt"
        assert httpx.get(artifact["url"]).text == "y"
        assert call("close_session", {"session_id": sid})["is_error"] is False
