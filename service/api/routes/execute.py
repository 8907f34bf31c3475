"""``POST /v1/execute`` and the artifact download route."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, StreamingResponse

from service.api.deps import (
    DataToolsDep,
    JobInputDep,
    PolicyDep,
    PrincipalDep,
    SettingsDep,
    require,
)
from service.api.disconnect import cancel_on_disconnect
from service.api.streaming import (
    EVENT_STREAM,
    RequestTasksDep,
    stream_run,
    wants_event_stream,
)
from service.auth.permissions import Permission, Role
from service.errors import NotFound
from service.models import ExecutionResponse
from service.pipeline.execute import run_execution
from service.pipeline.jobs import artifact_owner, artifacts_root, intake_uploads, open_job
from service.pipeline.live import LiveOutput
from service.pipeline.packages import package_inputs
from service.pipeline.staging import stage_uploads

router = APIRouter(
    prefix="/v1", tags=["execute"], dependencies=[Depends(require(Permission.EXECUTE))]
)

# An artifact is whatever a script wrote: never let a browser run it in our origin. It is
# always a download (``attachment``), its type is not sniffed, and should it be rendered
# anyway (HTML, SVG) it gets no scripts, no loads and a sandboxed, opaque origin.
ARTIFACT_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    "Cross-Origin-Resource-Policy": "same-origin",
}


@router.post(
    "/execute",
    response_model=ExecutionResponse,
    summary="Run Python code against uploaded files in a fresh sandbox",
    description=(
        "multipart/form-data (`code`, `files` repeatable, `stage` repeatable, `timeout_s`, "
        "`engine`, `packages` repeatable) or JSON (`code`, `files` inline, `stage`, `timeout_s`, "
        "`engine`, `packages`). `packages` installs wheels for this run (as install_package). `stage` "
        "copies stored files (storage paths, s3://bucket/key, a query's stored_as) in by name. "
        "422 when the static policy refuses the code; a script that fails is a 200 with "
        "`success: false`. With `Accept: text/event-stream` the answer is a stream of "
        'Server-Sent Events once the run starts: `stdout`/`stderr` (`{"text": ...}`) as the '
        "script writes, then `result` (this JSON) or `error`; errors before the run starts "
        "stay JSON with their status."
    ),
    responses={200: {"content": {EVENT_STREAM: {}}}},
)
async def execute(
    request: Request,
    job_in: JobInputDep,
    settings: SettingsDep,
    policy: PolicyDep,
    principal: PrincipalDep,
    data_tools: DataToolsDep,
    tasks: RequestTasksDep,
) -> ExecutionResponse | StreamingResponse:
    code = job_in.required("code")
    staged = await stage_uploads(job_in.stage, data_tools, principal, settings)

    async def work(live: LiveOutput | None) -> ExecutionResponse:
        async with open_job(settings, principal.identity) as job:
            await intake_uploads(job, [*job_in.uploads, *staged], settings)
            if job_in.packages:
                principal.require(Permission.INSTALL)
                job.extra_inputs = await package_inputs(
                    job_in.packages, job, job_in.executor, settings
                )
            # A client that hangs up does not leave its sandbox running to the timeout.
            return await cancel_on_disconnect(
                request,
                job_in.executor,
                job.id,
                lambda: run_execution(
                    job,
                    code,
                    executor=job_in.executor,
                    settings=settings,
                    policy=policy,
                    timeout_s=job_in.timeout_s,
                    caller=job_in.caller,
                    live=live,
                ),
            )

    if wants_event_stream(request):
        return await stream_run(tasks, work)
    return await work(None)


@router.get(
    "/executions/{job_id}/artifacts/{name:path}",
    summary="Download a file a script produced (kept for the retention period)",
)
async def artifact(
    job_id: str, name: str, settings: SettingsDep, principal: PrincipalDep
) -> FileResponse:
    if not job_id.isalnum():
        raise NotFound(f"no execution {job_id!r}")
    owner = artifact_owner(settings, job_id)
    if owner is not None and owner != principal.identity and principal.role is not Role.ADMIN:
        # Another key's files: answered as if they did not exist, so ids cannot be probed.
        raise NotFound(f"no artifact {name!r} for execution {job_id!r} (expired or never made)")
    root = (artifacts_root(settings) / job_id).resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFound(f"no artifact {name!r} for execution {job_id!r} (expired or never made)")
    return FileResponse(
        path,
        filename=Path(name).name,
        content_disposition_type="attachment",
        headers=ARTIFACT_HEADERS,
    )
