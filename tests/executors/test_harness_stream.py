"""The harness's chunk frames (``"stream": true``), read as they arrive from a live harness.

Pinned here, for both engines: chunks come while the script runs, before the result; joined
they equal the result's text, under the same cap; without the flag there are none.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from runner_image.protocol import encode_header, read_header
from tests.executors.test_harness import DEFAULT_LIMITS, HARNESS

SLEEPY = "import time, sys\nprint('first', flush=True)\ntime.sleep(2)\nprint('second')\n"


@dataclass
class Frames:
    chunks: list[tuple[float, str, str]] = field(default_factory=list)  # (arrival, stream, text)
    results: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def text(self, stream: str) -> str:
        return "".join(t for _, s, t in self.chunks if s == stream)


def _start(workdir: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    # A private temp dir, as a sandbox's /tmp is: a session keeps its installs there.
    private_tmp = workdir.parent / f"{workdir.name}-tmp"
    private_tmp.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-s", "-E", str(HARNESS), str(workdir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={
            "PYC_PREIMPORT": "",
            "PATH": os.environ["PATH"],
            "TMPDIR": str(private_tmp),
            **(env or {}),
        },
    )


def _read_answer(proc: subprocess.Popen[bytes], frames: Frames) -> dict[str, Any]:
    """Frames up to and including the next result header."""
    assert proc.stdout is not None
    read = functools.partial(os.read, proc.stdout.fileno())
    while True:
        header = read_header(read)
        now = time.monotonic()
        if "chunk" in header:
            frames.chunks.append((now, header["chunk"], header["text"]))
            continue
        frames.results.append((now, header))
        return header


def _request(code: str, *, stream: bool = True, **limits: Any) -> bytes:
    header: dict[str, Any] = {
        "code": code,
        "files": [],
        "timeout_s": 20.0,
        "limits": {**DEFAULT_LIMITS, **limits},
    }
    if stream:
        header["stream"] = True
    return encode_header(header)


def stream_one(workdir: Path, code: str, *, stream: bool = True, **limits: Any) -> Frames:
    proc = _start(workdir)
    assert proc.stdin is not None
    try:
        proc.stdin.write(_request(code, stream=stream, **limits))
        proc.stdin.close()
        frames = Frames()
        _read_answer(proc, frames)
        assert proc.wait(30) == 0
        return frames
    finally:
        proc.kill()
        proc.wait()
        for pipe in (proc.stdout,):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def test_first_line_arrives_while_the_script_sleeps(workdir: Path) -> None:
    frames = stream_one(workdir, SLEEPY)
    ((done, result),) = frames.results
    assert result["exit_code"] == 0 and result["stdout"] == "first\nsecond\n"
    first = next(at for at, s, t in frames.chunks if "first" in t)
    assert done - first > 1.0, frames
    assert frames.text("stdout") == result["stdout"]


def test_stderr_is_streamed_in_order(workdir: Path) -> None:
    code = (
        "import sys, time\n"
        "print('out-1', flush=True)\n"
        "time.sleep(0.2)\n"
        "print('err-1', file=sys.stderr, flush=True)\n"
        "time.sleep(0.2)\n"
        "print('out-2', flush=True)\n"
        "raise SystemExit(3)\n"
    )
    frames = stream_one(workdir, code)
    ((_, result),) = frames.results
    assert result["exit_code"] == 3
    assert frames.text("stdout") == result["stdout"] == "out-1\nout-2\n"
    assert frames.text("stderr") == result["stderr"] == "err-1\n"
    order = [t for _, _, t in frames.chunks]
    assert order == ["out-1\n", "err-1\n", "out-2\n"]


def test_a_flood_is_cut_at_the_cap_in_chunks_and_result_alike(workdir: Path) -> None:
    cap = 100_001  # odd: the cut falls inside a two-byte character
    code = "import sys\nfor _ in range(40_000):\n    sys.stdout.write('é' * 50 + '\\n')\n"
    frames = stream_one(workdir, code, max_output_bytes=cap)
    ((_, result),) = frames.results
    assert result["stdout_truncated"] is True
    streamed = frames.text("stdout")
    assert streamed == result["stdout"]
    assert len(streamed.encode()) <= cap + 3  # the cut character becomes U+FFFD
    # Coalesced: far fewer frames than the 40,000 writes.
    assert len(frames.chunks) < 40


def test_without_the_flag_there_are_no_chunk_frames(workdir: Path) -> None:
    frames = stream_one(workdir, "print('hi')", stream=False)
    assert frames.chunks == []
    assert frames.results[0][1]["stdout"] == "hi\n"


def test_session_cells_stream_and_keep_state(workdir: Path) -> None:
    proc = _start(workdir, {"PYC_MODE": "session"})
    assert proc.stdin is not None
    try:
        cell = {
            "op": "cell",
            "files": [],
            "timeout_s": 20.0,
            "limits": DEFAULT_LIMITS,
            "stream": True,
        }
        frames = Frames()
        proc.stdin.write(encode_header({**cell, "code": "x = 41\n" + SLEEPY}))
        proc.stdin.flush()
        answer = _read_answer(proc, frames)
        assert answer["exit_code"] == 0 and answer["stdout"] == "first\nsecond\n"
        first = next(at for at, s, t in frames.chunks if "first" in t)
        assert frames.results[0][0] - first > 1.0
        assert frames.text("stdout") == answer["stdout"]

        quiet = Frames()
        proc.stdin.write(
            encode_header({**cell, "code": "import sys\nprint(x + 1, file=sys.stderr)\nx"})
        )
        proc.stdin.flush()
        answer = _read_answer(proc, quiet)
        assert answer["value"] == "41" and answer["stderr"] == "42\n"
        assert quiet.text("stderr") == "42\n" and quiet.text("stdout") == ""
        proc.stdin.close()
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
