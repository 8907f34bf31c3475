"""Static policy for generated code: a pure library (no FastAPI, nothing from ``service``)."""

from security.findings import Finding, PolicyReport
from security.packages import BLOCKED_IMPORTS, SAFE_PACKAGES
from security.policy import BLOCKED_CALLS, StaticPolicy
from security.rules import RULES, Rule

__all__ = [
    "BLOCKED_CALLS",
    "BLOCKED_IMPORTS",
    "RULES",
    "SAFE_PACKAGES",
    "Finding",
    "PolicyReport",
    "Rule",
    "StaticPolicy",
]
