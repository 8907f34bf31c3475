"""The file-storage tools: read_file, read_csv, read_parquet, list_files, write_file.

Local paths go through ``security.paths`` (roots allow-list, no symlinks, regular files only,
size cap); ``s3://bucket/key`` through ``service.tools.s3``. Plain functions of
(tools, args) -> result; no web framework here.
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

from files.encoding import SAMPLE_BYTES, detect_encoding, looks_binary
from files.jsonsafe import json_row
from security.paths import DIR_FLAGS, FileTooBig, Located, PathRefused, StorageRoots
from service.errors import InvalidRequest, NotFound, PathNotAllowed, PayloadTooLarge
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
    import pandas as pd

    n_rows = _row_cap(tools, args.n_rows)
    with tools.storage.open_binary(args.file_path) as (shown, file, _size):
        encoding = detect_encoding(file.read(SAMPLE_BYTES)).encoding
        file.seek(0)
        try:
            frame = pd.read_csv(
                file,
                nrows=n_rows + 1,
                usecols=args.columns,
                encoding=encoding,
                encoding_errors="replace",
            )
        except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InvalidRequest(f"{shown!r} could not be read as CSV: {exc}") from exc
    truncated = len(frame) > n_rows
    frame = frame.head(n_rows)
    columns = [ColumnInfo(name=str(c), type=str(t)) for c, t in frame.dtypes.items()]
    values = frame.astype(object).where(frame.notna(), None)
    return TableData(
        file_path=shown,
        columns=columns,
        rows=[json_row(r) for r in values.itertuples(index=False, name=None)],
        row_count=len(frame),
        total_rows=None if truncated else len(frame),
        truncated=truncated,
    )


def read_parquet(tools: DataTools, args: ReadTableArgs) -> TableData:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n_rows = _row_cap(tools, args.n_rows)
    with tools.storage.open_binary(args.file_path) as (shown, file, _size):
        try:
            parquet = pq.ParquetFile(file)
            schema = parquet.schema_arrow
            if args.columns:
                unknown = [c for c in args.columns if c not in schema.names]
                if unknown:
                    raise InvalidRequest(
                        f"{shown!r} has no column(s) {unknown}; it has {schema.names}"
                    )
            total = parquet.metadata.num_rows
            batches = []
            taken = 0
            for batch in parquet.iter_batches(batch_size=min(n_rows, 65_536), columns=args.columns):
                batches.append(batch.slice(0, n_rows - taken))
                taken += batches[-1].num_rows
                if taken >= n_rows:
                    break
        except (pa.ArrowException, OSError) as exc:
            raise InvalidRequest(f"{shown!r} could not be read as Parquet: {exc}") from exc
    selected = [schema.field(c) for c in (args.columns or schema.names)]
    table = pa.Table.from_batches(batches, schema=pa.schema(selected)) if batches else None
    rows: list[list[Any]] = []
    if table is not None:
        rows = [json_row(r.values()) for r in table.to_pylist()]
    return TableData(
        file_path=shown,
        columns=[ColumnInfo(name=f.name, type=str(f.type), nullable=f.nullable) for f in selected],
        rows=rows,
        row_count=len(rows),
        total_rows=total,
        truncated=total > len(rows),
    )


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
