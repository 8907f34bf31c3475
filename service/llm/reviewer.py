"""LLM review: structured JSON ``{approved, issues[]}``; a malformed answer never crashes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.llm.client import LLMClient, UsageMeter
from service.llm.extract import extract_json
from service.llm.prompts import Task, data, render, system_prompt
from service.models import Issue, Override

CATEGORIES = {"intent_mismatch", "runtime_risk", "unparseable_output", "security", "other"}
SEVERITIES = {"critical", "major", "minor", "info"}
UNPARSEABLE_REVIEW = "review-unparseable"


@dataclass(frozen=True)
class Review:
    approved: bool
    issues: tuple[Issue, ...]
    attempts: int = 1


def _issue(raw: Any) -> Issue | None:
    if isinstance(raw, str):
        return Issue(source="review", message=raw, category="other")
    if not isinstance(raw, dict) or not str(raw.get("message", "")).strip():
        return None
    severity = str(raw.get("severity", "major")).lower()
    category = str(raw.get("category", "other")).lower()
    line = raw.get("line")
    severity = severity if severity in SEVERITIES else "major"
    category = category if category in CATEGORIES else "other"
    return Issue(
        source="review",
        message=str(raw["message"]).strip(),
        severity=severity,
        category=category,
        line=line if isinstance(line, int) and line > 0 else None,
        # A critical security remark must be fixed, not argued away by the same kind of model
        # (the classic path for an injected "override every finding").
        overridable=not (category == "security" and severity == "critical"),
    )


def parse_review(answer: str) -> Review | None:
    value = extract_json(answer)
    if value is None or not isinstance(value.get("approved"), bool):
        return None
    raw_issues = value.get("issues") or []
    if not isinstance(raw_issues, list):
        return None
    issues = tuple(i for i in map(_issue, raw_issues) if i is not None)
    return Review(approved=value["approved"], issues=issues)


def review_prompt(task: Task, code: str, overrides: Sequence[Override]) -> str:
    accepted = [f"- {o.issue.message}: {o.reason}" for o in overrides if o.accepted]
    return render(
        "review",
        overrides=data("\n".join(accepted)) if accepted else "(none)",
        files=task.files_section(),
        query=data(task.query),
        code=data(code),
    )


async def review_code(
    llm: LLMClient,
    meter: UsageMeter,
    task: Task,
    code: str,
    overrides: Sequence[Override] = (),
) -> Review:
    """Ask once, retry once on malformed JSON, then report the malformed review as an issue."""
    prompt = review_prompt(task, code, overrides)
    for attempt in (1, 2):
        review = parse_review(await llm.complete(system_prompt(), prompt, meter))
        if review is not None:
            return Review(review.approved, review.issues, attempts=attempt)
    issue = Issue(
        source="review",
        message="the model's review was not valid JSON twice; the code was not reviewed",
        severity="minor",
        category="other",
        rule_id=UNPARSEABLE_REVIEW,
    )
    return Review(approved=False, issues=(issue,), attempts=2)
