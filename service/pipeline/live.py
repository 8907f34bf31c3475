"""A run's output as it happens, for a listener on the event loop (SSE, MCP progress, CLI).

Engines read the sandbox's answer on a worker thread and hand each output chunk to
``LiveOutput.output`` (``RunRequest.on_output``); it crosses to the event loop
(``anyio.from_thread`` with the loop's token, so any thread may call it) into an unbounded
memory stream. Unbounded on purpose: the sandbox is never held up by a slow listener, and the
harness sends at most ``max_output_bytes`` per stream, so the backlog is bounded by the cap.
``begin`` marks the moment the run holds its sandbox slot: what fails before it (the policy,
a full queue) is an ordinary error answer, what fails after it belongs to the stream.
``relayed`` runs a job while handing its chunks to an async callback (MCP progress, the CLI).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar, cast

import anyio
import anyio.from_thread
import anyio.lowlevel

T = TypeVar("T")


@dataclass(frozen=True)
class Chunk:
    stream: str  # "stdout" | "stderr"
    text: str


class LiveOutput:
    """Created on the event loop; ``output`` may be called from any thread."""

    def __init__(self) -> None:
        self._send, self.chunks = anyio.create_memory_object_stream[Chunk](math.inf)
        self._token = anyio.lowlevel.current_token()
        self.begun = anyio.Event()

    def begin(self) -> None:
        """The run has its slot and is about to start (on the event loop)."""
        self.begun.set()

    def output(self, stream: str, text: str) -> None:
        """One chunk, from the thread reading the sandbox; never raises (nobody may listen)."""
        with contextlib.suppress(
            anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.RunFinishedError
        ):
            anyio.from_thread.run_sync(
                self._send.send_nowait, Chunk(stream, text), token=self._token
            )

    def close(self) -> None:
        """No more chunks: a reader's ``async for`` over ``chunks`` ends."""
        self._send.close()


async def relayed(
    run: Callable[[LiveOutput], Awaitable[T]], deliver: Callable[[str, str], Awaitable[None]]
) -> T:
    """``await run(live)`` while each chunk of its output goes to ``deliver(stream, text)``,
    in order; what ``run`` raises comes out as itself (not as an exception group)."""
    live = LiveOutput()
    failure: Exception | None = None
    result: T | None = None

    async def forward() -> None:
        with live.chunks:
            async for chunk in live.chunks:
                await deliver(chunk.stream, chunk.text)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(forward)
        try:
            result = await run(live)
        except Exception as exc:
            failure = exc
        finally:
            live.close()
    if failure is not None:
        raise failure
    return cast(T, result)
