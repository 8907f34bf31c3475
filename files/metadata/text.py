"""Plain text, logs, Markdown, RTF and .dat: encoding, line count, preview.

The whole file is streamed once (line count and, for UTF-8, validation of every byte), so a
file whose head is UTF-8 but whose tail is not is reported correctly.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Any

from files.encoding import SAMPLE_BYTES, detect_encoding, looks_binary
from files.metadata.common import PREVIEW_CHARS, truncate

CHUNK = 1024 * 1024
_ASCII_COMPATIBLE_NEWLINE = re.compile(r"^(utf-8|utf-8-sig|latin-1|iso8859|cp\d+|ascii|mac)")


def read_head(path: Path, size: int = SAMPLE_BYTES) -> bytes:
    with path.open("rb") as fh:
        return fh.read(size)


def scan_text(path: Path, encoding: str) -> dict[str, Any]:
    """Line count and encoding check in one streamed pass; may correct a ``utf-8`` guess."""
    lines = 0
    last = b""
    bad_offset: int | None = None
    offset = 0
    newline = b"\n"
    ascii_compatible = not encoding.startswith(("utf-16", "utf-32"))
    decoder = codecs.getincrementaldecoder(encoding)(
        errors="strict" if encoding.startswith("utf-8") else "replace"
    )
    text_lines = 0
    text_last = ""
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            if ascii_compatible:
                if offset == 0 and b"\n" not in chunk and b"\r" in chunk:
                    newline = b"\r"
                lines += chunk.count(newline)
                last = chunk[-1:]
                if bad_offset is None and encoding.startswith("utf-8"):
                    try:
                        decoder.decode(chunk)
                    except UnicodeDecodeError as exc:
                        bad_offset = offset + exc.start
            else:
                text = decoder.decode(chunk)
                text_lines += text.count("\n")
                text_last = text[-1:] if text else text_last
            offset += len(chunk)
    if ascii_compatible:
        total = lines + (1 if last and last != newline else 0)
    else:
        total = text_lines + (1 if text_last and text_last != "\n" else 0)
    result: dict[str, Any] = {"line_count": total, "encoding": encoding}
    if bad_offset is not None:
        result["encoding"], result["encoding_note"] = correct_encoding(path, bad_offset)
    return result


def correct_encoding(path: Path, bad_offset: int) -> tuple[str, str]:
    """Re-detect around the first byte that broke a UTF-8 guess made from the head."""
    with path.open("rb") as fh:
        fh.seek(max(0, bad_offset - 4096))
        window = fh.read(SAMPLE_BYTES)
    corrected = detect_encoding(window).encoding
    return corrected, (
        f"the first {bad_offset} bytes are valid UTF-8 but byte {bad_offset} is not; "
        f"reported {corrected}"
    )


def decode_head(head: bytes, encoding: str) -> str:
    return codecs.getincrementaldecoder(encoding)(errors="replace").decode(head, final=False)


def text_metadata(path: Path, kind: str, extension: str) -> dict[str, Any]:
    head = read_head(path)
    size = path.stat().st_size
    guess = detect_encoding(head, complete=len(head) == size)
    meta: dict[str, Any] = {"encoding_confidence": guess.confidence}
    meta.update(scan_text(path, guess.encoding))
    text = decode_head(head[: 64 * 1024], meta["encoding"])
    meta["preview"] = truncate(text, PREVIEW_CHARS)
    if extension == ".md":
        heads = [ln.strip() for ln in text.splitlines() if re.match(r"^#{1,6}\s", ln)]
        meta["headings"] = [
            {"level": len(h) - len(h.lstrip("#")), "text": truncate(h.lstrip("#").strip(), 120)}
            for h in heads[:30]
        ]
    if kind == "rtf":
        meta.update(rtf_fields(text))
    return meta


_RTF_CONTROL = re.compile(r"\\'[0-9a-fA-F]{2}|\\[a-zA-Z]+-?\d* ?|\\[^a-zA-Z]|[{}]")


def rtf_fields(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cp = re.search(r"\\ansicpg(\d+)", text[:2000])
    if cp:
        out["rtf_codepage"] = f"cp{cp.group(1)}"
    body = re.sub(r"\{\\\*[^{}]*\}", "", text)
    body = re.sub(r"\{\\(fonttbl|colortbl|stylesheet|info)[^{}]*(\{[^{}]*\}[^{}]*)*\}", "", body)
    plain = re.sub(r"\s+", " ", _RTF_CONTROL.sub("", body)).strip()
    out["text_preview"] = truncate(plain, PREVIEW_CHARS)
    return out


def dat_metadata(path: Path, fmt: str) -> dict[str, Any]:
    head = read_head(path)
    guess = detect_encoding(head, complete=len(head) == path.stat().st_size)
    if fmt == "text" or not looks_binary(head, guess.encoding):
        meta = {"content": "text", **text_metadata(path, "dat", ".dat")}
        first = [ln for ln in decode_head(head, meta["encoding"]).splitlines() if ln.strip()][:20]
        for label, sep in (("comma", ","), ("tab", "\t"), ("semicolon", ";"), ("whitespace", None)):
            counts = {len(ln.split(sep)) for ln in first[1:] or first}
            if len(counts) == 1 and (n := counts.pop()) > 1:
                meta["looks_tabular"] = {"delimiter": label, "columns": n}
                break
        return meta
    return {
        "content": "binary",
        "detected_format": fmt,
        "head_hex": head[:32].hex(" "),
        "note": "binary .dat: layout unknown; read it with numpy.fromfile or struct",
    }
