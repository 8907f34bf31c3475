"""Content sniffing: what the bytes are, and whether that contradicts the extension.

Decisions (documented in the README of the issue):
- text extension (.csv .json .txt ...) with binary bytes -> ``ContentMismatch`` (415);
- binary extension whose bytes are another *supported* format (a PNG named .jpg, an .xlsx
  named .xls, a CSV named .xlsx) -> accepted, treated as what the bytes are, with a warning;
- bytes that are no supported format at all -> ``ContentMismatch`` when ``filetype`` knows them
  (an executable named .png), else ``CorruptFile`` (random bytes named .pdf, a truncated zip).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from files.encoding import SAMPLE_BYTES, detect_encoding, looks_binary
from files.errors import ContentMismatch, CorruptFile
from files.ole import OLE_MAGIC, ole_flavour, ole_stream_names
from files.types import KIND_BY_EXTENSION, MEDIA_TYPES, TEXT_EXTENSIONS

KIND_BY_FORMAT: dict[str, str] = {
    "pdf": "pdf", "png": "image", "jpeg": "image", "gif": "image", "bmp": "image",
    "tiff": "image", "zip": "archive", "tar": "archive", "gzip": "archive", "bzip2": "archive",
    "7z": "archive", "xlsx": "excel", "xlsm": "excel", "xls": "excel", "docx": "word",
    "doc": "word", "hdf5": "hdf5", "netcdf": "netcdf", "parquet": "parquet",
    "feather": "feather", "rtf": "rtf", "text": "text",
}  # fmt: skip
_ARCHIVE_FORMAT_BY_EXT = {
    ".zip": "zip", ".tar": "tar", ".gz": "gzip", ".tgz": "gzip", ".tar.gz": "gzip",
    ".bz2": "bzip2", ".tbz2": "bzip2", ".tar.bz2": "bzip2", ".7z": "7z",
}  # fmt: skip
_FORMAT_BY_EXT = {
    ".xlsx": "xlsx", ".xlsm": "xlsm", ".xls": "xls", ".docx": "docx", ".doc": "doc",
    ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".gif": "gif", ".bmp": "bmp",
    ".tiff": "tiff", ".tif": "tiff",
}  # fmt: skip
_FORMAT_LABEL = {"text": "plain text", "binary": "unrecognised binary data"}


@dataclass(frozen=True)
class Sniff:
    kind: str  # what we treat the file as (metadata "type")
    format: str  # what the bytes are: "png", "xlsx", "text", "gzip", ...
    media_type: str
    encoding: str | None = None  # for text content
    warnings: tuple[str, ...] = field(default_factory=tuple)


def _zip_flavour(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CorruptFile(f"not a readable zip container ({exc})") from exc
    name_set = set(names)
    if "[Content_Types].xml" in name_set:
        if any(n.startswith("word/") for n in names):
            return "docx"
        if any(n.startswith("xl/") for n in names):
            return "xlsm" if "xl/vbaProject.bin" in name_set else "xlsx"
    return "zip"


def _binary_format(head: bytes, path: Path, size: int) -> str | None:
    if head.startswith(b"%PDF") or b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if (
        head.startswith(b"BM")
        and len(head) > 14
        and int.from_bytes(head[2:6], "little") in (0, size)
    ):
        return "bmp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_flavour(path)
    if head.startswith(OLE_MAGIC):
        try:
            return ole_flavour(ole_stream_names(path))
        except (ValueError, OSError, IndexError):
            return "ole"
    if any(head[o : o + 8] == b"\x89HDF\r\n\x1a\n" for o in (0, 512, 1024, 2048, 4096)):
        return "hdf5"
    if head[:3] == b"CDF" and head[3:4] in (b"\x01", b"\x02", b"\x05"):
        return "netcdf"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith((b"ARROW1", b"FEA1")):
        return "feather"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    if head[257:262] == b"ustar":
        return "tar"
    if head.startswith(b"{\\rtf"):
        return "rtf"
    return None


def _label(fmt: str) -> str:
    return _FORMAT_LABEL.get(fmt, fmt.upper() if len(fmt) <= 7 else fmt)


def sniff(path: Path, extension: str, *, name: str | None = None) -> Sniff:
    """Look at the bytes of ``path`` (declared ``extension``); raise if they are unusable."""
    shown = name or path.name
    with path.open("rb") as fh:
        head = fh.read(SAMPLE_BYTES)
    size = path.stat().st_size
    expected = KIND_BY_EXTENSION.get(extension, "dat")
    try:
        fmt = _binary_format(head, path, size)
    except CorruptFile as exc:
        raise CorruptFile(f"{shown}: {exc.message}", filename=shown) from exc
    encoding = None
    if fmt in (None, "rtf"):
        guess = detect_encoding(head, complete=len(head) == size)
        if not looks_binary(head, guess.encoding):
            fmt, encoding = fmt or "text", guess.encoding
    warnings: list[str] = []

    if extension in TEXT_EXTENSIONS:
        if fmt not in ("text", "rtf"):
            detected = _label(fmt or _filetype_label(head))
            raise ContentMismatch(
                f"{shown}: content is {detected}, not text as {extension} implies",
                filename=shown,
            )
        if extension == ".svg" and b"<svg" not in head[:16384].lower():
            warnings.append(f"{shown}: no <svg> element near the start; may not be an SVG image")
        if extension == ".rtf" and fmt != "rtf":
            warnings.append(f"{shown}: does not start with {{\\rtf; treated as plain text")
        media = MEDIA_TYPES.get(expected, "text/plain")
        return Sniff(expected, fmt, media, encoding, tuple(warnings))

    if fmt is None:
        known = _filetype_label(head)
        if extension == ".dat":
            return Sniff("dat", "binary", known_mime(head), None, ())
        if known != "binary":
            raise ContentMismatch(
                f"{shown}: content is {known}, which is not a supported type "
                f"(the extension {extension} says {expected})",
                filename=shown,
            )
        raise CorruptFile(
            f"{shown}: not a valid {extension.lstrip('.').upper()} file "
            "(its bytes match no supported format)",
            filename=shown,
        )

    media = MEDIA_TYPES.get(fmt, "application/octet-stream")
    if extension == ".dat":
        return Sniff("dat", fmt, media, encoding, ())
    if fmt == "ole" and extension in (".doc", ".xls"):
        fmt = extension[1:]  # OLE directory unreadable: let the reader judge the claim
    kind = KIND_BY_FORMAT.get(fmt, "legacy" if fmt in ("ole", "ppt") else "dat")
    if expected == "netcdf" and fmt == "hdf5":
        kind, media = "netcdf", MEDIA_TYPES["netcdf"]  # netCDF-4 files are HDF5 containers
    if expected == "archive":
        want = _ARCHIVE_FORMAT_BY_EXT.get(extension)
        if kind == "archive" and want != fmt:
            warnings.append(f"{shown}: content is a {_label(fmt)} archive, not {extension}")
    elif (
        kind != expected or (extension in _FORMAT_BY_EXT and _FORMAT_BY_EXT[extension] != fmt)
    ) and not {extension[1:], fmt} <= {"xlsx", "xlsm"}:
        warnings.append(
            f"{shown}: content is {_label(fmt)}, not what {extension} implies; treated as {kind}"
        )
    return Sniff(kind, fmt, media, encoding, tuple(warnings))


def _filetype_label(head: bytes) -> str:
    import filetype

    kind = filetype.guess(head)
    return f"{kind.mime} ({kind.extension})" if kind is not None else "binary"


def known_mime(head: bytes) -> str:
    import filetype

    kind = filetype.guess(head)
    return kind.mime if kind is not None else "application/octet-stream"
