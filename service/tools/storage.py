"""The file-storage tools: read_file, read_csv, read_parquet, list_files, write_file.

Local paths go through ``security.paths`` (roots allow-list, no symlinks, regular files only,
size cap); ``s3://bucket/key`` through ``service.tools.s3``. Plain functions of
(tools, args) -> result; no web framework here.

Stored files are attacker-controlled (agents write them, or they come from S3), so no C parser
reads them in this process: read_csv and read_parquet hand the file as a descriptor to a
sandboxed intake worker (``files.tables`` in ``files.worker``). read_file stays here: its
encoding detection is the same check the gateway runs on every upload head (pure-Python rules,
then charset-normalizer, compiled by mypyc from its Python source, not a hand-written parser)
and the codec decode is CPython's own; see docs/data-tools.md.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import fnmatch
import io
import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pydantic import ValidationError

from files.encoding import SAMPLE_BYTES, detect_encoding, looks_binary
from files.intake import IntakeLimits
from files.tables import TableFormat
from files.worker import shared_pool
from security.paths import DIR_FLAGS, FileTooBig, Located, PathRefused, StorageRoots
from service.errors import (
    ExecutorError,
    InvalidRequest,
    NotFound,
    PathNotAllowed,
    PayloadTooLarge,
)
from service.settings import Settings
from service.tools.models import (
    ColumnInfo,
    FileContent,
    FileEntry,
    FileList,
    ListFilesArgs,
    ReadFileArgs,
    ReadTableArgs,
    TableData,
    WriteFileArgs,
    WrittenFile,
)
from service.tools.s3 import S3Store, is_s3

log = logging.getLogger(__name__)

# read_csv and read_parquet parse in the intake workers, with their memory limit (and so their
# pool) and their per-file deadline.
PARSE_LIMITS = IntakeLimits()
# A preview's JSON stays under the workers' 16 MiB result line (files.worker.MAX_LINE_BYTES).
PREVIEW_MAX_BYTES = 12 << 20

if TYPE_CHECKING:
    from service.tools.registry import DataTools


class Storage:
    """Local roots (read-write), the query-results dir (read-only) and S3 behind one API."""

    def __init__(self, settings: Settings) -> None:
        self.max_bytes = settings.storage_max_bytes
        for root in [*settings.storage_roots, settings.query_results_dir]:
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # the tools answer 404/403 for it; the gateway still starts
                log.warning("storage root %s is not usable: %s", root, exc)
        self.writable = StorageRoots(settings.storage_roots)
        self.readable = StorageRoots([*settings.storage_roots, settings.query_results_dir])
        self.s3 = S3Store(settings.s3_buckets, self.max_bytes)

    @contextmanager
    def _local(self) -> Iterator[None]:
        """Translate the path guard's and the OS's refusals into our errors."""
        try:
            yield
        except PathRefused as exc:
            raise PathNotAllowed(str(exc)) from exc
        except FileTooBig as exc:
            raise PayloadTooLarge(f"{exc} (PYTHON_CODE_STORAGE_MAX_FILE_SIZE)") from exc
        except FileNotFoundError as exc:
            raise NotFound(str(exc)) from exc
        except PermissionError as exc:
            raise PathNotAllowed(f"the gateway may not access it: {exc.strerror}") from exc
        except IsADirectoryError as exc:
            raise InvalidRequest(f"{exc.filename or 'the path'} is a directory") from exc

    def display(self, located: Located) -> str:
        return str(located.path)

    @contextmanager
    def open_binary(self, path: str) -> Iterator[tuple[str, IO[bytes], int]]:
        """``(display path, binary file, size)`` of a whole file within the size cap."""
        if is_s3(path):
            data, size = self.s3.read(path)
            yield path, io.BytesIO(data), size
            return
        with self._local():
            located = self.readable.locate(path)
            with (
                self.readable.open_file(located, max_bytes=self.max_bytes) as (fd, size),
                os.fdopen(os.dup(fd), "rb") as file,
            ):
                yield self.display(located), file, size

    @contextmanager
    def open_descriptor(self, path: str) -> Iterator[tuple[str, int]]:
        """``(display path, read-only descriptor)`` of a whole file within the size cap, to
        hand to a parsing worker: the local file itself, or an S3 object copied into a memfd."""
        if is_s3(path):
            data, _size = self.s3.read(path)
            fd = os.memfd_create("s3-object", os.MFD_CLOEXEC)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                yield path, fd
            finally:
                os.close(fd)
            return
        with self._local():
            located = self.readable.locate(path)
            with self.readable.open_file(located, max_bytes=self.max_bytes) as (fd, _size):
                yield self.display(located), fd

    def head(self, path: str, limit: int) -> tuple[str, bytes, int]:
        """The first ``limit`` bytes of a file, and its size."""
        if is_s3(path):
            data, size = self.s3.read(path, max_bytes=limit)
            return path, data, size
        with self.open_binary(path) as (shown, file, size):
            return shown, file.read(limit), size

    def write(self, path: str, data: bytes, *, overwrite: bool) -> str:
        if len(data) > self.max_bytes:
            raise PayloadTooLarge(
                f"{len(data)} bytes is over the storage limit of {self.max_bytes} bytes "
                "(PYTHON_CODE_STORAGE_MAX_FILE_SIZE)"
            )
        if is_s3(path):
            self.s3.write(path, data, overwrite=overwrite)
            return path
        with self._local():
            located = self.writable.locate(path)
            self.writable.write_file(located, data, overwrite=overwrite)
            return self.display(located)

    def list(self, directory: str, pattern: str, recursive: bool, limit: int) -> FileList:
        if is_s3(directory):
            entries, truncated = self.s3.list(directory, pattern, recursive, limit)
            return FileList(directory=directory, files=entries, truncated=truncated)
        with self._local():
            located = self.readable.locate(directory)
            base = located.path
            entries = []
            with self.readable.open_dir(located) as fd:
                truncated = _walk(fd, base, pattern, recursive, limit, entries)
            return FileList(directory=str(base), files=entries, truncated=truncated)


def _walk(
    fd: int, base: Path, pattern: str, recursive: bool, limit: int, out: list[FileEntry]
) -> bool:
    """List the directory open as ``fd``; subdirectories are opened without following links.
    Returns True when ``limit`` cut the listing short."""
    with os.scandir(fd) as it:
        children = sorted(it, key=lambda e: e.name)
    for entry in children:
        info = entry.stat(follow_symlinks=False)
        is_dir = stat.S_ISDIR(info.st_mode)
        if not (is_dir or stat.S_ISREG(info.st_mode)):
            continue  # symlinks, devices, FIFOs: nothing the tools would open
        if fnmatch.fnmatchcase(entry.name, pattern):
            if len(out) >= limit:
                return True
            out.append(
                FileEntry(
                    path=str(base / entry.name),
                    name=entry.name,
                    size=0 if is_dir else info.st_size,
                    modified=datetime.fromtimestamp(info.st_mtime, UTC),
                    is_dir=is_dir,
                )
            )
        if recursive and is_dir:
            try:
                child = os.open(entry.name, DIR_FLAGS, dir_fd=fd)
            except OSError:
                continue  # swapped for a symlink or gone since scandir
            try:
                if _walk(child, base / entry.name, pattern, recursive, limit, out):
                    return True
            finally:
                os.close(child)
    return False


# --- the tools -------------------------------------------------------------------------------


def read_file(tools: DataTools, args: ReadFileArgs) -> FileContent:
    """Text with its detected encoding (capped at ``max_chars``), or base64 bytes."""
    settings = tools.settings
    max_chars = min(
        args.max_chars or settings.storage_max_read_chars, settings.storage_max_read_chars
    )
    storage = tools.storage
    if args.as_base64:
        limit = max_chars * 3 // 4
        shown, data, size = storage.head(args.file_path, limit)
        return FileContent(
            file_path=shown,
            size=size,
            encoding="base64",
            content=base64.b64encode(data).decode("ascii"),
            truncated=size > len(data),
        )
    # Up to 4 bytes a character, plus a little for a BOM.
    shown, data, size = storage.head(args.file_path, max_chars * 4 + 4)
    complete = len(data) >= size
    guess = detect_encoding(data[:SAMPLE_BYTES] if not complete else data, complete=complete)
    if looks_binary(data[:SAMPLE_BYTES], guess.encoding):
        raise InvalidRequest(
            f"{shown!r} is not a text file; read it with as_base64=true, read_csv or "
            "read_parquet, or stage it into a run"
        )
    decoder = codecs.getincrementaldecoder(guess.encoding)(errors="replace")
    text = decoder.decode(data, final=complete)
    truncated = not complete or len(text) > max_chars
    return FileContent(
        file_path=shown,
        size=size,
        encoding=guess.encoding,
        content=text[:max_chars],
        truncated=truncated,
    )


def _row_cap(tools: DataTools, n_rows: int | None) -> int:
    cap = tools.settings.query_max_rows
    if n_rows is not None and n_rows > cap:
        raise InvalidRequest(
            f"n_rows must be at most {cap} (PYTHON_CODE_QUERY_MAX_ROWS), got {n_rows}"
        )
    return n_rows or cap


def read_csv(tools: DataTools, args: ReadTableArgs) -> TableData:
    return _read_table(tools, args, "csv")


def read_parquet(tools: DataTools, args: ReadTableArgs) -> TableData:
    return _read_table(tools, args, "parquet")


def _read_table(tools: DataTools, args: ReadTableArgs, fmt: TableFormat) -> TableData:
    """Checked and opened here; parsed in a sandboxed intake worker (``files.tables``)."""
    n_rows = _row_cap(tools, args.n_rows)
    job = {
        "fmt": fmt,
        "kind": fmt,
        "n_rows": n_rows,
        "columns": args.columns,
        "max_result_bytes": PREVIEW_MAX_BYTES,
    }
    pool = shared_pool(PARSE_LIMITS.metadata_memory_bytes)
    with tools.storage.open_descriptor(args.file_path) as (shown, fd):
        result = pool.read_table(fd, job, PARSE_LIMITS.metadata_timeout_s)
    return _table_data(shown, fmt, n_rows, result)


def _table_data(shown: str, fmt: TableFormat, n_rows: int, result: dict[str, Any]) -> TableData:
    """The worker's answer as the tool's result; its errors as ours."""
    label = "CSV" if fmt == "csv" else "Parquet"
    if "error" in result:
        message, kind = str(result["error"]), result.get("error_class")
        if kind == "unknown_column":
            raise InvalidRequest(f"{shown!r} {message}")
        if kind == "too_big":
            raise PayloadTooLarge(f"{shown!r}: {message}")
        # "unreadable", or the worker timed out, ran out of memory or crashed on this file.
        raise InvalidRequest(f"{shown!r} could not be read as {label}: {message}")
    malformed = f"the intake worker returned a malformed {label} preview"
    try:  # the worker parsed hostile bytes: its answer is checked, not trusted
        rows = result["rows"]
        table = TableData(
            file_path=shown,
            columns=[ColumnInfo.model_validate(c) for c in result["columns"]],
            rows=rows,
            row_count=len(rows),
            total_rows=result["total_rows"],
            truncated=result["truncated"],
        )
    except (KeyError, TypeError, ValidationError) as exc:
        raise ExecutorError(malformed) from exc
    width = len(table.columns)
    if table.row_count > n_rows or any(len(row) != width for row in table.rows):
        raise ExecutorError(malformed)
    return table


def list_files(tools: DataTools, args: ListFilesArgs) -> FileList:
    return tools.storage.list(
        args.directory, args.pattern, args.recursive, tools.settings.storage_max_list
    )


def write_file(tools: DataTools, args: WriteFileArgs) -> WrittenFile:
    if args.encoding == "base64":
        try:
            data = base64.b64decode(args.content, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidRequest("content is not valid base64") from exc
    else:
        data = args.content.encode("utf-8")
    shown = tools.storage.write(args.file_path, data, overwrite=args.overwrite)
    return WrittenFile(file_path=shown, size=len(data))
