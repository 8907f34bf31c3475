"""One exception tree for the gateway; mapped to HTTP status codes in ``service.api.errors``.

    PythonCoderError
    ├── InvalidRequest              400  a parameter is malformed or out of range
    │   └── PayloadTooLarge         413  the request body exceeds the upload limits
    ├── Unauthorized                401  no or unknown API key
    ├── Forbidden                   403  the caller's role lacks the permission
    ├── RateLimited                 429  the caller's key is over its rate or job quota
    ├── NotFound                    404  unknown execution or artifact
    ├── PolicyViolation             422  the static policy rejected the code (carries findings)
    ├── VerificationFailed          422  the verify -> modify loop ended with blocking issues
    ├── EngineUnavailable           503  no engine can run code now
    │   └── RunnerImageMissing      503  engine up, runner image absent (names the build command)
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


class NotFound(PythonCoderError):
    pass


class PolicyViolation(PythonCoderError):
    """``detail`` holds the list of findings (dicts)."""


class VerificationFailed(PythonCoderError):
    """``detail`` holds the remaining issues and the verification history."""


class EngineUnavailable(PythonCoderError):
    pass


class RunnerImageMissing(EngineUnavailable):
    pass


class LLMNotConfigured(PythonCoderError):
    pass


class LLMError(PythonCoderError):
    pass


class LLMTimeout(LLMError):
    pass


class ExecutorError(PythonCoderError):
    pass
