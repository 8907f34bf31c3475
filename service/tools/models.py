"""Arguments and results of the data tools: one pydantic model each, shared by REST, MCP and
the OpenAI tool schemas (``service/tools/registry.py`` pairs them with their functions)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ToolArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ToolResult(BaseModel):
    model_config = ConfigDict(frozen=True)


# --- database -------------------------------------------------------------------------------


class DatabaseArgs(ToolArgs):
    database: str | None = Field(
        default=None, description="a configured database name; default: the default database"
    )


class ExecuteQueryArgs(DatabaseArgs):
    query: str = Field(min_length=1, description="one SELECT / WITH / VALUES / EXPLAIN statement")
    params: dict[str, Any] | None = Field(
        default=None, description="bind parameters, written :name in the query"
    )
    timeout: float | None = Field(default=None, gt=0, description="seconds; default 30")
    max_rows: int | None = Field(default=None, ge=1, description="row cap; default 10,000")
    save_as_parquet: bool = Field(
        default=False,
        description="store all rows as a Parquet file (stored_as) and return only a preview",
    )


class QueryResult(ToolResult):
    database: str
    columns: list[str]
    rows: list[list[Any]] = Field(description="JSON-safe values, in column order")
    row_count: int = Field(description="rows fetched (at most max_rows)")
    truncated: bool = Field(description="more rows existed than max_rows")
    execution_time: float
    stored_as: str | None = Field(
        default=None, description="Parquet file with all fetched rows (read_parquet, stage)"
    )
    preview: bool = Field(default=False, description="rows is a preview of the stored file")


class TableInfo(ToolResult):
    name: str
    schema_name: str | None = None
    kind: Literal["table", "view"]


class TableList(ToolResult):
    database: str
    tables: list[TableInfo]


class ListTablesArgs(DatabaseArgs):
    schema_name: str | None = Field(default=None, description="default: the default schema")


class TableArgs(DatabaseArgs):
    table: str = Field(min_length=1)
    schema_name: str | None = None


class SampleArgs(TableArgs):
    n: int = Field(default=10, ge=1, le=1000, description="rows to return")


class ColumnInfo(ToolResult):
    name: str
    type: str
    nullable: bool | None = None
    default: str | None = None
    primary_key: bool = False


class TableSchema(ToolResult):
    database: str
    table: str
    schema_name: str | None = None
    columns: list[ColumnInfo]


class ForeignKeyInfo(ToolResult):
    name: str | None = None
    columns: list[str]
    referred_table: str
    referred_schema: str | None = None
    referred_columns: list[str]


class IndexInfo(ToolResult):
    name: str | None = None
    columns: list[str | None]
    unique: bool


class TableDescription(TableSchema):
    row_estimate: int | None = Field(description="planner estimate, or an exact count")
    row_estimate_exact: bool = False
    primary_key: list[str] = Field(default_factory=list)
    foreign_keys: list[ForeignKeyInfo] = Field(default_factory=list)
    indexes: list[IndexInfo] = Field(default_factory=list)


# --- file storage ----------------------------------------------------------------------------


class ReadFileArgs(ToolArgs):
    file_path: str = Field(min_length=1, description="a path under a storage root, or s3://b/k")
    max_chars: int | None = Field(default=None, ge=1, description="cap on returned characters")
    as_base64: bool = Field(default=False, description="return the raw bytes, base64-encoded")


class FileContent(ToolResult):
    file_path: str
    size: int
    encoding: str = Field(description="detected text encoding, or 'base64'")
    content: str
    truncated: bool = False


class ReadTableArgs(ToolArgs):
    file_path: str = Field(min_length=1)
    n_rows: int | None = Field(default=1000, ge=1, description="rows to return (capped)")
    columns: list[str] | None = Field(default=None, description="only these columns")


class TableData(ToolResult):
    file_path: str
    columns: list[ColumnInfo]
    rows: list[list[Any]]
    row_count: int
    total_rows: int | None = Field(default=None, description="rows in the file, when known")
    truncated: bool


class ListFilesArgs(ToolArgs):
    directory: str = Field(min_length=1)
    pattern: str = Field(default="*", description="shell-style match on the file name")
    recursive: bool = False


class FileEntry(ToolResult):
    path: str
    name: str
    size: int
    modified: datetime
    is_dir: bool = False


class FileList(ToolResult):
    directory: str
    files: list[FileEntry]
    truncated: bool = False


class WriteFileArgs(ToolArgs):
    file_path: str = Field(min_length=1)
    content: str
    encoding: Literal["utf-8", "base64"] = "utf-8"
    overwrite: bool = True


class WrittenFile(ToolResult):
    file_path: str
    size: int
