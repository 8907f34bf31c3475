"""The read-only database tools: execute_query, list_tables, get_schema, get_table_sample,
describe_table. Plain functions of (tools, args) -> result; no web framework here.

``execute_query`` = the SQL guard (``security.sql``, a clear early error) + ``run_query``
(the database layer, whose read-only transaction is the boundary; tests call it with the
guard bypassed to show that).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Executable, func, inspect, literal_column, select, text
from sqlalchemy import table as sa_table
from sqlalchemy.engine import Inspector
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from files.jsonsafe import json_row, json_safe
from security.sql import QueryRejected as GuardRejected
from security.sql import check_query
from service.errors import (
    DatabaseUnavailable,
    InvalidRequest,
    NotFound,
    PythonCoderError,
    QueryFailed,
    QueryRejected,
    QueryTimeout,
)
from service.tools.db_engines import Database
from service.tools.models import (
    ColumnInfo,
    ExecuteQueryArgs,
    ForeignKeyInfo,
    IndexInfo,
    ListTablesArgs,
    QueryResult,
    SampleArgs,
    TableArgs,
    TableDescription,
    TableInfo,
    TableList,
    TableSchema,
)

if TYPE_CHECKING:
    from service.tools.registry import DataTools

PREVIEW_ROWS = 20  # rows returned alongside a result saved as Parquet
SQLSTATE_QUERY_CANCELED = "57014"


class RawRows:
    """What ``run_query`` fetched: column names, driver values, and whether more existed."""

    def __init__(self, columns: list[str], rows: Sequence[Sequence[Any]], truncated: bool) -> None:
        self.columns = columns
        self.rows = rows
        self.truncated = truncated


def run_query(
    db: Database,
    statement: str | Executable,
    params: dict[str, Any] | None = None,
    *,
    timeout_s: float,
    max_rows: int,
    stream: bool = False,
) -> RawRows:
    """Run one statement read-only with a timeout and fetch at most ``max_rows`` rows.

    No guard here: whatever the statement is, the database's read-only transaction decides.
    ``stream`` fetches through a server-side cursor (PostgreSQL SELECTs), so a huge result
    never lands in memory whole.
    """
    stmt = text(statement) if isinstance(statement, str) else statement
    try:
        with db.read_only(timeout_s) as conn:
            try:
                if stream and db.dialect == "postgres":
                    conn = conn.execution_options(stream_results=True, max_row_buffer=1000)
                result = conn.execute(stmt, params or {})
                if not result.returns_rows:
                    return RawRows([], [], False)
                columns = list(result.keys())
                rows = list(result.fetchmany(max_rows + 1))
                result.close()
            except SQLAlchemyError as exc:
                raise _query_error(exc, db, timeout_s) from exc
    except PythonCoderError:
        raise
    except PoolTimeout as exc:
        raise DatabaseUnavailable(
            f"database {db.name!r}: all {db.engine.pool.size()} connections are busy; "  # type: ignore[attr-defined]
            "try again shortly"
        ) from exc
    except SQLAlchemyError as exc:
        raise DatabaseUnavailable(
            f"database {db.name!r} cannot be reached: {_first_line(exc)}"
        ) from exc
    return RawRows(columns, rows[:max_rows], truncated=len(rows) > max_rows)


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


def _query_error(exc: SQLAlchemyError, db: Database, timeout_s: float) -> PythonCoderError:
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None)
    message = _first_line(exc)
    if sqlstate == SQLSTATE_QUERY_CANCELED or (
        db.dialect == "sqlite" and message.strip() == "interrupted"
    ):
        return QueryTimeout(f"the query ran longer than its timeout of {timeout_s:g} s")
    if not isinstance(exc, DBAPIError):
        return QueryFailed(f"the query failed: {message}")
    return QueryFailed(
        f"database {db.name!r} refused the query: {message}",
        detail={"sqlstate": sqlstate} if sqlstate else None,
    )


def _limits(tools: DataTools, timeout: float | None, max_rows: int | None) -> tuple[float, int]:
    settings = tools.settings
    timeout_s = timeout if timeout is not None else settings.query_timeout
    if timeout_s > settings.query_max_timeout:
        raise InvalidRequest(
            f"timeout must be at most {settings.query_max_timeout:g} s "
            f"(PYTHON_CODE_QUERY_MAX_TIMEOUT), got {timeout_s:g}"
        )
    rows = max_rows if max_rows is not None else settings.query_max_rows
    if rows > settings.query_max_rows:
        raise InvalidRequest(
            f"max_rows must be at most {settings.query_max_rows} (PYTHON_CODE_QUERY_MAX_ROWS), "
            f"got {rows}"
        )
    return timeout_s, rows


def execute_query(tools: DataTools, args: ExecuteQueryArgs) -> QueryResult:
    """Run one read-only statement; rows capped, values JSON-safe, optionally kept as Parquet."""
    db = tools.databases.get(args.database)
    timeout_s, max_rows = _limits(tools, args.timeout, args.max_rows)
    try:
        checked = check_query(args.query, db.dialect)
    except GuardRejected as exc:
        raise QueryRejected(str(exc)) from exc
    started = time.perf_counter()
    raw = run_query(
        db,
        checked.sql,
        args.params,
        timeout_s=timeout_s,
        max_rows=max_rows,
        stream=checked.kind == "select",
    )
    elapsed = time.perf_counter() - started
    stored_as = None
    shown = raw.rows
    if args.save_as_parquet:
        stored_as = save_parquet(tools, raw)
        shown = raw.rows[:PREVIEW_ROWS]
    return QueryResult(
        database=db.name,
        columns=raw.columns,
        rows=[json_row(r) for r in shown],
        row_count=len(raw.rows),
        truncated=raw.truncated,
        execution_time=round(elapsed, 4),
        stored_as=stored_as,
        preview=args.save_as_parquet,
    )


def save_parquet(tools: DataTools, raw: RawRows) -> str:
    """Write fetched rows to ``<execution_dir>/query-results/<id>.parquet``; return the path."""
    # Imported here: the gateway loads Arrow only to write query results, never to read files.
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory = tools.settings.query_results_dir
    directory.mkdir(parents=True, exist_ok=True)
    arrays = []
    for index in range(len(raw.columns)):
        values = [row[index] for row in raw.rows]
        try:
            arrays.append(pa.array(values))
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            # SQLite columns may mix types: keep them as JSON-safe strings.
            arrays.append(pa.array([None if v is None else str(json_safe(v)) for v in values]))
    names = _unique_names(raw.columns)
    path = directory / f"{uuid.uuid4().hex}.parquet"
    partial = path.with_suffix(".partial")
    pq.write_table(pa.Table.from_arrays(arrays, names=names), partial)
    os.replace(partial, path)
    return str(path.resolve())


def _unique_names(columns: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    names = []
    for name in columns:
        count = seen.get(name, 0)
        seen[name] = count + 1
        names.append(name if count == 0 else f"{name}_{count}")
    return names


# --- introspection --------------------------------------------------------------------------


def _inspect(conn: Connection) -> Inspector:
    return inspect(conn)


def _introspect(tools: DataTools, db: Database, work: Any) -> Any:
    """Run ``work(conn, inspector)`` read-only with the default timeout, errors translated."""
    timeout_s = tools.settings.query_timeout
    try:
        with db.read_only(timeout_s) as conn:
            try:
                return work(conn, _inspect(conn))
            except PythonCoderError:
                raise
            except SQLAlchemyError as exc:
                raise _query_error(exc, db, timeout_s) from exc
    except PythonCoderError:
        raise
    except SQLAlchemyError as exc:
        raise DatabaseUnavailable(
            f"database {db.name!r} cannot be reached: {_first_line(exc)}"
        ) from exc


def _require_table(insp: Inspector, table: str, schema: str | None) -> None:
    names = set(insp.get_table_names(schema=schema)) | set(insp.get_view_names(schema=schema))
    if table not in names:
        where = f" in schema {schema!r}" if schema else ""
        raise NotFound(f"no table or view {table!r}{where} (list_tables shows what exists)")


def list_tables(tools: DataTools, args: ListTablesArgs) -> TableList:
    db = tools.databases.get(args.database)

    def work(conn: Connection, insp: Inspector) -> list[TableInfo]:
        schema = args.schema_name
        if schema is not None and schema not in insp.get_schema_names():
            raise NotFound(f"no schema {schema!r} in database {db.name!r}")
        tables = [
            TableInfo(name=n, schema_name=schema, kind="table")
            for n in insp.get_table_names(schema=schema)
        ]
        views = [
            TableInfo(name=n, schema_name=schema, kind="view")
            for n in insp.get_view_names(schema=schema)
        ]
        return sorted(tables + views, key=lambda t: t.name)

    return TableList(database=db.name, tables=_introspect(tools, db, work))


def _columns(insp: Inspector, table: str, schema: str | None) -> list[ColumnInfo]:
    primary = set(insp.get_pk_constraint(table, schema=schema).get("constrained_columns") or [])
    return [
        ColumnInfo(
            name=c["name"],
            type=str(c["type"]),
            nullable=c.get("nullable"),
            default=None if c.get("default") is None else str(c.get("default")),
            primary_key=c["name"] in primary,
        )
        for c in insp.get_columns(table, schema=schema)
    ]


def get_schema(tools: DataTools, args: TableArgs) -> TableSchema:
    db = tools.databases.get(args.database)

    def work(conn: Connection, insp: Inspector) -> list[ColumnInfo]:
        _require_table(insp, args.table, args.schema_name)
        return _columns(insp, args.table, args.schema_name)

    return TableSchema(
        database=db.name,
        table=args.table,
        schema_name=args.schema_name,
        columns=_introspect(tools, db, work),
    )


def get_table_sample(tools: DataTools, args: SampleArgs) -> QueryResult:
    db = tools.databases.get(args.database)
    _introspect(tools, db, lambda conn, insp: _require_table(insp, args.table, args.schema_name))
    stmt: Executable = (
        select(literal_column("*"))
        .select_from(sa_table(args.table, schema=args.schema_name))
        .limit(args.n)
    )
    started = time.perf_counter()
    raw = run_query(db, stmt, timeout_s=tools.settings.query_timeout, max_rows=args.n)
    return QueryResult(
        database=db.name,
        columns=raw.columns,
        rows=[json_row(r) for r in raw.rows],
        row_count=len(raw.rows),
        truncated=False,
        execution_time=round(time.perf_counter() - started, 4),
    )


def describe_table(tools: DataTools, args: TableArgs) -> TableDescription:
    db = tools.databases.get(args.database)
    table, schema = args.table, args.schema_name

    def work(conn: Connection, insp: Inspector) -> TableDescription:
        _require_table(insp, table, schema)
        estimate, exact = _row_estimate(conn, db, table, schema)
        pk = insp.get_pk_constraint(table, schema=schema).get("constrained_columns") or []
        is_view = table in insp.get_view_names(schema=schema)
        return TableDescription(
            database=db.name,
            table=table,
            schema_name=schema,
            columns=_columns(insp, table, schema),
            row_estimate=estimate,
            row_estimate_exact=exact,
            primary_key=list(pk),
            foreign_keys=[
                ForeignKeyInfo(
                    name=fk.get("name"),
                    columns=list(fk["constrained_columns"]),
                    referred_table=fk["referred_table"],
                    referred_schema=fk.get("referred_schema"),
                    referred_columns=list(fk["referred_columns"]),
                )
                for fk in ([] if is_view else insp.get_foreign_keys(table, schema=schema))
            ],
            indexes=[
                IndexInfo(
                    name=ix.get("name"),
                    columns=list(ix["column_names"]),
                    unique=bool(ix.get("unique")),
                )
                for ix in ([] if is_view else insp.get_indexes(table, schema=schema))
            ],
        )

    result: TableDescription = _introspect(tools, db, work)
    return result


def _row_estimate(
    conn: Connection, db: Database, table: str, schema: str | None
) -> tuple[int | None, bool]:
    """The planner's estimate on PostgreSQL (when the table was analysed), else a count."""
    if db.dialect == "postgres":
        estimate = conn.execute(
            text(
                "SELECT c.reltuples::bigint FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relname = :table AND n.nspname = coalesce(:schema, current_schema())"
            ),
            {"table": table, "schema": schema},
        ).scalar()
        if estimate is not None and estimate >= 0:
            return int(estimate), False
    count = conn.execute(select(func.count()).select_from(sa_table(table, schema=schema))).scalar()
    return (None if count is None else int(count)), True
