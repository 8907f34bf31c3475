"""Per-key quotas: a token bucket for the job rate and a cap on jobs running at once.

Both are keyed by the principal's identity (``key:<id>``), so the number of buckets is
bounded by the number of configured keys: unauthenticated requests never get this far.
Everything runs on the event loop (no awaits inside), so no lock is needed.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from service.errors import RateLimited


@dataclass
class TokenBucket:
    """``burst`` tokens at most, refilled at ``rate`` tokens per second; one job costs one."""

    rate: float
    burst: int
    tokens: float = field(init=False)
    updated: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)
        self.updated = -math.inf

    def take(self, now: float) -> float:
        """Take a token: 0.0 when granted, else the seconds until one is there."""
        if self.updated != -math.inf:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class Quotas:
    """Admission for jobs: ``with quotas.admit(identity):`` around the job, or 429."""

    def __init__(
        self,
        per_minute: float,
        burst: int,
        max_concurrent: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = burst
        self.max_concurrent = max_concurrent
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._running: dict[str, int] = {}

    @contextlib.contextmanager
    def admit(self, identity: str) -> Iterator[None]:
        """Count one job for ``identity`` while the block runs; ``RateLimited`` when over."""
        running = self._running.get(identity, 0)
        if self.max_concurrent and running >= self.max_concurrent:
            raise RateLimited(
                f"{identity} already has {running} job(s) running, the most allowed "
                "(PYTHON_CODE_MAX_CONCURRENT_JOBS_PER_KEY); retry when one has finished",
                retry_after_s=1,
            )
        if self.rate > 0:
            bucket = self._buckets.setdefault(identity, TokenBucket(self.rate, self.burst))
            wait = bucket.take(self.clock())
            if wait > 0:
                raise RateLimited(
                    f"{identity} sent jobs faster than {self.rate * 60:g} per minute "
                    f"(burst {self.burst}; PYTHON_CODE_RATE_LIMIT_PER_MINUTE)",
                    retry_after_s=max(1, math.ceil(round(wait, 6))),
                )
        self._running[identity] = running + 1
        try:
            yield
        finally:
            left = self._running[identity] - 1
            if left:
                self._running[identity] = left
            else:
                del self._running[identity]

    def running(self, identity: str) -> int:
        return self._running.get(identity, 0)
