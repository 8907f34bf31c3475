"""The database tools' results on both backends: rows, caps, JSON-safe values, Parquet, and
introspection (tables, schema, sample, describe)."""

from __future__ import annotations

import json
import math
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from files.jsonsafe import json_safe
from security.sql import check_query
from service.errors import InvalidRequest, NotFound, QueryFailed, QueryRejected
from service.tools.database import (
    describe_table,
    execute_query,
    get_schema,
    get_table_sample,
    list_tables,
)
from service.tools.models import (
    ExecuteQueryArgs,
    ListTablesArgs,
    ReadTableArgs,
    SampleArgs,
    TableArgs,
)
from service.tools.registry import DataTools
from service.tools.storage import read_parquet
from tests.tools.conftest import Backend


def test_query_with_params_returns_rows(tools: DataTools) -> None:
    result = execute_query(
        tools,
        ExecuteQueryArgs(
            query="SELECT id, name FROM accounts WHERE id <= :top ORDER BY id", params={"top": 3}
        ),
    )
    assert result.columns == ["id", "name"]
    assert result.rows == [[1, "acct1"], [2, "acct2"], [3, "acct3"]]
    assert (result.row_count, result.truncated, result.stored_as) == (3, False, None)


def test_row_cap_sets_truncated(tools: DataTools) -> None:
    result = execute_query(
        tools, ExecuteQueryArgs(query="SELECT id FROM ledger ORDER BY id", max_rows=5)
    )
    assert result.rows == [[1], [2], [3], [4], [5]]
    assert result.truncated is True
    full = execute_query(tools, ExecuteQueryArgs(query="SELECT id FROM ledger"))
    assert (full.row_count, full.truncated) == (30, False)


def test_limits_beyond_the_settings_are_refused(tools: DataTools) -> None:
    with pytest.raises(InvalidRequest, match="max_rows must be at most 10000"):
        execute_query(tools, ExecuteQueryArgs(query="SELECT 1", max_rows=10_001))
    with pytest.raises(InvalidRequest, match="timeout must be at most"):
        execute_query(tools, ExecuteQueryArgs(query="SELECT 1", timeout=10_000))


def test_values_are_json_safe(tools: DataTools, backend: Backend) -> None:
    result = execute_query(
        tools,
        ExecuteQueryArgs(query="SELECT balance, opened FROM accounts WHERE id = 1"),
    )
    json.dumps(result.model_dump())  # no custom encoder needed
    balance, opened = result.rows[0]
    if backend.kind == "postgres":
        assert balance == "10.50" and opened == "2024-01-01"
    else:
        assert balance == 10.5 and opened == "2024-01-01"


@pytest.mark.postgres
def test_postgres_types_are_json_safe(postgres_backend: Backend, tools_for: object) -> None:
    tools = tools_for(database_url=postgres_backend.url)  # type: ignore[operator]
    result = execute_query(
        tools,
        ExecuteQueryArgs(
            query="SELECT DATE '2024-02-29' AS d, TIMESTAMP '2024-01-02 03:04:05' AS ts, "
            "12.345::numeric AS n, '\\x0102'::bytea AS b, 'NaN'::float8 AS nan, "
            "'Infinity'::float8 AS inf, INTERVAL '90 seconds' AS iv, "
            "'{\"a\": [1, 2]}'::jsonb AS j, gen_random_uuid() IS NOT NULL AS u"
        ),
    )
    assert result.rows[0] == [
        "2024-02-29",
        "2024-01-02T03:04:05",
        "12.345",
        "AQI=",
        "NaN",
        "Infinity",
        90.0,
        {"a": [1, 2]},
        True,
    ]
    json.dumps(result.model_dump())


def test_json_safe_converts_awkward_values() -> None:
    assert json_safe(Decimal("1.10")) == "1.10"
    assert json_safe(Decimal("NaN")) == "NaN"
    assert json_safe(float("-inf")) == "-Infinity"
    assert json_safe(math.nan) == "NaN"
    assert json_safe(date(2024, 1, 2)) == "2024-01-02"
    assert json_safe(b"\x00\xff") == "AP8="
    assert json_safe({"k": (1, Decimal("2"))}) == {"k": [1, "2"]}


def test_result_saved_as_parquet_reads_back(tools: DataTools) -> None:
    result = execute_query(
        tools,
        ExecuteQueryArgs(
            query="SELECT id, name, balance FROM accounts ORDER BY id", save_as_parquet=True
        ),
    )
    assert result.stored_as is not None and result.stored_as.endswith(".parquet")
    assert result.preview is True and len(result.rows) == 20 and result.row_count == 20
    back = read_parquet(tools, ReadTableArgs(file_path=result.stored_as, n_rows=2))
    assert [c.name for c in back.columns] == ["id", "name", "balance"]
    assert back.rows[0][:2] == [1, "acct1"]
    assert back.total_rows == 20 and back.truncated is True


def test_database_errors_are_clear(tools: DataTools) -> None:
    with pytest.raises(QueryFailed, match="refused the query"):
        execute_query(tools, ExecuteQueryArgs(query="SELECT no_such_column FROM accounts"))
    with pytest.raises(QueryRejected, match="exactly one statement"):
        execute_query(tools, ExecuteQueryArgs(query="SELECT 1; SELECT 2"))
    with pytest.raises(NotFound, match="no database named 'nope'"):
        execute_query(tools, ExecuteQueryArgs(query="SELECT 1", database="nope"))


def test_explain_is_allowed(tools: DataTools, backend: Backend) -> None:
    plan = "EXPLAIN QUERY PLAN" if backend.kind == "sqlite" else "EXPLAIN"
    result = execute_query(tools, ExecuteQueryArgs(query=f"{plan} SELECT * FROM accounts"))
    assert result.row_count >= 1


def test_introspection(tools: DataTools) -> None:
    names = {t.name: t.kind for t in list_tables(tools, ListTablesArgs()).tables}
    assert names["accounts"] == "table" and names["ledger"] == "table"

    schema = get_schema(tools, TableArgs(table="accounts"))
    columns = {c.name: c for c in schema.columns}
    assert list(columns) == ["id", "name", "balance", "opened"]
    assert columns["id"].primary_key and columns["name"].nullable is False

    described = describe_table(tools, TableArgs(table="ledger"))
    assert described.primary_key == ["id"]
    assert described.foreign_keys[0].referred_table == "accounts"
    assert described.foreign_keys[0].columns == ["account_id"]
    assert any(ix.columns == ["account_id"] for ix in described.indexes)
    assert described.row_estimate is not None and described.row_estimate > 0

    sample = get_table_sample(tools, SampleArgs(table="accounts", n=3))
    assert sample.columns[:2] == ["id", "name"] and sample.row_count == 3


def test_unknown_table_is_not_found_and_names_are_not_sql(tools: DataTools) -> None:
    with pytest.raises(NotFound, match="no table or view"):
        describe_table(tools, TableArgs(table="accounts; DROP TABLE ledger"))
    with pytest.raises(NotFound):
        get_table_sample(tools, SampleArgs(table='accounts" --'))


def test_sample_database_by_default(tools_for: object) -> None:
    tools = tools_for()  # type: ignore[operator]
    tables = {t.name for t in list_tables(tools, ListTablesArgs()).tables}
    assert {"customers", "orders", "order_items", "products", "revenue_by_region"} <= tables
    result = execute_query(
        tools, ExecuteQueryArgs(query="SELECT region, revenue FROM revenue_by_region")
    )
    assert result.row_count == 4


def test_guard_accepts_ordinary_reads() -> None:
    for sql in (
        "SELECT 1",
        "WITH t AS (SELECT 1 AS x) SELECT x FROM t",
        "SELECT a FROM t UNION ALL SELECT b FROM u",
        "VALUES (1), (2)",
        "EXPLAIN ANALYZE SELECT * FROM t",
        "select 1 -- a comment; with a semicolon",
    ):
        assert check_query(sql, "postgres").sql == sql


def test_saved_results_expire_with_the_artifacts(tools: DataTools) -> None:
    import time

    from service.cleanup import sweep_expired

    saved = execute_query(tools, ExecuteQueryArgs(query="SELECT 1 AS x", save_as_parquet=True))
    assert saved.stored_as is not None
    sweep_expired(tools.settings)
    assert Path(saved.stored_as).exists()  # young: kept
    later = time.time() + tools.settings.artifact_retention_s + 1
    sweep_expired(tools.settings, now=later)
    assert not Path(saved.stored_as).exists()
