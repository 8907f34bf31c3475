"""``POST /v1/generate``: a question (+ files) in, verified and executed code out."""

from __future__ import annotations

from fastapi import APIRouter, Request

from service.api.deps import (
    PolicyDep,
    RegistryDep,
    SettingsDep,
    engine_field,
    float_field,
    parse_job_request,
)
from service.errors import InvalidRequest
from service.llm.client import build_llm
from service.models import ExecutionResponse
from service.observability import caller_identity
from service.pipeline.generate import run_generation
from service.pipeline.jobs import intake_uploads, open_job

router = APIRouter(prefix="/v1", tags=["generate"])


@router.post(
    "/generate",
    response_model=ExecutionResponse,
    summary="Generate Python for a question, verify and fix it, run it against uploaded files",
    description=(
        "multipart/form-data: `query` (required), `context` (optional), `files` (repeatable), "
        "`engine`, `timeout_s`. 503 when no LLM is configured, 422 when verification fails."
    ),
)
async def generate(
    request: Request, settings: SettingsDep, registry: RegistryDep, policy: PolicyDep
) -> ExecutionResponse:
    llm = build_llm(settings)  # LLMNotConfigured (503) before reading any upload
    try:
        parsed = await parse_job_request(request, settings)
        try:
            query = parsed.fields.get("query", "").strip()
            if not query:
                raise InvalidRequest("field 'query' is required and must not be empty")
            context = parsed.fields.get("context") or None
            timeout_s = float_field(parsed.fields, "timeout_s", maximum=settings.max_timeout)
            executor = registry.get(engine_field(parsed.fields))
            async with open_job(settings) as job:
                await intake_uploads(job, parsed.uploads, settings)
                return await run_generation(
                    query,
                    context,
                    job,
                    executor,
                    settings,
                    llm,
                    policy=policy,
                    timeout_s=timeout_s,
                    caller=caller_identity(
                        request.headers, request.client.host if request.client else None
                    ),
                )
        finally:
            await parsed.aclose()
    finally:
        await llm.close()
