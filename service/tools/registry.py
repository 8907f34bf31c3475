"""The data tools as one table: name, description, permission, argument and result models,
and the plain function. REST routes, MCP and OpenAI tool schemas are all built from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from service.auth.permissions import Permission
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
