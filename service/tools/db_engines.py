"""Read-only database engines: the database, not our SQL guard, is what refuses writes.

PostgreSQL (psycopg 3):
- every session starts with ``default_transaction_read_only=on`` and every transaction is
  ``BEGIN READ ONLY`` (psycopg's ``read_only``); ``statement_timeout`` is set per call with a
  transaction-local ``set_config`` that also takes the snapshot, so a later
  ``SET TRANSACTION READ WRITE`` is refused by the server;
- every statement goes over the extended protocol (``prepare_threshold=0``), which carries
  exactly one statement: ``SELECT 1; COMMIT; ...`` cannot smuggle a second one;
- a connection returned to the pool is rolled back and ``DISCARD ALL``-ed (session settings,
  advisory locks, temp tables, prepared statements);
- superuser logins are refused unless ``PYTHON_CODE_DB_ALLOW_SUPERUSER`` (a superuser could
  ``COPY ... TO PROGRAM``); docs/data-tools.md shows the least-privilege role to use.

SQLite: opened through a ``mode=ro`` URI with ``PRAGMA query_only``, plus an authorizer that
allows reading and nothing else (no writes, ATTACH, load_extension, transactions, or pragmas
beyond a list of read-only introspection ones); a progress handler enforces the timeout.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

from service.errors import DatabaseUnavailable, InvalidRequest, NotFound
from service.settings import Settings
from service.tools.sample_db import ensure_sample_database

log = logging.getLogger(__name__)

Dialect = Literal["postgres", "sqlite"]
DEFAULT = "default"

# Pragmas a read-only caller (and SQLAlchemy's inspector) may use; with an argument only the
# per-table introspection ones.
SQLITE_READ_PRAGMAS = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "database_list",
        "collation_list",
        "read_uncommitted",
        "encoding",
        "user_version",
        "schema_version",
        "page_count",
        "page_size",
        "freelist_count",
        "foreign_keys",
        "query_only",
        "compile_options",
    }
)
SQLITE_PRAGMAS_WITH_ARGUMENT = frozenset(
    {"table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo"}
    | {"foreign_key_list"}
)
SQLITE_DENIED_FUNCTIONS = frozenset({"load_extension", "readfile", "writefile", "edit"})


def sqlite_authorizer(
    action: int, arg1: str | None, arg2: str | None, db_name: str | None, trigger: str | None
) -> int:
    """Allow reading, deny everything else (``sqlite3.Connection.set_authorizer``)."""
    if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE):
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION:
        return sqlite3.SQLITE_DENY if (arg2 or "").lower() in SQLITE_DENIED_FUNCTIONS else 0
    if action == sqlite3.SQLITE_PRAGMA:
        name = (arg1 or "").lower()
        if name in SQLITE_READ_PRAGMAS and (arg2 is None or name in SQLITE_PRAGMAS_WITH_ARGUMENT):
            return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


@dataclass
class Database:
    """One configured database: its name, dialect and pooled engine."""

    name: str
    dialect: Dialect
    engine: Engine
    timeout_hook: Callable[[Connection, float], contextlib.AbstractContextManager[None]]

    @contextlib.contextmanager
    def read_only(self, timeout_s: float) -> Iterator[Connection]:
        """A pooled connection inside a read-only transaction that ends after ``timeout_s``;
        always rolled back."""
        with self.engine.connect() as conn:
            try:
                with self.timeout_hook(conn, timeout_s):
                    yield conn
            finally:
                conn.rollback()


@contextlib.contextmanager
def _postgres_timeout(conn: Connection, timeout_s: float) -> Iterator[None]:
    # A SELECT (not SET LOCAL): it takes the transaction's snapshot, after which the server
    # refuses SET TRANSACTION READ WRITE ("must be called before any query").
    from sqlalchemy import text

    conn.execute(
        text("SELECT set_config('statement_timeout', :ms, true)"),
        {"ms": str(max(1, int(timeout_s * 1000)))},
    )
    yield


@contextlib.contextmanager
def _sqlite_timeout(conn: Connection, timeout_s: float) -> Iterator[None]:
    raw = conn.connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    deadline = time.monotonic() + timeout_s

    def past_deadline() -> int:
        return 1 if time.monotonic() > deadline else 0  # non-zero interrupts the statement

    raw.set_progress_handler(past_deadline, 1000)
    try:
        yield
    finally:
        raw.set_progress_handler(None, 0)


def _postgres_engine(url: str, settings: Settings) -> Engine:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    engine = create_engine(
        parsed,
        poolclass=QueuePool,
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout,
        pool_pre_ping=True,
        connect_args={
            "options": "-c default_transaction_read_only=on",
            "application_name": "python-coder",
            "connect_timeout": 10,
            "prepare_threshold": 0,  # extended protocol: one statement per execute
        },
    )
    allow_superuser = settings.db_allow_superuser

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
        dbapi_conn.read_only = True  # psycopg: every transaction is BEGIN READ ONLY
        with dbapi_conn.cursor() as cur:
            cur.execute("SELECT current_setting('is_superuser')")
            superuser = cur.fetchone()[0] == "on"
        dbapi_conn.rollback()
        if superuser and not allow_superuser:
            dbapi_conn.close()
            raise DatabaseUnavailable(
                "refusing to connect as a PostgreSQL superuser (it could run COPY ... TO "
                "PROGRAM); use a read-only role (docs/data-tools.md) or set "
                "PYTHON_CODE_DB_ALLOW_SUPERUSER=true"
            )

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
        if dbapi_conn is None:
            return
        try:
            dbapi_conn.rollback()
            dbapi_conn.autocommit = True
            dbapi_conn.execute("DISCARD ALL")
            dbapi_conn.autocommit = False
        except Exception:
            log.warning("could not reset a database connection; dropping it", exc_info=True)
            record.invalidate()

    return engine


def _sqlite_engine(path: str, settings: Settings) -> Engine:
    if path in ("", ":memory:"):
        raise InvalidRequest("an in-memory SQLite database has nothing to read; name a file")
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise DatabaseUnavailable(f"SQLite database file {str(file)!r} does not exist")
    uri = f"file:{quote(str(file))}?mode=ro"

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=5)
        conn.execute("PRAGMA query_only = 1")
        conn.set_authorizer(sqlite_authorizer)
        return conn

    return create_engine(
        "sqlite+pysqlite://",
        creator=connect,
        poolclass=QueuePool,
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout,
    )


def make_database(name: str, url: str, settings: Settings) -> Database:
    """Build one read-only database from its SQLAlchemy URL (PostgreSQL or SQLite)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidRequest(f"database {name!r}: not a database URL") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return Database(
            name, "sqlite", _sqlite_engine(parsed.database or "", settings), _sqlite_timeout
        )
    if backend in ("postgresql", "postgres"):
        return Database(name, "postgres", _postgres_engine(url, settings), _postgres_timeout)
    raise InvalidRequest(
        f"database {name!r}: {backend!r} is not supported (PostgreSQL and SQLite are: their "
        "read-only enforcement is what the tools rely on)"
    )


class Databases:
    """The configured databases by name; built once in the app lifespan."""

    def __init__(
        self, databases: dict[str, Database], broken: dict[str, str] | None = None
    ) -> None:
        self._databases = databases
        self._broken = broken or {}  # name -> why it could not be set up

    @classmethod
    def from_settings(cls, settings: Settings) -> Databases:
        urls = dict(settings.databases)
        if settings.database_url:
            urls[DEFAULT] = settings.database_url
        if not urls:
            urls[DEFAULT] = f"sqlite:///{ensure_sample_database(settings.execution_dir)}"
        built: dict[str, Database] = {}
        broken: dict[str, str] = {}
        for name, url in urls.items():
            # A misconfigured database makes its tools answer 503 with the reason; the rest of
            # the gateway (and the other databases) keep working.
            try:
                built[name] = make_database(name, url, settings)
            except (InvalidRequest, DatabaseUnavailable) as exc:
                log.error("database %r is not usable: %s", name, exc.message)
                broken[name] = exc.message
        return cls(built, broken)

    @property
    def names(self) -> list[str]:
        return [*self._databases, *self._broken]

    def get(self, name: str | None) -> Database:
        if name is None:
            name = DEFAULT if DEFAULT in self.names else self.names[0]
        if name in self._broken:
            raise DatabaseUnavailable(f"database {name!r} is not usable: {self._broken[name]}")
        try:
            return self._databases[name]
        except KeyError:
            raise NotFound(
                f"no database named {name!r}; configured: {', '.join(self.names)}"
            ) from None

    def close(self) -> None:
        for db in self._databases.values():
            db.engine.dispose()
