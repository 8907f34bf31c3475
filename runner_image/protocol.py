"""Framing shared by the gateway and the harness (standard library only).

A frame is ``MAGIC`` + 4-byte big-endian header length + a UTF-8 JSON header, followed by
the raw bytes of every file the header lists, in order (``{"name": ..., "size": ...}``).
The request frame goes to the harness on stdin; the result frame comes back on stdout.

Request header::

    {"code": str, "files": [{"name": "data/a.csv", "size": 12}], "timeout_s": 30.0,
     "limits": {"max_output_bytes": ..., "max_artifact_bytes": ..., "max_artifacts": ...,
                "max_artifacts_total_bytes": ..., "memory_bytes": int | None, "cpu_s": ...,
                "fsize_bytes": ..., "nofile": ..., "nproc": ...},
     "stream": bool}                                          # optional, default false

With ``"stream": true`` the harness sends chunk frames on stdout while the script runs, any
number of them, all before the result frame; they carry no file bodies::

    {"chunk": "stdout" | "stderr", "text": str}

Chunks are what the result's ``stdout``/``stderr`` hold, in the order the harness read them
(across the two streams too): joined per stream they equal that field exactly, so they never
exceed ``max_output_bytes`` (UTF-8) and output past the cap is in neither. They are
coalesced: at most one flush every 50 ms unless 64 KiB are waiting. A reader tells a chunk
frame by its ``"chunk"`` key (no result header has one) and may simply skip them. Without
``"stream"`` no chunk frame is sent.

Result header::

    {"stdout": str, "stderr": str, "stdout_truncated": bool, "stderr_truncated": bool,
     "exit_code": int | None, "signal": int | None, "timed_out": bool, "duration_s": float,
     "files": [{"name": ..., "size": ...}],              # artifacts, bytes follow the header
     "skipped": [{"name": ..., "size": ..., "reason": ...}],   # at most 50 listed
     "skipped_more": int,                                     # further ones, counted only
     "error": str | None}
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

MAGIC = b"PYC1"
MAX_HEADER_BYTES = 64 * 1024 * 1024
_LEN = struct.Struct(">I")


class ProtocolError(Exception):
    """The peer sent something that is not a well-formed frame."""


def encode_header(header: dict[str, Any]) -> bytes:
    body = json.dumps(header, ensure_ascii=False).encode("utf-8")
    if len(body) > MAX_HEADER_BYTES:
        raise ProtocolError(f"frame header of {len(body)} bytes exceeds {MAX_HEADER_BYTES}")
    return MAGIC + _LEN.pack(len(body)) + body


def read_exact(read: Callable[[int], bytes], n: int) -> bytes:
    """Read exactly ``n`` bytes with ``read`` or raise ``ProtocolError`` on early EOF."""
    chunks: list[bytes] = []
    remaining = n
    while remaining > 0:
        chunk = read(min(remaining, 1024 * 1024))
        if not chunk:
            raise ProtocolError(f"stream ended {remaining} bytes before the frame did")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_header(read: Callable[[int], bytes], max_bytes: int = MAX_HEADER_BYTES) -> dict[str, Any]:
    """Read MAGIC, length and JSON header (at most ``max_bytes``); the caller then reads the
    listed file bodies."""
    prefix = read_exact(read, len(MAGIC) + _LEN.size)
    if prefix[: len(MAGIC)] != MAGIC:
        raise ProtocolError(f"bad frame magic {prefix[: len(MAGIC)]!r}")
    (length,) = _LEN.unpack(prefix[len(MAGIC) :])
    if length > min(max_bytes, MAX_HEADER_BYTES):
        raise ProtocolError(
            f"frame header of {length} bytes exceeds {min(max_bytes, MAX_HEADER_BYTES)}"
        )
    try:
        header = json.loads(read_exact(read, length).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"frame header is not JSON: {exc}") from exc
    except RecursionError as exc:  # nesting deeper than the parser's stack
        raise ProtocolError("frame header is nested too deeply") from exc
    if not isinstance(header, dict):
        raise ProtocolError("frame header is not a JSON object")
    return header


def copy_exact(
    read: Callable[[int], bytes], write: Callable[[bytes], Any], n: int, chunk: int = 1 << 20
) -> None:
    """Stream exactly ``n`` bytes from ``read`` to ``write`` without holding them all."""
    remaining = n
    while remaining > 0:
        data = read(min(remaining, chunk))
        if not data:
            raise ProtocolError(f"stream ended {remaining} bytes before the file did")
        write(data)
        remaining -= len(data)
