"""Staging: stored files (local roots, S3, saved query results) copied into a run as uploads,
so an agent can go read_parquet / execute_query -> compute without rows passing through it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import PurePosixPath

import anyio

from service.auth.permissions import Permission, Principal
from service.errors import InvalidRequest, PayloadTooLarge
from service.pipeline.jobs import Upload
from service.settings import Settings
from service.tools.registry import DataTools

CHUNK = 1024 * 1024
MAX_STAGED = 20


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), CHUNK):
        yield data[start : start + CHUNK]


def _read(tools: DataTools, path: str, settings: Settings) -> bytes:
    with tools.storage.open_binary(path) as (shown, file, size):
        if size > settings.max_file_bytes:
            raise PayloadTooLarge(
                f"staged file {shown!r} is {size} bytes, over the per-file upload limit of "
                f"{settings.max_file_size} MB (PYTHON_CODE_MAX_FILE_SIZE)"
            )
        return file.read()


async def stage_uploads(
    paths: Sequence[str], tools: DataTools, principal: Principal, settings: Settings
) -> list[Upload]:
    """Read each stored file (the caller needs ``read``) and hand it on as an upload named by
    its last path component."""
    if not paths:
        return []
    principal.require(Permission.READ)
    if len(paths) > MAX_STAGED:
        raise InvalidRequest(f"at most {MAX_STAGED} files can be staged, got {len(paths)}")
    uploads = []
    for path in paths:
        name = PurePosixPath(path.rstrip("/")).name
        if not name:
            raise InvalidRequest(f"stage: {path!r} names no file")
        data = await anyio.to_thread.run_sync(_read, tools, path, settings)
        uploads.append(Upload(name, _chunks(data)))
    return uploads
