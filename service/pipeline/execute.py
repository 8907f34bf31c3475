"""``POST /v1/execute``: policy -> run in a sandbox -> result. Read this file first."""

from __future__ import annotations

import logging
import time

import anyio

from security.policy import StaticPolicy
from service.auth.permissions import LOCAL_OPERATOR, Principal
from service.errors import PolicyViolation
from service.executors.base import Executor
from service.models import ExecutionResponse
from service.observability import outcome_of
from service.pipeline.jobs import Job, build_response, record_job, run_code
from service.pipeline.live import LiveOutput
from service.settings import PolicyMode, Settings

log = logging.getLogger(__name__)


def check_policy(code: str, policy: StaticPolicy, mode: PolicyMode = "enforce") -> list[str]:
    """Raise ``PolicyViolation`` on blocking findings; return the others as warnings.

    In ``audit`` mode nothing is refused: blocking findings become warnings too, marked
    ``policy audit``, and are logged.
    """
    report = policy.check(code)
    if not report.ok and mode == "enforce":
        raise PolicyViolation(
            "the static policy rejected the code", detail={"findings": report.to_dicts()}
        )
    if not report.ok:
        log.warning(
            "policy audit: running code the static policy would refuse: %s",
            "; ".join(
                f"{f.rule_id} at line {f.line}"
                for f in report.findings
                if f.severity in ("critical", "major")
            ),
        )
    return [
        f"{'policy audit: ' if f.severity in ('critical', 'major') else ''}"
        f"line {f.line}: {f.message} [{f.rule_id}]"
        for f in report.findings
    ]


# Source up to this size is checked on the event loop (well under a millisecond: measured in
# docs/performance.md); longer source goes to a worker thread, so parsing and walking up to a
# megabyte of it never stalls other requests. The hop costs a short script more than the check.
INLINE_POLICY_CHARS = 16_000


async def screen_code(code: str, policy: StaticPolicy, mode: PolicyMode = "enforce") -> list[str]:
    """``check_policy`` for the request path: inline for short source, else in a thread."""
    if len(code) <= INLINE_POLICY_CHARS:
        return check_policy(code, policy, mode)
    return await anyio.to_thread.run_sync(check_policy, code, policy, mode)


async def run_execution(
    job: Job,
    code: str,
    *,
    executor: Executor,
    settings: Settings,
    policy: StaticPolicy,
    timeout_s: float | None = None,
    caller: Principal = LOCAL_OPERATOR,
    live: LiveOutput | None = None,
) -> ExecutionResponse:
    """Run caller-supplied code against the job's (already taken in) files; ``live``: its
    output as it comes (``service.pipeline.live``)."""
    started = time.perf_counter()
    outcome, engine = "failed", executor.name
    try:
        try:
            job.warnings.extend(await screen_code(code, policy, settings.policy))
        except PolicyViolation:
            outcome = "rejected"
            raise
        job.timings["policy"] = time.perf_counter() - started
        run = await run_code(
            job, code, executor, settings, timeout_s, caller=caller.identity, live=live
        )
        outcome, engine = outcome_of(run), run.engine
    finally:
        job.timings["total"] = time.perf_counter() - started + job.timings.get("intake", 0.0)
        record_job(job, settings, caller=caller, code=code, engine=engine, outcome=outcome)
    return build_response(job, code, run, engine=executor.name)
