"""The catalogue's own rules: who sees which tool, where permissions are checked, and how
MCP reports a refusal (a tool error, not a protocol error)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import mcp.types as types
import pytest
from mcp.client import Client
from pydantic import BaseModel, ConfigDict

from security.policy import StaticPolicy
from service.agent_tools import CATALOGUE, Catalogue, Tool, ToolContext, ToolResult
from service.auth.permissions import Permission, Principal, Role
from service.errors import Forbidden, NotFound
from service.executors.registry import ExecutorRegistry
from service.mcp.server import build_server
from service.tools.registry import DataTools
from tests.agent.conftest import agent_settings


class EchoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


async def echo(ctx: ToolContext, args: EchoArgs) -> ToolResult:
    return ToolResult(text=args.text, data={"by": ctx.principal.identity})


SCRIPT_TOOL = Tool(
    name="run_script",
    description="stands in for a tool that needs run_script",
    args=EchoArgs,
    permission=Permission.RUN_SCRIPT,
    handler=echo,
)
QUERY_TOOL = Tool(
    name="query",
    description="needs query",
    args=EchoArgs,
    permission=Permission.QUERY,
    handler=echo,
)


ContextFor = Callable[..., ToolContext]


@pytest.fixture
def context(tmp_path: Path) -> Iterator[ContextFor]:
    made: list[DataTools] = []

    def make(role: Role, **overrides: object) -> ToolContext:
        settings = agent_settings(tmp_path, "subprocess", **overrides)
        made.append(DataTools.from_settings(settings))
        return ToolContext(
            principal=Principal(identity=f"key:{role.value}", role=role),
            settings=settings,
            executors=ExecutorRegistry(settings),
            policy=StaticPolicy(),
            data_tools=made[-1],
        )

    yield make
    for tools in made:
        tools.close()


async def test_callers_see_and_call_only_what_their_role_allows(context: ContextFor) -> None:
    catalogue = Catalogue([SCRIPT_TOOL, QUERY_TOOL])
    scientist = context(Role.DATA_SCIENTIST)  # may query, may not run scripts
    engineer = context(Role.DATA_ENGINEER)
    assert [t.name for t in catalogue.tools_for(scientist)] == ["query"]
    assert [t.name for t in catalogue.tools_for(engineer)] == ["run_script", "query"]

    with pytest.raises(Forbidden, match="role data_scientist may not run_script"):
        await catalogue.call("run_script", {"text": "hi"}, scientist)
    result = await catalogue.call("run_script", {"text": "hi"}, engineer)
    assert result == ToolResult(text="hi", data={"by": "key:data_engineer"})
    with pytest.raises(NotFound, match="no tool named 'nope'"):
        await catalogue.call("nope", {}, engineer)


async def test_mcp_turns_a_refusal_into_a_tool_error(context: ContextFor) -> None:
    catalogue = Catalogue([SCRIPT_TOOL, QUERY_TOOL])
    scientist = context(Role.DATA_SCIENTIST)
    async with Client(build_server(catalogue, lambda _request: scientist)) as client:
        listed = await client.list_tools()
        assert [t.name for t in listed.tools] == ["query"]
        refused = await client.call_tool("run_script", {"text": "hi"})
        allowed = await client.call_tool("query", {"text": "hi"})
    assert refused.is_error is True
    [text] = refused.content
    assert isinstance(text, types.TextContent)
    assert text.text == "role data_scientist may not run_script"
    assert allowed.is_error is False
    assert allowed.structured_content == {"by": "key:data_scientist"}


def test_generate_and_run_is_offered_only_with_a_model(
    context: ContextFor, no_llm_env: None
) -> None:
    without = context(Role.ADMIN)
    with_model = context(Role.ADMIN, llm_base_url="http://127.0.0.1:9/v1")
    assert "generate_and_run" not in {t.name for t in CATALOGUE.tools_for(without)}
    assert "generate_and_run" in {t.name for t in CATALOGUE.tools_for(with_model)}
