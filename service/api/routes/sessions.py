"""``/v1/sessions``: open a stateful session, run cells, move files, install, run scripts."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from service.api.deps import JobInputDep, PrincipalDep, SettingsDep, require
from service.api.routes.execute import ARTIFACT_HEADERS
from service.api.streaming import (
    EVENT_STREAM,
    RequestTasksDep,
    stream_run,
    wants_event_stream,
)
from service.auth.permissions import Permission
from service.errors import InvalidRequest
from service.executors.base import InputFile
from service.models import CellResponse, InstallResponse, SessionFile, SessionInfo
from service.pipeline.jobs import intake_uploads, open_job
from service.pipeline.live import LiveOutput
from service.pipeline.packages import install_package
from service.pipeline.sessions import SessionManager, store_uploads

router = APIRouter(
    prefix="/v1/sessions", tags=["sessions"], dependencies=[Depends(require(Permission.EXECUTE))]
)


async def get_sessions(request: Request) -> SessionManager:
    sessions: SessionManager = request.app.state.sessions
    return sessions


SessionsDep = Annotated[SessionManager, Depends(get_sessions)]


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    engine: str | None = None
    timeout_s: float | None = Field(None, description="default cell timeout, s")
    memory_mb: int | None = None
    cpus: float | None = None
    idle_ttl_s: float | None = Field(None, description="ends after this long without a call")


class InstallRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    version: str | None = Field(None, max_length=100)


class ScriptRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    timeout_s: float | None = None


@router.post("", response_model=SessionInfo, status_code=201, summary="Open a session")
async def create_session(
    sessions: SessionsDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    body: Annotated[SessionCreate | None, Body()] = None,
) -> SessionInfo:
    body = body or SessionCreate()
    engine = body.engine
    if engine not in (None, "auto") and engine not in settings.allowed_engine_names:
        raise InvalidRequest(
            f"engine {engine!r} is not allowed on this gateway "
            f"(allowed: {', '.join(settings.allowed_engine_names)})"
        )
    return await sessions.create(
        principal,
        engine=engine,
        timeout_s=body.timeout_s,
        memory_mb=body.memory_mb,
        cpus=body.cpus,
        idle_ttl_s=body.idle_ttl_s,
    )


@router.get("/{session_id}", response_model=SessionInfo, summary="A session's state")
async def get_session(
    session_id: str, sessions: SessionsDep, principal: PrincipalDep
) -> SessionInfo:
    return sessions.info(sessions.get(session_id, principal))


@router.delete("/{session_id}", summary="End a session and remove its sandbox")
async def delete_session(
    session_id: str, sessions: SessionsDep, principal: PrincipalDep
) -> dict[str, Any]:
    sessions.get(session_id, principal)
    await sessions.close_session(session_id)
    return {"id": session_id, "closed": True}


@router.post(
    "/{session_id}/execute",
    response_model=CellResponse,
    summary="Run a cell in the session's interpreter",
    description=(
        "JSON (`code`, inline `files`, `timeout_s`) or multipart (`code`, `files`, "
        "`timeout_s`). Variables, imports and files persist. A cell past its timeout is "
        "interrupted (KeyboardInterrupt) and the state kept; one that does not stop is "
        "killed and the interpreter restarted (`state_lost: true`). With "
        "`Accept: text/event-stream`: Server-Sent Events as for `/v1/execute` (`stdout`, "
        "`stderr`, then `result` with this JSON, or `error`)."
    ),
    responses={200: {"content": {EVENT_STREAM: {}}}},
)
async def execute_cell(
    request: Request,
    session_id: str,
    job_in: JobInputDep,
    sessions: SessionsDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    tasks: RequestTasksDep,
) -> CellResponse | StreamingResponse:
    session = sessions.get(session_id, principal)
    code = job_in.required("code")

    async def work(live: LiveOutput | None) -> CellResponse:
        async with open_job(settings, principal.identity) as job:
            await intake_uploads(job, job_in.uploads, settings)
            inputs = tuple(InputFile(name=f.name, path=f.path, size=f.size) for f in job.files)
            return await sessions.execute(
                session,
                code,
                caller=principal,
                inputs=inputs,
                timeout_s=job_in.timeout_s,
                live=live,
            )

    if wants_event_stream(request):
        return await stream_run(tasks, work)
    return await work(None)


@router.post(
    "/{session_id}/files",
    response_model=list[SessionFile],
    summary="Upload files into the session's work dir (multipart `files` or JSON inline)",
)
async def upload_files(
    session_id: str,
    job_in: JobInputDep,
    sessions: SessionsDep,
    principal: PrincipalDep,
    settings: SettingsDep,
) -> list[SessionFile]:
    session = sessions.get(session_id, principal)
    async with open_job(settings, principal.identity) as job:
        inputs = await store_uploads(job_in.uploads, job.input_dir, settings)
        return await sessions.upload(session, inputs)


@router.get("/{session_id}/files", response_model=list[SessionFile], summary="The session's files")
async def list_files(
    session_id: str, sessions: SessionsDep, principal: PrincipalDep
) -> list[SessionFile]:
    return await sessions.list_files(sessions.get(session_id, principal))


@router.get("/{session_id}/files/{name:path}", summary="Download a file of the session")
async def download_file(
    session_id: str, name: str, sessions: SessionsDep, principal: PrincipalDep
) -> FileResponse:
    session = sessions.get(session_id, principal)
    download = sessions.download(session, name)
    path = await download.__aenter__()
    return FileResponse(
        path,
        filename=PurePosixPath(name).name,
        content_disposition_type="attachment",
        headers=ARTIFACT_HEADERS,
        background=BackgroundTask(download.__aexit__, None, None, None),
    )


@router.post(
    "/{session_id}/packages",
    response_model=InstallResponse,
    dependencies=[Depends(require(Permission.INSTALL))],
    summary="Install a package (wheels fetched by the gateway) into the session",
)
async def install(
    session_id: str,
    body: InstallRequest,
    sessions: SessionsDep,
    principal: PrincipalDep,
    settings: SettingsDep,
) -> InstallResponse:
    session = sessions.get(session_id, principal)
    return await install_package(sessions, session, body.name, body.version, settings, principal)


@router.post(
    "/{session_id}/scripts",
    response_model=CellResponse,
    dependencies=[Depends(require(Permission.RUN_SCRIPT))],
    summary="Run a stored .py as __main__ with argv, in a fresh process in the session",
)
async def run_script(
    session_id: str, body: ScriptRequest, sessions: SessionsDep, principal: PrincipalDep
) -> CellResponse:
    session = sessions.get(session_id, principal)
    return await sessions.run_script(
        session, body.path, body.args, caller=principal, timeout_s=body.timeout_s
    )


@router.get("/{session_id}/environment", summary="Python, packages, limits, engine, isolation")
async def environment(
    session_id: str, sessions: SessionsDep, principal: PrincipalDep
) -> dict[str, Any]:
    return await sessions.environment(sessions.get(session_id, principal))
