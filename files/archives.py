"""Safe extraction of .zip, .tar(.gz/.bz2), .gz, .bz2 and .7z archives, in two halves.

``Extractor`` decompresses (zlib, bz2, lzma and py7zr's codecs are C) and runs only inside an
intake worker (``files.worker``, sandboxed by ``files.sandbox``); it never writes a file but
streams each member's bytes to a ``MemberSink``. ``MemberWriter`` is the gateway's end of that
stream: it places each member (``place``), writes it, and holds the budget itself, so a worker
that lies cannot write more, or elsewhere, than an honest one.

Our own checks come first and do not trust headers: member names are validated (no absolute
paths, no ``..``), links are never extracted (an escaping one rejects the archive, an internal
one is skipped and reported), and bytes are *counted while writing* against the extraction
budget (total size, member count, compression ratio). tarfile's ``data_filter`` is applied as a
second opinion. Anything written by an archive that is then rejected is removed again.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import posixpath
import stat
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from files.errors import ArchiveRejected, CorruptFile, FileTooLarge, UnsafeFileName
from files.names import safe_member_path

CHUNK = 1024 * 1024
RATIO_FLOOR_BYTES = 1024 * 1024  # tiny members may compress absurdly well; judge ratio above this
FILTER_ROOT = "/nonexistent/extraction-root"

# place(member_path) -> destination, or a string saying why the member is skipped
Placer = Callable[[str], "Path | str"]
# accept(member_path) -> None, or why the member is skipped before it is decompressed
Acceptor = Callable[[str], "str | None"]


class MemberSink(Protocol):
    """Where an extractor sends members: ``begin``, any number of ``write``, ``end``."""

    def begin(self, member: str) -> None: ...
    def write(self, data: bytes) -> None: ...
    def end(self) -> None: ...


@dataclass
class ExtractionBudget:
    """What all archives of one intake may still produce."""

    max_bytes: int
    max_members: int
    max_ratio: float
    bytes_used: int = 0
    members_used: int = 0


@dataclass
class ArchiveReport:
    archive: str
    written: list[tuple[str, Path, int]] = field(default_factory=list)  # (member, path, size)
    skipped: list[dict[str, str]] = field(default_factory=list)
    created_dirs: list[Path] = field(default_factory=list)

    def skip(self, member: str, reason: str) -> None:
        self.skipped.append({"name": member, "reason": reason})

    def cleanup(self) -> None:
        for _, path, _ in self.written:
            path.unlink(missing_ok=True)
        for d in sorted(self.created_dirs, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                d.rmdir()


class MemberWriter:
    """The gateway's end of an extraction: places, writes and counts what a worker streams.

    It trusts nothing the worker says: each member name is validated again and placed by
    ``place`` (the intake's naming: unique, inside the input folder, supported type), every
    byte counts against ``budget`` here, and files are created with ``O_EXCL`` in folders this
    writer made or that already belonged to the intake. ``report`` lists what was written, so
    a rejected archive can be removed again.
    """

    def __init__(self, name: str, budget: ExtractionBudget, place: Placer, report: ArchiveReport):
        self.name, self.budget, self.place, self.report = name, budget, place, report
        self._fh: IO[bytes] | None = None
        self._size = 0
        self.members = 0

    def begin(self, member: str) -> None:
        self.end()
        try:
            safe = safe_member_path(member, self.name)
        except UnsafeFileName as exc:
            raise ArchiveRejected(exc.message, filename=self.name) from exc
        if safe is None or safe != member:
            raise ArchiveRejected(
                f"{self.name}: the extractor sent an unexpected member name {member!r}",
                filename=self.name,
            )
        self.members += 1
        if self.budget.members_used + self.members > self.budget.max_members:
            raise ArchiveRejected(
                f"{self.name}: more than {self.budget.max_members} archive members in total",
                filename=self.name,
            )
        where = self.place(member)
        if isinstance(where, str):
            self.report.skip(member, where)
            return
        parent = where.parent
        missing = [p for p in [parent, *parent.parents] if not p.exists()]
        parent.mkdir(parents=True, exist_ok=True)
        self.report.created_dirs.extend(missing)
        self._fh = where.open("xb")
        self._size = 0
        self.report.written.append((member, where, 0))

    def write(self, data: bytes) -> None:
        self.budget.bytes_used += len(data)
        if self.budget.bytes_used > self.budget.max_bytes:
            raise FileTooLarge(
                f"{self.name}: extracting it exceeds the {self.budget.max_bytes // 2**20} MB "
                "limit on extracted data",
                filename=self.name,
                limit_bytes=self.budget.max_bytes,
            )
        if self._fh is not None:
            self._fh.write(data)
            self._size += len(data)

    def end(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            member, dest, _ = self.report.written[-1]
            self.report.written[-1] = (member, dest, self._size)


def _junk(member: str) -> bool:
    base = member.rsplit("/", 1)[-1]
    return member.startswith("__MACOSX/") or base == ".DS_Store" or base.startswith("._")


def _link_escapes(member: str, target: str, *, hard: bool) -> bool:
    if not target or target.startswith(("/", "\\")) or (len(target) > 1 and target[1] == ":"):
        return True
    base = "" if hard else posixpath.dirname(member)
    joined = posixpath.normpath(posixpath.join(base, target.replace("\\", "/")))
    return joined == ".." or joined.startswith("../") or joined.startswith("/")


class _Writer:
    """Sends one member to the sink, counting bytes against the budget and the ratio limits."""

    def __init__(self, extractor: Extractor, member: str, compressed: int | None):
        self.x, self.member, self.compressed = extractor, member, compressed
        self.size = 0
        self._open = False

    def open(self) -> None:
        self.x.sink.begin(self.member)
        self._open = True

    def write(self, data: bytes) -> None:
        x, n = self.x, len(data)
        self.size += n
        x.archive_bytes += n
        x.budget.bytes_used += n
        if x.budget.bytes_used > x.budget.max_bytes:
            raise FileTooLarge(
                f"{x.name}: extracting it exceeds the {x.budget.max_bytes // 2**20} MB limit "
                "on extracted data",
                filename=x.name,
                limit_bytes=x.budget.max_bytes,
            )
        if self.compressed is not None and self.size > RATIO_FLOOR_BYTES:
            ratio = self.size / max(self.compressed, 1)
            if ratio > x.budget.max_ratio:
                x.reject_ratio(ratio, self.member)
        if x.archive_bytes > RATIO_FLOOR_BYTES:
            ratio = x.archive_bytes / max(x.archive_size, 1)
            if ratio > x.budget.max_ratio:
                x.reject_ratio(ratio, None)
        x.sink.write(data)

    def close(self) -> None:
        if self._open:
            self._open = False
            self.x.sink.end()

    def copy_from(self, src: IO[bytes]) -> None:
        self.open()
        try:
            while chunk := src.read(CHUNK):
                self.write(chunk)
        finally:
            self.close()


class Extractor:
    """Decompresses one archive into ``sink`` within ``budget`` (inside a worker only)."""

    def __init__(
        self,
        path: Path,
        name: str,
        fmt: str,
        budget: ExtractionBudget,
        accept: Acceptor,
        sink: MemberSink,
    ):
        self.path, self.name, self.fmt, self.budget = path, name, fmt, budget
        self.accept, self.sink = accept, sink
        self.archive_size = path.stat().st_size
        self.archive_bytes = 0
        self.report = ArchiveReport(name)

    # --- shared checks ---------------------------------------------------------------------
    def reject_ratio(self, ratio: float, member: str | None) -> None:
        where = f"member {member!r}" if member else "the archive"
        raise ArchiveRejected(
            f"{self.name}: {where} expands {ratio:.0f}:1, over the "
            f"{self.budget.max_ratio:.0f}:1 compression-ratio limit (zip bomb?)",
            filename=self.name,
        )

    def count_member(self) -> None:
        self.budget.members_used += 1
        if self.budget.members_used > self.budget.max_members:
            raise ArchiveRejected(
                f"{self.name}: more than {self.budget.max_members} archive members in total",
                filename=self.name,
            )

    def preflight(self, declared_bytes: int, members: int) -> None:
        if self.budget.members_used + members > self.budget.max_members:
            raise ArchiveRejected(
                f"{self.name}: {members} members, over the {self.budget.max_members}-member limit",
                filename=self.name,
            )
        if self.budget.bytes_used + declared_bytes > self.budget.max_bytes:
            raise FileTooLarge(
                f"{self.name}: declares {declared_bytes} bytes of content, over the "
                f"{self.budget.max_bytes // 2**20} MB limit on extracted data",
                filename=self.name,
                limit_bytes=self.budget.max_bytes,
            )
        ratio = declared_bytes / max(self.archive_size, 1)
        if declared_bytes > RATIO_FLOOR_BYTES and ratio > self.budget.max_ratio:
            self.reject_ratio(ratio, None)

    def member_path(self, raw: str) -> str | None:
        try:
            return safe_member_path(raw, self.name)
        except UnsafeFileName as exc:
            raise ArchiveRejected(exc.message, filename=self.name) from exc

    def check_link(self, member: str, target: str, *, hard: bool) -> None:
        kind = "hard link" if hard else "symbolic link"
        if _link_escapes(member, target, hard=hard):
            raise ArchiveRejected(
                f"{self.name}: {kind} {member!r} points outside the archive ({target!r})",
                filename=self.name,
            )
        self.report.skip(member, f"{kind} to {target!r} (links are never extracted)")

    def wanted(self, member: str) -> bool:
        if _junk(member):
            self.report.skip(member, "macOS metadata")
            return False
        why = self.accept(member)
        if why is not None:
            self.report.skip(member, why)
            return False
        return True

    # --- formats ---------------------------------------------------------------------------
    def run(self) -> ArchiveReport:
        try:
            if self.fmt == "zip":
                self._zip()
            elif self.fmt == "7z":
                self._7z()
            elif self.fmt in ("tar", "gzip", "bzip2"):
                if self.fmt == "tar" or self._compressed_tar():
                    self._tar()
                else:
                    self._single()
            else:
                raise CorruptFile(
                    f"{self.name}: not an archive format we extract", filename=self.name
                )
        except BaseException as exc:
            self.report.cleanup()
            if isinstance(exc, (ArchiveRejected, FileTooLarge, CorruptFile)):
                raise
            if isinstance(
                exc, (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError)
            ):
                raise CorruptFile(
                    f"{self.name}: broken archive ({exc})", filename=self.name
                ) from exc
            raise
        return self.report

    def _zip(self) -> None:
        with zipfile.ZipFile(self.path) as zf:
            infos = zf.infolist()
            self.preflight(sum(i.file_size for i in infos), sum(not i.is_dir() for i in infos))
            for info in infos:
                member = self.member_path(info.filename)
                if member is None or info.is_dir():
                    continue
                self.count_member()
                if stat.S_ISLNK(info.external_attr >> 16):
                    with zf.open(info) as fh:
                        target = fh.read(4096).decode("utf-8", errors="replace")
                    self.check_link(member, target, hard=False)
                    continue
                if info.flag_bits & 0x1:
                    self.report.skip(member, "encrypted member")
                    continue
                if not self.wanted(member):
                    continue
                with zf.open(info) as src:
                    _Writer(self, member, info.compress_size).copy_from(src)

    def _compressed_tar(self) -> bool:
        opener: Any = gzip.open if self.fmt == "gzip" else bz2.open
        with opener(self.path, "rb") as fh:
            head = fh.read(512)
        return len(head) == 512 and head[257:262] == b"ustar"

    def _tar(self) -> None:
        # data_filter resolves members under this root with realpath: a root that exists
        # nowhere (not /proc/self/fd, where a member named "3" would follow descriptor 3).
        dest_root = FILTER_ROOT
        with tarfile.open(self.path, "r:*") as tf:
            while (info := tf.next()) is not None:
                member = self.member_path(info.name)
                if member is None or info.isdir():
                    continue
                self.count_member()
                if info.issym() or info.islnk():
                    self.check_link(member, info.linkname, hard=info.islnk())
                    continue
                if not info.isreg():
                    self.report.skip(member, "special file (device, fifo)")
                    continue
                try:  # the standard library's opinion, on top of ours
                    tarfile.data_filter(info, dest_root)
                except tarfile.FilterError as exc:
                    raise ArchiveRejected(f"{self.name}: {exc}", filename=self.name) from exc
                if info.size > self.budget.max_bytes:
                    self.preflight(info.size, 0)
                if not self.wanted(member):
                    continue
                src = tf.extractfile(info)
                if src is None:
                    continue
                with src:
                    _Writer(self, member, None).copy_from(src)

    def _single(self) -> None:
        stem = self.name.rsplit("/", 1)[-1]
        stem = stem[: stem.rfind(".")] if "." in stem else stem
        stem = self.member_path(stem) or "_"  # the form the gateway's writer expects
        self.count_member()
        if not self.wanted(stem):
            return
        opener: Any = gzip.open if self.fmt == "gzip" else bz2.open
        with opener(self.path, "rb") as src:
            _Writer(self, stem, None).copy_from(src)

    def _7z(self) -> None:
        import py7zr
        import py7zr.exceptions
        import py7zr.io

        try:
            with py7zr.SevenZipFile(self.path, "r") as archive:
                if archive.needs_password():
                    raise CorruptFile(f"{self.name}: encrypted 7z archive", filename=self.name)
                infos = archive.list()
                files = [i for i in infos if not i.is_directory]
                self.preflight(sum(i.uncompressed or 0 for i in files), len(files))
                targets: dict[str, str] = {}
                for info in files:
                    member = self.member_path(info.filename)
                    if member is None:
                        continue
                    self.count_member()
                    if info.is_symlink:
                        self.report.skip(member, "symbolic link (links are never extracted)")
                        continue
                    if self.wanted(member):
                        targets[info.filename] = member
                if not targets:
                    return
                extractor = self

                class _Sink(py7zr.io.Py7zIO):
                    def __init__(self, filename: str) -> None:
                        self.w = _Writer(extractor, targets[filename], None)
                        self.w.open()

                    def write(self, s: bytes | bytearray) -> int:
                        self.w.write(bytes(s))
                        return len(s)

                    def read(self, size: int | None = None) -> bytes:
                        return b""

                    def seek(self, offset: int, whence: int = 0) -> int:
                        return 0

                    def flush(self) -> None:
                        return None

                    def size(self) -> int:
                        return self.w.size

                    def close(self) -> None:
                        self.w.close()

                class _Factory(py7zr.io.WriterFactory):
                    def create(self, filename: str) -> py7zr.io.Py7zIO:
                        if filename not in targets:
                            return py7zr.io.NullIO()
                        return _Sink(filename)

                archive.extract(targets=list(targets), factory=_Factory())
        except py7zr.exceptions.ArchiveError as exc:
            raise CorruptFile(
                f"{self.name}: broken 7z archive ({exc})", filename=self.name
            ) from exc
        except (
            py7zr.exceptions.PasswordRequired,
            py7zr.exceptions.UnsupportedCompressionMethodError,
        ) as exc:
            raise CorruptFile(
                f"{self.name}: cannot extract 7z archive ({exc})", filename=self.name
            ) from exc


def list_archive(
    path: Path,
    fmt: str,
    max_entries: int = 200,
    max_bytes: int = 500 * 2**20,
    name: str | None = None,
) -> dict[str, Any]:
    """Contents of an archive without extracting it (for metadata)."""
    entries: list[dict[str, Any]] = []
    total = 0
    count = 0

    def add(name: str, size: int | None, compressed: int | None, kind: str) -> None:
        nonlocal total, count
        count += 1
        total += size or 0
        if len(entries) < max_entries:
            entries.append(
                {"name": name, "size": size, "compressed_size": compressed, "kind": kind}
            )

    if fmt == "zip":
        with zipfile.ZipFile(path) as zf:
            for i in zf.infolist():
                kind = (
                    "dir"
                    if i.is_dir()
                    else "symlink"
                    if stat.S_ISLNK(i.external_attr >> 16)
                    else "file"
                )
                add(i.filename, i.file_size, i.compress_size, kind)
    elif fmt == "7z":
        import py7zr

        with py7zr.SevenZipFile(path, "r") as archive:
            for f in archive.list():
                kind = "dir" if f.is_directory else "symlink" if f.is_symlink else "file"
                add(f.filename, f.uncompressed, f.compressed, kind)
    elif fmt == "tar" or (fmt in ("gzip", "bzip2") and _is_tar(path, fmt)):
        with tarfile.open(path, "r:*") as tf:
            while (info := tf.next()) is not None:
                kind = ("dir" if info.isdir() else "symlink" if info.issym() else
                        "hardlink" if info.islnk() else "file" if info.isreg() else "special")  # fmt: skip
                add(info.name, info.size, None, kind)
                if count > 100_000:
                    break
        fmt = "tar" if fmt == "tar" else f"tar+{fmt}"
    else:
        opener: Any = gzip.open if fmt == "gzip" else bz2.open
        size = 0
        with opener(path, "rb") as fh:
            while size <= max_bytes and (chunk := fh.read(CHUNK)):
                size += len(chunk)
        base = (name or path.name).rsplit("/", 1)[-1]
        add(base[: base.rfind(".")] if "." in base else base, size, path.stat().st_size, "file")
    return {
        "archive_format": fmt,
        "member_count": count,
        "total_uncompressed_bytes": total,
        "contents": entries,
        "contents_truncated": count > len(entries),
    }


def _is_tar(path: Path, fmt: str) -> bool:
    opener: Any = gzip.open if fmt == "gzip" else bz2.open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(512)
    except (OSError, EOFError):
        return False
    return len(head) == 512 and head[257:262] == b"ustar"
