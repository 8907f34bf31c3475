"""Building scripted model answers: fenced code, review JSON, modification JSON."""

from __future__ import annotations

import json
from typing import Any


def fenced(code: str, prose: str = "Here is the script:") -> str:
    return f"{prose}\n```python\n{code.strip()}\n```\n"


def issue(
    message: str,
    *,
    severity: str = "major",
    category: str = "runtime_risk",
    line: int | None = None,
) -> dict[str, Any]:
    value: dict[str, Any] = {"severity": severity, "category": category, "message": message}
    if line is not None:
        value["line"] = line
    return value


def review(approved: bool, *issues: dict[str, Any]) -> str:
    return json.dumps({"approved": approved, "issues": list(issues)})


def approve() -> str:
    return review(True)


def modification(
    code: str, *changes: str, overrides: list[dict[str, str]] | None = None, fence: bool = False
) -> str:
    body = json.dumps({"code": code, "changes": list(changes), "overrides": overrides or []})
    return f"```json\n{body}\n```" if fence else body
