"""The verify -> modify loop: static policy + LLM review, fixes and overrides, capped rounds.

Every round verifies the current code: the static policy runs in code (never skippable by
the model), then the LLM review (skipped while hard static findings remain, since those must
be fixed first anyway, and reused when the code did not change). Blocking issues go back to the model, which returns fixed code, a
change list and possibly overrides ("this is a false positive, because ...").

* Retryable: any blocking issue while rounds remain; the model gets it back.
* Refused override: an override of a hard policy finding (blocked import/call, syntax);
  recorded with ``accepted=False``; the finding stays blocking.
* Terminal: the cap (``max_iterations`` modifications) is reached, or the model returns the
  same code without a new accepted override (it is stuck). Then the code runs only if
  ``allow_partial_execution`` is on and every remaining issue is minor and soft (minor static
  findings never block, as in ``/v1/execute``); otherwise ``VerificationFailed`` carries the
  remaining issues and the history.

Policy mode ``audit`` (``PYTHON_CODE_POLICY``): the policy still reviews every round and its
findings still go back to the model while rounds remain, because fixing them is cheap and the
code gets better; but findings that remain at the end do not refuse the job. They are returned
in ``LoopOutcome.audited`` and the pipeline runs the code with them as warnings. Syntax errors
and the LLM reviewer's issues block as in ``enforce``, and the review is not held back by
policy findings (it runs on code the policy would refuse, since that code may run).

Model time is metered separately, so each round's own overhead (policy, prompt building,
parsing) is known: ``LoopOutcome.overhead_s``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import anyio

from security.policy import StaticPolicy
from service.errors import VerificationFailed
from service.llm.client import LLMClient, UsageMeter
from service.llm.modifier import Modification, OverrideRequest, modify_code
from service.llm.prompts import Task
from service.llm.reviewer import Review, review_code
from service.models import Issue, Override, VerificationRound
from service.settings import Settings

SYNTAX_RULE = "syntax-error"
Action = Literal["approved", "partial", "rejected"]


def static_issues(code: str, policy: StaticPolicy) -> list[Issue]:
    """Policy findings as issues; hard findings and syntax errors are not overridable."""
    issues = []
    for f in policy.check(code).findings:
        syntax = f.rule_id == SYNTAX_RULE
        issues.append(
            Issue(
                source="syntax" if syntax else "policy",
                message=f.message,
                severity=f.severity,
                category="syntax" if syntax else "security",
                rule_id=f.rule_id,
                line=f.line,
                col=f.col,
                overridable=not (f.hard or syntax),
            )
        )
    return issues


def issue_key(issue: Issue) -> tuple[str, str, str]:
    """Identity of an issue across rounds (lines move when code changes)."""
    return (issue.source, issue.rule_id or issue.category, " ".join(issue.message.split()).lower())


def is_blocking(issue: Issue) -> bool:
    return issue.severity != "info"


def partial_ok(issues: Sequence[Issue]) -> bool:
    return all(i.severity in ("minor", "info") and i.overridable for i in issues)


def match_override(request: OverrideRequest, issues: Sequence[Issue]) -> Issue | None:
    def norm(s: str | None) -> str:
        return " ".join((s or "").split()).lower()

    for issue in issues:
        if request.rule_id and issue.rule_id and norm(request.rule_id) == norm(issue.rule_id):
            return issue
    wanted = norm(request.message) or norm(request.rule_id)
    for issue in issues:
        msg = norm(issue.message)
        if wanted and (wanted == msg or wanted in msg or (len(msg) > 8 and msg in wanted)):
            return issue
    return None


@dataclass
class LoopOutcome:
    code: str
    history: list[VerificationRound]
    modifications: list[str]
    iterations: int  # verify -> modify rounds that ended in a modification
    remaining: list[Issue]  # issues the code runs with (partial execution), else []
    partial: bool = False
    audited: list[Issue] = field(default_factory=list)  # policy findings run anyway (audit)
    overhead_s: list[float] = field(default_factory=list)  # per verification round, no model
    policy_s: float = 0.0
    model_s: float = 0.0

    def timings(self) -> dict[str, float]:
        rounds = len(self.overhead_s) or 1
        return {
            "verify_loop_model": self.model_s,
            "verify_loop_overhead": sum(self.overhead_s),
            "verify_loop_overhead_per_round": sum(self.overhead_s) / rounds,
            "policy": self.policy_s,
        }


@dataclass
class _State:
    overrides: dict[tuple[str, str, str], Override] = field(default_factory=dict)
    last_review: tuple[str, Review] | None = None


def _apply_overrides(
    mod: Modification, blocking: Sequence[Issue], state: _State
) -> tuple[list[Override], int]:
    """Record every override the model asked for; return them and how many were accepted."""
    recorded: list[Override] = []
    accepted = 0
    for request in mod.overrides:
        issue = match_override(request, blocking)
        if issue is None:
            target = Issue(
                source="review",
                message=request.message or request.rule_id or "",
                rule_id=request.rule_id,
            )
            recorded.append(
                Override(
                    issue=target,
                    reason=f"{request.reason} (refused: no such issue)",
                    accepted=False,
                )
            )
        elif not issue.overridable:
            recorded.append(
                Override(
                    issue=issue,
                    reason=f"{request.reason} (refused: {_what(issue)} cannot be overridden)",
                    accepted=False,
                )
            )
        else:
            override = Override(issue=issue, reason=request.reason, accepted=True)
            if issue_key(issue) not in state.overrides:
                accepted += 1
            state.overrides[issue_key(issue)] = override
            recorded.append(override)
    return recorded, accepted


def _what(issue: Issue) -> str:
    return (
        f"hard rule {issue.rule_id}"
        if issue.rule_id
        else f"a {issue.severity} {issue.category} issue"
    )


async def _verify(
    code: str,
    task: Task,
    llm: LLMClient,
    meter: UsageMeter,
    policy: StaticPolicy,
    state: _State,
    timing: dict[str, float],
    audit: bool = False,
) -> list[Issue]:
    """All current issues of ``code`` (blocking or not), overridden ones removed."""
    started = time.perf_counter()
    issues = await anyio.to_thread.run_sync(static_issues, code, policy)
    timing["policy"] += time.perf_counter() - started
    # The review costs a model call: ask it only once the static checks have nothing to say
    # the model must fix first (syntax errors, blocked imports and calls). In audit mode the
    # policy's findings never refuse the code, so they do not hold the review back either.
    must_fix = [i for i in issues if is_blocking(i) and not i.overridable]
    if audit:
        must_fix = [i for i in must_fix if i.source != "policy"]
    if not must_fix:
        if state.last_review is not None and state.last_review[0] == code:
            review = state.last_review[1]
        else:
            review = await review_code(llm, meter, task, code, list(state.overrides.values()))
            state.last_review = (code, review)
        for issue in review.issues:
            # an approving review's remarks are advice, not blockers
            issues.append(
                issue if not review.approved else issue.model_copy(update={"severity": "info"})
            )
    return [i for i in issues if not (i.overridable and issue_key(i) in state.overrides)]


async def verify_and_modify(
    code: str,
    task: Task,
    *,
    llm: LLMClient,
    meter: UsageMeter,
    settings: Settings,
    policy: StaticPolicy,
) -> LoopOutcome:
    """Run the loop on freshly generated ``code``; raise ``VerificationFailed`` when it ends."""
    state = _State()
    out = LoopOutcome(code=code, history=[], modifications=[], iterations=0, remaining=[])
    timing = {"policy": 0.0}
    model_before = meter.model_s
    stuck_reason: str | None = None

    for iteration in range(1, settings.max_iterations + 2):
        round_started, model_at_start = time.perf_counter(), meter.model_s
        issues = await _verify(
            out.code, task, llm, meter, policy, state, timing, audit=settings.policy == "audit"
        )
        blocking = [i for i in issues if is_blocking(i)]
        final = iteration > settings.max_iterations or stuck_reason is not None

        if final:
            # Minor static findings never block a run (the policy's own rule, as in /execute);
            # the model was asked about them while rounds remained.
            blocking = [i for i in blocking if not (i.source == "policy" and i.severity == "minor")]
            if settings.policy == "audit":
                out.audited = [i for i in blocking if i.source == "policy"]
                blocking = [i for i in blocking if i.source != "policy"]
        if not blocking or final:
            partial = bool(blocking) and settings.allow_partial_execution and partial_ok(blocking)
            action: Action = "approved" if not blocking else "partial" if partial else "rejected"
            out.history.append(VerificationRound(iteration=iteration, issues=issues, action=action))
            out.overhead_s.append(_overhead(round_started, model_at_start, meter))
            out.policy_s, out.model_s = timing["policy"], meter.model_s - model_before
            if action == "rejected":
                reason = stuck_reason or (
                    f"issues remain after {settings.max_iterations} verify -> modify rounds"
                )
                raise VerificationFailed(
                    f"verification failed: {reason}",
                    detail={
                        "remaining_issues": [i.model_dump() for i in blocking],
                        "verification_history": [r.model_dump() for r in out.history],
                        "code": out.code,
                    },
                )
            out.remaining, out.partial = (blocking, True) if partial else ([], False)
            return out

        mod = await modify_code(llm, meter, task, out.code, blocking)
        recorded, newly_accepted = _apply_overrides(mod, blocking, state)
        if mod.code == out.code and newly_accepted == 0:
            stuck_reason = "the model returned the same code without fixing the blocking issues"
        out.history.append(
            VerificationRound(
                iteration=iteration,
                issues=issues,
                action="modified",
                changes=list(mod.changes),
                overrides=recorded,
            )
        )
        out.iterations += 1
        out.modifications.extend(f"iteration {iteration}: {c}" for c in mod.changes)
        out.modifications.extend(
            f"iteration {iteration}: override {'accepted' if o.accepted else 'refused'} "
            f"for {o.issue.rule_id or o.issue.message!r}: {o.reason}"
            for o in recorded
        )
        out.code = mod.code
        out.overhead_s.append(_overhead(round_started, model_at_start, meter))
    raise AssertionError("unreachable: the last round always returns or raises")


def _overhead(round_started: float, model_at_start: float, meter: UsageMeter) -> float:
    """Wall time of a round minus the time spent waiting for the model."""
    spent = time.perf_counter() - round_started
    return max(0.0, spent - (meter.model_s - model_at_start))
