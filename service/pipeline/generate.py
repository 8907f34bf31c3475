"""``POST /v1/generate``: query -> generate -> verify/modify -> execute -> repair -> result.

Read top to bottom, this is the whole story of a generated job; each step is one call.
"""

from __future__ import annotations

import logging
import time

import anyio

from runner_image import direct_packages
from security.policy import StaticPolicy
from service.auth.permissions import LOCAL_OPERATOR, Principal
from service.errors import LLMError, VerificationFailed
from service.executors.base import Executor, RunResult
from service.llm.client import LLMClient, UsageMeter
from service.llm.extract import final_json_line
from service.llm.generator import generate_code
from service.llm.modifier import repair_code
from service.llm.prompts import Task
from service.models import ExecutionResponse, Issue, VerificationRound
from service.observability import outcome_of
from service.pipeline.jobs import Job, build_response, failure_reason, record_job, run_code
from service.pipeline.verify_loop import is_blocking, static_issues, verify_and_modify
from service.settings import Settings

log = logging.getLogger(__name__)


def _audit_warnings(job: Job, issues: list[Issue]) -> None:
    """Policy findings the code runs with (PYTHON_CODE_POLICY=audit): warned and logged."""
    for issue in issues:
        job.warnings.append(f"policy audit: line {issue.line}: {issue.message} [{issue.rule_id}]")
    if issues:
        log.warning(
            "policy audit: running generated code the static policy would refuse: %s",
            "; ".join(f"{i.rule_id} at line {i.line}" for i in issues),
        )


def runtime_issue(run: RunResult) -> Issue:
    return Issue(
        source="runtime",
        message=(failure_reason(run) or "the script failed")[-2000:],
        severity="major",
        category="runtime_error",
    )


async def run_generation(
    query: str,
    context: str | None,
    job: Job,
    executor: Executor,
    settings: Settings,
    llm: LLMClient,
    *,
    policy: StaticPolicy | None = None,
    timeout_s: float | None = None,
    caller: Principal = LOCAL_OPERATOR,
) -> ExecutionResponse:
    """Generate, verify and run code for ``query`` against the job's files."""
    policy = policy or StaticPolicy()
    started = time.perf_counter()
    meter = UsageMeter()
    task = Task(query=query, context=context, files=job.metadata, packages=direct_packages())

    # Every job leaves metrics and an audit line, also when the model, the verification or
    # the engine fails: ``outcome`` and ``code`` say how far it got.
    code, outcome, engine = "", "failed", executor.name
    try:
        code = await generate_code(llm, meter, task)
        job.timings["generate"] = time.perf_counter() - started

        loop = await verify_and_modify(
            code, task, llm=llm, meter=meter, settings=settings, policy=policy
        )
        job.timings.update(loop.timings())
        history, modifications, code = list(loop.history), list(loop.modifications), loop.code
        _audit_warnings(job, loop.audited)
        if loop.partial:
            job.warnings.append(
                "ran with unresolved minor issues (PYTHON_CODE_ALLOW_PARTIAL_EXECUTION): "
                + "; ".join(i.message for i in loop.remaining)
            )

        run = await run_code(job, code, executor, settings, timeout_s, caller=caller.identity)
        outcome, engine = outcome_of(run), run.engine
        for repair_round in range(1, settings.max_repair_rounds + 1):
            if run.success:
                break
            repair_started = time.perf_counter()
            failure = runtime_issue(run)
            try:
                fix = await repair_code(llm, meter, task, code, failure.message)
            except LLMError as exc:  # the run happened: report it rather than the model's failure
                job.warnings.append(f"no repair attempted: {exc.message}")
                break
            found = await anyio.to_thread.run_sync(static_issues, fix.code, policy)
            blocking = [i for i in found if is_blocking(i)]
            if settings.policy == "audit":
                _audit_warnings(job, [i for i in blocking if i.source == "policy"])
                blocking = [i for i in blocking if i.source != "policy"]
            iteration = len(history) + 1
            if blocking:  # the repair itself must pass the static policy; never run it otherwise
                history.append(
                    VerificationRound(
                        iteration=iteration,
                        issues=[failure, *blocking],
                        action="rejected",
                        changes=list(fix.changes),
                    )
                )
                job.warnings.append("the repaired code was refused by the static policy")
                break
            history.append(
                VerificationRound(
                    iteration=iteration,
                    issues=[failure],
                    action="repaired",
                    changes=list(fix.changes),
                )
            )
            modifications.extend(f"repair {repair_round}: {c}" for c in fix.changes)
            code = fix.code
            job.timings["repair"] = (
                job.timings.get("repair", 0.0) + time.perf_counter() - repair_started
            )
            run = await run_code(job, code, executor, settings, timeout_s, caller=caller.identity)
            outcome, engine = outcome_of(run), run.engine

        parsed, result = final_json_line(run.stdout)
        if run.success and run.stdout.strip() and not parsed:
            job.warnings.append("the last line of stdout is not JSON; see output for the raw text")
    except VerificationFailed as exc:
        outcome = "rejected"
        code = str(exc.detail.get("code") or code) if isinstance(exc.detail, dict) else code
        raise
    finally:
        job.timings["model"] = meter.model_s
        job.timings["total"] = time.perf_counter() - started + job.timings.get("intake", 0.0)
        record_job(job, settings, caller=caller, code=code, engine=engine, outcome=outcome)
    return build_response(
        job,
        code,
        run,
        engine=executor.name,
        result=result,
        iterations=loop.iterations,
        modifications=modifications,
        verification_history=history,
        usage=meter.to_usage(),
    )
