"""File names we can trust: uploads reduced to a safe base name, archive members to a
relative path that cannot leave the extraction folder."""

from __future__ import annotations

import re
import unicodedata

from files.errors import UnsafeFileName

MAX_NAME_CHARS = 200
# Bidirectional overrides and isolates spoof what a name looks like ("invoice\u202egpj.exe").
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
_DRIVE = re.compile(r"^[A-Za-z]:")


def _check_chars(raw: str, label: str) -> None:
    for ch in raw:
        if unicodedata.category(ch) == "Cc" or ch in _BIDI:
            raise UnsafeFileName(
                f"file name {raw!r} contains a control character ({ch!r}); {label}",
                filename=raw,
            )


def _clip(name: str) -> str:
    if len(name) <= MAX_NAME_CHARS:
        return name
    dot = name.rfind(".")
    ext = name[dot:] if dot > 0 and len(name) - dot <= 16 else ""
    return name[: MAX_NAME_CHARS - len(ext)] + ext


def safe_name(raw: str) -> str:
    """Sanitise an uploaded file name to a plain base name, or raise ``UnsafeFileName``.

    Refused: empty names, control or bidi-override characters, absolute paths (``/x``,
    ``\\x``, ``C:``) and any ``..`` component. A relative path (``folder/data.csv``, as
    directory uploads send) is reduced to its base name.
    """
    if raw is None or not raw.strip():
        raise UnsafeFileName("file name is empty", filename=raw or None)
    _check_chars(raw, "refusing it")
    name = unicodedata.normalize("NFC", raw.strip())
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise UnsafeFileName(f"file name {raw!r} is an absolute path", filename=raw)
    parts = re.split(r"[/\\]", name)
    if any(p.strip() == ".." for p in parts):
        raise UnsafeFileName(f"file name {raw!r} tries to leave its folder ('..')", filename=raw)
    base = parts[-1].strip().rstrip(". ")
    if not base or base == ".":
        raise UnsafeFileName(f"file name {raw!r} has no usable base name", filename=raw)
    return _clip(base)


def safe_member_path(raw: str, archive: str) -> str | None:
    """Relative POSIX path for an archive member, ``None`` for a directory entry.

    Raises ``UnsafeFileName`` for absolute names, ``..`` components and control characters:
    an archive carrying them is hostile, not merely untidy.
    """
    label = f"member of {archive}"
    _check_chars(raw, f"refusing {label}")
    name = unicodedata.normalize("NFC", raw.replace("\\", "/"))
    if name.startswith("/") or _DRIVE.match(name):
        raise UnsafeFileName(f"{label} has an absolute path: {raw!r}", filename=archive)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafeFileName(
            f"{label} escapes the archive folder ('..'): {raw!r}", filename=archive
        )
    if not parts or name.endswith("/"):
        return None
    cleaned = [_clip(p.strip().rstrip(". ") or "_") for p in parts]
    return "/".join(cleaned)
