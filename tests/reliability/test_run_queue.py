"""The run queue on its own: bounded, fair by caller, and clean when waiters leave."""

from __future__ import annotations

import anyio
import pytest

from service.errors import QueueFull
from service.executors.queue import RunQueue


async def settle() -> None:
    """Let every task that can run, run (no clock involved)."""
    for _ in range(20):
        await anyio.sleep(0)


async def test_queued_jobs_are_served_round_robin_by_caller() -> None:
    queue = RunQueue(1, max_queued=20, max_wait_s=3600)
    served: list[str] = []
    release = anyio.Event()

    async def job(caller: str, name: str) -> None:
        async with queue.slot(caller):
            served.append(name)
            await settle()

    async with anyio.create_task_group() as tasks:

        async def blocker() -> None:
            async with queue.slot("a"):
                await release.wait()

        tasks.start_soon(blocker)
        await settle()
        for i in range(1, 6):  # caller a queues five jobs first ...
            tasks.start_soon(job, "a", f"a{i}")
            await settle()
        tasks.start_soon(job, "b", "b1")  # ... then b and c one each
        await settle()
        tasks.start_soon(job, "c", "c1")
        await settle()
        assert queue.queued == 7 and queue.running == 1
        release.set()
    # b and c are not starved behind a's five: one each per turn.
    assert served == ["a1", "b1", "c1", "a2", "a3", "a4", "a5"]
    assert queue.queued == 0 and queue.running == 0


async def test_a_full_queue_refuses_at_once_with_a_retry_after() -> None:
    queue = RunQueue(1, max_queued=2, max_wait_s=3600)
    release = anyio.Event()

    async def hold(caller: str) -> None:
        async with queue.slot(caller):
            await release.wait()

    async with anyio.create_task_group() as tasks:
        for caller in ("a", "b", "c"):  # one runs, two wait
            tasks.start_soon(hold, caller)
        await settle()
        assert (queue.running, queue.queued) == (1, 2)
        with pytest.raises(QueueFull) as refused:
            async with queue.slot("d"):
                pass
        assert refused.value.retry_after_s >= 1
        assert "PYTHON_CODE_MAX_QUEUED_RUNS=2" in refused.value.message
        release.set()
    assert queue.snapshot()["refused"] == 1
    assert (queue.running, queue.queued) == (0, 0)


async def test_a_job_that_waits_past_the_cap_is_refused_and_leaves_the_line() -> None:
    queue = RunQueue(1, max_queued=5, max_wait_s=0.05)
    release = anyio.Event()

    async def hold() -> None:
        async with queue.slot("a"):
            await release.wait()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(hold)
        await settle()
        with pytest.raises(QueueFull, match="PYTHON_CODE_MAX_QUEUE_WAIT_S"):
            async with queue.slot("b"):
                pass
        assert queue.queued == 0
        release.set()
    assert queue.running == 0


async def test_a_cancelled_waiter_leaves_no_trace_and_no_lost_slot() -> None:
    queue = RunQueue(1, max_queued=5, max_wait_s=3600)
    release = anyio.Event()
    ran: list[str] = []

    async def hold() -> None:
        async with queue.slot("a"):
            await release.wait()

    async def job(name: str) -> None:
        async with queue.slot(name):
            ran.append(name)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(hold)
        await settle()
        with anyio.CancelScope() as gone:  # e.g. its client disconnected while it waited
            tasks.start_soon(job, "late")
            await settle()
            async with anyio.create_task_group() as inner:
                inner.start_soon(job, "cancelled")
                await settle()
                assert queue.queued == 2
                gone.cancel()
        assert queue.queued == 1
        release.set()
    assert ran == ["late"]
    assert (queue.running, queue.queued) == (0, 0)
