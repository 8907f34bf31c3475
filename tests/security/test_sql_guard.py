"""The SQL guard: one read-only statement passes; everything else gets a reason."""

from __future__ import annotations

import pytest

from security.sql import QueryRejected, check_query


@pytest.mark.parametrize("dialect", ["postgres", "sqlite"])
@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELECT 1", "select"),
        ("SELECT 1;", "select"),
        ("WITH t AS (SELECT 1 AS x) SELECT x FROM t", "select"),
        ("SELECT 1 UNION SELECT 2", "select"),
        ("VALUES (1)", "select"),
        ("EXPLAIN SELECT 1", "explain"),
        ("EXPLAIN QUERY PLAN SELECT 1", "explain"),
        ("EXPLAIN ANALYZE SELECT 1", "explain"),
        ("SELECT 'a; DELETE FROM t' AS s", "select"),
        ("SELECT 1 /* ; DELETE FROM t */", "select"),
    ],
)
def test_reads_pass(sql: str, kind: str, dialect: str) -> None:
    assert check_query(sql, dialect).kind == kind  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("", "empty"),
        ("SELECT 1; SELECT 2", "exactly one statement"),
        ("SELECT 1 --\n; DELETE FROM t", "exactly one statement"),
        ("INSERT INTO t VALUES (1)", "not an INSERT statement"),
        ("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", "may not contain DELETE"),
        ("SELECT * FROM t FOR UPDATE", "locking clause"),
        ("SELECT * INTO t2 FROM t", "SELECT ... INTO"),
        ("SET TRANSACTION READ WRITE", "not a SET statement"),
        ("SELECT set_config('a', 'b', false)", "set_config() is not allowed"),
        ("SELECT pg_catalog.lo_import('/etc/passwd')", "lo_import() is not allowed"),
        ("COPY (SELECT 1) TO PROGRAM 'id'", "not a COPY statement"),
        ("DO $$ BEGIN END $$", "not a DO statement"),
        ("EXPLAIN ANALYZE DELETE FROM t", "not a DELETE statement"),
        ("EXPLAIN", "needs a statement"),
        ("SELECT FROM WHERE (", "could not be parsed"),
        ("SELECT 1\x00", "NUL"),
        ("SELECT " + "1, " * 50_000 + "1", "longer than"),
    ],
)
def test_everything_else_is_rejected_with_a_reason(sql: str, reason: str) -> None:
    with pytest.raises(QueryRejected, match=reason.replace("(", r"\(").replace(")", r"\)")):
        check_query(sql, "postgres")


@pytest.mark.parametrize(
    "sql",
    ["ATTACH DATABASE 'x.db' AS x", "PRAGMA writable_schema = 1", "SELECT load_extension('x')"],
)
def test_sqlite_doors_are_rejected(sql: str) -> None:
    with pytest.raises(QueryRejected):
        check_query(sql, "sqlite")
