"""Executors: the port and the one factory that picks an adapter."""

from service.executors.base import (
    CONTAINER_LABEL,
    Executor,
    InputFile,
    ProducedFile,
    Readiness,
    RunLimits,
    RunRequest,
    RunResult,
)

__all__ = [
    "CONTAINER_LABEL",
    "Executor",
    "InputFile",
    "ProducedFile",
    "Readiness",
    "RunLimits",
    "RunRequest",
    "RunResult",
]
