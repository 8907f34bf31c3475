"""Data-tool fixtures: the same tables in SQLite and in a real PostgreSQL server, storage roots
in a temp dir, and moto's standalone S3 server on a free loopback port.

PostgreSQL tests (marker ``postgres``) need ``PYTHON_CODE_TEST_POSTGRES_URL`` (a role that owns
the test database; ``.ci/postgres.sh`` prints it). Without a reachable server they skip with the
reason, unless ``REQUIRE_POSTGRES=1`` or ``REQUIRE_DOCKER=1`` (CI), where they fail.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import pytest

from service.settings import Settings
from service.tools.registry import DataTools

POSTGRES_URL = os.environ.get("PYTHON_CODE_TEST_POSTGRES_URL", "")
POSTGRES_READER_URL = os.environ.get("PYTHON_CODE_TEST_POSTGRES_READER_URL", "")
REQUIRE_POSTGRES = "1" in (os.environ.get("REQUIRE_POSTGRES"), os.environ.get("REQUIRE_DOCKER"))

TABLES = ("accounts", "ledger")

SCHEMA_SQL = [
    "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
    "balance NUMERIC(12, 2) NOT NULL, opened DATE)",
    "CREATE TABLE ledger (id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL "
    "REFERENCES accounts(id), amount NUMERIC(12, 2), note TEXT)",
    "CREATE INDEX ledger_account ON ledger(account_id)",
]
ROWS_SQL = [
    *(
        f"INSERT INTO accounts VALUES ({i}, 'acct{i}', {i * 10}.50, '2024-01-{i:02d}')"
        for i in range(1, 21)
    ),
    *(f"INSERT INTO ledger VALUES ({i}, {i % 20 + 1}, {i}.25, 'n{i}')" for i in range(1, 31)),
]
# A volatile function that writes: the READ ONLY transaction must stop it.
PG_FUNCTION = (
    "CREATE FUNCTION bump_balance() RETURNS integer LANGUAGE sql VOLATILE AS "
    "$$ UPDATE accounts SET balance = balance + 1; SELECT 1 $$"
)


@cache
def postgres_problem() -> str | None:
    if not POSTGRES_URL:
        return "PYTHON_CODE_TEST_POSTGRES_URL is not set (.ci/postgres.sh starts a server)"
    import sqlalchemy as sa

    engine = sa.create_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        return f"no PostgreSQL server at PYTHON_CODE_TEST_POSTGRES_URL ({type(exc).__name__})"
    finally:
        engine.dispose()
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any("postgres" in i.keywords for i in items):
        return
    problem = postgres_problem()
    if problem is None:
        return
    for item in items:
        if "postgres" in item.keywords:
            if REQUIRE_POSTGRES:
                item.add_marker(pytest.mark.usefixtures("_postgres_required"))
            else:
                item.add_marker(pytest.mark.skip(reason=f"PostgreSQL test skipped: {problem}"))


@pytest.fixture
def _postgres_required() -> None:
    pytest.fail(f"REQUIRE_POSTGRES/REQUIRE_DOCKER is set but {postgres_problem()}")


class Backend:
    """A database the tests can write to directly (to set up and to checksum) while the tools
    read it through their read-only engines."""

    def __init__(self, kind: str, url: str, admin: Callable[[str], list[tuple[object, ...]]]):
        self.kind = kind
        self.url = url
        self.admin = admin

    def checksum(self) -> str:
        digest = hashlib.sha256()
        for table in TABLES:
            for row in self.admin(f"SELECT * FROM {table} ORDER BY id"):
                digest.update(repr(row).encode())
        if self.kind == "postgres":
            digest.update(repr(self.admin("SELECT count(*) FROM pg_largeobject_metadata")).encode())
            tables = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        else:
            tables = "SELECT name FROM sqlite_master ORDER BY 1"
        digest.update(repr(self.admin(tables)).encode())
        return digest.hexdigest()


def _sqlite_backend(path: Path) -> Backend:
    conn = sqlite3.connect(path)
    for sql in SCHEMA_SQL + ROWS_SQL:
        conn.execute(sql)
    conn.commit()
    conn.close()

    def admin(sql: str) -> list[tuple[object, ...]]:
        with sqlite3.connect(path) as c:
            rows = c.execute(sql).fetchall()
        c.close()
        return rows

    return Backend("sqlite", f"sqlite:///{path}", admin)


@pytest.fixture(scope="session")
def postgres_backend() -> Iterator[Backend]:
    problem = postgres_problem()
    if problem is not None:
        if REQUIRE_POSTGRES:
            pytest.fail(f"REQUIRE_POSTGRES/REQUIRE_DOCKER is set but {problem}")
        pytest.skip(f"PostgreSQL test skipped: {problem}")
    import sqlalchemy as sa

    engine = sa.create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP FUNCTION IF EXISTS bump_balance()"))
        for table in reversed(TABLES):
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table} CASCADE"))
        for sql in [*SCHEMA_SQL, *ROWS_SQL, PG_FUNCTION, "ANALYZE accounts"]:
            conn.execute(sa.text(sql))

    def admin(sql: str) -> list[tuple[object, ...]]:
        with engine.connect() as c:
            return [tuple(r) for r in c.execute(sa.text(sql))]

    yield Backend("postgres", POSTGRES_URL, admin)
    engine.dispose()


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", marks=pytest.mark.postgres, id="postgres"),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    if request.param == "postgres":
        pg: Backend = request.getfixturevalue("postgres_backend")
        return pg
    return _sqlite_backend(tmp_path_factory.mktemp("db") / "test.db")


def make_settings(tmp: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "execution_dir": tmp / "exec",
        "storage_roots": [tmp / "data"],
        "s3_buckets": [],
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def tools_for(tmp_path: Path) -> Iterator[Callable[..., DataTools]]:
    made: list[DataTools] = []

    def make(**overrides: object) -> DataTools:
        tools = DataTools.from_settings(make_settings(tmp_path, **overrides))
        made.append(tools)
        return tools

    yield make
    for tools in made:
        tools.close()


@pytest.fixture
def tools(backend: Backend, tools_for: Callable[..., DataTools]) -> DataTools:
    """Data tools whose default database is ``backend`` (pool of 2: connections get reused)."""
    return tools_for(database_url=backend.url, db_pool_size=2)


# --- S3: moto's standalone server -------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server in its own process; AWS_* variables point boto3 at it."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail("moto server exited at start")
                time.sleep(0.05)
        saved = {k: os.environ.get(k) for k in _AWS_ENV}
        os.environ.update(
            AWS_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
        )
        try:
            yield endpoint
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    finally:
        proc.terminate()
        proc.wait(timeout=10)


_AWS_ENV = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
