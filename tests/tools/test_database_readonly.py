"""The write-attempt matrix: every attempt is refused or fails and the tables' checksum does
not change, on SQLite and PostgreSQL, with the SQL guard on and with it bypassed (the database
layer called directly), so the database is shown to be the boundary."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.errors import QueryFailed, QueryRejected, QueryTimeout
from service.tools.database import execute_query, run_query
from service.tools.models import ExecuteQueryArgs
from service.tools.registry import DataTools
from tests.tools.conftest import POSTGRES_READER_URL, Backend

MARKER = Path("/tmp/python-coder-copy-to-program-ran")

ATTACKS = {
    "insert": "INSERT INTO accounts (id, name, balance) VALUES (99, 'mallory', 1)",
    "update": "UPDATE accounts SET balance = 0",
    "data_modifying_cte": "WITH gone AS (DELETE FROM ledger RETURNING *) SELECT count(*) FROM gone",
    "select_for_update": "SELECT * FROM accounts FOR UPDATE",
    "set_transaction_read_write": "SET TRANSACTION READ WRITE",
    "set_config_transaction": "SELECT set_config('transaction_read_only', 'off', true)",
    "set_config_session": (
        "SELECT set_config('default_transaction_read_only', 'off', false), "
        "(SELECT count(*) FROM accounts)"
    ),
    "copy_to_program": f"COPY (SELECT 1) TO PROGRAM 'touch {MARKER}'",
    "copy_from": "COPY accounts FROM '/etc/hostname'",
    "lo_import": "SELECT lo_import('/etc/hostname')",
    "do_block": "DO $$ BEGIN INSERT INTO accounts VALUES (98, 'x', 1, NULL); END $$",
    "stacked": "SELECT 1; DELETE FROM ledger",
    "stacked_commit": "SELECT 1; COMMIT; DELETE FROM ledger",
    "comment_then_statement": "SELECT 1 /* ; */; DELETE FROM ledger -- trailing",
    "line_comment_newline": "SELECT 1 --\n; UPDATE accounts SET balance = 0",
    "volatile_function_that_writes": "SELECT bump_balance()",
    "select_into": "SELECT * INTO stolen FROM accounts",
    "create_table": "CREATE TABLE stolen (a integer)",
    "drop_table": "DROP TABLE ledger",
    "begin_read_write": "BEGIN READ WRITE",
    "commit": "COMMIT",
    # SQLite's own doors
    "attach": "ATTACH DATABASE '/tmp/python-coder-attached.db' AS other",
    "load_extension": "SELECT load_extension('/tmp/nothing')",
    "pragma_write": "PRAGMA writable_schema = 1",
    "pragma_query_only_off": "PRAGMA query_only = 0",
    "vacuum_into": "VACUUM INTO '/tmp/python-coder-vacuum.db'",
    "begin_immediate": "BEGIN IMMEDIATE",
}


# Transaction control writes nothing by itself; PostgreSQL accepts it (COMMIT ends our read-only
# transaction). What matters is that nothing changes and the next
# statement on that connection is read-only again, which _after_attempt checks.
# A session-level set_config is allowed in a read-only transaction and rolled back with it.
MAY_SUCCEED = {("postgres", "commit"), ("postgres", "set_config_session")}


@pytest.fixture(autouse=True)
def _no_marker() -> None:
    MARKER.unlink(missing_ok=True)


def _after_attempt(backend: Backend, tools: DataTools, before: str) -> None:
    assert backend.checksum() == before
    assert not MARKER.exists(), "COPY ... TO PROGRAM ran"
    assert not Path("/tmp/python-coder-vacuum.db").exists()
    # The pooled connection is still read-only after the attempt (session state was reset).
    db = tools.databases.get(None)
    for _ in range(3):  # more than the pool size: every connection is checked
        with pytest.raises(QueryFailed):
            run_query(db, ATTACKS["insert"], timeout_s=10, max_rows=1)
    assert backend.checksum() == before


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_database_refuses_writes_without_the_guard(
    attack: str, backend: Backend, tools: DataTools
) -> None:
    before = backend.checksum()
    db = tools.databases.get(None)
    if (backend.kind, attack) in MAY_SUCCEED:
        run_query(db, ATTACKS[attack], timeout_s=10, max_rows=10)
    else:
        with pytest.raises((QueryFailed, QueryTimeout)):
            run_query(db, ATTACKS[attack], timeout_s=10, max_rows=10)
    _after_attempt(backend, tools, before)


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_guard_refuses_writes_early(attack: str, backend: Backend, tools: DataTools) -> None:
    before = backend.checksum()
    with pytest.raises((QueryRejected, QueryFailed)) as caught:
        execute_query(tools, ExecuteQueryArgs(query=ATTACKS[attack]))
    if attack != "volatile_function_that_writes":  # looks like a read: the database stops it
        assert isinstance(caught.value, QueryRejected)
    _after_attempt(backend, tools, before)


@pytest.mark.postgres
def test_postgres_read_only_role_reads_and_cannot_write(
    postgres_backend: Backend, tools_for: object
) -> None:
    if not POSTGRES_READER_URL:
        pytest.skip("PYTHON_CODE_TEST_POSTGRES_READER_URL is not set")
    tools = tools_for(database_url=POSTGRES_READER_URL)  # type: ignore[operator]
    before = postgres_backend.checksum()
    result = execute_query(tools, ExecuteQueryArgs(query="SELECT count(*) AS n FROM accounts"))
    assert result.rows == [[20]]
    with pytest.raises(QueryFailed):
        run_query(tools.databases.get(None), ATTACKS["insert"], timeout_s=10, max_rows=1)
    assert postgres_backend.checksum() == before


@pytest.mark.postgres
def test_pg_sleep_stops_at_the_timeout(postgres_backend: Backend, tools_for: object) -> None:
    tools = tools_for(database_url=postgres_backend.url)  # type: ignore[operator]
    with pytest.raises(QueryTimeout, match="timeout of 1 s"):
        execute_query(tools, ExecuteQueryArgs(query="SELECT pg_sleep(100)", timeout=1))
    # The connection went back to the pool healthy.
    assert execute_query(tools, ExecuteQueryArgs(query="SELECT 1 AS one")).rows == [[1]]


def test_recursive_cte_stops_at_the_timeout(backend: Backend, tools: DataTools) -> None:
    endless = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    )
    with pytest.raises(QueryTimeout):
        execute_query(tools, ExecuteQueryArgs(query=endless, timeout=1))
    assert execute_query(tools, ExecuteQueryArgs(query="SELECT 1 AS one")).rows == [[1]]
