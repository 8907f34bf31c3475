"""File intake as a pure library: validation, safe extraction and metadata for uploads.

No FastAPI and nothing from ``service/``; the gateway maps ``files.errors`` to HTTP codes.
"""

from files.errors import (
    ArchiveRejected,
    ContentMismatch,
    CorruptFile,
    EmptyFile,
    FileTooLarge,
    IntakeError,
    TooManyFiles,
    UnsafeFileName,
    UnsupportedFileType,
)
from files.intake import (
    FileIntake,
    IntakeLimits,
    IntakeResult,
    StoredFile,
    inspect_file,
    safe_name,
    warm_up,
)
from files.types import SUPPORTED_FILE_TYPES
from files.worker import shutdown_workers

__all__ = [
    "SUPPORTED_FILE_TYPES",
    "ArchiveRejected",
    "ContentMismatch",
    "CorruptFile",
    "EmptyFile",
    "FileIntake",
    "FileTooLarge",
    "IntakeError",
    "IntakeLimits",
    "IntakeResult",
    "StoredFile",
    "TooManyFiles",
    "UnsafeFileName",
    "UnsupportedFileType",
    "inspect_file",
    "safe_name",
    "shutdown_workers",
    "warm_up",
]
