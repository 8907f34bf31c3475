"""The database and file-storage tools as catalogue entries, made from their one table.

``data_tool(spec)`` turns a ``service.tools.registry.ToolSpec`` into a ``Tool``: the same
arguments model (so the same input schema as REST), the plain function run off the event loop (with its audit line),
and its result model as the structured data with a text for the model. Failures are the one
exception tree's errors, which ``Catalogue.call`` turns into ``is_error`` results.

The text carries the rows and contents themselves, clipped: many agents (our ReAct example
among them) show a model only the text of a tool result.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from service.agent_tools.catalogue import Tool, ToolContext
from service.models import ToolResult
from service.tools import models as m
from service.tools.registry import TOOLS, ToolSpec, call_tool

# Rows and characters shown to the model; everything fetched is in the structured data.
MAX_TEXT_ROWS = 200
MAX_TEXT_CHARS = 20_000


def data_tool(spec: ToolSpec) -> Tool:
    """One data tool as a catalogue entry."""

    async def handler(ctx: ToolContext, args: BaseModel) -> ToolResult:
        result = await call_tool(spec, ctx.data_tools, args, ctx.principal)
        return ToolResult(text=_clip(describe(result)), data=result.model_dump(mode="json"))

    return Tool(
        name=spec.name,
        description=spec.description,
        args=spec.args_model,
        permission=spec.permission,
        handler=handler,
    )


DATA_TOOLS: tuple[Tool, ...] = tuple(data_tool(spec) for spec in TOOLS)


# --- the result, for a model --------------------------------------------------------------------


def _clip(text: str) -> str:
    if len(text) <= MAX_TEXT_CHARS:
        return text
    return text[:MAX_TEXT_CHARS] + f"\n... ({len(text) - MAX_TEXT_CHARS} more characters in data)"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _rows(columns: list[str], rows: list[list[Any]]) -> list[str]:
    """A header and one JSON array per row (values are JSON-safe already)."""
    lines = [json.dumps(columns, ensure_ascii=False)]
    lines += [json.dumps(row, ensure_ascii=False, default=str) for row in rows[:MAX_TEXT_ROWS]]
    if len(rows) > MAX_TEXT_ROWS:
        lines.append(f"... ({len(rows) - MAX_TEXT_ROWS} more rows in data)")
    return lines


def _column(c: m.ColumnInfo) -> str:
    flags = [c.type]
    if c.nullable is False:
        flags.append("not null")
    if c.primary_key:
        flags.append("primary key")
    if c.default is not None:
        flags.append(f"default {c.default}")
    return f"- {c.name}: {', '.join(flags)}"


def _query(r: m.QueryResult) -> str:
    head = f"{_plural(r.row_count, 'row')} from database {r.database!r} in {r.execution_time:.3f}s"
    if r.truncated:
        head += " (truncated at max_rows: more rows exist)"
    if r.stored_as:
        head += (
            f"; all fetched rows stored as {r.stored_as} (read_parquet reads it; stage it into "
            "a run by that path)"
        )
        if r.preview:
            head += "; the rows below are a preview"
    return "\n".join([head + ":", *_rows(r.columns, r.rows)])


def _tables(r: m.TableList) -> str:
    lines = [f"{_plural(len(r.tables), 'table')} and views in database {r.database!r}:"]
    for t in r.tables:
        name = f"{t.schema_name}.{t.name}" if t.schema_name else t.name
        lines.append(f"- {name} ({t.kind})")
    return "\n".join(lines)


def _schema(r: m.TableSchema) -> str:
    name = f"{r.schema_name}.{r.table}" if r.schema_name else r.table
    lines = [f"{name} in database {r.database!r}:"]
    if isinstance(r, m.TableDescription) and r.row_estimate is not None:
        exact = "" if r.row_estimate_exact else "about "
        lines[0] = f"{name} in database {r.database!r}, {exact}{_plural(r.row_estimate, 'row')}:"
    lines += [_column(c) for c in r.columns]
    if isinstance(r, m.TableDescription):
        if r.primary_key:
            lines.append(f"primary key: {', '.join(r.primary_key)}")
        for fk in r.foreign_keys:
            lines.append(
                f"foreign key ({', '.join(fk.columns)}) -> "
                f"{fk.referred_table}({', '.join(fk.referred_columns)})"
            )
        for ix in r.indexes:
            cols = ", ".join(c or "(expression)" for c in ix.columns)
            lines.append(f"{'unique ' if ix.unique else ''}index {ix.name or ''} ({cols})")
    return "\n".join(lines)


def _content(r: m.FileContent) -> str:
    head = f"{r.file_path}: {r.size} bytes, {r.encoding}"
    if r.truncated:
        head += ", truncated"
    return f"{head}\n{r.content}"


def _table_data(r: m.TableData) -> str:
    of = f" of {r.total_rows}" if r.total_rows is not None else ""
    head = f"{r.file_path}: {_plural(r.row_count, 'row')}{of}"
    if r.truncated:
        head += " (truncated: ask for n_rows to see more)"
    types = ", ".join(f"{c.name} {c.type}" for c in r.columns)
    return "\n".join([head, f"columns: {types}", *_rows([c.name for c in r.columns], r.rows)])


def _files(r: m.FileList) -> str:
    count = "1 entry" if len(r.files) == 1 else f"{len(r.files)} entries"
    lines = [f"{count} in {r.directory}" + (" (truncated)" if r.truncated else "")]
    for f in r.files:
        kind = "directory" if f.is_dir else f"{f.size} bytes"
        lines.append(f"- {f.path} ({kind}, modified {f.modified.isoformat()})")
    return "\n".join(lines)


def _written(r: m.WrittenFile) -> str:
    return f"wrote {r.size} bytes to {r.file_path}"


DESCRIBERS: dict[type[BaseModel], Callable[[Any], str]] = {
    m.QueryResult: _query,
    m.TableList: _tables,
    m.TableSchema: _schema,
    m.TableDescription: _schema,
    m.FileContent: _content,
    m.TableData: _table_data,
    m.FileList: _files,
    m.WrittenFile: _written,
}


def describe(result: BaseModel) -> str:
    """The text a model reads; a result model without a describer is shown as its JSON."""
    describer = DESCRIBERS.get(type(result))
    if describer is None:
        return result.model_dump_json(indent=1)
    return describer(result)
