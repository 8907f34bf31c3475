"""Tools as data: name, description, typed arguments, the permission they need, a handler.

    Catalogue.call(name, arguments, ctx)
        ├── unknown (or unavailable) tool      -> NotFound       (raised: the caller's mistake)
        ├── principal lacks tool.permission    -> Forbidden      (raised: checked only here)
        ├── arguments do not fit the model     -> ToolResult(is_error, error="InvalidArguments")
        ├── handler raises a PythonCoderError  -> ToolResult(is_error, error=<class name>)
        │   or an intake error
        └── handler returns                    -> its ToolResult

Failures the model caused or can react to are *results*, so an agent sees them and retries;
only a wrong tool name or a missing permission is raised for the adapter to map (MCP turns
those into ``isError`` results too, REST into 404/403).

New tools (sessions, ``install_package``, ``run_script``) are one more ``Tool(...)`` entry in
``build_catalogue``; the database and storage tools come from their own table
(``service/tools/registry.py``) through one adapter (``agent_tools/data.py``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from files.errors import IntakeError
from security.policy import StaticPolicy
from service.auth.permissions import Permission, Principal
from service.errors import NotFound, PythonCoderError
from service.executors.registry import ExecutorRegistry
from service.models import ToolResult
from service.pipeline.live import LiveOutput, relayed
from service.settings import Settings
from service.tools.registry import DataTools

if TYPE_CHECKING:
    from service.pipeline.sessions import SessionManager

T = TypeVar("T")
# Takes a run's output as it comes: ("stdout" | "stderr", text).
Progress = Callable[[str, str], Awaitable[None]]


@dataclass(frozen=True)
class ToolContext:
    """Who calls, and the app-lifetime objects a handler needs (built at the edge)."""

    principal: Principal
    settings: Settings
    executors: ExecutorRegistry
    policy: StaticPolicy
    data_tools: DataTools  # databases and storage roots
    # Where artifact URLs are rooted (``http://host:port``); None in-process (stdio), where
    # artifacts are named by their path on disk instead.
    base_url: str | None = None
    sessions: SessionManager | None = None  # None: no session tools (they answer so)
    # Set when the caller listens for progress (an MCP progress token): code-running tools
    # send their output there while it runs.
    progress: Progress | None = None

    async def live(self, run: Callable[[LiveOutput | None], Awaitable[T]]) -> T:
        """``run(live)``, its output going to ``progress`` as it comes (None: nobody listens)."""
        if self.progress is None:
            return await run(None)
        return await relayed(run, self.progress)


Handler = Callable[[ToolContext, Any], Awaitable[ToolResult]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args: type[BaseModel]
    permission: Permission
    handler: Handler
    # Whether the tool exists on this gateway at all (e.g. generate needs an LLM).
    available: Callable[[Settings], bool] = field(default=lambda _settings: True)

    def input_schema(self) -> dict[str, Any]:
        """JSON Schema (2020-12) of the arguments, self-contained, titles dropped."""
        schema = self.args.model_json_schema()
        schema.pop("title", None)
        return schema


def _validation_message(tool: Tool, exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"]) or "(arguments)"
        problems.append(f"{where}: {error['msg']}")
    return f"invalid arguments for {tool.name}: " + "; ".join(problems)


class Catalogue:
    """The tools in a fixed order; ``call`` is the one place permissions are checked."""

    def __init__(self, tools: Iterable[Tool]) -> None:
        self._tools = {tool.name: tool for tool in tools}

    def tools_for(self, ctx: ToolContext) -> list[Tool]:
        """The tools this gateway offers that this caller may use."""
        return [
            tool
            for tool in self._tools.values()
            if tool.available(ctx.settings) and ctx.principal.can(tool.permission)
        ]

    def get(self, name: str, settings: Settings) -> Tool:
        tool = self._tools.get(name)
        if tool is None or not tool.available(settings):
            offered = ", ".join(t.name for t in self._tools.values() if t.available(settings))
            raise NotFound(f"no tool named {name!r} (tools: {offered})")
        return tool

    async def call(
        self, name: str, arguments: dict[str, Any] | str | None, ctx: ToolContext
    ) -> ToolResult:
        """Run tool ``name``; ``arguments`` is an object or the JSON text of one (OpenAI)."""
        tool = self.get(name, ctx.settings)
        ctx.principal.require(tool.permission)
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as exc:
                return ToolResult.failure(
                    "InvalidArguments", f"arguments for {name} are not valid JSON: {exc}"
                )
        if arguments is not None and not isinstance(arguments, dict):
            return ToolResult.failure(
                "InvalidArguments", f"arguments for {name} must be a JSON object"
            )
        try:
            args = tool.args.model_validate(arguments or {})
        except ValidationError as exc:
            return ToolResult.failure("InvalidArguments", _validation_message(tool, exc))
        try:
            return await tool.handler(ctx, args)
        except PythonCoderError as exc:
            detail = exc.detail if isinstance(exc.detail, dict) else None
            return ToolResult.failure(
                type(exc).__name__, _with_findings(exc.message, detail), detail
            )
        except IntakeError as exc:
            return ToolResult.failure(type(exc).__name__, str(exc), {"file": exc.filename})


def _with_findings(message: str, detail: dict[str, Any] | None) -> str:
    """A policy refusal names each finding, so the model can rewrite the code."""
    lines = [message]
    for finding in (detail or {}).get("findings", []):
        lines.append(
            f"  line {finding.get('line')}: {finding.get('message')} [{finding.get('rule_id')}]"
        )
    return "\n".join(lines)


def build_catalogue() -> Catalogue:
    from service.agent_tools.data import DATA_TOOLS
    from service.agent_tools.environment import GET_ENVIRONMENT
    from service.agent_tools.execute import EXECUTE_CODE, GENERATE_AND_RUN
    from service.agent_tools.sessions import (
        CLOSE_SESSION,
        CREATE_SESSION,
        INSTALL_PACKAGE,
        RUN_SCRIPT,
    )

    return Catalogue(
        [
            EXECUTE_CODE,
            GET_ENVIRONMENT,
            GENERATE_AND_RUN,
            CREATE_SESSION,
            CLOSE_SESSION,
            INSTALL_PACKAGE,
            RUN_SCRIPT,
            *DATA_TOOLS,
        ]
    )


CATALOGUE = build_catalogue()
