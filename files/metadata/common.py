"""Small shared pieces: JSON-safe values and truncated previews."""

from __future__ import annotations

import datetime as dt
import decimal
import math
from typing import Any

PREVIEW_CHARS = 500
SAMPLE_ROWS = 5
MAX_CELL_CHARS = 200
MAX_LIST = 50


def truncate(text: str, limit: int = PREVIEW_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def json_safe(value: Any, depth: int = 0) -> Any:
    """A value that ``json.dumps(allow_nan=False)`` accepts; containers bounded in size and depth."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return truncate(value, MAX_CELL_CHARS)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return truncate(raw.decode("utf-8"), MAX_CELL_CHARS)
        except UnicodeDecodeError:
            return f"<{len(raw)} bytes>"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return json_safe(float(value))
    if depth > 6:
        return truncate(repr(value), MAX_CELL_CHARS)
    if isinstance(value, dict):
        return {str(k): json_safe(v, depth + 1) for k, v in list(value.items())[:MAX_LIST]}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v, depth + 1) for v in list(value)[:MAX_LIST]]
    # numpy / pandas scalars and arrays, IFDRational, ... without importing them here
    if hasattr(value, "isoformat"):
        try:
            return value.isoformat()
        except (ValueError, TypeError):
            return None
    if hasattr(value, "tolist"):
        try:
            return json_safe(value.tolist(), depth + 1)
        except (ValueError, TypeError):
            pass
    if hasattr(value, "item"):
        try:
            return json_safe(value.item(), depth + 1)
        except (ValueError, TypeError):
            pass
    if hasattr(value, "__float__"):
        try:
            return json_safe(float(value))
        except (ValueError, TypeError, ZeroDivisionError):
            pass
    return truncate(str(value), MAX_CELL_CHARS)


def records(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{str(k): json_safe(v) for k, v in row.items()} for row in rows]
