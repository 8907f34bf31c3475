"""``get_environment``: what code will find in the sandbox, as a tool."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from service.agent_tools.catalogue import Tool, ToolContext
from service.auth.permissions import Permission
from service.environment import describe_environment
from service.models import ToolResult


class GetEnvironmentArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: str | None = Field(
        default=None, description="Describe this session, its own installs included."
    )


async def get_environment(ctx: ToolContext, args: GetEnvironmentArgs) -> ToolResult:
    if args.session_id is not None:
        from service.agent_tools.sessions import session_environment

        return await session_environment(ctx, args.session_id)
    executor = ctx.executors.get(None)
    env = await describe_environment(executor, ctx.settings)
    limits = env["limits"]
    packages = ", ".join(f"{p['name']}=={p['version']}" for p in env["packages"])
    text = (
        f"Python {env['python_version']} ({env['implementation']}) on the {env['engine']} "
        f"engine; no network. Limits: {limits['timeout_s']}s per run (at most "
        f"{limits['max_timeout_s']}s), {limits['memory_mb']} MB memory, {limits['cpus']} CPU, "
        f"{limits['max_files']} input files of at most {limits['max_file_size_mb']} MB.\n"
        f"Installed packages: {packages}"
    )
    return ToolResult(text=text, data=env)


GET_ENVIRONMENT = Tool(
    name="get_environment",
    description=(
        "Describe the sandbox code runs in: Python version, installed packages with their "
        "versions, the engine, and the limits (time, memory, CPU, files); with session_id, "
        "that session (packages it installed are marked)."
    ),
    args=GetEnvironmentArgs,
    permission=Permission.EXECUTE,
    handler=get_environment,
)
