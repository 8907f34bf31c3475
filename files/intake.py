"""FileIntake: store uploads safely, sniff them, extract archives, collect metadata.

One intake per job. Uploads are streamed to ``input_dir`` while bytes are counted (a file over
the limit is stopped mid-stream and deleted); names are sanitised and de-duplicated
(``a.csv``, ``a-1.csv``, ...); content is sniffed against the extension. ``finish()``
extracts archives into folders named after them (``backup.zip`` -> ``backup/...``) and runs
metadata extraction for every file. Every parser of the bytes (decompression included) runs
in the sandboxed worker pool (``files.worker``, ``files.sandbox``); this process only sniffs
the first 64 KB (pure Python) and writes what an extraction worker streams back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from files.archives import ArchiveReport, ExtractionBudget, MemberWriter
from files.errors import (
    ArchiveRejected,
    CorruptFile,
    EmptyFile,
    FileTooLarge,
    IntakeError,
    TooManyFiles,
    UnsupportedFileType,
)
from files.names import safe_name
from files.sniff import Sniff, sniff
from files.types import ACCEPTED_EXTENSIONS, extension_of, is_accepted, stem_of
from files.worker import shared_pool

MB = 1024 * 1024
COPY_CHUNK = 1024 * 1024

__all__ = [
    "FileIntake",
    "IntakeLimits",
    "IntakeResult",
    "StoredFile",
    "inspect_file",
    "safe_name",
    "warm_up",
]


@dataclass(frozen=True)
class IntakeLimits:
    max_file_bytes: int = 50 * MB
    max_total_bytes: int = 200 * MB
    max_files: int = 20
    max_extracted_bytes: int = 500 * MB
    max_archive_members: int = 1000
    max_compression_ratio: float = 100
    max_archive_depth: int = 2
    metadata_timeout_s: float = 10
    metadata_memory_bytes: int = 1024 * MB
    extraction_timeout_s: float = 60  # per archive


@dataclass(frozen=True)
class StoredFile:
    name: str  # safe relative path inside input_dir ("sales.csv", "backup/data1.csv")
    path: Path
    size: int
    media_type: str
    extension: str
    from_archive: str | None = None


@dataclass(frozen=True)
class IntakeResult:
    files: tuple[StoredFile, ...]
    metadata: dict[str, dict[str, Any]]
    warnings: tuple[str, ...] = ()


@dataclass
class _Entry:
    stored: StoredFile
    sniff: Sniff
    depth: int = 0  # 0 = uploaded, n = extracted from an archive n levels down
    extra: dict[str, Any] = field(default_factory=dict)


def _mb(n: int) -> str:
    return f"{n / MB:g} MB"


def unsupported(name: str, extension: str) -> UnsupportedFileType:
    shown = extension or "(no extension)"
    return UnsupportedFileType(
        f"{name}: file type {shown} is not supported; supported: {', '.join(ACCEPTED_EXTENSIONS)}",
        filename=name,
        supported=ACCEPTED_EXTENSIONS,
    )


class _Upload:
    """One file being written; enforces the per-file and total limits as bytes arrive."""

    def __init__(self, intake: FileIntake, name: str, path: Path) -> None:
        self.intake, self.name, self.path = intake, name, path
        self.size = 0
        self.fh: IO[bytes] = path.open("xb")

    def write(self, chunk: bytes) -> None:
        limits = self.intake.limits
        self.size += len(chunk)
        if self.size > limits.max_file_bytes:
            raise FileTooLarge(
                f"{self.name}: larger than the {_mb(limits.max_file_bytes)} per-file limit",
                filename=self.name,
                limit_bytes=limits.max_file_bytes,
            )
        if self.intake.total_bytes + self.size > limits.max_total_bytes:
            raise FileTooLarge(
                f"{self.name}: the upload exceeds the {_mb(limits.max_total_bytes)} total limit",
                filename=self.name,
                limit_bytes=limits.max_total_bytes,
            )
        self.fh.write(chunk)

    def abort(self) -> None:
        self.fh.close()
        self.path.unlink(missing_ok=True)


class FileIntake:
    """Collects the input files of one job into ``input_dir`` (owned by the caller)."""

    def __init__(self, input_dir: Path, limits: IntakeLimits | None = None) -> None:
        self.input_dir = Path(input_dir).resolve()
        if not self.input_dir.is_dir():
            raise FileNotFoundError(f"input directory {self.input_dir} does not exist")
        self.limits = limits or IntakeLimits()
        self.total_bytes = 0
        self._entries: list[_Entry] = []
        self._reserved: set[str] = set()
        self._reports: list[ArchiveReport] = []
        self._finished = False

    # --- naming ----------------------------------------------------------------------------
    def _unique(self, rel: str) -> str:
        """``rel`` or the first free ``stem-N.ext`` beside it (case-insensitive)."""
        folder, _, base = rel.rpartition("/")
        stem, ext = stem_of(base), extension_of(base)
        candidate, n = rel, 0
        while candidate.lower() in self._reserved or (self.input_dir / candidate).exists():
            n += 1
            candidate = f"{folder + '/' if folder else ''}{stem}-{n}{ext}"
        self._reserved.add(candidate.lower())
        return candidate

    def _inside(self, rel: str) -> Path:
        target = (self.input_dir / rel).resolve()
        if not target.is_relative_to(self.input_dir) or target == self.input_dir:
            raise ArchiveRejected(f"{rel}: resolves outside the input folder", filename=rel)
        return target

    # --- uploads ---------------------------------------------------------------------------
    def _begin(self, raw_name: str) -> _Upload:
        if self._finished:
            raise RuntimeError("intake already finished")
        if len(self._entries) >= self.limits.max_files:
            raise TooManyFiles(
                f"{raw_name}: more than {self.limits.max_files} files in one request",
                filename=raw_name,
                limit=self.limits.max_files,
            )
        name = safe_name(raw_name)
        ext = extension_of(name)
        if not is_accepted(ext):
            raise unsupported(name, ext)
        rel = self._unique(name)
        return _Upload(self, rel, self.input_dir / rel)

    def _complete(self, upload: _Upload) -> StoredFile:
        upload.fh.close()
        try:
            if upload.size == 0:
                raise EmptyFile(f"{upload.name}: the file is empty", filename=upload.name)
            found = sniff(upload.path, extension_of(upload.name), name=upload.name)
        except BaseException:
            upload.abort()
            self._reserved.discard(upload.name.lower())
            raise
        self.total_bytes += upload.size
        stored = StoredFile(
            upload.name, upload.path, upload.size, found.media_type, extension_of(upload.name)
        )
        self._entries.append(_Entry(stored, found))
        return stored

    def _fail(self, upload: _Upload) -> None:
        upload.abort()
        self._reserved.discard(upload.name.lower())

    def add_stream(self, raw_name: str, chunks: Iterable[bytes]) -> StoredFile:
        """Store one upload from a byte iterator, enforcing every limit while it streams."""
        upload = self._begin(raw_name)
        try:
            for chunk in chunks:
                upload.write(chunk)
        except BaseException:
            self._fail(upload)
            raise
        return self._complete(upload)

    async def add_async_stream(self, raw_name: str, chunks: AsyncIterable[bytes]) -> StoredFile:
        """``add_stream`` for async sources (Starlette ``UploadFile.read`` loops)."""
        upload = self._begin(raw_name)
        try:
            async for chunk in chunks:
                upload.write(chunk)
        except BaseException:
            self._fail(upload)
            raise
        # Sniffing opens the file (a zip's whole central directory for its namelist): a
        # worker thread's job, never the event loop's.
        return await asyncio.to_thread(self._complete, upload)

    def add_path(self, raw_name: str, path: Path) -> StoredFile:
        """Copy a local file in (CLI and in-process callers)."""
        return self.add_stream(raw_name, _read_chunks(Path(path)))

    @property
    def files(self) -> tuple[StoredFile, ...]:
        return tuple(e.stored for e in self._entries)

    # --- finish ----------------------------------------------------------------------------
    def finish(self, *, extract_archives: bool = True, with_metadata: bool = True) -> IntakeResult:
        """Extract archives (safely) and collect metadata for every stored file."""
        if self._finished:
            raise RuntimeError("intake already finished")
        self._finished = True
        warnings: list[str] = []
        for entry in self._entries:
            warnings.extend(entry.sniff.warnings)
        if extract_archives:
            budget = ExtractionBudget(
                self.limits.max_extracted_bytes,
                self.limits.max_archive_members,
                self.limits.max_compression_ratio,
            )
            uploads = len(self._entries)
            i = 0
            try:
                while i < len(self._entries):  # grows as nested members are added
                    entry = self._entries[i]
                    if entry.sniff.kind == "archive":
                        warnings.extend(self._extract(entry, budget))
                    i += 1
            except BaseException:
                # one hostile archive fails the request: leave only the uploads behind
                for report in reversed(self._reports):
                    report.cleanup()
                del self._entries[uploads:]
                raise
        metadata: dict[str, dict[str, Any]] = {}
        if with_metadata:
            results = self._metadata([e for e in self._entries])
            for entry, meta in zip(self._entries, results, strict=True):
                metadata[entry.stored.name] = meta
        else:
            for entry in self._entries:
                metadata[entry.stored.name] = _base_fields(entry.stored, entry.sniff) | entry.extra
        return IntakeResult(tuple(e.stored for e in self._entries), metadata, tuple(warnings))

    def _extract(self, entry: _Entry, budget: ExtractionBudget) -> list[str]:
        archive = entry.stored
        depth = entry.depth + 1
        if depth > self.limits.max_archive_depth:
            raise ArchiveRejected(
                f"{archive.name}: archives nested more than {self.limits.max_archive_depth} "
                "levels deep",
                filename=archive.name,
            )
        parent, _, base = archive.name.rpartition("/")
        single = entry.sniff.format in ("gzip", "bzip2") and not _is_tar_name(base)
        folder = (
            parent
            if single
            else self._unique_folder(f"{parent + '/' if parent else ''}{stem_of(base) or base}")
        )
        created: list[_Entry] = []

        def place(member: str) -> Path | str:
            ext = extension_of(member)
            if not is_accepted(ext):
                return f"unsupported type {ext or '(no extension)'}"
            rel = self._unique(f"{folder}/{member}" if folder else member)
            target = self._inside(rel)
            for anc in target.parents:  # a member whose parent is a file: skip it
                if anc == self.input_dir:
                    break
                if anc.exists() and not anc.is_dir():
                    return "path conflicts with another member"
            return target

        report = ArchiveReport(archive.name)
        self._reports.append(report)
        try:
            self._extract_in_worker(archive, entry.sniff.format, budget, place, report)
        except BaseException:
            report.cleanup()
            raise
        warnings: list[str] = []
        extracted: list[str] = []
        try:
            for member, path, size in report.written:
                rel = path.relative_to(self.input_dir).as_posix()
                if size == 0:
                    path.unlink()
                    report.skip(member, "empty file")
                    continue
                try:
                    found = sniff(path, extension_of(rel), name=rel)
                except IntakeError as exc:
                    path.unlink()
                    report.skip(member, exc.message)
                    continue
                stored = StoredFile(
                    rel, path, size, found.media_type, extension_of(rel), archive.name
                )
                new = _Entry(stored, found, depth)
                created.append(new)
                extracted.append(rel)
                warnings.extend(found.warnings)
        except BaseException:
            report.cleanup()
            raise
        self._entries.extend(created)
        entry.extra["extraction"] = {
            "folder": folder or ".",
            "extracted": extracted,
            "skipped": report.skipped,
        }
        for skipped in report.skipped:
            warnings.append(f"{archive.name}: skipped {skipped['name']!r}: {skipped['reason']}")
        return warnings

    def _extract_in_worker(
        self,
        archive: StoredFile,
        fmt: str,
        budget: ExtractionBudget,
        place: Callable[[str], Path | str],
        report: ArchiveReport,
    ) -> None:
        """Decompress in a sandboxed worker; place, write and count the members here."""
        writer = MemberWriter(archive.name, budget, place, report)
        job = {
            "name": archive.name,
            "fmt": fmt,
            "budget": {
                "max_bytes": budget.max_bytes,
                "max_members": budget.max_members,
                "max_ratio": budget.max_ratio,
                "bytes_used": budget.bytes_used,
                "members_used": budget.members_used,
            },
        }
        pool = shared_pool(self.limits.metadata_memory_bytes)
        result = pool.extract(archive.path, job, writer, self.limits.extraction_timeout_s)
        writer.end()
        if "error" in result:
            message = str(result["error"])
            kind = result.get("error_class")
            if kind == "FileTooLarge":
                raise FileTooLarge(message, filename=archive.name, limit_bytes=budget.max_bytes)
            if kind == "ArchiveRejected" or result.get("timed_out"):
                raise ArchiveRejected(
                    message if kind else f"{archive.name}: {message}", filename=archive.name
                )
            raise CorruptFile(
                message if kind else f"{archive.name}: {message}", filename=archive.name
            )
        for skipped in result.get("skipped", []):
            report.skip(str(skipped.get("name", "?")), str(skipped.get("reason", "?")))
        reported = result.get("members_used")
        counted = budget.members_used + writer.members
        budget.members_used = max(counted, reported if isinstance(reported, int) else 0)

    def _unique_folder(self, rel: str) -> str:
        candidate, n = rel, 0
        while candidate.lower() in self._reserved or (self.input_dir / candidate).exists():
            n += 1
            candidate = f"{rel}-{n}"
        self._reserved.add(candidate.lower())
        return candidate

    def _metadata(self, entries: list[_Entry]) -> list[dict[str, Any]]:
        pool = shared_pool(self.limits.metadata_memory_bytes)
        jobs = [_job(e.stored.path, e.sniff, e.stored.extension, self.limits) for e in entries]
        results = pool.map(jobs, self.limits.metadata_timeout_s)
        out = []
        for entry, fields in zip(entries, results, strict=True):
            meta = _base_fields(entry.stored, entry.sniff)
            meta.update(entry.extra)
            _merge(meta, fields)
            out.append(meta)
        return out


def _is_tar_name(name: str) -> bool:
    return extension_of(name) in (".tgz", ".tbz2", ".tar.gz", ".tar.bz2")


def _read_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(COPY_CHUNK):
            yield chunk


def _job(path: Path, found: Sniff, extension: str, limits: IntakeLimits) -> dict[str, Any]:
    return {
        "path": str(path),
        "kind": found.kind,
        "fmt": found.format,
        "extension": extension,
        "max_extracted_bytes": limits.max_extracted_bytes,
    }


def _base_fields(stored: StoredFile, found: Sniff) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": stored.name,
        "type": found.kind,
        "format": found.format,
        "extension": stored.extension,
        "size_bytes": stored.size,
        "size_mb": round(stored.size / MB, 3),
        "media_type": found.media_type,
    }
    if stored.from_archive:
        meta["from_archive"] = stored.from_archive
    if found.encoding:
        meta["encoding"] = found.encoding
    if found.warnings:
        meta["warnings"] = list(found.warnings)
    return meta


def _merge(meta: dict[str, Any], fields: dict[str, Any]) -> None:
    extra_warnings = fields.pop("warnings", None)
    meta.update(fields)
    if extra_warnings:
        meta.setdefault("warnings", []).extend(extra_warnings)


def inspect_file(
    path: Path, name: str | None = None, limits: IntakeLimits | None = None
) -> dict[str, Any]:
    """Metadata of one file already on disk (sniffed here, parsed in the worker pool).

    Never raises for the file's content: problems come back as ``{"error": ...}``.
    """
    limits = limits or IntakeLimits()
    path = Path(path)
    shown = name or path.name
    ext = extension_of(shown)
    size = path.stat().st_size
    base: dict[str, Any] = {
        "name": shown,
        "extension": ext,
        "size_bytes": size,
        "size_mb": round(size / MB, 3),
    }
    if not is_accepted(ext):
        return base | {"type": "unsupported", "error": unsupported(shown, ext).message}
    if size == 0:
        return base | {"type": "empty", "error": f"{shown}: the file is empty"}
    try:
        found = sniff(path, ext, name=shown)
    except IntakeError as exc:
        return base | {"type": "invalid", "error": exc.message}
    stored = StoredFile(shown, path, size, found.media_type, ext)
    meta = _base_fields(stored, found)
    _merge(
        meta,
        shared_pool(limits.metadata_memory_bytes).run(
            _job(path, found, ext, limits), limits.metadata_timeout_s
        ),
    )
    return meta


def warm_up(limits: IntakeLimits | None = None) -> None:
    """Start the metadata workers for ``limits`` ahead of the first request (~1 s saved)."""
    limits = limits or IntakeLimits()
    shared_pool(limits.metadata_memory_bytes).warm()
