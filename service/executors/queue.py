"""The run queue: a bounded, fair wait for a sandbox slot, in front of every engine.

``max_concurrent_runs`` jobs hold a slot at once; up to ``max_queued`` more wait, each at most
``max_wait_s``. Beyond that a job is refused at once with ``QueueFull`` (429 with
``Retry-After``) rather than piling up without bound. Waiting jobs are served round-robin by
caller: each caller has its own line, and a freed slot goes to the next caller in turn, so
one caller's fifty queued jobs do not starve another caller's one.

Built once in the app lifespan (``ExecutorRegistry.open_slots``) and used from the event
loop only: no locks, every state change happens between two awaits.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

from service.errors import QueueFull

# How much one finished run moves the running estimate of a run's length (Retry-After).
_EWMA = 0.2


@dataclass(eq=False)
class _Waiter:
    caller: str
    event: anyio.Event = field(default_factory=anyio.Event)
    granted: bool = False


class RunQueue:
    """Slots for sandboxes, and a bounded line per caller for those waiting for one."""

    def __init__(self, capacity: int, *, max_queued: int, max_wait_s: float) -> None:
        self.capacity = max(1, capacity)
        self.max_queued = max(0, max_queued)
        self.max_wait_s = max_wait_s
        self._running = 0
        self._queued = 0
        # caller -> its waiting jobs; the order of callers is the round-robin order.
        self._lines: OrderedDict[str, deque[_Waiter]] = OrderedDict()
        self._mean_run_s = 1.0
        self.refused = 0

    @property
    def running(self) -> int:
        return self._running

    @property
    def queued(self) -> int:
        return self._queued

    def retry_after_s(self) -> int:
        """Roughly when a slot frees for a newcomer: the queue ahead at the mean run length."""
        ahead = self._queued + 1
        return max(1, math.ceil(self._mean_run_s * ahead / self.capacity))

    @asynccontextmanager
    async def slot(self, caller: str) -> AsyncIterator[None]:
        """Hold a sandbox slot for the block; waits fairly, or raises ``QueueFull``."""
        await self._acquire(caller)
        started = time.monotonic()
        try:
            yield
        finally:
            elapsed = time.monotonic() - started
            self._mean_run_s += _EWMA * (elapsed - self._mean_run_s)
            self._release()

    async def _acquire(self, caller: str) -> None:
        if self._running < self.capacity and not self._queued:
            self._running += 1
            return
        if self._queued >= self.max_queued:
            self.refused += 1
            raise QueueFull(
                f"the gateway is busy: {self._running} runs going and {self._queued} waiting, "
                f"the queue's limit (PYTHON_CODE_MAX_QUEUED_RUNS={self.max_queued}); retry later",
                retry_after_s=self.retry_after_s(),
            )
        waiter = _Waiter(caller)
        self._lines.setdefault(caller, deque()).append(waiter)
        self._queued += 1
        try:
            with anyio.fail_after(self.max_wait_s):
                await waiter.event.wait()
        except BaseException as exc:
            if waiter.granted:  # handed a slot in the same instant: pass it on
                self._release()
            else:
                self._withdraw(waiter)
            if isinstance(exc, TimeoutError):
                self.refused += 1
                raise QueueFull(
                    f"the job waited {self.max_wait_s:g} s for a sandbox without getting one "
                    "(PYTHON_CODE_MAX_QUEUE_WAIT_S); retry later",
                    retry_after_s=self.retry_after_s(),
                ) from None
            raise

    def _withdraw(self, waiter: _Waiter) -> None:
        line = self._lines.get(waiter.caller)
        if line is None or waiter not in line:
            return
        line.remove(waiter)
        self._queued -= 1
        if not line:
            del self._lines[waiter.caller]

    def _release(self) -> None:
        self._running -= 1
        while self._running < self.capacity and self._lines:
            caller, line = next(iter(self._lines.items()))
            waiter = line.popleft()
            if line:
                self._lines.move_to_end(caller)  # this caller's next job waits for its turn
            else:
                del self._lines[caller]
            self._queued -= 1
            self._running += 1
            waiter.granted = True
            waiter.event.set()

    def snapshot(self) -> dict[str, object]:
        """For ``/readyz`` and the soak benchmark: how full the queue is."""
        return {
            "running": self._running,
            "capacity": self.capacity,
            "queued": self._queued,
            "max_queued": self.max_queued,
            "callers_waiting": len(self._lines),
            "refused": self.refused,
        }
