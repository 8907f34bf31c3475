"""A warm pool: provisioned single-use sandboxes of one shape, waiting for requests.

Engine-agnostic: it only uses the port (``provision``, ``Sandbox.alive/dispose``,
``fingerprint``). Each sandbox serves exactly one request and is then disposed of, off the
request path; none is ever reused. The pool holds between ``minimum`` and ``maximum``
sandboxes: a request that finds it empty raises the target by one, and a target above the
minimum falls back by one after ``SHRINK_AFTER_S`` without a miss.

While requests outrun the pool (a miss, or a request that had to wait, within
``PRESSURE_WINDOW_S``), fillers provision with ``busy_preimport`` instead: by default the same
modules less ``matplotlib.pyplot``, which alone costs about 40% of a pooled sandbox's CPU.
The host then refills faster exactly when it must; plots import pyplot themselves.

A request that finds it empty waits for a sandbox already being provisioned when that one is
expected sooner than a cold start of its own (both times are measured); otherwise it is
served cold. Under a load the host cannot refill for, this keeps the number of interpreters
importing at once near the number of fillers instead of adding one cold start per request,
all competing for the same cores.

Background work yields to the request path: a replacement is provisioned, and a used
sandbox disposed of, once no pooled run is in flight and the last one ended ``SETTLE_S``
ago (its response is still being written), but never later than ``YIELD_MAX_S`` after it
was due, and at once when the pool is empty. On two cores a provision started while a hit
runs takes CPU (and the gateway's GIL) from exactly the request it replaces.

Background threads keep it healthy: fillers provision up to the target (backing off while
the engine fails, and starting again as soon as the keeper sees it answer after an outage,
such as a daemon restart); the keeper replaces sandboxes that died, recycles ones older
than ``max_age_s`` and drains all of them when the engine's fingerprint (the runner image
id) changes. ``close`` stops the threads and disposes of everything, waiting for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from service.errors import PythonCoderError, RunnerImageMissing
from service.executors.base import (
    POOL_PREIMPORT,
    POOL_PREIMPORT_BUSY,
    Executor,
    RunLimits,
    RunRequest,
    Sandbox,
)

log = logging.getLogger(__name__)

SHRINK_AFTER_S = 60.0
KEEPER_INTERVAL_S = 1.0
FINGERPRINT_INTERVAL_S = 5.0
BACKOFF_MAX_S = 30.0
DISPOSERS = 2
PRESSURE_WINDOW_S = 10.0
EWMA_WEIGHT = 0.3  # of the newest sample, for provision and cold-start times
SETTLE_S = 0.05  # after a pooled run ends, before background work starts
YIELD_MAX_S = 0.25  # the longest background work waits for the request path


@dataclass
class PoolStats:
    hits: int = 0
    waited: int = 0  # hits that waited for a sandbox being provisioned
    misses: dict[str, int] = field(default_factory=dict)  # reason -> count
    provisioned: int = 0
    provisioned_busy: int = 0  # of those, with the lighter busy_preimport
    provision_failures: int = 0
    replaced_dead: int = 0
    drained: int = 0
    last_provision_s: float | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class PoolHooks:
    """Where the pool reports to (metrics); no-ops by default."""

    hit: Callable[[str], None] = lambda engine: None
    miss: Callable[[str, str], None] = lambda engine, reason: None
    provisioned: Callable[[str, float], None] = lambda engine, seconds: None
    size: Callable[[str, int], None] = lambda engine, n: None


class WarmPool:
    """Sandboxes of ``limits``' shape, provisioned ahead, each handed out once."""

    def __init__(
        self,
        executor: Executor,
        limits: RunLimits,
        *,
        minimum: int,
        maximum: int,
        input_room: int = 0,
        preimport: str = POOL_PREIMPORT,
        busy_preimport: str | None = POOL_PREIMPORT_BUSY,
        pressure_window_s: float = PRESSURE_WINDOW_S,
        yield_max_s: float = YIELD_MAX_S,
        max_age_s: float = 600.0,
        fillers: int = 2,
        hooks: PoolHooks | None = None,
    ) -> None:
        self.executor = executor
        self.engine = executor.name
        self.limits = limits
        self.minimum = max(0, minimum)
        self.maximum = max(self.minimum, maximum)
        self.input_room = input_room
        self.preimport = preimport
        self.busy_preimport = busy_preimport if busy_preimport is not None else preimport
        self.pressure_window_s = pressure_window_s
        self.yield_max_s = yield_max_s
        self.max_age_s = max_age_s
        self.hooks = hooks or _default_hooks()
        self.stats = PoolStats()
        self._idle: deque[tuple[Sandbox, str]] = deque()  # (sandbox, fingerprint)
        self._cond = threading.Condition()
        self._target = self.minimum
        self._provisioning = 0
        self._inflight: list[float] = []  # start times of the provisions under way
        self._waiting = 0  # requests waiting for one of them
        self._serving = 0  # taken sandboxes whose run has not come back (``dispose``)
        self._settled_at = 0.0  # when the request path is quiet again (monotonic)
        self._provision_s: float | None = None  # moving averages, seconds
        self._cold_s: float | None = None
        self._last_miss = 0.0
        self._last_pressure = -1e9  # a miss or a waited hit, for the busy pre-imports
        self._fingerprint: str | None = None
        self._engine_failing = False  # the keeper's last look at the engine failed
        self._recoveries = 0  # times the engine came back; fillers drop their backoff
        self._closed = False
        self._threads = [
            threading.Thread(target=self._fill, name=f"pyc-pool-fill-{i}", daemon=True)
            for i in range(max(1, min(fillers, self.maximum)))
        ]
        self._threads.append(threading.Thread(target=self._keep, name="pyc-pool-keep", daemon=True))
        self._disposer = ThreadPoolExecutor(DISPOSERS, thread_name_prefix="pyc-pool-dispose")

    # ------------------------------------------------------------------ the request path

    def take(self, request: RunRequest) -> Sandbox | None:
        """A live sandbox that fits ``request``, or None (then it runs cold)."""
        if not self._fits_shape(request):
            self._miss("shape")
            return None
        waited = False
        with self._cond:
            since: float | None = None
            while True:
                sandbox = self._pop_live()
                if sandbox is not None:
                    self.stats.hits += 1
                    self._serving += 1
                    if waited:
                        self.stats.waited += 1
                        self._grow()  # demand outran the pool even though this one waited
                    self.hooks.hit(self.engine)
                    self.hooks.size(self.engine, len(self._idle))
                    return sandbox
                wait = self._worth_waiting()
                if wait is None:
                    break
                now = time.monotonic()
                since = now if since is None else since
                # A provision that runs late is waited for again, but never for longer in
                # all than a cold start would have taken.
                wait = min(wait, self._cold_estimate() - (now - since))
                if wait <= 0:
                    break
                waited = True
                self._waiting += 1
                try:
                    self._cond.wait(wait)
                finally:
                    self._waiting -= 1
        self._miss("empty")
        return None

    def _pop_live(self) -> Sandbox | None:
        """The oldest idle sandbox that is current and alive (the dead are disposed of)."""
        while self._idle:
            sandbox, fp = self._idle.popleft()
            if fp == self._fingerprint and sandbox.alive():
                self._cond.notify_all()  # a filler replaces it
                return sandbox
            self.stats.replaced_dead += 1
            self._dispose(sandbox)
        return None

    def _worth_waiting(self) -> float | None:
        """How long to wait for a provision under way, or None to start cold now.

        Waiters line up behind the provisions in start order; one waits when the provision
        it would get is expected to finish before a cold start of its own would."""
        if self._closed or self._waiting >= len(self._inflight) or self._provision_s is None:
            return None
        started = sorted(self._inflight)[self._waiting]
        remaining = max(0.0, self._provision_s - (time.monotonic() - started))
        if remaining > self._cold_estimate():
            return None
        return remaining + 0.25 * self._provision_s  # slack for a busy host

    def _cold_estimate(self) -> float:
        """Seconds a cold start is expected to take (called with the lock held)."""
        if self._cold_s is not None:
            return self._cold_s
        return self._provision_s if self._provision_s is not None else 0.0

    def cold_served(self, seconds: float) -> None:
        """A request was served cold in ``seconds``, from provisioning to its result: its
        script imported for itself what a pooled sandbox would have had ready."""
        with self._cond:
            self._cold_s = _ewma(self._cold_s, seconds)

    def _fits_shape(self, request: RunRequest) -> bool:
        return request.limits.shape() == self.limits.shape() and (
            sum(f.size for f in request.inputs) <= self.input_room
            or not self.executor.charges_inputs_to_memory
        )

    def _miss(self, reason: str) -> None:
        with self._cond:
            self.stats.misses[reason] = self.stats.misses.get(reason, 0) + 1
            if reason == "empty":
                self._grow()
        self.hooks.miss(self.engine, reason)

    def _grow(self) -> None:
        """Called with the lock held: demand outran the pool, raise its target by one."""
        self._last_miss = self._last_pressure = time.monotonic()
        self._target = min(self.maximum, self._target + 1)
        self._cond.notify_all()

    def dispose(self, sandbox: Sandbox) -> None:
        """Give back a sandbox ``take`` handed out, its run over: it is disposed of off the
        request path, once that is quiet."""
        with self._cond:
            self._serving -= 1
            self._settled_at = time.monotonic() + SETTLE_S
            self._cond.notify_all()
        self._dispose(sandbox)

    def _dispose(self, sandbox: Sandbox) -> None:
        try:
            self._disposer.submit(self._dispose_when_quiet, sandbox)
        except RuntimeError:  # shut down: do it here
            _dispose_quietly(sandbox)

    def _dispose_when_quiet(self, sandbox: Sandbox) -> None:
        with self._cond:
            self._yield_to_requests(disposal=True)
        _dispose_quietly(sandbox)

    def _yield_to_requests(self, *, disposal: bool = False) -> None:
        """Called with the lock held: wait until no pooled run is in flight and the last one
        settled, for at most ``yield_max_s``. A refill does not wait when the pool is empty
        (requests are waiting for it, or soon will be); nothing waits once it is closed."""
        deadline = time.monotonic() + self.yield_max_s
        while not self._closed and (disposal or self._idle):
            now = time.monotonic()
            quiet_at = self._settled_at if self._serving == 0 else deadline
            if now >= min(quiet_at, deadline):
                return
            self._cond.wait(min(quiet_at, deadline) - now)

    # ------------------------------------------------------------------ background

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def _wanted(self) -> bool:
        return not self._closed and len(self._idle) + self._provisioning < self._target

    def _fill(self) -> None:
        backoff = 0.5
        recoveries = 0
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._wanted())
                self._yield_to_requests()
                if self._closed:
                    return
                if not self._wanted():  # another filler took it meanwhile
                    continue
                if recoveries != self._recoveries:  # the engine is back: no more waiting
                    recoveries, backoff = self._recoveries, 0.5
                self._provisioning += 1
                started = time.monotonic()
                self._inflight.append(started)
                fingerprint = self._fingerprint
                busy = self._busy(started)
            sandbox: Sandbox | None = None
            try:
                if fingerprint is None:
                    fingerprint = self._refresh_fingerprint()
                sandbox = self.executor.provision(
                    self.limits,
                    preimport=self.busy_preimport if busy else self.preimport,
                    input_room=self.input_room,
                    background=True,
                )
            except PythonCoderError as exc:
                self._failed(exc.message)
            except Exception as exc:  # a bug or the host's: log it, keep the pool alive
                log.exception("provisioning a pooled %s sandbox failed", self.engine)
                self._failed(f"{exc.__class__.__name__}: {exc}")
            finally:
                with self._cond:
                    self._provisioning -= 1
                    self._inflight.remove(started)
                    self._cond.notify_all()  # waiters re-plan: it succeeded or failed
            if sandbox is None:
                with self._cond:
                    self._cond.wait_for(partial(self._back_since, recoveries), backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            backoff = 0.5
            seconds = time.monotonic() - started
            with self._cond:
                keep = not self._closed and fingerprint == self._fingerprint
                if keep:
                    self._idle.append((sandbox, fingerprint or ""))
                    self.stats.provisioned += 1
                    self.stats.provisioned_busy += busy
                    self.stats.last_provision_s = round(seconds, 4)
                    self._provision_s = _ewma(self._provision_s, seconds)
                    self.stats.last_error = None
                    size = len(self._idle)
                    self._cond.notify_all()
            if keep:
                self.hooks.provisioned(self.engine, seconds)
                self.hooks.size(self.engine, size)
            else:
                self._dispose(sandbox)

    def _busy(self, now: float) -> bool:
        """Called with the lock held: have requests outrun the pool lately?"""
        return now - self._last_pressure < self.pressure_window_s

    def _back_since(self, recoveries: int) -> bool:
        """Stop backing off: closing, or the engine came back since ``recoveries``."""
        return self._closed or self._recoveries != recoveries

    def _failed(self, message: str) -> None:
        with self._cond:
            self.stats.provision_failures += 1
            if self.stats.last_error != message:
                log.warning("pooled %s sandbox not provisioned: %s", self.engine, message)
            self.stats.last_error = message

    def _refresh_fingerprint(self) -> str:
        fingerprint = self.executor.fingerprint()
        stale: list[Sandbox] = []
        with self._cond:
            if fingerprint != self._fingerprint:
                if self._fingerprint is not None:
                    log.info(
                        "%s runner changed (%s -> %s): draining the pool",
                        self.engine,
                        self._fingerprint[:19],
                        fingerprint[:19],
                    )
                self._fingerprint = fingerprint
                stale = [sb for sb, fp in self._idle if fp != fingerprint]
                self._idle = deque((sb, fp) for sb, fp in self._idle if fp == fingerprint)
                self.stats.drained += len(stale)
                self._cond.notify_all()
        for sandbox in stale:
            self._dispose(sandbox)
        return fingerprint

    def _drain_all(self, reason: str) -> None:
        with self._cond:
            stale = [sb for sb, _ in self._idle]
            self._idle.clear()
            self._fingerprint = None  # fillers re-read it before they keep a new sandbox
            self.stats.drained += len(stale)
            self._cond.notify_all()
        if stale:
            log.warning("%s pool drained (%d sandboxes): %s", self.engine, len(stale), reason)
        for sandbox in stale:
            self._dispose(sandbox)

    def _keep(self) -> None:
        next_fingerprint = 0.0
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed, timeout=KEEPER_INTERVAL_S)
                if self._closed:
                    return
            now = time.monotonic()
            if now >= next_fingerprint:
                next_fingerprint = now + FINGERPRINT_INTERVAL_S
                failing = True
                try:
                    self._refresh_fingerprint()
                    failing = False
                except RunnerImageMissing as exc:
                    # The runner these sandboxes came from is gone (removed while serving):
                    # none of them is handed out any more; requests run cold and get the 503.
                    self._drain_all(exc.message)
                    self._failed(exc.message)
                except PythonCoderError as exc:
                    self._failed(exc.message)
                except Exception as exc:
                    log.exception("checking the %s runner failed", self.engine)
                    self._failed(str(exc))
                self._note_engine(failing)
                if failing:  # look again soon: the pool refills as soon as it is back
                    next_fingerprint = now + KEEPER_INTERVAL_S
            self._tend(now)

    def _note_engine(self, failing: bool) -> None:
        """After the engine failed the keeper's look (a daemon restart), its answering again
        wakes the fillers, whose backoff may have grown to ``BACKOFF_MAX_S``."""
        with self._cond:
            if self._engine_failing and not failing:
                self._recoveries += 1
                self._cond.notify_all()
                log.info("%s engine and runner answer again: refilling the pool", self.engine)
            self._engine_failing = failing

    def _tend(self, now: float) -> None:
        """Replace dead and old sandboxes; shrink towards the minimum when misses stop."""
        gone: list[Sandbox] = []
        with self._cond:
            if self._target > self.minimum and now - self._last_miss > SHRINK_AFTER_S:
                self._target -= 1
                self._last_miss = now  # one step per quiet period
            keep: deque[tuple[Sandbox, str]] = deque()
            for sandbox, fp in self._idle:
                if not sandbox.alive():
                    self.stats.replaced_dead += 1
                    gone.append(sandbox)
                elif now - sandbox.provisioned_at > self.max_age_s:
                    gone.append(sandbox)
                else:
                    keep.append((sandbox, fp))
            while len(keep) > self._target:
                gone.append(keep.popleft()[0])
            self._idle = keep
            size = len(keep)
            if gone:
                self._cond.notify_all()
        for sandbox in gone:
            self._dispose(sandbox)
        self.hooks.size(self.engine, size)

    # ------------------------------------------------------------------ lifecycle

    def snapshot(self) -> dict[str, Any]:
        """For ``/v1/environment``, doctor and logs."""
        with self._cond:
            return {
                "engine": self.engine,
                "idle": len(self._idle),
                "provisioning": self._provisioning,
                "target": self._target,
                "min": self.minimum,
                "max": self.maximum,
                "hits": self.stats.hits,
                "waited": self.stats.waited,
                "misses": dict(self.stats.misses),
                "provisioned": self.stats.provisioned,
                "provisioned_busy": self.stats.provisioned_busy,
                "preimport": (
                    self.busy_preimport if self._busy(time.monotonic()) else self.preimport
                ),
                "provision_failures": self.stats.provision_failures,
                "replaced_dead": self.stats.replaced_dead,
                "drained": self.stats.drained,
                "last_provision_s": self.stats.last_provision_s,
                "last_error": self.stats.last_error,
                "shape": {
                    "memory_mb": self.limits.memory_bytes // (1024 * 1024),
                    "cpus": self.limits.cpus,
                    "pids": self.limits.pids,
                    "input_room_mb": self.input_room // (1024 * 1024),
                },
            }

    def close(self) -> None:
        """Stop refilling, dispose of every waiting sandbox and wait until they are gone."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = list(self._idle), deque()
            self._cond.notify_all()
        for t in self._threads:
            if t.is_alive():
                t.join(timeout=120)  # a filler may be mid-provision
        for sandbox, _fp in idle:
            self._dispose(sandbox)
        self._disposer.shutdown(wait=True)
        self.hooks.size(self.engine, 0)


def _ewma(average: float | None, sample: float) -> float:
    return sample if average is None else (1 - EWMA_WEIGHT) * average + EWMA_WEIGHT * sample


def _dispose_quietly(sandbox: Sandbox) -> None:
    try:
        sandbox.dispose()
    except Exception:
        log.exception("disposing of sandbox %s failed", sandbox.ident)


def _default_hooks() -> PoolHooks:
    from service.observability import pool_hooks

    return pool_hooks()
