"""``execute_code`` and ``generate_and_run``: the one-shot pipelines as agent tools.

The handlers take the job in and call ``run_execution`` / ``run_generation``, exactly as
``POST /v1/execute`` and ``/v1/generate`` do; what is added here is the translation of the
result for a model: a readable text, the result as data, PNG plots as images.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.agent_tools.catalogue import Tool, ToolContext
from service.auth.permissions import Permission
from service.errors import EngineUnavailable
from service.llm.client import build_llm, llm_configured
from service.models import ExecutionResponse, InlineFile, ToolImage, ToolResult
from service.pipeline.execute import run_execution
from service.pipeline.generate import run_generation
from service.pipeline.jobs import Upload, artifacts_root, intake_uploads, open_job
from service.pipeline.staging import stage_uploads

CHUNK = 1024 * 1024
# Plots returned inline; more (or bigger) ones stay downloadable as artifacts.
MAX_IMAGES = 8
MAX_IMAGE_BYTES = 5 * 1024 * 1024
# stdout/stderr as shown to the model; the full text is in the structured data.
MAX_TEXT_CHARS = 20_000

FILES_DESCRIPTION = (
    "Input files, placed in the script's working directory under their names: "
    "text content as-is (encoding 'utf-8') or binary content as base64 (encoding 'base64')."
)


class ExecuteCodeArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        min_length=1,
        description=(
            "Python 3 source to run as a script. print() what you want to see; files the "
            "script writes to its working directory come back as artifacts (PNG plots as images)."
        ),
    )
    files: list[InlineFile] = Field(default_factory=list, description=FILES_DESCRIPTION)
    stage: list[str] = Field(
        default_factory=list,
        description=(
            "Stored files to copy into the working directory under their last path component: "
            "paths under the storage roots (list_files), s3://bucket/key, or the stored_as of "
            "execute_query with save_as_parquet. Rows never pass through the conversation."
        ),
    )
    timeout_s: float | None = Field(
        default=None,
        gt=0,
        description="Seconds before the run is stopped (default: the gateway's).",
    )
    session_id: str | None = Field(
        default=None,
        description=(
            "Run as a cell of this session (create_session): variables, imports and files "
            "persist, and the value of a last bare expression is returned. Omit for a "
            "fresh one-shot sandbox."
        ),
    )


class GenerateAndRunArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, description="What to compute, in plain language.")
    context: str | None = Field(
        default=None, description="Optional background: earlier findings, constraints, units."
    )
    files: list[InlineFile] = Field(default_factory=list, description=FILES_DESCRIPTION)
    timeout_s: float | None = Field(
        default=None, gt=0, description="Seconds each run may take (default: the gateway's)."
    )


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), CHUNK):
        yield data[start : start + CHUNK]


def _uploads(files: list[InlineFile]) -> list[Upload]:
    return [Upload(f.name, _chunks(f.to_bytes())) for f in files]


def _require_enabled(ctx: ToolContext) -> None:
    if not ctx.settings.enabled:
        raise EngineUnavailable("code execution is disabled on this gateway (PYTHON_CODE_ENABLED)")


async def execute_code(ctx: ToolContext, args: ExecuteCodeArgs) -> ToolResult:
    _require_enabled(ctx)
    if args.session_id is not None:
        from service.agent_tools.sessions import run_cell

        return await run_cell(ctx, args.session_id, args.code, args.files, args.timeout_s)
    executor = ctx.executors.get(None)
    staged = await stage_uploads(args.stage, ctx.data_tools, ctx.principal, ctx.settings)
    async with open_job(ctx.settings, ctx.principal.identity) as job:
        await intake_uploads(job, [*_uploads(args.files), *staged], ctx.settings)
        response = await ctx.live(
            lambda live: run_execution(
                job,
                args.code,
                executor=executor,
                settings=ctx.settings,
                policy=ctx.policy,
                timeout_s=args.timeout_s,
                caller=ctx.principal,
                live=live,
            )
        )
    return execution_result(response, ctx)


async def generate_and_run(ctx: ToolContext, args: GenerateAndRunArgs) -> ToolResult:
    _require_enabled(ctx)
    llm = build_llm(ctx.settings)
    try:
        executor = ctx.executors.get(None)
        async with open_job(ctx.settings, ctx.principal.identity) as job:
            await intake_uploads(job, _uploads(args.files), ctx.settings)
            response = await run_generation(
                args.query.strip(),
                args.context,
                job,
                executor,
                ctx.settings,
                llm,
                policy=ctx.policy,
                timeout_s=args.timeout_s,
                caller=ctx.principal,
            )
    finally:
        await llm.close()
    return execution_result(response, ctx, show_code=True)


# --- the result, for a model ------------------------------------------------------------------


def _clip(text: str) -> str:
    if len(text) <= MAX_TEXT_CHARS:
        return text
    return text[:MAX_TEXT_CHARS] + f"\n... ({len(text) - MAX_TEXT_CHARS} more characters)"


def _artifact_file(ctx: ToolContext, job_id: str, name: str) -> Path | None:
    root = (artifacts_root(ctx.settings) / job_id).resolve()
    path = (root / name).resolve()
    return path if path.is_relative_to(root) and path.is_file() else None


def _read_image(path: Path) -> bytes | None:
    """The PNG's bytes; never follows a link the sandbox may have planted."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        raw = fh.read(MAX_IMAGE_BYTES + 1)
    return raw if len(raw) <= MAX_IMAGE_BYTES and raw.startswith(b"\x89PNG\r\n\x1a\n") else None


def execution_result(
    response: ExecutionResponse, ctx: ToolContext, *, show_code: bool = False
) -> ToolResult:
    data: dict[str, Any] = response.model_dump(mode="json")
    images: list[ToolImage] = []
    lines: list[str] = []
    artifact_lines: list[str] = []
    for artifact, entry in zip(response.artifacts, data["artifacts"], strict=True):
        path = _artifact_file(ctx, response.id, artifact.name)
        if ctx.base_url is not None:
            entry["url"] = ctx.base_url.rstrip("/") + artifact.url
            where = entry["url"]
        else:
            entry["path"] = str(path) if path else None
            where = entry["path"] or "(gone)"
        shown = ""
        if artifact.media_type == "image/png" and path and len(images) < MAX_IMAGES:
            raw = _read_image(path)
            if raw is not None:
                images.append(ToolImage.from_bytes(artifact.name, raw))
                shown = ", shown as an image"
        artifact_lines.append(f"- {artifact.name} ({artifact.size} bytes{shown}): {where}")

    if response.success:
        lines.append(f"The script ran successfully in {response.execution_time:.2f}s.")
    elif response.timed_out:
        lines.append(
            f"The script was stopped: it ran past its timeout ({response.execution_time:.1f}s)."
        )
    elif response.oom_killed:
        lines.append("The script was killed: it ran out of memory.")
    else:
        lines.append(f"The script failed (exit code {response.exit_code}).")
    if show_code:
        lines += ["", "Code:", response.code.rstrip()]
    if response.output:
        lines += ["", "stdout:", _clip(response.output).rstrip()]
    if response.error:
        lines += ["", "stderr:" if response.success else "error:", _clip(response.error).rstrip()]
    if response.result is not None:
        lines += ["", f"result: {response.result!r}"]
    if artifact_lines:
        lines += ["", "Files written:", *artifact_lines]
    if response.warnings:
        lines += ["", "Warnings:", *(f"- {w}" for w in response.warnings)]
    error = None
    if not response.success:
        error = (
            "Timeout"
            if response.timed_out
            else "OutOfMemory"
            if response.oom_killed
            else "ScriptFailed"
        )
    return ToolResult(
        text="\n".join(lines),
        data=data,
        images=images,
        is_error=not response.success,
        error=error,
    )


EXECUTE_CODE = Tool(
    name="execute_code",
    description=(
        "Run Python 3 code in a fresh, isolated sandbox without network access (pandas, numpy, "
        "scipy, matplotlib, scikit-learn and more are installed). Input files (inline, or stored "
        "files staged by path) land in the working directory. Returns stdout, stderr, and the "
        "files the script wrote: PNG plots as images, other files as download links. Nothing "
        "persists between calls, unless session_id names a session (create_session): then it "
        "runs as a cell there."
    ),
    args=ExecuteCodeArgs,
    permission=Permission.EXECUTE,
    handler=execute_code,
)

GENERATE_AND_RUN = Tool(
    name="generate_and_run",
    description=(
        "Answer a data question with code written for you: the gateway's model writes Python "
        "for the query, a static policy and a review check it, and it runs in an isolated "
        "sandbox against the given files. Returns the code, its output, the final JSON answer "
        "and produced files (PNG plots as images)."
    ),
    args=GenerateAndRunArgs,
    permission=Permission.EXECUTE,
    handler=generate_and_run,
    available=llm_configured,
)
