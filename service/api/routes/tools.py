"""OpenAI function calling: ``GET /v1/tools`` (tool schemas) and ``POST /v1/tools/call``.

A tool that fails (bad arguments, a policy refusal, a failing script) answers 200 with
``is_error: true``: that text goes back to the model. Only the envelope is an HTTP error:
a malformed body (400), an unknown tool (404), a tool the caller may not use (403).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.agent_tools import CATALOGUE, ToolContext, ToolResult
from service.api.deps import DataToolsDep, PolicyDep, PrincipalDep, RegistryDep, SettingsDep
from service.errors import InvalidRequest, PayloadTooLarge

router = APIRouter(prefix="/v1/tools", tags=["tools"])


async def tool_context(
    request: Request,
    principal: PrincipalDep,
    settings: SettingsDep,
    registry: RegistryDep,
    policy: PolicyDep,
    data_tools: DataToolsDep,
) -> ToolContext:
    return ToolContext(
        principal=principal,
        settings=settings,
        executors=registry,
        policy=policy,
        data_tools=data_tools,
        base_url=str(request.base_url).rstrip("/"),
        sessions=getattr(request.app.state, "sessions", None),
    )


ToolContextDep = Annotated[ToolContext, Depends(tool_context)]


class ToolCall(BaseModel):
    """A model's tool call: ``arguments`` as an object, or as the JSON string OpenAI sends."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    arguments: dict[str, Any] | str | None = None


@router.get("", summary="The agent tools as OpenAI function-calling schemas")
async def list_tools(ctx: ToolContextDep) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.input_schema(),
            },
        }
        for tool in CATALOGUE.tools_for(ctx)
    ]


async def _read_call(request: Request, limit: int) -> ToolCall:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(
                f"request body exceeds the limit of {limit // (1024 * 1024)} MB "
                "(PYTHON_CODE_MAX_JSON_BODY)"
            )
    try:
        return ToolCall.model_validate_json(bytes(body))
    except ValidationError as exc:
        raise InvalidRequest(
            'invalid tool call: send JSON {"name": "<tool>", "arguments": {...}}',
            detail=exc.errors(include_url=False, include_context=False, include_input=False),
        ) from exc


@router.post(
    "/call",
    response_model=ToolResult,
    summary="Call a tool by name with its arguments (object or JSON string)",
)
async def call_tool(request: Request, ctx: ToolContextDep) -> ToolResult:
    call = await _read_call(request, ctx.settings.max_json_body * 1024 * 1024)
    return await CATALOGUE.call(call.name, call.arguments, ctx)
