"""``POST /v1/generate``: a question (+ files) in, verified and executed code out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from service.api.deps import (
    DataToolsDep,
    JobInputDep,
    PolicyDep,
    PrincipalDep,
    SettingsDep,
    require,
)
from service.api.disconnect import cancel_on_disconnect
from service.auth.permissions import Permission
from service.llm.client import LLMClient, build_llm
from service.models import ExecutionResponse
from service.pipeline.generate import run_generation
from service.pipeline.jobs import intake_uploads, open_job
from service.pipeline.staging import stage_uploads

router = APIRouter(
    prefix="/v1", tags=["generate"], dependencies=[Depends(require(Permission.EXECUTE))]
)


async def llm_client(settings: SettingsDep) -> AsyncIterator[LLMClient]:
    """The model client for one request; ``LLMNotConfigured`` (503) before any upload is read."""
    llm = build_llm(settings)
    try:
        yield llm
    finally:
        await llm.close()


@router.post(
    "/generate",
    response_model=ExecutionResponse,
    summary="Generate Python for a question, verify and fix it, run it against uploaded files",
    description=(
        "multipart/form-data: `query` (required), `context` (optional), `files` (repeatable), "
        "`stage` (repeatable: stored files to copy in), `engine`, `timeout_s`. 503 when no LLM is configured, 422 when verification fails."
    ),
)
async def generate(
    request: Request,
    llm: Annotated[LLMClient, Depends(llm_client)],
    job_in: JobInputDep,
    settings: SettingsDep,
    policy: PolicyDep,
    principal: PrincipalDep,
    data_tools: DataToolsDep,
) -> ExecutionResponse:
    query = job_in.required("query").strip()
    staged = await stage_uploads(job_in.stage, data_tools, principal, settings)
    async with open_job(settings, principal.identity) as job:
        await intake_uploads(job, [*job_in.uploads, *staged], settings)
        return await cancel_on_disconnect(
            request,
            job_in.executor,
            job.id,
            lambda: run_generation(
                query,
                job_in.fields.get("context") or None,
                job,
                job_in.executor,
                settings,
                llm,
                policy=policy,
                timeout_s=job_in.timeout_s,
                caller=job_in.caller,
            ),
        )
