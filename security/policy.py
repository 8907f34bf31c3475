"""StaticPolicy: AST checks that run before any code executes.

A first filter, not the boundary (the container is): it rejects what generated data-science code
never needs (process control, code from strings, introspection escapes, blocked modules, system
paths) with findings precise enough for the LLM to fix, and stays quiet on ordinary scripts.
It never raises on its input: syntax errors, oversized and pathological code become findings.
"""

from __future__ import annotations

import ast
import re
import threading
import warnings
from collections.abc import Iterable

from security.checker import Checker
from security.findings import Finding, PolicyReport
from security.packages import BLOCKED_IMPORTS, SAFE_PACKAGES
from security.rules import BLOCKED_NAMES, RULES, Rule
from security.scopes import Resolver, ScopeBuilder, TooComplex

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

# Qualified names the policy refuses to let code reference (builtins.eval, os.system, ...).
BLOCKED_CALLS: frozenset[str] = frozenset(BLOCKED_NAMES)

# Guards that keep the checker itself fast and safe on hostile input. Ordinary scripts are far
# below them: a 2,000-line script has ~20k tokens and an AST ~40 levels deep.
MAX_TOKENS = 50_000  # ~5,000 lines; parse + analysis cost ~20 us a token, so <= ~1 s
MAX_AST_DEPTH = 300
MAX_AST_NODES = 400_000
_TOKEN = re.compile(r"\w+|[^\w\s]")
# catch_warnings swaps the process-wide filter list; serialise it so concurrent checks in a
# thread pool cannot restore each other's filters (parsing holds the GIL anyway).
_PARSE_LOCK = threading.Lock()

_SEVERITY_ORDER = {"critical": 0, "major": 1, "minor": 2, "info": 3}


class StaticPolicy:
    """Checks code against the allow-list, the block-lists and the escape rules."""

    def __init__(
        self, *, extra_allowed: Iterable[str] = (), max_code_bytes: int = 1_000_000
    ) -> None:
        # Blocked entries still win: extra_allowed cannot re-enable socket or subprocess.
        self.allowed = SAFE_PACKAGES | frozenset(extra_allowed)
        self.max_code_bytes = max_code_bytes

    def check(self, code: str) -> PolicyReport:
        size = len(code.encode("utf-8", "surrogatepass"))
        if size > self.max_code_bytes:
            return _report(
                [
                    Finding.of(
                        "code-too-large",
                        f"code is {size} bytes; the limit is {self.max_code_bytes}",
                        1,
                        0,
                    )
                ]
            )
        tokens = _count_tokens(code, MAX_TOKENS)
        if tokens > MAX_TOKENS:
            return _report([_too_complex(f"more than {MAX_TOKENS} tokens; move data to a file")])
        try:
            with _PARSE_LOCK, warnings.catch_warnings():
                # invalid escape sequences etc. are the script's business, not ours
                warnings.simplefilter("ignore")
                tree = ast.parse(code, filename="<code>", mode="exec")
        except SyntaxError as exc:
            return _report([_syntax_finding(exc)])
        except ValueError as exc:  # e.g. null bytes on some versions
            return _report([Finding.of("syntax-error", f"cannot parse: {exc}", 1, 0)])
        except (RecursionError, MemoryError):
            return _report([_too_complex("nesting too deep for the parser")])
        try:
            builder = ScopeBuilder(max_depth=MAX_AST_DEPTH, max_nodes=MAX_AST_NODES)
            _, order = builder.build(tree)
            findings = Checker(allowed=self.allowed, resolver=Resolver()).run(order)
        except TooComplex as exc:
            return _report([_too_complex(str(exc))])
        except (RecursionError, MemoryError):
            return _report([_too_complex("expressions nested too deeply")])
        return _report(_to_characters(findings, code))


def _count_tokens(code: str, limit: int) -> int:
    """Rough token count, stopping early once past ``limit``."""
    count = 0
    for count, _ in enumerate(_TOKEN.finditer(code), start=1):
        if count > limit:
            break
    return count


def _too_complex(why: str) -> Finding:
    return Finding.of("code-too-complex", f"code too complex to analyse: {why}", 1, 0)


def _syntax_finding(exc: SyntaxError) -> Finding:
    line = exc.lineno or 1
    col = max((exc.offset or 1) - 1, 0)
    text = f"{type(exc).__name__}: {exc.msg}"
    return Finding.of("syntax-error", text, line, col)


def _to_characters(findings: list[Finding], code: str) -> list[Finding]:
    """AST columns count UTF-8 bytes; report characters so editors point at the right place."""
    if code.isascii():
        return findings
    lines = re.split(r"\r\n|\r|\n", code)
    out = []
    for f in findings:
        if 1 <= f.line <= len(lines) and not lines[f.line - 1].isascii():
            prefix = lines[f.line - 1].encode("utf-8", "surrogatepass")[: f.col]
            col = len(prefix.decode("utf-8", "ignore"))
            f = Finding(f.rule_id, f.severity, f.message, f.line, col, f.hard)
        out.append(f)
    return out


def _report(findings: list[Finding]) -> PolicyReport:
    """Deduplicate (one finding per rule and place) and sort by position, then severity."""
    seen: dict[tuple[str, int, int], Finding] = {}
    for f in findings:
        key = (f.rule_id, f.line, f.col)
        if key not in seen:
            seen[key] = f
    ordered = sorted(
        seen.values(), key=lambda f: (f.line, f.col, _SEVERITY_ORDER[f.severity], f.rule_id)
    )
    return PolicyReport(tuple(ordered))
