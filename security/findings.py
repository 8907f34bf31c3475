"""What the static policy reports: findings and the report that groups them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from security.rules import RULES, Severity

BLOCKING_SEVERITIES = frozenset({"critical", "major"})


@dataclass(frozen=True)
class Finding:
    """One rule hit at one place. ``hard``: the LLM may never argue it away."""

    rule_id: str
    severity: Severity
    message: str
    line: int
    col: int
    hard: bool

    @classmethod
    def of(cls, rule_id: str, message: str, line: int, col: int) -> Finding:
        """A finding whose severity and hardness come from the rule catalogue."""
        rule = RULES[rule_id]
        return cls(rule_id, rule.severity, message, line, col, rule.hard)


@dataclass(frozen=True)
class PolicyReport:
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        """No critical or major finding (minor and info ones do not block)."""
        return not any(f.severity in BLOCKING_SEVERITIES for f in self.findings)

    @property
    def hard_findings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.hard)

    def to_dicts(self) -> list[dict[str, Any]]:
        return [asdict(f) for f in self.findings]
