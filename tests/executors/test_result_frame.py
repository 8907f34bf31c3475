"""The gateway reads a result frame only as large as the run's limits allow, and cuts
stdout/stderr to ``max_output_bytes`` whatever the harness claims."""

from __future__ import annotations

import io
import json
import struct
from dataclasses import replace

import pytest

from runner_image.protocol import MAGIC, ProtocolError, encode_header
from service.executors.results import receive_result, result_from_header, result_header_limit
from tests.executors.conftest import MakeRequest

KB = 1024


def frame_with_length(length: int) -> io.BytesIO:
    """A frame that announces ``length`` header bytes (and carries them, all spaces)."""
    return io.BytesIO(MAGIC + struct.pack(">I", length) + b" " * length)


def test_a_header_over_the_limits_is_refused_before_it_is_read(
    make_request: MakeRequest,
) -> None:
    request = make_request("print(1)", max_output_bytes=64 * KB)
    limit = result_header_limit(request.limits)
    assert limit < 8 * 1024 * KB  # far below the protocol's 64 MiB ceiling
    stream = frame_with_length(limit + 1)
    with pytest.raises(ProtocolError, match="exceeds"):
        receive_result(stream.read, request)
    assert stream.tell() == len(MAGIC) + 4  # the announced body was never read


def test_an_honest_worst_case_header_fits(make_request: MakeRequest) -> None:
    request = make_request("print(1)", max_output_bytes=64 * KB, max_artifacts=0)
    control = "\x01" * (64 * KB)  # each escapes to \u0001: the JSON's worst growth
    header = {"stdout": control, "stderr": control, "exit_code": 0, "files": []}
    header["skipped"] = [{"name": "n" * 4000, "size": 1, "reason": "too large"}] * 50
    received = receive_result(io.BytesIO(encode_header(header)).read, request)
    assert received.header["exit_code"] == 0


def test_stdout_and_stderr_are_cut_to_max_output_bytes(make_request: MakeRequest) -> None:
    request = make_request("print(1)", max_output_bytes=10 * KB)
    header = {"stdout": "é" * (8 * KB), "stderr": "x" * (20 * KB), "exit_code": 0}
    header = json.loads(json.dumps(header))
    result = result_from_header(
        header, engine="test", artifacts=(), isolation=(), limits=request.limits
    )
    assert len(result.stdout.encode()) <= 10 * KB and result.stdout_truncated
    assert set(result.stdout) == {"é"}  # cut on a character boundary
    assert result.stderr == "x" * (10 * KB) and result.stderr_truncated
    short = result_from_header(
        {"stdout": "hi\n", "exit_code": 0},
        engine="test",
        artifacts=(),
        isolation=(),
        limits=request.limits,
    )
    assert short.stdout == "hi\n" and not short.stdout_truncated


def test_a_deeply_nested_header_is_a_protocol_error(make_request: MakeRequest) -> None:
    body = b'{"stdout": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    stream = io.BytesIO(MAGIC + struct.pack(">I", len(body)) + body)
    with pytest.raises(ProtocolError, match="nested"):
        receive_result(stream.read, make_request("print(1)", max_output_bytes=1024 * KB))


def test_chunks_from_a_tampered_harness_get_no_more_room_than_its_result(
    make_request: MakeRequest,
) -> None:
    got: list[tuple[str, str]] = []
    request = replace(
        make_request("print(1)", max_output_bytes=10 * KB),
        on_output=lambda stream, text: got.append((stream, text)),
    )

    def frame(header: dict[str, str]) -> bytes:  # ASCII JSON: a lone surrogate as \udc80
        body = json.dumps(header).encode()
        return MAGIC + struct.pack(">I", len(body)) + body

    frames = b"".join(
        frame({"chunk": stream, "text": text})
        for stream, text in [
            ("stdout", "é" * (4 * KB)),  # 8 KB
            ("stderr", "e" * KB),
            ("stdout", "x" * (4 * KB)),  # over the cap from 2 KB on
            ("stdout", "never"),
            ("stderr", "\udc80"),  # a lone surrogate: replaced, never passed on
        ]
    )
    stream = io.BytesIO(frames + encode_header({"exit_code": 0, "files": []}))
    received = receive_result(stream.read, request)
    assert received.header["exit_code"] == 0
    out = "".join(t for s, t in got if s == "stdout")
    assert out == "é" * (4 * KB) + "x" * (2 * KB)
    assert [t for s, t in got if s == "stderr"] == ["e" * KB, "\ufffd" * 3]


def test_chunks_nobody_listens_to_are_skipped_and_bad_ones_refused(
    make_request: MakeRequest,
) -> None:
    request = make_request("print(1)")
    result = encode_header({"exit_code": 0, "files": []})
    chunk = encode_header({"chunk": "stdout", "text": "hi"})
    assert receive_result(io.BytesIO(chunk * 3 + result).read, request).header["exit_code"] == 0
    for bad in ({"chunk": "stdin", "text": "x"}, {"chunk": "stdout", "text": 1}):
        with pytest.raises(ProtocolError, match="bad chunk frame"):
            receive_result(io.BytesIO(encode_header(bad) + result).read, request)
