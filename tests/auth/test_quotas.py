"""The token bucket and the running-jobs cap, on a clock the test moves by hand."""

from __future__ import annotations

import pytest

from service.auth.quotas import Quotas
from service.errors import RateLimited


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_allows_a_burst_then_refills_at_the_rate() -> None:
    clock = Clock()
    quotas = Quotas(per_minute=6, burst=3, max_concurrent=0, clock=clock)  # one per 10 s
    for _ in range(3):
        with quotas.admit("key:a"):
            pass
    with pytest.raises(RateLimited) as info, quotas.admit("key:a"):
        pass
    assert info.value.retry_after_s == 10 and "6 per minute" in info.value.message
    with quotas.admit("key:b"):  # another key has its own bucket
        pass
    clock.now += 4
    with pytest.raises(RateLimited) as info, quotas.admit("key:a"):
        pass
    assert info.value.retry_after_s == 6
    clock.now += 6
    with quotas.admit("key:a"):
        pass


def test_running_jobs_are_capped_per_key_and_released() -> None:
    quotas = Quotas(per_minute=0, burst=1, max_concurrent=2, clock=Clock())
    with quotas.admit("key:a"), quotas.admit("key:a"):
        assert quotas.running("key:a") == 2
        with pytest.raises(RateLimited) as info, quotas.admit("key:a"):
            pass
        assert info.value.retry_after_s == 1 and "2 job(s) running" in info.value.message
        with quotas.admit("key:b"):
            pass
    assert quotas.running("key:a") == 0
    with pytest.raises(ZeroDivisionError), quotas.admit("key:a"):
        raise ZeroDivisionError  # a failing job releases its slot too
    assert quotas.running("key:a") == 0
