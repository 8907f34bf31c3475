"""SQL guard: one read-only statement (SELECT, WITH ... SELECT, VALUES, EXPLAIN), or a clear no.

A first filter for a precise early error, not the boundary: the database is (a READ ONLY
transaction on PostgreSQL, a ``mode=ro`` connection with an authorizer on SQLite; see
``service/tools/db_engines.py``). The statement is parsed with sqlglot, never matched with
regular expressions, so comments, quoting and dollar strings cannot hide a second statement.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

# sqlglot logs "falling back to parsing as a Command" for EXPLAIN and DO; we handle those.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

Dialect = Literal["postgres", "sqlite"]
StatementKind = Literal["select", "explain"]

MAX_QUERY_CHARS = 100_000

# Anything that changes data, schema, session or transaction state. Looked up by name so a
# sqlglot release that renames one class does not break the import.
_FORBIDDEN_NODE_NAMES = (
    "Insert",
    "Update",
    "Delete",
    "Merge",
    "Create",
    "Drop",
    "Alter",
    "AlterTable",
    "TruncateTable",
    "Copy",
    "Set",
    "SetItem",
    "Pragma",
    "Attach",
    "Detach",
    "Transaction",
    "Commit",
    "Rollback",
    "Command",
    "Into",
    "Lock",
    "LoadData",
    "Use",
    "Grant",
    "Revoke",
    "Analyze",
    "Cache",
    "Uncache",
)
FORBIDDEN_NODES: tuple[type[exp.Expression], ...] = tuple(
    cls for name in _FORBIDDEN_NODE_NAMES if isinstance(cls := getattr(exp, name, None), type)
)

# Functions with side effects (or that read the server's files); the database refuses them
# too, this only makes the error clear. Lower-case names, any schema.
FORBIDDEN_FUNCTIONS = frozenset(
    {
        "set_config",
        "lo_import",
        "lo_export",
        "lo_create",
        "lo_creat",
        "lo_unlink",
        "lo_put",
        "lo_from_bytea",
        "pg_read_file",
        "pg_read_binary_file",
        "pg_ls_dir",
        "pg_stat_file",
        "pg_file_write",
        "pg_terminate_backend",
        "pg_cancel_backend",
        "pg_reload_conf",
        "pg_rotate_logfile",
        "pg_switch_wal",
        "pg_create_restore_point",
        "pg_advisory_lock",
        "pg_advisory_xact_lock",
        "pg_advisory_lock_shared",
        "pg_try_advisory_lock",
        "pg_notify",
        "nextval",
        "setval",
        "dblink",
        "dblink_exec",
        "dblink_connect",
        "load_extension",
        "writefile",
        "readfile",
        "edit",
    }
)

# What EXPLAIN may carry before its statement: ANALYZE, VERBOSE, QUERY PLAN, (options).
_EXPLAIN_PREFIX = re.compile(r"^\s*(?:ANALY[SZ]E\b|VERBOSE\b|QUERY\s+PLAN\b|\([^()]*\))", re.I)


class QueryRejected(ValueError):
    """The statement is not a single read-only query; the message says why."""


@dataclass(frozen=True)
class CheckedQuery:
    kind: StatementKind  # "explain" statements cannot run in a server-side cursor
    sql: str


def check_query(sql: str, dialect: Dialect) -> CheckedQuery:
    """Accept exactly one read-only statement or raise ``QueryRejected`` naming the problem."""
    if not sql.strip():
        raise QueryRejected("the query is empty")
    if len(sql) > MAX_QUERY_CHARS:
        raise QueryRejected(f"the query is longer than {MAX_QUERY_CHARS} characters")
    if "\x00" in sql:
        raise QueryRejected("the query contains a NUL character")
    statements = _parse(sql, dialect)
    if len(statements) != 1:
        raise QueryRejected(
            f"exactly one statement is allowed, found {len(statements)} "
            "(separate queries need separate calls)"
        )
    statement = statements[0]
    if isinstance(statement, exp.Command) and statement.name.upper() == "EXPLAIN":
        inner = statement.expression.name if statement.expression else ""
        while match := _EXPLAIN_PREFIX.match(inner):
            inner = inner[match.end() :]
        if not inner.strip():
            raise QueryRejected("EXPLAIN needs a statement to explain")
        _check_read_only(_single(inner, dialect))
        return CheckedQuery(kind="explain", sql=sql)
    _check_read_only(statement)
    return CheckedQuery(kind="select", sql=sql)


def _parse(sql: str, dialect: Dialect) -> list[Any]:
    try:
        parsed = sqlglot.parse(sql, read=dialect)
    except SqlglotError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise QueryRejected(f"the query could not be parsed: {first}") from exc
    return [s for s in parsed if s is not None]


def _single(sql: str, dialect: Dialect) -> Any:
    statements = _parse(sql, dialect)
    if len(statements) != 1:
        raise QueryRejected("EXPLAIN may explain exactly one statement")
    return statements[0]


def _check_read_only(statement: exp.Expression) -> None:
    if not isinstance(statement, exp.Select | exp.SetOperation | exp.Values):
        raise QueryRejected(
            f"only SELECT, WITH ... SELECT, VALUES and EXPLAIN are allowed, not "
            f"{_describe(statement)}"
        )
    for node in statement.walk():
        if isinstance(node, FORBIDDEN_NODES):
            raise QueryRejected(f"read-only queries may not contain {_describe(node)}")
        if isinstance(node, exp.Func):
            name = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
            if name.lower() in FORBIDDEN_FUNCTIONS:
                raise QueryRejected(f"the function {name.lower()}() is not allowed")


def _describe(node: exp.Expression) -> str:
    if isinstance(node, exp.Lock):
        return "a locking clause (FOR UPDATE / FOR SHARE)"
    if isinstance(node, exp.Into):
        return "SELECT ... INTO (it creates a table)"
    if isinstance(node, exp.Command):
        return f"a {node.name.upper()} statement"
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", type(node).__name__).upper()
    if node.parent is not None:
        return words
    return f"{'an' if words[0] in 'AEIOU' else 'a'} {words} statement"
