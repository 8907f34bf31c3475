"""Database configuration and availability: named databases, unsupported URLs, an unreachable
server, an exhausted pool, and superuser logins refused."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from service.errors import DatabaseUnavailable, InvalidRequest, QueryFailed
from service.settings import Settings
from service.tools.database import execute_query, run_query
from service.tools.db_engines import make_database
from service.tools.models import ExecuteQueryArgs
from service.tools.registry import DataTools
from tests.tools.conftest import Backend

SUPERUSER_URL = os.environ.get("PYTHON_CODE_TEST_POSTGRES_SUPERUSER_URL", "")


def test_named_databases(backend: Backend, tools_for: Callable[..., DataTools]) -> None:
    tools = tools_for(databases={"main": backend.url})
    assert tools.databases.names == ["main"]
    result = execute_query(tools, ExecuteQueryArgs(query="SELECT count(*) FROM accounts"))
    assert result.database == "main" and result.rows == [[20]]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u:p@localhost/db", "not supported"),
        ("not a url", "not a database URL"),
        ("sqlite://", "in-memory"),
    ],
)
def test_unsupported_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        make_database("x", url, Settings())


def test_missing_sqlite_file() -> None:
    with pytest.raises(DatabaseUnavailable, match="does not exist"):
        make_database("x", "sqlite:////nonexistent-dir/no/such.db", Settings())


def test_unreachable_server_is_503(tools_for: Callable[..., DataTools]) -> None:
    tools = tools_for(database_url="postgresql://u:p@127.0.0.1:1/none")
    with pytest.raises(DatabaseUnavailable, match="cannot be reached"):
        execute_query(tools, ExecuteQueryArgs(query="SELECT 1"))


def test_exhausted_pool_is_503(backend: Backend, tools_for: Callable[..., DataTools]) -> None:
    tools = tools_for(database_url=backend.url, db_pool_size=1, db_pool_timeout=0.2)
    db = tools.databases.get(None)
    with (
        db.read_only(10),  # holds the only connection
        pytest.raises(DatabaseUnavailable, match="connections are busy"),
    ):
        run_query(db, "SELECT 1", timeout_s=5, max_rows=1)
    assert run_query(db, "SELECT 1", timeout_s=5, max_rows=1).rows == [(1,)]


@pytest.mark.postgres
def test_superuser_login_is_refused(
    postgres_backend: Backend, tools_for: Callable[..., DataTools]
) -> None:
    if not SUPERUSER_URL:
        pytest.skip("PYTHON_CODE_TEST_POSTGRES_SUPERUSER_URL is not set (.ci/postgres.sh)")
    tools = tools_for(database_url=SUPERUSER_URL)
    with pytest.raises(DatabaseUnavailable, match="superuser"):
        execute_query(tools, ExecuteQueryArgs(query="SELECT 1"))
    # Allowed explicitly, the read-only transaction still refuses writes.
    allowed = tools_for(database_url=SUPERUSER_URL, db_allow_superuser=True)
    with pytest.raises(QueryFailed, match="read-only"):
        run_query(
            allowed.databases.get(None),
            "INSERT INTO accounts (id, name, balance) VALUES (97, 'x', 1)",
            timeout_s=5,
            max_rows=1,
        )


def test_a_broken_database_answers_503_and_the_others_work(
    backend: Backend, tools_for: Callable[..., DataTools]
) -> None:
    tools = tools_for(databases={"good": backend.url, "bad": "sqlite:////nonexistent/x.db"})
    assert sorted(tools.databases.names) == ["bad", "good"]
    with pytest.raises(DatabaseUnavailable, match=r"'bad' is not usable: .*does not exist"):
        execute_query(tools, ExecuteQueryArgs(query="SELECT 1", database="bad"))
    result = execute_query(tools, ExecuteQueryArgs(query="SELECT 1 AS x", database="good"))
    assert result.rows == [[1]]
