"""Database and file values as JSON: what every data tool returns.

Here in ``files`` (a pure library) because the intake workers use it too: the storage tools'
table previews (``files.tables``) are made JSON-safe in the worker that parses them.

dates and times -> ISO 8601 strings; timedelta -> seconds; Decimal -> its exact string;
NaN and infinities -> "NaN", "Infinity", "-Infinity"; bytes -> base64; UUID, IP addresses and
anything else unknown -> ``str``; containers recursively.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from decimal import Decimal
from typing import Any


def json_safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Decimal):
        if value.is_nan():
            return "NaN"
        if value.is_infinite():
            return "Infinity" if value > 0 else "-Infinity"
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            return json_safe(value.item())
        except (TypeError, ValueError):
            pass
    if hasattr(value, "isoformat"):  # pandas Timestamp and friends
        return value.isoformat()
    return str(value)


def json_row(row: Any) -> list[Any]:
    return [json_safe(v) for v in row]
