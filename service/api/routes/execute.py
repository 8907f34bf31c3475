"""``POST /v1/execute`` and the artifact download route."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from service.api.deps import (
    PolicyDep,
    RegistryDep,
    SettingsDep,
    engine_field,
    float_field,
    parse_job_request,
)
from service.errors import InvalidRequest, NotFound
from service.models import ExecutionResponse
from service.observability import caller_identity
from service.pipeline.execute import run_execution
from service.pipeline.jobs import artifacts_root, intake_uploads, open_job

router = APIRouter(prefix="/v1", tags=["execute"])


@router.post(
    "/execute",
    response_model=ExecutionResponse,
    summary="Run Python code against uploaded files in a fresh sandbox",
)
async def execute(
    request: Request, settings: SettingsDep, registry: RegistryDep, policy: PolicyDep
) -> ExecutionResponse:
    parsed = await parse_job_request(request, settings)
    try:
        code = parsed.fields.get("code", "")
        if not code.strip():
            raise InvalidRequest("field 'code' is required and must not be empty")
        timeout_s = float_field(parsed.fields, "timeout_s", maximum=settings.max_timeout)
        executor = registry.get(engine_field(parsed.fields))
        async with open_job(settings) as job:
            await intake_uploads(job, parsed.uploads, settings)
            return await run_execution(
                job,
                code,
                executor=executor,
                settings=settings,
                policy=policy,
                timeout_s=timeout_s,
                caller=caller_identity(
                    request.headers, request.client.host if request.client else None
                ),
            )
    finally:
        await parsed.aclose()


@router.get(
    "/executions/{job_id}/artifacts/{name:path}",
    summary="Download a file a script produced (kept for the retention period)",
)
async def artifact(job_id: str, name: str, settings: SettingsDep) -> FileResponse:
    if not job_id.isalnum():
        raise NotFound(f"no execution {job_id!r}")
    root = (artifacts_root(settings) / job_id).resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFound(f"no artifact {name!r} for execution {job_id!r} (expired or never made)")
    return FileResponse(path, filename=Path(name).name)
