"""``POST /v1/files/inspect``: what is inside the uploads, before any code is written."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from service.api.deps import SettingsDep, admit_job, parse_job_request, require
from service.auth.permissions import Permission
from service.errors import InvalidRequest
from service.pipeline.jobs import intake_uploads, open_job

router = APIRouter(
    prefix="/v1/files",
    tags=["files"],
    dependencies=[Depends(require(Permission.EXECUTE)), Depends(admit_job)],
)


@router.post("/inspect", summary="Validate uploads and return per-file metadata")
async def inspect(request: Request, settings: SettingsDep) -> dict[str, Any]:
    parsed = await parse_job_request(request, settings)
    try:
        if not parsed.uploads:
            raise InvalidRequest("no files: send one or more multipart parts named 'files'")
        async with open_job(settings) as job:
            await intake_uploads(job, parsed.uploads, settings)
            return {
                "files": [
                    {
                        "name": f.name,
                        "size": f.size,
                        "media_type": f.media_type,
                        "from_archive": f.from_archive,
                    }
                    for f in job.files
                ],
                "metadata": job.metadata,
                "warnings": job.warnings,
            }
    finally:
        await parsed.aclose()
