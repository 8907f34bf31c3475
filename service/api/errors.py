"""The one table mapping exceptions to HTTP status codes, and the handlers that apply it."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from files import errors as fe
from service import errors as se

log = logging.getLogger(__name__)

# Most specific first: the first matching class wins.
STATUS: list[tuple[type[Exception], int]] = [
    (se.PayloadTooLarge, 413),
    (se.InvalidRequest, 400),
    (se.Unauthorized, 401),
    (se.Forbidden, 403),
    (se.QueueFull, 429),
    (se.RateLimited, 429),
    (se.NotFound, 404),
    (se.SessionGone, 410),
    (se.PackageRejected, 422),
    (se.SessionsExhausted, 503),
    (se.PathNotAllowed, 403),
    (se.QueryRejected, 422),
    (se.QueryFailed, 422),
    (se.QueryTimeout, 504),
    (se.DatabaseUnavailable, 503),
    (se.StorageUnavailable, 502),
    (se.PolicyViolation, 422),
    (se.VerificationFailed, 422),
    (se.RunnerImageMissing, 503),
    (se.DiskFull, 503),
    (se.EngineUnavailable, 503),
    (se.LLMNotConfigured, 503),
    (se.LLMTimeout, 504),
    (se.LLMError, 502),
    (se.ExecutorError, 500),
    (fe.UnsupportedFileType, 415),
    (fe.ContentMismatch, 415),
    (fe.FileTooLarge, 413),
    (fe.TooManyFiles, 413),
    (fe.EmptyFile, 400),
    (fe.UnsafeFileName, 400),
    (fe.CorruptFile, 422),
    (fe.ArchiveRejected, 422),
    (fe.IntakeError, 400),
]


def status_for(exc: Exception) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(exc: Exception) -> dict[str, Any]:
    body: dict[str, Any] = {"error": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, se.PythonCoderError):
        body["message"] = exc.message
        if exc.detail is not None:
            body["detail"] = exc.detail
    elif isinstance(exc, fe.IntakeError):
        body["file"] = exc.filename
        if isinstance(exc, fe.UnsupportedFileType):
            body["supported"] = list(exc.supported)
    return body


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    status = status_for(exc)
    if status >= 500 and status != 503:
        log.error("request failed: %s", exc, exc_info=exc)
    else:
        log.info("request refused (%d): %s", status, exc)
    return JSONResponse(error_body(exc), status_code=status, headers=error_headers(exc))


def error_headers(exc: Exception) -> dict[str, str]:
    """What a client needs to react: how to authenticate, when to come back."""
    if isinstance(exc, se.Unauthorized):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, se.RateLimited):
        return {"Retry-After": str(exc.retry_after_s)}
    if isinstance(exc, se.EngineUnavailable) and exc.retry_after_s is not None:
        return {"Retry-After": str(exc.retry_after_s)}
    return {}


async def _client_gone(request: Request, exc: Exception) -> JSONResponse:
    # Nobody is listening any more; not a server error, and nothing was left behind.
    log.info(
        "client disconnected before its request was read: %s %s", request.method, request.url.path
    )
    return JSONResponse({"error": "ClientDisconnect", "message": "client disconnected"}, 400)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(se.PythonCoderError, _handle)
    app.add_exception_handler(fe.IntakeError, _handle)
    app.add_exception_handler(ClientDisconnect, _client_gone)
