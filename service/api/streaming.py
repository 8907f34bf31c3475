"""Server-Sent Events for a run: its output while it runs, then the result it would return.

A route that can stream asks ``wants_event_stream`` (``Accept: text/event-stream``) and hands
its whole job to ``stream_run`` as ``work(live)``. The job starts in the request's task
group (``RequestTasksDep``: it lives until the response has been sent) and the route waits
until the run holds its sandbox slot (``LiveOutput.begin``): anything that fails before that
(bad input, the policy, a full queue) is raised here and becomes the usual JSON error with
its status code. From then on the answer is ``200 text/event-stream``::

    event: stdout
    data: {"text": "first\\n"}

    event: stderr
    data: {"text": "..."}

    event: result
    data: {...}        the JSON the same request without the header gets

or, instead of ``result``, ``event: error`` with the error body and its ``status``. A comment
line (``: ping``) goes out every ``PING_S`` of silence, so proxies keep the connection open.
The job itself handles a client that hangs up (``cancel_on_disconnect``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

import anyio
from anyio.abc import TaskGroup
from fastapi import Depends, Request
from pydantic import BaseModel
from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse

from service.api.errors import error_body, status_for
from service.errors import PythonCoderError
from service.pipeline.live import LiveOutput

log = logging.getLogger(__name__)

EVENT_STREAM = "text/event-stream"
PING_S = 15.0


async def request_tasks() -> AsyncIterator[TaskGroup]:
    """A task group that lasts as long as the request, its response included."""
    try:
        async with anyio.create_task_group() as tasks:
            yield tasks
    except ExceptionGroup as group:
        # The route's own error, raised through the group: unwrapped, so the error table
        # still answers it (the group's tasks catch their errors themselves).
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


RequestTasksDep = Annotated[TaskGroup, Depends(request_tasks)]


def wants_event_stream(request: Request) -> bool:
    return EVENT_STREAM in request.headers.get("accept", "").lower()


def sse(event: str, data: str) -> bytes:
    """One event; ``data`` is single-line JSON."""
    return f"event: {event}\ndata: {data}\n\n".encode()


def error_event(exc: Exception) -> bytes:
    status = status_for(exc)
    body = error_body(exc)
    if status >= 500 and not isinstance(exc, PythonCoderError):  # our bug: no internals out
        log.error("streamed run failed: %s", exc, exc_info=exc)
        body = {"error": "InternalError", "message": "the run failed inside the gateway"}
    return sse("error", json.dumps({**body, "status": status}, ensure_ascii=False))


async def stream_run(
    tasks: TaskGroup, work: Callable[[LiveOutput], Awaitable[BaseModel]]
) -> StreamingResponse:
    """Start ``work`` in ``tasks``; once its run has begun, answer with its event stream.
    Raises what ``work`` raised if it failed before its run began."""
    live = LiveOutput()
    finished = anyio.Event()
    outcome: list[BaseModel | Exception] = []

    async def run() -> None:
        try:
            outcome.append(await work(live))
        except Exception as exc:
            outcome.append(exc)
        finally:
            live.close()
            finished.set()

    tasks.start_soon(run)
    async with anyio.create_task_group() as gate:

        async def opens_on(event: anyio.Event) -> None:
            await event.wait()
            gate.cancel_scope.cancel()

        gate.start_soon(opens_on, live.begun)
        gate.start_soon(opens_on, finished)
    if not live.begun.is_set() and isinstance(outcome[0], Exception):
        live.chunks.close()
        raise outcome[0]
    return StreamingResponse(
        _events(live, finished, outcome),
        media_type=EVENT_STREAM,
        # Not cached, not buffered by a proxy (nginx honours the second).
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(
    live: LiveOutput, finished: anyio.Event, outcome: list[Any]
) -> AsyncIterator[bytes]:
    chunks = live.chunks
    with chunks:
        while True:
            try:
                with anyio.fail_after(PING_S):
                    chunk = await chunks.receive()
            except TimeoutError:
                yield b": ping\n\n"
                continue
            except anyio.EndOfStream:
                break
            yield sse(chunk.stream, json.dumps({"text": chunk.text}, ensure_ascii=False))
    await finished.wait()
    result = outcome[0]
    if isinstance(result, BaseModel):
        yield sse("result", result.model_dump_json())
    elif not isinstance(result, ClientDisconnect):  # else nobody is left to tell
        yield error_event(result)
