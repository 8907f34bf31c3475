"""Upload problems, one small tree; the gateway maps each class to a status code.

    IntakeError                 base: ``filename`` (may be None) and a human ``message``
    ├── UnsupportedFileType     415  extension not allowed (``supported`` lists what is)
    ├── ContentMismatch         415  binary bytes behind a text extension, or an unsupported format
    ├── FileTooLarge            413  per file, total upload, or extracted size (``limit_bytes``)
    ├── TooManyFiles            413  more uploads than allowed (``limit``)
    ├── EmptyFile               400  zero bytes
    ├── UnsafeFileName          400  traversal, absolute path, control characters
    ├── CorruptFile             422  cannot be opened as what it claims (broken zip, no %PDF)
    └── ArchiveRejected         422  zip bomb, link escape, nesting too deep, too many members

Problems found *inside* a readable file (a truncated PDF page, a malformed sheet) are not
exceptions: they come back as ``{"error": ...}`` in that file's metadata.
"""

from __future__ import annotations


class IntakeError(Exception):
    """Base of every upload problem; the message names the file and what is wrong."""

    def __init__(self, message: str, *, filename: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.filename = filename


class UnsupportedFileType(IntakeError):
    def __init__(
        self, message: str, *, filename: str | None = None, supported: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message, filename=filename)
        self.supported = supported


class ContentMismatch(IntakeError):
    pass


class FileTooLarge(IntakeError):
    def __init__(self, message: str, *, filename: str | None = None, limit_bytes: int) -> None:
        super().__init__(message, filename=filename)
        self.limit_bytes = limit_bytes


class TooManyFiles(IntakeError):
    def __init__(self, message: str, *, filename: str | None = None, limit: int) -> None:
        super().__init__(message, filename=filename)
        self.limit = limit


class EmptyFile(IntakeError):
    pass


class UnsafeFileName(IntakeError):
    pass


class CorruptFile(IntakeError):
    pass


class ArchiveRejected(IntakeError):
    pass
