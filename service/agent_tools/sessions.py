"""Session tools: ``create_session``, ``close_session``, cells through ``execute_code``,
``install_package``, ``run_script``; ``get_environment`` of a session. Thin: each calls the
``SessionManager`` as the ``/v1/sessions`` routes do and words the result for a model."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.agent_tools.catalogue import Tool, ToolContext
from service.auth.permissions import Permission
from service.errors import EngineUnavailable
from service.executors.base import InputFile
from service.models import CellResponse, InlineFile, ToolImage, ToolResult
from service.pipeline.jobs import Upload, intake_uploads, open_job
from service.pipeline.packages import install_package as install
from service.pipeline.sessions import Session, SessionManager

MAX_TEXT_CHARS = 20_000
SESSION_ID = "The id create_session returned."


def _sessions(ctx: ToolContext) -> SessionManager:
    if ctx.sessions is None:
        raise EngineUnavailable("sessions are not available on this server")
    return ctx.sessions


def _session(ctx: ToolContext, session_id: str) -> Session:
    return _sessions(ctx).get(session_id, ctx.principal)


def _clip(text: str) -> str:
    if len(text) <= MAX_TEXT_CHARS:
        return text
    return text[:MAX_TEXT_CHARS] + f"\n... ({len(text) - MAX_TEXT_CHARS} more characters)"


class CreateSessionArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout_s: float | None = Field(None, gt=0, description="Default seconds per cell.")
    memory_mb: int | None = Field(None, gt=0, description="Memory for the session, MB.")
    idle_ttl_s: float | None = Field(
        None, gt=0, description="The session ends after this long without a call."
    )


class CloseSessionArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: str = Field(min_length=1, description=SESSION_ID)


class InstallPackageArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: str = Field(min_length=1, description=SESSION_ID)
    name: str = Field(min_length=1, description="The package's name on PyPI.")
    version: str | None = Field(None, description="An exact version (default: the newest).")


class RunScriptArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: str = Field(min_length=1, description=SESSION_ID)
    path: str = Field(min_length=1, description="A .py file in the session's working dir.")
    args: list[str] = Field(default_factory=list, description="Command-line arguments.")
    timeout_s: float | None = Field(None, gt=0, description="Seconds before it is stopped.")


async def create_session(ctx: ToolContext, args: CreateSessionArgs) -> ToolResult:
    info = await _sessions(ctx).create(
        ctx.principal,
        timeout_s=args.timeout_s,
        memory_mb=args.memory_mb,
        idle_ttl_s=args.idle_ttl_s,
    )
    text = (
        f"Session {info.id} is open ({info.engine} engine, {info.memory_mb} MB, "
        f"{info.timeout_s:g}s per cell). Pass session_id={info.id!r} to execute_code: "
        f"variables, imports and files persist. It ends after {info.idle_ttl_s:g}s idle."
    )
    return ToolResult(text=text, data=info.model_dump(mode="json"))


async def close_session(ctx: ToolContext, args: CloseSessionArgs) -> ToolResult:
    manager = _sessions(ctx)
    manager.get(args.session_id, ctx.principal)
    await manager.close_session(args.session_id)
    return ToolResult(text=f"Session {args.session_id} is closed.", data={"closed": True})


async def run_cell(
    ctx: ToolContext, session_id: str, code: str, files: list[InlineFile], timeout_s: float | None
) -> ToolResult:
    """``execute_code`` with a ``session_id``."""
    manager = _sessions(ctx)
    session = manager.get(session_id, ctx.principal)
    async with open_job(ctx.settings, ctx.principal.identity) as job:
        uploads = [Upload(f.name, _one_chunk(f.to_bytes())) for f in files]
        await intake_uploads(job, uploads, ctx.settings)
        inputs = tuple(InputFile(name=f.name, path=f.path, size=f.size) for f in job.files)
        response = await ctx.live(
            lambda live: manager.execute(
                session,
                code,
                caller=ctx.principal,
                inputs=inputs,
                timeout_s=timeout_s,
                live=live,
            )
        )
    return cell_result(response, ctx)


async def _one_chunk(data: bytes) -> Any:
    yield data


async def install_package(ctx: ToolContext, args: InstallPackageArgs) -> ToolResult:
    session = _session(ctx, args.session_id)
    done = await install(
        _sessions(ctx), session, args.name, args.version, ctx.settings, ctx.principal
    )
    text = f"Installed {done.package} {done.version}; import it in the next cell." + (
        f" Also installed: {', '.join(done.wheels[1:])}." if len(done.wheels) > 1 else ""
    )
    return ToolResult(text=text, data=done.model_dump(mode="json"))


async def run_script(ctx: ToolContext, args: RunScriptArgs) -> ToolResult:
    session = _session(ctx, args.session_id)
    response = await ctx.live(
        lambda live: _sessions(ctx).run_script(
            session,
            args.path,
            args.args,
            caller=ctx.principal,
            timeout_s=args.timeout_s,
            live=live,
        )
    )
    return cell_result(response, ctx)


async def session_environment(ctx: ToolContext, session_id: str) -> ToolResult:
    env = await _sessions(ctx).environment(_session(ctx, session_id))
    packages = ", ".join(
        f"{p['name']}=={p['version']}{' (session install)' if p['session_install'] else ''}"
        for p in env["packages"]
    )
    limits = env["limits"]
    text = (
        f"Session {session_id}: Python {env['python']} on the {env['engine']} engine; no "
        f"network. Limits: {limits['timeout_s']:g}s per cell, {limits['memory_mb']} MB, "
        f"{limits['cpus']:g} CPU.\nPackages: {packages}"
    )
    return ToolResult(text=text, data=env)


def cell_result(response: CellResponse, ctx: ToolContext) -> ToolResult:
    data: dict[str, Any] = response.model_dump(mode="json")
    if ctx.base_url is not None:
        for entry in data["artifacts"]:
            entry["url"] = ctx.base_url.rstrip("/") + entry["url"]
    images = [
        ToolImage(name=f"display-{i}.png", data=d.data)
        for i, d in enumerate(response.display)
        if d.mime == "image/png"
    ]
    if response.success:
        lines = [f"Cell {response.cell} ran in {response.execution_time:.2f}s."]
    elif response.timed_out:
        lines = [f"Cell {response.cell} was interrupted: it ran past its timeout."]
    else:
        lines = [f"Cell {response.cell} failed (exit code {response.exit_code})."]
    if response.state_lost:
        lines.append("The interpreter was restarted: every variable and import is gone.")
    if response.output:
        lines += ["", "stdout:", _clip(response.output).rstrip()]
    if response.error:
        lines += ["", "stderr:" if response.success else "error:", _clip(response.error).rstrip()]
    if response.value is not None:
        lines += ["", f"value: {_clip(response.value)}"]
    if response.artifacts:
        lines += ["", "Files written:"]
        lines += [f"- {a['name']} ({a['size']} bytes): {a['url']}" for a in data["artifacts"]]
    if images:
        lines += ["", f"{len(images)} figure(s) shown as images."]
    error = None
    if not response.success:
        error = "Timeout" if response.timed_out else "CellFailed"
    return ToolResult(
        text="\n".join(lines), data=data, images=images, is_error=not response.success, error=error
    )


CREATE_SESSION = Tool(
    name="create_session",
    description=(
        "Open a stateful Python session (a dedicated sandbox without network). Cells run with "
        "execute_code(session_id=...) keep variables, imports, installed packages and files, "
        "like a notebook. Close it with close_session when done."
    ),
    args=CreateSessionArgs,
    permission=Permission.EXECUTE,
    handler=create_session,
)

CLOSE_SESSION = Tool(
    name="close_session",
    description="End a session and discard its state and files.",
    args=CloseSessionArgs,
    permission=Permission.EXECUTE,
    handler=close_session,
)

INSTALL_PACKAGE = Tool(
    name="install_package",
    description=(
        "Install a PyPI package (binary wheels only) into a session; import it in the next "
        "cell. Packages already in the sandbox are reported with their version."
    ),
    args=InstallPackageArgs,
    permission=Permission.INSTALL,
    handler=install_package,
)

RUN_SCRIPT = Tool(
    name="run_script",
    description=(
        "Run a .py file of a session's working directory (uploaded or written by a cell) as "
        "__main__ with command-line arguments, in a fresh process; the session's variables "
        "are not touched. Returns stdout, stderr and the files it wrote."
    ),
    args=RunScriptArgs,
    permission=Permission.RUN_SCRIPT,
    handler=run_script,
)
