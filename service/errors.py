"""One exception tree for the gateway; mapped to HTTP status codes in ``service.api.errors``.

    PythonCoderError
    ├── InvalidRequest              400  a parameter is malformed or out of range
    │   └── PayloadTooLarge         413  the request body exceeds the upload limits
    ├── Unauthorized                401  no or unknown API key
    ├── Forbidden                   403  the caller's role lacks the permission
    ├── RateLimited                 429  the caller's key is over its rate or job quota
    │   ├── QueueFull               429  the run queue is full, or a job waited past its cap
    │   └── SessionLimit            429  the caller holds as many sessions as allowed
    ├── NotFound                    404  unknown execution, artifact, database, table or file
    ├── SessionGone                 410  the session's sandbox died (its state with it)
    ├── PackageRejected             422  install_package refused (blocked, sdist only, too big)
    ├── PathNotAllowed              403  a storage path outside the roots, a symlink, a device
    ├── QueryRejected               422  the SQL guard refused the statement (not read-only)
    ├── QueryFailed                 422  the database refused or failed the query (its message)
    ├── QueryTimeout                504  the query ran past its timeout and was cancelled
    ├── DatabaseUnavailable         503  the database cannot be reached or its pool is exhausted
    ├── StorageUnavailable          502  the object store failed or refused our credentials
    ├── PolicyViolation             422  the static policy rejected the code (carries findings)
    ├── VerificationFailed          422  the verify -> modify loop ended with blocking issues
    ├── SessionsExhausted           503  the gateway holds as many sessions as it allows
    ├── EngineUnavailable           503  no engine can run code now (+ Retry-After when it
    │   │                                may come back by itself: unreachable, restarting)
    │   ├── RunnerImageMissing      503  engine up, runner image absent (names the build command)
    │   └── DiskFull                503  the execution dir ran out of space (ENOSPC) mid-job
    ├── LLMNotConfigured            503  generation asked for, no model configured
    ├── LLMError                    502  the model endpoint failed or answered garbage
    │   └── LLMTimeout              504  the model endpoint did not answer in time
    └── ExecutorError               500  the engine broke in a way that is our bug or the host's

Upload problems live in ``files.errors`` (a pure library) and are mapped in the same table.
Third-party errors (docker, openai, OS) are translated where they are caught, with ``from exc``.
Run-time failures of the user's script are *results* (``success: false``), never exceptions.
"""

from __future__ import annotations

from typing import Any


class PythonCoderError(Exception):
    """Base of everything the gateway raises on purpose."""

    def __init__(self, message: str, *, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidRequest(PythonCoderError):
    pass


class PayloadTooLarge(InvalidRequest):
    pass


class Unauthorized(PythonCoderError):
    pass


class Forbidden(PythonCoderError):
    pass


class RateLimited(PythonCoderError):
    """``retry_after_s`` goes to the ``Retry-After`` header."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message, detail={"retry_after_s": retry_after_s})
        self.retry_after_s = retry_after_s


class QueueFull(RateLimited):
    """The gateway is saturated (not this caller's quota): come back after ``retry_after_s``."""


class SessionLimit(RateLimited):
    pass


class NotFound(PythonCoderError):
    pass


class SessionGone(PythonCoderError):
    pass


class PackageRejected(PythonCoderError):
    pass


class SessionsExhausted(PythonCoderError):
    pass


class PathNotAllowed(PythonCoderError):
    pass


class QueryRejected(PythonCoderError):
    pass


class QueryFailed(PythonCoderError):
    """``detail`` may hold the database's SQLSTATE."""


class QueryTimeout(PythonCoderError):
    pass


class DatabaseUnavailable(PythonCoderError):
    pass


class StorageUnavailable(PythonCoderError):
    pass


class PolicyViolation(PythonCoderError):
    """``detail`` holds the list of findings (dicts)."""


class VerificationFailed(PythonCoderError):
    """``detail`` holds the remaining issues and the verification history."""


class EngineUnavailable(PythonCoderError):
    """``retry_after_s``: set when the engine may come back by itself (stopped, restarting,
    not answering); the 503 then carries ``Retry-After``. Unset when someone must act."""

    def __init__(
        self, message: str, *, retry_after_s: int | None = None, detail: Any = None
    ) -> None:
        if retry_after_s is not None:
            detail = {**(detail or {}), "retry_after_s": retry_after_s}
        super().__init__(message, detail=detail)
        self.retry_after_s = retry_after_s


class RunnerImageMissing(EngineUnavailable):
    pass


class DiskFull(EngineUnavailable):
    pass


class LLMNotConfigured(PythonCoderError):
    pass


class LLMError(PythonCoderError):
    pass


class LLMTimeout(LLMError):
    pass


class ExecutorError(PythonCoderError):
    pass
