"""The data tools as one table: name, description, permission, argument and result models,
and the plain function. REST routes, MCP and OpenAI tool schemas are all built from it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from pydantic import BaseModel

from service.auth.permissions import Permission, Principal
from service.errors import PythonCoderError
from service.observability import audit_event, text_digest
from service.settings import Settings
from service.tools import database, storage
from service.tools import models as m
from service.tools.db_engines import Databases
from service.tools.storage import Storage


@dataclass
class DataTools:
    """What the tools need, built once in the app lifespan."""

    settings: Settings
    databases: Databases
    storage: Storage

    @classmethod
    def from_settings(cls, settings: Settings) -> DataTools:
        return cls(settings, Databases.from_settings(settings), Storage(settings))

    def close(self) -> None:
        self.databases.close()


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    permission: Permission
    args_model: type[m.ToolArgs]
    result_model: type[BaseModel]
    run: Callable[[DataTools, Any], BaseModel]


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "execute_query",
        "Run one read-only SQL statement (SELECT/WITH/VALUES/EXPLAIN); 30 s and 10,000 rows "
        "by default; save_as_parquet keeps the rows as a file a run can stage.",
        Permission.QUERY,
        m.ExecuteQueryArgs,
        m.QueryResult,
        database.execute_query,
    ),
    ToolSpec(
        "list_tables",
        "List the tables and views of a database.",
        Permission.QUERY,
        m.ListTablesArgs,
        m.TableList,
        database.list_tables,
    ),
    ToolSpec(
        "get_schema",
        "Columns of a table: names, types, nullability, defaults, primary key.",
        Permission.QUERY,
        m.TableArgs,
        m.TableSchema,
        database.get_schema,
    ),
    ToolSpec(
        "get_table_sample",
        "The first n rows of a table.",
        Permission.QUERY,
        m.SampleArgs,
        m.QueryResult,
        database.get_table_sample,
    ),
    ToolSpec(
        "describe_table",
        "A table's row estimate, columns, primary and foreign keys, and indexes.",
        Permission.QUERY,
        m.TableArgs,
        m.TableDescription,
        database.describe_table,
    ),
    ToolSpec(
        "read_file",
        "Read a text file (encoding detected, size capped) or its bytes as base64.",
        Permission.READ,
        m.ReadFileArgs,
        m.FileContent,
        storage.read_file,
    ),
    ToolSpec(
        "read_csv",
        "Rows and column types of a CSV file (n_rows, columns).",
        Permission.READ,
        m.ReadTableArgs,
        m.TableData,
        storage.read_csv,
    ),
    ToolSpec(
        "read_parquet",
        "Rows and schema of a Parquet file (n_rows, columns).",
        Permission.READ,
        m.ReadTableArgs,
        m.TableData,
        storage.read_parquet,
    ),
    ToolSpec(
        "list_files",
        "Files in a directory or S3 prefix with sizes and modification times.",
        Permission.LIST,
        m.ListFilesArgs,
        m.FileList,
        storage.list_files,
    ),
    ToolSpec(
        "write_file",
        "Write text or base64 bytes to a file under a storage root or to S3.",
        Permission.WRITE,
        m.WriteFileArgs,
        m.WrittenFile,
        storage.write_file,
    ),
)

TOOLS_BY_NAME: dict[str, ToolSpec] = {t.name: t for t in TOOLS}


# Argument fields the audit log keeps only as a digest or a size: SQL text (it may name
# values), bound parameters and written content.
_DIGESTED = {"query", "params", "content"}


def _audit_fields(args: BaseModel, result: BaseModel | None) -> dict[str, Any]:
    """What the audit line says about a call: the target (database, table, path) and
    options as given, the query's digest, and how much came back."""
    fields: dict[str, Any] = args.model_dump(mode="json", exclude=_DIGESTED, exclude_none=True)
    query = getattr(args, "query", None)
    if isinstance(query, str):
        digest = text_digest(query)
        fields["query_sha256"], fields["query_bytes"] = digest["sha256"], digest["bytes"]
    params = getattr(args, "params", None)
    if params:
        fields["param_count"] = len(params)
    content = getattr(args, "content", None)
    if isinstance(content, str):
        fields["content_chars"] = len(content)
    if result is not None:
        for name in ("row_count", "truncated", "stored_as", "size"):
            value = getattr(result, name, None)
            if value is not None:
                fields[name] = value
        for name in ("tables", "files"):
            value = getattr(result, name, None)
            if isinstance(value, list):
                fields[f"{name}_listed"] = len(value)
    return fields


async def call_tool(
    spec: ToolSpec, tools: DataTools, args: BaseModel, caller: Principal
) -> BaseModel:
    """Run a data tool off the event loop, for REST and the agent surfaces alike, and write
    its audit line: who, which tool on what, the outcome (``success`` or the error's name) and
    the time. The caller's permission was checked at the edge."""
    started = time.perf_counter()
    result: BaseModel | None = None
    outcome = "error"
    try:
        result = await anyio.to_thread.run_sync(spec.run, tools, args)
        outcome = "success"
        return result
    except PythonCoderError as exc:
        outcome = type(exc).__name__
        raise
    finally:
        audit_event(
            tools.settings,
            "data_tool",
            caller=caller,
            outcome=outcome,
            duration_s=time.perf_counter() - started,
            tool=spec.name,
            **_audit_fields(args, result),
        )
