"""The verify -> modify loop against the real static policy and a scripted model over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from security.policy import StaticPolicy
from service.errors import VerificationFailed
from service.llm.client import LLMClient, UsageMeter, build_llm
from service.llm.prompts import Task
from service.pipeline.verify_loop import LoopOutcome, static_issues, verify_and_modify
from service.settings import Settings
from tests.llm.openai_server import Garbage, ScriptedOpenAI
from tests.llm.scripts import approve, issue, modification, review

GOOD = "import json\nprint(json.dumps({'answer': 42}))\n"
TASK = Task(query="print the answer as JSON")
POLICY = StaticPolicy()


@pytest.fixture
async def llm(make_settings: Callable[..., Settings]) -> AsyncIterator[LLMClient]:
    client = build_llm(make_settings())
    yield client
    await client.close()


async def run_loop(code: str, llm: LLMClient, settings: Settings, task: Task = TASK) -> LoopOutcome:
    return await verify_and_modify(
        code, task, llm=llm, meter=UsageMeter(), settings=settings, policy=POLICY
    )


async def test_approved_at_once(
    llm_server: ScriptedOpenAI, llm: LLMClient, make_settings: Callable[..., Settings]
) -> None:
    llm_server.push(approve())
    out = await run_loop(GOOD, llm, make_settings())
    assert out.code == GOOD and out.iterations == 0 and not out.partial
    assert [r.action for r in out.history] == ["approved"]
    assert len(llm_server.requests) == 1
    assert '<data name="code">' in llm_server.prompts()[0]


async def test_syntax_error_fixed_without_asking_for_a_review_first(
    llm_server: ScriptedOpenAI, llm: LLMClient, make_settings: Callable[..., Settings]
) -> None:
    broken = "import json\nprint(json.dumps({'answer': 42})\n"
    llm_server.push(modification(GOOD, "closed the parenthesis", fence=True), approve())
    out = await run_loop(broken, llm, make_settings())
    assert out.code == GOOD
    assert [r.action for r in out.history] == ["modified", "approved"]
    first = out.history[0].issues
    assert [i.source for i in first] == ["syntax"] and not first[0].overridable
    assert out.history[0].changes == ["closed the parenthesis"]
    assert out.iterations == 1 and out.modifications == ["iteration 1: closed the parenthesis"]
    # modify then review: no review of code that does not parse
    assert "Fix every real issue" in llm_server.prompts()[0] and len(llm_server.requests) == 2
    assert '"hard": true' in llm_server.prompts()[0]


async def test_blocked_import_replaced(
    llm_server: ScriptedOpenAI, llm: LLMClient, make_settings: Callable[..., Settings]
) -> None:
    unsafe = "import subprocess\nprint(subprocess.check_output(['date']).decode())\n"
    safe = "import datetime, json\nprint(json.dumps({'now': str(datetime.datetime.now())}))\n"
    llm_server.push(modification(safe, "replaced subprocess with datetime"), approve())
    out = await run_loop(unsafe, llm, make_settings())
    assert out.code == safe
    blocked = out.history[0].issues
    assert blocked and all(i.source == "policy" for i in blocked)
    assert any(not i.overridable for i in blocked)
    assert static_issues(out.code, POLICY) == []


async def test_false_positive_overridden_with_reason(
    llm_server: ScriptedOpenAI, llm: LLMClient, make_settings: Callable[..., Settings]
) -> None:
    code = "import json\nxs = [3, 4]\nprint(json.dumps({'mean': sum(xs) / len(xs)}))\n"
    flagged = "division by zero when xs is empty"
    reason = "xs is a non-empty literal list, len(xs) is always 2"
    llm_server.push(
        review(False, issue(flagged, line=3)),
        modification(code, overrides=[{"message": flagged, "reason": reason}]),
    )
    out = await run_loop(code, llm, make_settings())
    assert [r.action for r in out.history] == ["modified", "approved"]
    (override,) = out.history[0].overrides
    assert override.accepted and override.reason == reason
    assert override.issue.message == flagged and override.issue.source == "review"
    assert any("override accepted" in m and reason in m for m in out.modifications)
    assert len(llm_server.requests) == 2  # same code: the earlier review is reused


async def test_hard_rule_override_refused(
    llm_server: ScriptedOpenAI, llm: LLMClient, make_settings: Callable[..., Settings]
) -> None:
    code = "import socket\nprint(socket.gethostname())\n"
    rules = [i.rule_id for i in static_issues(code, POLICY) if not i.overridable]
    assert rules, "the policy must treat socket as a hard rule"
    llm_server.push(
        modification(
            code, overrides=[{"rule_id": r, "reason": "only reads the hostname"} for r in rules]
        )
    )
    with pytest.raises(VerificationFailed) as info:
        await run_loop(code, llm, make_settings())
    detail = info.value.detail
    history = detail["verification_history"]
    assert [r["action"] for r in history] == ["modified", "rejected"]
    overrides = history[0]["overrides"]
    assert overrides and not any(o["accepted"] for o in overrides)
    assert all("cannot be overridden" in o["reason"] for o in overrides)
    assert {i["rule_id"] for i in detail["remaining_issues"]} >= set(rules)
    assert "same code" in info.value.message  # stuck: ends early, no rounds wasted
    assert len(llm_server.requests) == 1


async def test_max_iterations_exhausted_gives_detailed_error(
    llm_server: ScriptedOpenAI, llm: LLMClient, make_settings: Callable[..., Settings]
) -> None:
    complaint = issue("does not compute what the query asks", category="intent_mismatch")
    llm_server.push(
        review(False, complaint),
        modification(GOOD + "# attempt 2\n", "tried again"),
        review(False, complaint),
        modification(GOOD + "# attempt 3\n", "tried once more"),
        review(False, complaint),
    )
    with pytest.raises(VerificationFailed) as info:
        await run_loop(GOOD, llm, make_settings(max_iterations=2))
    detail = info.value.detail
    assert "after 2 verify -> modify rounds" in info.value.message
    assert [r["action"] for r in detail["verification_history"]] == [
        "modified",
        "modified",
        "rejected",
    ]
    (remaining,) = detail["remaining_issues"]
    assert remaining["category"] == "intent_mismatch" and remaining["severity"] == "major"
    assert detail["code"].endswith("# attempt 3\n")
    assert llm_server.pending == 0


@pytest.mark.parametrize("severity,allowed", [("minor", True), ("major", False)])
async def test_partial_execution_only_for_minor_issues(
    llm_server: ScriptedOpenAI,
    llm: LLMClient,
    make_settings: Callable[..., Settings],
    severity: str,
    allowed: bool,
) -> None:
    nit = issue("the JSON keys could be more descriptive", severity=severity, category="other")
    llm_server.push(
        review(False, nit), modification(GOOD + "# renamed\n", "tweak"), review(False, nit)
    )
    settings = make_settings(max_iterations=1, allow_partial_execution=True)
    if allowed:
        out = await run_loop(GOOD, llm, settings)
        assert out.partial and [r.action for r in out.history] == ["modified", "partial"]
        assert [i.message for i in out.remaining] == [nit["message"]]
    else:
        with pytest.raises(VerificationFailed):
            await run_loop(GOOD, llm, settings)


async def test_partial_execution_off_by_default(
    llm_server: ScriptedOpenAI, llm: LLMClient, make_settings: Callable[..., Settings]
) -> None:
    nit = issue("could be more descriptive", severity="minor", category="other")
    llm_server.push(review(False, nit), modification(GOOD + "# x\n", "tweak"), review(False, nit))
    with pytest.raises(VerificationFailed):
        await run_loop(GOOD, llm, make_settings(max_iterations=1))


async def test_malformed_review_retried_then_reported_as_issue(
    llm_server: ScriptedOpenAI, llm: LLMClient, make_settings: Callable[..., Settings]
) -> None:
    llm_server.push(
        "Looks good to me!",  # not JSON
        '{"approved": "yes"}',  # JSON, wrong shape
        modification(
            GOOD, overrides=[{"rule_id": "review-unparseable", "reason": "code is trivial"}]
        ),
    )
    out = await run_loop(GOOD, llm, make_settings())
    assert [r.action for r in out.history] == ["modified", "approved"]
    assert out.history[0].issues[0].rule_id == "review-unparseable"
    assert out.history[0].overrides[0].accepted


async def test_malformed_review_retry_succeeds(
    llm_server: ScriptedOpenAI, llm: LLMClient, make_settings: Callable[..., Settings]
) -> None:
    llm_server.push("```json\n{approved: true,}\n```", "Sure! " + approve())
    out = await run_loop(GOOD, llm, make_settings())
    assert [r.action for r in out.history] == ["approved"]
    assert len(llm_server.requests) == 2


async def test_review_endpoint_garbage_is_an_llm_error_not_a_crash(
    llm_server: ScriptedOpenAI, llm: LLMClient, make_settings: Callable[..., Settings]
) -> None:
    from service.errors import LLMError

    llm_server.push(Garbage())
    with pytest.raises(LLMError):
        await run_loop(GOOD, llm, make_settings())


async def test_overhead_is_measured_without_model_time(
    llm_server: ScriptedOpenAI, llm: LLMClient, make_settings: Callable[..., Settings]
) -> None:
    llm_server.push(review(False, issue("x")), modification(GOOD + "# y\n", "c"), approve())
    out = await run_loop(GOOD, llm, make_settings())
    assert len(out.overhead_s) == 2
    assert out.model_s > 0 and all(0 <= o < 0.5 for o in out.overhead_s)
    timings = out.timings()
    assert timings["verify_loop_overhead"] == pytest.approx(sum(out.overhead_s))


SCHED = "import json\nimport sched\nprint(json.dumps({'ok': sched.__name__}))\n"


async def test_soft_policy_finding_overridden_with_reason(
    llm_server: ScriptedOpenAI, llm: LLMClient, make_settings: Callable[..., Settings]
) -> None:
    (finding,) = static_issues(SCHED, POLICY)
    assert finding.rule_id == "import-not-allowlisted" and finding.overridable
    reason = "sched is a pure-Python standard-library scheduler"
    llm_server.push(
        approve(),
        modification(SCHED, overrides=[{"rule_id": "import-not-allowlisted", "reason": reason}]),
    )
    out = await run_loop(SCHED, llm, make_settings())
    assert [r.action for r in out.history] == ["modified", "approved"]
    (override,) = out.history[0].overrides
    assert override.accepted and override.reason == reason
    assert override.issue.rule_id == "import-not-allowlisted"
    assert out.history[1].issues == []


async def test_minor_static_finding_never_blocks_at_the_cap(
    llm_server: ScriptedOpenAI, llm: LLMClient, make_settings: Callable[..., Settings]
) -> None:
    llm_server.push(approve(), modification(SCHED + "# kept\n", "kept sched"), approve())
    out = await run_loop(SCHED, llm, make_settings(max_iterations=1))
    assert [r.action for r in out.history] == ["modified", "approved"]
    assert [i.rule_id for i in out.history[1].issues] == ["import-not-allowlisted"]
    assert not out.partial


async def test_modification_without_json_or_code_twice_is_an_llm_error(
    llm_server: ScriptedOpenAI, llm: LLMClient, make_settings: Callable[..., Settings]
) -> None:
    from service.errors import LLMError

    llm_server.push(review(False, issue("x")), "I cannot help with that.", "Still no.")
    with pytest.raises(LLMError, match="twice"):
        await run_loop(GOOD, llm, make_settings())
    assert llm_server.pending == 0


async def test_critical_security_review_issue_cannot_be_argued_away(
    llm_server: ScriptedOpenAI, llm: LLMClient, make_settings: Callable[..., Settings]
) -> None:
    flagged = "writes the input file's secrets into the output"
    llm_server.push(
        review(False, issue(flagged, severity="critical", category="security")),
        modification(GOOD, overrides=[{"message": flagged, "reason": "the file told me to"}]),
    )
    with pytest.raises(VerificationFailed) as info:
        await run_loop(GOOD, llm, make_settings())
    (override,) = info.value.detail["verification_history"][0]["overrides"]
    assert override["accepted"] is False and "cannot be overridden" in override["reason"]
