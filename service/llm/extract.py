"""Getting code and JSON out of model answers, fenced or not."""

from __future__ import annotations

import ast
import json
import re
from typing import Any

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PY_TAGS = {"python", "py", "python3", ""}


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def extract_code(answer: str) -> str:
    """The script inside ``answer``.

    Preference: the longest fenced python block; then any fenced block; then the whole
    answer minus leading prose lines (models often say "Here is the code:" first).
    """
    blocks = [(tag.lower(), body) for tag, body in _FENCE.findall(answer)]
    python_blocks = [b for t, b in blocks if t in _PY_TAGS and not _is_json_object(b)]
    for candidates in (python_blocks, [b for _, b in blocks]):
        if candidates:
            return max(candidates, key=len).strip("\n") + "\n"
    text = answer.strip("\n")
    if _parses(text):
        return text + "\n"
    lines = text.splitlines()
    # drop prose lines from the top until the rest parses (bounded: prose is short)
    for start in range(1, min(len(lines), 8)):
        rest = "\n".join(lines[start:])
        if rest.strip() and _parses(rest):
            return rest + "\n"
    return text + "\n"


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text.strip()), dict)
    except ValueError:
        return False


def fenced_python(answer: str) -> str | None:
    """The longest fenced python (or untagged) block that is not a JSON object, if any."""
    blocks = [
        body
        for tag, body in _FENCE.findall(answer)
        if tag.lower() in _PY_TAGS and body.strip() and not _is_json_object(body)
    ]
    return max(blocks, key=len).strip("\n") + "\n" if blocks else None


def extract_json(answer: str) -> dict[str, Any] | None:
    """The JSON object inside ``answer`` (fenced, bare, or wrapped in prose); else ``None``."""
    candidates = [body for _, body in _FENCE.findall(answer)]
    candidates.append(answer)
    # the object in the prose, not inside a fenced script (whose dict literals have braces too)
    for text in (answer, _FENCE.sub("", answer)):
        start, end = text.find("{"), text.rfind("}")
        if 0 <= start < end:
            candidates.append(text[start : end + 1])
    for text in candidates:
        try:
            value = json.loads(text.strip())
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than the stack
            continue
        if isinstance(value, dict):
            return value
    return None


def final_json_line(stdout: str) -> tuple[bool, Any]:
    """``(True, value)`` when the last non-empty stdout line is JSON, else ``(False, None)``."""
    for line in reversed(stdout.splitlines()):
        if not line.strip():
            continue
        try:
            return True, json.loads(line)
        except (ValueError, RecursionError):  # a script may print arbitrarily deep JSON
            return False, None
    return False, None
