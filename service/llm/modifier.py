"""Modification and repair: code + issues (or a traceback) -> fixed code, changes, overrides."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.errors import LLMError
from service.llm.client import LLMClient, UsageMeter
from service.llm.extract import extract_code, extract_json, fenced_python
from service.llm.prompts import Task, data, render, system_prompt
from service.models import Issue


@dataclass(frozen=True)
class OverrideRequest:
    """The model's claim that an issue is a false positive."""

    rule_id: str | None
    message: str | None
    reason: str


@dataclass(frozen=True)
class Modification:
    code: str
    changes: tuple[str, ...]
    overrides: tuple[OverrideRequest, ...]


def _override(raw: Any) -> OverrideRequest | None:
    if not isinstance(raw, dict):
        return None
    reason = str(raw.get("reason") or "").strip()
    rule_id = raw.get("rule_id")
    message = raw.get("message") or raw.get("issue")
    if not reason or not (rule_id or message):
        return None
    return OverrideRequest(
        rule_id=str(rule_id) if rule_id else None,
        message=str(message) if message else None,
        reason=reason,
    )


def parse_modification(answer: str, previous_code: str) -> Modification | None:
    value = extract_json(answer)
    if value is None:
        # Some models answer with a bare fenced script; accept it without a change list.
        if "```" in answer:
            return Modification(extract_code(answer), ("rewrote the script",), ())
        return None
    code = value.get("code")
    if not isinstance(code, str) or not code.strip():
        # The code in a fenced block beside a JSON object of changes: use the block.
        code = fenced_python(answer) or previous_code
    elif "```" in code:  # some models fence the code inside the JSON string too
        code = extract_code(code)
    elif not code.endswith("\n"):
        code += "\n"
    changes = value.get("changes") or []
    overrides = value.get("overrides") or []
    if not isinstance(changes, list) or not isinstance(overrides, list):
        return None
    return Modification(
        code=code,
        changes=tuple(str(c) for c in changes if str(c).strip()),
        overrides=tuple(o for o in map(_override, overrides) if o is not None),
    )


def issues_section(issues: Sequence[Issue]) -> str:
    rows = [
        {
            "rule_id": i.rule_id,
            "source": i.source,
            "severity": i.severity,
            "category": i.category,
            "line": i.line,
            "message": i.message,
            "hard": not i.overridable,
        }
        for i in issues
    ]
    # review messages are model output about untrusted data: keep them inside data markers
    return data(json.dumps(rows, indent=1, ensure_ascii=False))


async def _ask(llm: LLMClient, meter: UsageMeter, prompt: str, code: str) -> Modification:
    for _ in (1, 2):
        mod = parse_modification(await llm.complete(system_prompt(), prompt, meter), code)
        if mod is not None:
            return mod
    raise LLMError("the model answered the modification request without JSON or code twice")


async def modify_code(
    llm: LLMClient, meter: UsageMeter, task: Task, code: str, issues: Sequence[Issue]
) -> Modification:
    prompt = render(
        "modify",
        issues=issues_section(issues),
        files=task.files_section(),
        query=data(task.query),
        code=data(code),
    )
    return await _ask(llm, meter, prompt, code)


async def repair_code(
    llm: LLMClient, meter: UsageMeter, task: Task, code: str, error: str
) -> Modification:
    prompt = render(
        "repair",
        files=task.files_section(),
        query=data(task.query),
        code=data(code),
        error=data(error[-6000:]),
    )
    return await _ask(llm, meter, prompt, code)
