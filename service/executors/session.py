"""One exchange with a session sandbox: a request frame out, a result frame back.

A session sandbox (``Executor.open_session``) runs the harness in session mode: it answers
frames one at a time over the same channel until its stdin ends (``runner_image.harness``,
"session mode", has the ops). The caller serialises exchanges per sandbox. Whatever breaks
the channel (a timeout past the harness's own, a malformed frame, a dead sandbox) is
``ChannelBroken``: the sandbox is then of no further use.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from runner_image.protocol import ProtocolError, copy_exact, encode_header
from service.executors.base import (
    InputFile,
    OnOutput,
    ProducedFile,
    RunLimits,
    RunRequest,
    Sandbox,
)
from service.executors.results import (
    JSON_GROWTH,
    read_answer,
    receive_artifacts,
    result_header_limit,
)

# On top of the cell's timeout: the interrupt grace, collecting files, the frames themselves.
EXCHANGE_GRACE_S = 15.0
# A work-dir listing: at most 1,000 names of at most 300 characters (the harness caps both).
LISTING_BYTES = 1000 * 2048


class ChannelBroken(Exception):
    """The session sandbox stopped answering in protocol; it must be disposed of."""


def exchange(
    sandbox: Sandbox,
    header: dict[str, Any],
    *,
    inputs: tuple[InputFile, ...] = (),
    output_dir: Path,
    limits: RunLimits,
    wait_s: float,
    on_output: OnOutput | None = None,
) -> tuple[dict[str, Any], tuple[ProducedFile, ...]]:
    """Send ``header`` (plus ``inputs``) and read the answer and its files into ``output_dir``;
    ``on_output``: a cell's or script's output as it comes (chunk frames)."""
    deadline = time.monotonic() + wait_s + EXCHANGE_GRACE_S
    listed = [{"name": f.name, "size": f.size} for f in inputs]
    streamed = {"stream": True} if on_output is not None else {}
    frame = encode_header({**header, "files": listed, **streamed})
    # Values and rich displays are capped by the harness at max_output_bytes each.
    header_limit = (
        result_header_limit(limits) + 2 * JSON_GROWTH * limits.max_output_bytes + LISTING_BYTES
    )
    request = RunRequest(job_id="session", code="", inputs=(), output_dir=output_dir, limits=limits)
    try:
        sandbox.send_bytes(frame, deadline)
        for item in inputs:
            with item.path.open("rb") as f:
                copy_exact(f.read, lambda data: sandbox.send_bytes(data, deadline), item.size)
        read = sandbox.reader(deadline)
        answer = read_answer(read, header_limit, limits.max_output_bytes, on_output)
        produced = receive_artifacts(answer, read, request)
    except (ProtocolError, OSError, TimeoutError) as exc:
        raise ChannelBroken(f"{exc.__class__.__name__}: {exc}") from exc
    return answer, produced
