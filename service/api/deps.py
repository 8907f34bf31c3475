"""Dependencies: settings, engines, policy, and turning a request body into pipeline input."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.types import Message

from security.policy import StaticPolicy
from service.auth.keys import KeyStore
from service.auth.permissions import LOCAL_OPERATOR, Permission, Principal
from service.auth.quotas import Quotas
from service.errors import EngineUnavailable, InvalidRequest, PayloadTooLarge, Unauthorized
from service.executors.base import Executor
from service.executors.registry import ExecutorRegistry, check_engine
from service.models import ExecuteJSONRequest
from service.pipeline.jobs import Upload
from service.settings import Settings
from service.tools.registry import DataTools

UPLOAD_CHUNK = 1024 * 1024
# Room for multipart boundaries and text fields on top of the file bytes themselves.
FORM_OVERHEAD = 1024 * 1024
# A script sent as a file part is read up to this (the static policy's own cap decides).
DEFAULT_MAX_CODE_BYTES = 1_000_000


# Dependencies that only look things up are ``async``: FastAPI runs a plain ``def`` one in its
# thread pool, a hop per dependency on every request.
async def app_settings(request: Request) -> Settings:
    """The settings the app was created with (``create_app``)."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(app_settings)]


async def get_registry(request: Request) -> ExecutorRegistry:
    registry: ExecutorRegistry = request.app.state.executors
    return registry


RegistryDep = Annotated[ExecutorRegistry, Depends(get_registry)]


async def get_policy(request: Request) -> StaticPolicy:
    policy: StaticPolicy = request.app.state.policy
    return policy


PolicyDep = Annotated[StaticPolicy, Depends(get_policy)]


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key from ``Authorization: Bearer <key>`` or ``X-API-Key``, if any."""
    auth = headers.get("authorization", "")
    scheme, _, credentials = auth.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return headers.get("x-api-key", "").strip() or None


def resolve_principal(headers: Mapping[str, str], state: Any) -> Principal:
    """The one place a caller becomes a ``Principal``, for REST and MCP alike.

    ``headers`` carry ``Authorization: Bearer <key>`` or ``X-API-Key``; ``state`` is the app
    state, where the key store lives. Without keys configured every caller is the local
    operator (which the gateway allows on loopback only).
    """
    store: KeyStore = state.keys
    if not store.configured:
        return LOCAL_OPERATOR
    key = presented_key(headers)
    if key is None:
        raise Unauthorized(
            "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
        )
    principal = store.authenticate(key)
    if principal is None:
        raise Unauthorized("invalid API key (unknown, revoked or malformed)")
    return principal


async def get_principal(request: Request) -> Principal:
    """The caller of this request (a ``stat`` of the key file and a SHA-256: no thread)."""
    return resolve_principal(request.headers, request.app.state)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(permission: Permission) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets the request through only with ``permission``.

    ``Depends(require(Permission.QUERY))`` on a route, or as a parameter to get the caller.
    """

    async def check(principal: PrincipalDep) -> Principal:
        principal.require(permission)
        return principal

    return check


async def admit_job(request: Request, principal: PrincipalDep) -> AsyncIterator[Principal]:
    """The caller's rate and concurrency quota for one job (429 with ``Retry-After``).

    The local operator (no keys configured) has no quota: it is the only caller there is,
    and ``PYTHON_CODE_MAX_CONCURRENT_RUNS`` already bounds the sandboxes.
    """
    if principal.key_id is None:
        yield principal
        return
    quotas: Quotas = request.app.state.quotas
    with quotas.admit(principal.identity):
        yield principal


AdmittedDep = Annotated[Principal, Depends(admit_job)]


@dataclass
class ParsedRequest:
    """What any job endpoint received: text fields and the uploads, however they came."""

    fields: dict[str, str]
    uploads: list[Upload] = field(default_factory=list)
    stage: list[str] = field(default_factory=list)  # stored files to copy in (pipeline/staging)
    packages: list[str] = field(default_factory=list)  # install_package for a one-shot run
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def aclose(self) -> None:
        for close in self._closers:
            await close()


def _counting_receive(
    receive: Callable[[], Awaitable[Message]], limit: int
) -> Callable[[], Awaitable[Message]]:
    """Wrap ASGI ``receive`` so a body beyond ``limit`` stops being read (Starlette spools
    multipart uploads with no cap of its own)."""
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLarge(
                    f"request body exceeds the limit of {limit // (1024 * 1024)} MB "
                    "(PYTHON_CODE_MAX_TOTAL_UPLOAD for multipart, PYTHON_CODE_MAX_JSON_BODY "
                    "for JSON; send large files as multipart)"
                )
        return message

    return counted


async def _upload_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(UPLOAD_CHUNK):
        yield chunk


async def _bytes_chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), UPLOAD_CHUNK):
        yield data[start : start + UPLOAD_CHUNK]


async def _read_code_part(upload: UploadFile, limit: int) -> str:
    """The ``code`` file part as text, read in chunks and refused once over ``limit``."""
    data = bytearray()
    while chunk := await upload.read(min(UPLOAD_CHUNK, limit + 1 - len(data))):
        data += chunk
        if len(data) > limit:
            raise PayloadTooLarge(
                f"code file {upload.filename!r} exceeds the code size limit of {limit} bytes"
            )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"code file {upload.filename!r} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from exc


async def parse_job_request(
    request: Request, settings: Settings, *, max_code_bytes: int = DEFAULT_MAX_CODE_BYTES
) -> ParsedRequest:
    """Read multipart (text fields + repeated ``files`` parts) or a JSON body."""
    limit = settings.max_total_upload_bytes + FORM_OVERHEAD
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"request body of {int(declared)} bytes exceeds the upload limit of "
            f"{settings.max_total_upload} MB (PYTHON_CODE_MAX_TOTAL_UPLOAD)"
        )
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        # JSON is parsed whole, in memory: its own, smaller cap.
        limit = min(limit, settings.max_json_body * 1024 * 1024)
    counted = Request(request.scope, _counting_receive(request.receive, limit))
    if content_type.startswith("application/json"):
        try:
            body = ExecuteJSONRequest.model_validate_json(await counted.body())
        except ValidationError as exc:
            raise InvalidRequest(
                "invalid JSON body",
                detail=exc.errors(include_url=False, include_context=False, include_input=False),
            ) from exc
        fields = {
            name: value
            for name, value in (
                ("code", body.code),
                ("query", body.query),
                ("context", body.context),
            )
            if value is not None
        }
        if body.timeout_s is not None:
            fields["timeout_s"] = str(body.timeout_s)
        if body.engine is not None:
            fields["engine"] = body.engine
        uploads = [Upload(f.name, _bytes_chunks(f.to_bytes())) for f in body.files]
        return ParsedRequest(
            fields=fields, uploads=uploads, stage=list(body.stage), packages=list(body.packages)
        )
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        form = await counted.form(max_files=10_000, max_fields=100)
        parsed = ParsedRequest(fields={}, _closers=[form.close])
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key == "code":  # a script sent as a file part
                    try:
                        parsed.fields["code"] = await _read_code_part(value, max_code_bytes)
                    except InvalidRequest:
                        await form.close()
                        raise
                else:
                    parsed.uploads.append(Upload(value.filename or key, _upload_chunks(value)))
            elif key == "stage":  # repeatable
                parsed.stage.append(value)
            elif key == "packages":  # repeatable
                parsed.packages.append(value)
            else:
                parsed.fields[key] = value
        return parsed
    raise InvalidRequest(
        f"unsupported content type {content_type or '(none)'!r}: send multipart/form-data "
        "or application/json"
    )


def float_field(fields: dict[str, Any], name: str, *, maximum: float) -> float | None:
    raw = fields.get(name)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError as exc:
        raise InvalidRequest(f"{name} must be a number, got {raw!r}") from exc
    if not 0 < value <= maximum:
        raise InvalidRequest(f"{name} must be in (0, {maximum}], got {value}")
    return value


def engine_field(fields: dict[str, Any], allowed: list[str]) -> str | None:
    """The engine a request names: ``auto``/none (the default) or one the operator allowed."""
    engine = fields.get("engine") or None
    if engine is None:
        return None
    check_engine(engine)
    if engine not in ("auto", *allowed):
        raise InvalidRequest(
            f"engine {engine!r} is not allowed on this gateway (allowed: {', '.join(allowed)}; "
            "PYTHON_CODE_ALLOWED_ENGINES)"
        )
    return engine


@dataclass
class JobInput:
    """A job request, parsed: its text fields, its uploads, the engine, timeout and caller."""

    fields: dict[str, str]
    uploads: list[Upload]
    executor: Executor
    timeout_s: float | None
    caller: Principal
    stage: list[str] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)

    def required(self, name: str) -> str:
        value = self.fields.get(name, "")
        if not value.strip():
            raise InvalidRequest(f"field {name!r} is required and must not be empty")
        return value


async def job_input(
    request: Request,
    settings: SettingsDep,
    registry: RegistryDep,
    policy: PolicyDep,
    caller: AdmittedDep,
) -> AsyncIterator[JobInput]:
    """Parse the body once for any job endpoint; spooled uploads are closed afterwards.

    The route checks the permission first (``dependencies=[Depends(require(...))]``), so a
    caller without it is refused before the body is read.
    """
    if not settings.enabled:
        raise EngineUnavailable("code execution is disabled on this gateway (PYTHON_CODE_ENABLED)")
    parsed = await parse_job_request(request, settings, max_code_bytes=policy.max_code_bytes)
    try:
        yield JobInput(
            fields=parsed.fields,
            uploads=parsed.uploads,
            executor=registry.get(engine_field(parsed.fields, settings.allowed_engine_names)),
            timeout_s=float_field(parsed.fields, "timeout_s", maximum=settings.max_timeout),
            caller=caller,
            stage=parsed.stage,
            packages=parsed.packages,
        )
    finally:
        await parsed.aclose()


JobInputDep = Annotated[JobInput, Depends(job_input)]


async def get_data_tools(request: Request) -> DataTools:
    tools: DataTools = request.app.state.data_tools
    return tools


DataToolsDep = Annotated[DataTools, Depends(get_data_tools)]
