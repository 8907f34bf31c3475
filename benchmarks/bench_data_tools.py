"""What the read-only database layer costs per query, against a plain driver call.

    .venv/bin/python benchmarks/bench_data_tools.py [--repeat 200]
    PYTHON_CODE_TEST_POSTGRES_URL=... .venv/bin/python benchmarks/bench_data_tools.py

For the sample SQLite database (and PostgreSQL when the URL is set), median wall time of:
- baseline: the same SELECT through the bare driver on one open connection (sqlite3 /
  psycopg), fetchall;
- run_query: our database layer (pooled connection, read-only transaction, timeout, row cap);
- execute_query: the SQL guard (sqlglot parse) + run_query + JSON-safe rows;
- guard only: ``check_query`` alone.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.timing import median_ms  # noqa: E402
from security.sql import check_query  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.tools.database import execute_query, run_query  # noqa: E402
from service.tools.models import ExecuteQueryArgs  # noqa: E402
from service.tools.registry import DataTools  # noqa: E402

SQLITE_QUERY = (
    "SELECT c.region, count(*) AS orders FROM orders o JOIN customers c ON c.id = o.customer_id "
    "GROUP BY c.region ORDER BY c.region"
)
PG_QUERY = "SELECT g, g * 2 AS twice FROM generate_series(1, 100) AS g"


def bench(
    tools: DataTools, query: str, dialect: str, baseline: Callable[[], object], n: int
) -> None:
    db = tools.databases.get(None)
    rows = [
        ("baseline (bare driver)", median_ms(baseline, n)),
        ("run_query (read-only layer)", median_ms(
            lambda: run_query(db, query, timeout_s=30, max_rows=10_000), n)),
        ("execute_query (guard + layer + JSON)", median_ms(
            lambda: execute_query(tools, ExecuteQueryArgs(query=query)), n)),
        ("guard only (sqlglot)", median_ms(lambda: check_query(query, dialect), n)),  # type: ignore[arg-type]
    ]  # fmt: skip
    print(f"\n{dialect}: {query[:70]}...")
    base = rows[0][1]
    for name, ms in rows:
        print(f"  {name:<40} {ms:8.3f} ms   x{ms / base:5.1f}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        settings = Settings(execution_dir=Path(tmp) / "exec", storage_roots=[Path(tmp) / "data"])
        tools = DataTools.from_settings(settings)
        sample = settings.execution_dir / "sample.db"
        raw = sqlite3.connect(f"file:{sample}?mode=ro", uri=True)
        bench(tools, SQLITE_QUERY, "sqlite", lambda: raw.execute(SQLITE_QUERY).fetchall(),
              args.repeat)  # fmt: skip
        raw.close()
        tools.close()
        url = os.environ.get("PYTHON_CODE_TEST_POSTGRES_URL")
        if url:
            import psycopg

            pg_tools = DataTools.from_settings(settings.model_copy(update={"database_url": url}))
            conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
            bench(pg_tools, PG_QUERY, "postgres", lambda: conn.execute(PG_QUERY).fetchall(),
                  args.repeat)  # fmt: skip
            conn.close()
            pg_tools.close()
        else:
            print("\n(postgres skipped: set PYTHON_CODE_TEST_POSTGRES_URL)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
