"""Cancel a job whose client went away: its sandbox is killed instead of running on.

A route wraps the job's run in ``cancel_on_disconnect``. A watcher waits for the ASGI
``http.disconnect`` message meanwhile; when it comes, a job still waiting in the run queue
leaves it, and a running one has its sandbox killed through ``Executor.cancel`` (the run then
returns as failed and the sandbox is disposed of as usual). The kill is repeated until the
run returns: a cold sandbox may still be provisioning when the client leaves.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

import anyio
from starlette.requests import ClientDisconnect, Request

from service.executors.base import Executor

log = logging.getLogger(__name__)

T = TypeVar("T")
RECANCEL_S = 0.25


async def _until_disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def cancel_on_disconnect(
    request: Request, executor: Executor, job_id: str, work: Callable[[], Awaitable[T]]
) -> T:
    """``await work()``, or cancel job ``job_id`` and raise ``ClientDisconnect`` when the
    client disconnects first."""
    finished = False
    gone = False
    work_scope = anyio.CancelScope()

    async def watch() -> None:
        nonlocal gone
        await _until_disconnected(request)
        if finished:
            return
        gone = True
        log.info("client disconnected: cancelling job %s", job_id)
        work_scope.cancel()  # a job still queued leaves the queue
        while not finished:
            await anyio.to_thread.run_sync(executor.cancel, [job_id])
            await anyio.sleep(RECANCEL_S)

    result: T | None = None
    error: Exception | None = None
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(watch)
        try:
            with work_scope:
                result = await work()
        except Exception as exc:  # raised outside the task group: not as an ExceptionGroup
            error = exc
        finally:
            finished = True
            tasks.cancel_scope.cancel()
    if gone:
        raise ClientDisconnect()
    if error is not None:
        raise error
    return cast(T, result)
