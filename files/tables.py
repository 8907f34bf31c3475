"""Rows and schema of a stored CSV or Parquet file: the storage tools' ``read_csv`` and
``read_parquet``, parsed in an intake worker (``files.worker``, op ``"table"``).

Stored files are written by agents or come from S3, so pandas' C tokenizer and Arrow's Parquet
reader meet them only here, behind the workers' sandbox, never in the gateway. The answer is
JSON-safe (``files.jsonsafe``) and capped at ``max_result_bytes`` of JSON; a file that cannot
be read comes back as ``{"error": message, "error_class": ...}``:

- ``unreadable``: not CSV / not Parquet (pandas' or Arrow's message);
- ``unknown_column``: Parquet columns asked for that the file does not have (a CSV's unknown
  columns are pandas' ``usecols`` error, so ``unreadable``, as the tools always answered);
- ``too_big``: the preview is over the cap.
"""

from __future__ import annotations

import json
from typing import IO, Any, Literal

from files.encoding import SAMPLE_BYTES, detect_encoding
from files.jsonsafe import json_row

TableFormat = Literal["csv", "parquet"]


def preview_table(
    file: IO[bytes],
    *,
    fmt: TableFormat,
    n_rows: int,
    columns: list[str] | None,
    max_result_bytes: int,
    encoding: str | None = None,
) -> dict[str, Any]:
    """At most ``n_rows`` rows of ``columns`` (all by default) of the seekable ``file``;
    ``encoding`` for a CSV when the caller knows it (detected from the first 64 KB otherwise).
    """
    file.seek(0)
    if fmt == "csv":
        result = _csv(file, n_rows, columns, encoding)
    elif fmt == "parquet":
        result = _parquet(file, n_rows, columns)
    else:
        return _refused("unreadable", f"unknown table format {fmt!r}")
    if "error" in result:
        return result
    size = len(json.dumps(result, allow_nan=False, default=str))
    if size > max_result_bytes:
        return _refused(
            "too_big",
            f"the preview is {size} bytes of JSON, over the cap of {max_result_bytes} bytes; "
            "ask for fewer rows (n_rows) or columns",
        )
    return result


def _refused(error_class: str, message: str) -> dict[str, Any]:
    return {"error": message, "error_class": error_class}


def _csv(
    file: IO[bytes], n_rows: int, columns: list[str] | None, encoding: str | None
) -> dict[str, Any]:
    import pandas as pd

    if encoding is None:
        encoding = detect_encoding(file.read(SAMPLE_BYTES)).encoding
        file.seek(0)
    try:
        frame = pd.read_csv(
            file,
            nrows=n_rows + 1,
            usecols=columns,
            encoding=encoding,
            encoding_errors="replace",
        )
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        return _refused("unreadable", str(exc))
    truncated = len(frame) > n_rows
    frame = frame.head(n_rows)
    values = frame.astype(object).where(frame.notna(), None)
    return {
        "columns": [{"name": str(c), "type": str(t)} for c, t in frame.dtypes.items()],
        "rows": [json_row(r) for r in values.itertuples(index=False, name=None)],
        "total_rows": None if truncated else len(frame),
        "truncated": truncated,
    }


def _parquet(file: IO[bytes], n_rows: int, columns: list[str] | None) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(file)
        schema = parquet.schema_arrow
        if columns:
            unknown = [c for c in columns if c not in schema.names]
            if unknown:
                return _refused(
                    "unknown_column", f"has no column(s) {unknown}; it has {schema.names}"
                )
        total = parquet.metadata.num_rows
        batches = []
        taken = 0
        for batch in parquet.iter_batches(batch_size=min(n_rows, 65_536), columns=columns):
            batches.append(batch.slice(0, n_rows - taken))
            taken += batches[-1].num_rows
            if taken >= n_rows:
                break
        selected = [schema.field(c) for c in (columns or schema.names)]
        table = pa.Table.from_batches(batches, schema=pa.schema(selected)) if batches else None
        rows = [json_row(r.values()) for r in table.to_pylist()] if table is not None else []
    except (pa.ArrowException, OSError) as exc:
        return _refused("unreadable", str(exc))
    return {
        "columns": [
            {"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in selected
        ],
        "rows": rows,
        "total_rows": total,
        "truncated": total > len(rows),
    }
