"""The gateway's side of ``runner_image.protocol``: the harness's result frame -> ``RunResult``.

Both engines read the same frame from the same harness; only how the bytes arrive differs
(docker's multiplexed attach stream, a local pipe). Everything in the frame comes from inside
the sandbox, so artifact entries are checked (name, size, count, total) before a byte is
written, and each file is streamed into ``request.output_dir`` without following links. The
header itself is read only up to what the run's limits can produce
(``result_header_limit``), and stdout/stderr are cut to ``max_output_bytes`` again here: a
harness the script tampered with gets no more room than an honest one. The chunk frames a
streamed run sends first (``read_answer``) are held to the same cap.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from runner_image.protocol import ProtocolError, copy_exact, read_header
from service.errors import DiskFull
from service.executors.base import (
    OnOutput,
    ProducedFile,
    RunLimits,
    RunRequest,
    RunResult,
    SkippedFile,
)

# The harness lists at most this many files it did not return; the gateway holds it to that.
MAX_SKIPPED = 50
# JSON escaping can grow text up to 6x (a control byte becomes \u00XX); every listed file
# (returned or skipped) gets room for a long name; the rest of the header is small.
JSON_GROWTH = 6
ENTRY_BYTES = 8 * 1024
HEADER_BASE_BYTES = 64 * 1024

Read = Callable[[int], bytes]


@dataclass(frozen=True)
class ReceivedResult:
    header: dict[str, Any]
    artifacts: tuple[ProducedFile, ...]


def result_header_limit(limits: RunLimits) -> int:
    """The largest result header an honest harness can send under ``limits``."""
    outputs = 2 * JSON_GROWTH * limits.max_output_bytes
    entries = (limits.max_artifacts + MAX_SKIPPED) * ENTRY_BYTES
    return outputs + entries + HEADER_BASE_BYTES


def read_result_header(read: Read, request: RunRequest) -> dict[str, Any]:
    """The result header, refused (``ProtocolError``) beyond ``result_header_limit``; chunk
    frames before it go to ``request.on_output``."""
    return read_answer(
        read,
        result_header_limit(request.limits),
        request.limits.max_output_bytes,
        request.on_output,
    )


def read_answer(
    read: Read, header_limit: int, max_output_bytes: int, on_output: OnOutput | None
) -> dict[str, Any]:
    """The next header that is not a chunk frame. Chunks go to ``on_output`` (dropped when
    it is None), each stream cut at ``max_output_bytes`` UTF-8 bytes as its result text is."""
    room = {"stdout": max_output_bytes, "stderr": max_output_bytes}
    while True:
        header = read_header(read, header_limit)
        stream = header.get("chunk")
        if stream is None:
            return header
        text = header.get("text")
        if stream not in room or not isinstance(text, str):
            raise ProtocolError(f"bad chunk frame {str(header)[:200]}")
        if on_output is None or room[stream] <= 0:
            continue
        encoded = text.encode("utf-8", "surrogatepass")[: room[stream]]
        room[stream] -= len(encoded)
        # Lone surrogates (only a tampered harness sends them) would not survive encoding.
        text = encoded.decode("utf-8", "replace")
        if text:
            on_output(stream, text)


def receive_result(read: Read, request: RunRequest) -> ReceivedResult:
    """Read the result frame and stream its artifacts; ``ProtocolError`` if it is not valid."""
    header = read_result_header(read, request)
    return ReceivedResult(header, receive_artifacts(header, read, request))


def receive_artifacts(
    header: dict[str, Any], read: Read, request: RunRequest
) -> tuple[ProducedFile, ...]:
    """Stream the files ``header`` lists from ``read`` into ``request.output_dir``."""
    files = header.get("files") or []
    if not isinstance(files, list):
        raise ProtocolError("'files' is not a list")
    limits = request.limits
    if len(files) > limits.max_artifacts:
        raise ProtocolError(f"runner listed {len(files)} files, over the limit")
    total = 0
    produced: list[ProducedFile] = []
    if files:  # the caller leaves the dir to the first file (most runs write none)
        request.output_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for entry in files:
        size = entry.get("size") if isinstance(entry, dict) else None
        if not isinstance(size, int) or size < 0 or size > limits.max_artifact_bytes:
            raise ProtocolError(f"bad artifact entry {entry!r}")
        total += size
        if total > limits.max_artifacts_total_bytes:
            raise ProtocolError("runner sent more artifact bytes than allowed")
        name = entry["name"]
        path = safe_artifact_path(request.output_dir, name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as out:
                copy_exact(read, out.write, size)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):  # our disk, not the sandbox's fault
                raise DiskFull(
                    "the execution dir (PYTHON_CODE_EXECUTION_DIR) ran out of space while "
                    "receiving the script's files; retry later"
                ) from exc
            raise
        produced.append(ProducedFile(name=name, size=size, path=path))
    return tuple(produced)


def safe_artifact_path(output_dir: Path, name: Any) -> Path:
    """Where a produced file goes: a relative POSIX path with no ``..``, ``.``, ``//`` or ``\\``."""
    if not isinstance(name, str) or not name or "\x00" in name or "\\" in name:
        raise ProtocolError(f"bad artifact name {name!r}")
    if name.startswith("/") or any(part in ("", ".", "..") for part in name.split("/")):
        raise ProtocolError(f"bad artifact name {name!r}")
    return output_dir.joinpath(*PurePosixPath(name).parts)


def result_from_header(
    header: dict[str, Any],
    *,
    engine: str,
    artifacts: tuple[ProducedFile, ...],
    isolation: tuple[str, ...],
    limits: RunLimits,
) -> RunResult:
    """The run as the harness reported it; engine-specific findings are added by the caller."""
    stdout, stdout_cut = _capped(header.get("stdout"), limits.max_output_bytes)
    stderr, stderr_cut = _capped(header.get("stderr"), limits.max_output_bytes)
    exit_code = header.get("exit_code")
    error = header.get("error")
    listed = [s for s in header.get("skipped") or [] if isinstance(s, dict)]
    more = header.get("skipped_more")
    more = (more if isinstance(more, int) and more > 0 else 0) + max(0, len(listed) - MAX_SKIPPED)
    return RunResult(
        engine=engine,
        stdout=stdout,
        stderr=stderr,
        stdout_truncated=stdout_cut or bool(header.get("stdout_truncated")),
        stderr_truncated=stderr_cut or bool(header.get("stderr_truncated")),
        exit_code=exit_code if isinstance(exit_code, int) else None,
        timed_out=bool(header.get("timed_out")),
        duration_s=float(header.get("duration_s") or 0.0),
        artifacts=artifacts,
        skipped=tuple(
            SkippedFile(
                name=str(s.get("name")), size=int(s.get("size") or 0), reason=str(s.get("reason"))
            )
            for s in listed[:MAX_SKIPPED]
        ),
        skipped_more=more,
        isolation=isolation,
        error=error if isinstance(error, str) else None,
    )


def _capped(value: Any, limit: int) -> tuple[str, bool]:
    """``value`` as text of at most ``limit`` UTF-8 bytes (cut on a character boundary)."""
    text = value if isinstance(value, str) else str(value or "")
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) <= limit:
        return text, False
    return encoded[:limit].decode("utf-8", "ignore"), True
