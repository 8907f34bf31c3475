"""CSV/TSV and Excel: columns, dtypes, row counts, a few sample rows.

A CSV's rows are counted by streaming it once (newlines outside quoted fields), never by
loading it into a DataFrame; pandas reads only a head sample for dtypes and sample rows.
"""

from __future__ import annotations

import codecs
import csv
from pathlib import Path
from typing import Any

from files.encoding import detect_encoding
from files.metadata.common import SAMPLE_ROWS, json_safe, records
from files.metadata.text import CHUNK, correct_encoding, decode_head, read_head, scan_text

DTYPE_SAMPLE_ROWS = 1000
MAX_COLUMNS = 200
MAX_SHEETS = 20
_DELIMITERS = (",", "\t", ";", "|")


def guess_delimiter(lines: list[str], default: str) -> str:
    """The delimiter that splits the head lines into the most consistent >1 field count."""
    best, best_score = default, 0.0
    for delim in sorted(_DELIMITERS, key=lambda d: d != default):
        try:
            counts = [len(row) for row in csv.reader(lines, delimiter=delim)]
        except csv.Error:
            continue
        if not counts:
            continue
        mode = max(set(counts), key=counts.count)
        if mode <= 1:
            continue
        score = counts.count(mode) / len(counts) + min(mode, 50) / 1000
        if score > best_score:
            best, best_score = delim, score
    return best


def _count_newlines(data: bytes) -> int:
    if len(data) < 65536:
        return data.count(b"\n")
    import numpy as np

    return int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == 10))


def count_records(path: Path, encoding: str, quote: str = '"') -> tuple[int, bool, int | None]:
    """One streamed pass: records (newlines outside quotes), whether quotes balance, and the
    offset of the first byte that is not valid UTF-8 (``None`` if fine or not UTF-8)."""
    newlines, in_quote, last_nl = 0, False, True
    wide = encoding.startswith(("utf-16", "utf-32"))
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace") if wide else None
    validator = codecs.getincrementaldecoder("utf-8")() if encoding.startswith("utf-8") else None
    bad_offset: int | None = None
    offset = 0
    with path.open("rb") as fh:
        while raw := fh.read(CHUNK):
            if validator is not None and bad_offset is None:
                try:
                    validator.decode(raw)
                except UnicodeDecodeError as exc:
                    bad_offset = offset + exc.start
            offset += len(raw)
            if decoder is not None:
                text = decoder.decode(raw)
                for i, seg in enumerate(text.split(quote)):
                    in_quote = in_quote if i == 0 else not in_quote
                    newlines += 0 if in_quote else seg.count("\n")
                last_nl = text.endswith("\n") if text else last_nl
                continue
            if not in_quote and quote.encode() not in raw:
                newlines += _count_newlines(raw)
            else:
                for i, part in enumerate(raw.split(quote.encode())):
                    in_quote = in_quote if i == 0 else not in_quote
                    newlines += 0 if in_quote else _count_newlines(part)
            last_nl = raw.endswith(b"\n")
    return newlines + (0 if last_nl or offset == 0 else 1), not in_quote, bad_offset


def csv_metadata(path: Path, extension: str) -> dict[str, Any]:
    import pandas as pd

    head = read_head(path)
    size = path.stat().st_size
    guess = detect_encoding(head, complete=len(head) == size)
    encoding = guess.encoding
    records_total, balanced, bad_offset = count_records(path, encoding)
    note = None
    if bad_offset is not None:
        encoding, note = correct_encoding(path, bad_offset)
    text = decode_head(head, encoding).lstrip("\ufeff")
    lines = text.splitlines()[:50]
    if len(head) < size and len(lines) > 1:
        lines = lines[:-1]  # the last line of a partial head may be cut
    delimiter = guess_delimiter(lines, "\t" if extension == ".tsv" else ",")
    meta: dict[str, Any] = {
        "encoding": encoding,
        "encoding_confidence": guess.confidence,
        "delimiter": delimiter,
        "header_assumed": True,
    }
    if note:
        meta["encoding_note"] = note
    meta["row_count"] = max(records_total - 1, 0)
    meta["row_count_method"] = "streamed record count (newlines outside quotes), header excluded"
    if not balanced:
        meta["row_count_method"] = "newlines (quotes never balance, so quoting was ignored)"
        meta["row_count"] = max(scan_text(path, encoding)["line_count"] - 1, 0)
    df = pd.read_csv(
        path,
        sep=delimiter,
        encoding=encoding,
        nrows=DTYPE_SAMPLE_ROWS,
        on_bad_lines="skip",
        low_memory=False,
    )
    meta.update(frame_fields(df))
    return meta


def frame_fields(df: Any) -> dict[str, Any]:
    cols = [str(c) for c in df.columns[:MAX_COLUMNS]]
    out: dict[str, Any] = {
        "columns": cols,
        "column_count": len(df.columns),
        "dtypes": {str(c): str(t) for c, t in list(df.dtypes.items())[:MAX_COLUMNS]},
        "sample_rows": records(df.head(SAMPLE_ROWS).iloc[:, :MAX_COLUMNS].to_dict("records")),
    }
    nulls = df.isna().sum()
    out["null_counts_in_sample"] = {str(c): int(n) for c, n in nulls.items() if n}
    return out


def _rows_frame(header: list[Any], rows: list[list[Any]]) -> Any:
    import pandas as pd

    names, seen = [], set()
    for i, h in enumerate(header):
        name = str(h) if h not in (None, "") else f"column_{i + 1}"
        while name in seen:
            name += "_"
        seen.add(name)
        names.append(name)
    width = len(names)
    rows = [list(r[:width]) + [None] * (width - len(r)) for r in rows]
    df = pd.DataFrame(rows, columns=names)
    return df.infer_objects()


def xlsx_metadata(path: Path, fmt: str) -> dict[str, Any]:
    import openpyxl

    # A file object: openpyxl judges a path by its extension, and ours is /proc/self/fd/N.
    with path.open("rb") as fh:
        return _workbook_metadata(openpyxl.load_workbook(fh, read_only=True, data_only=True), fmt)


def _workbook_metadata(wb: Any, fmt: str) -> dict[str, Any]:
    try:
        sheets: list[dict[str, Any]] = []
        for ws in wb.worksheets[:MAX_SHEETS]:
            it = ws.iter_rows(values_only=True)
            header = list(next(it, ()))
            sample = [list(r) for _, r in zip(range(DTYPE_SAMPLE_ROWS), it, strict=False)]
            rows = ws.max_row
            if rows is None or (rows == 1 and sample):
                rows = 1 + len(sample) + sum(1 for _ in it)
            sheet: dict[str, Any] = {
                "name": ws.title,
                "row_count": max((rows or 0) - 1, 0) if header else 0,
                "dimensions": ws.calculate_dimension() if ws.max_row else None,
            }
            if header:
                sheet.update(frame_fields(_rows_frame(header, sample)))
            sheets.append(sheet)
        meta: dict[str, Any] = {
            "sheet_names": wb.sheetnames,
            "sheet_count": len(wb.sheetnames),
            "sheets": sheets,
            "format": fmt,
        }
        if fmt == "xlsm":
            meta["has_macros"] = True
        return meta
    finally:
        wb.close()


def xls_metadata(path: Path) -> dict[str, Any]:
    import xlrd

    book = xlrd.open_workbook(str(path), on_demand=True)
    try:
        sheets: list[dict[str, Any]] = []
        for idx in range(min(book.nsheets, MAX_SHEETS)):
            sh = book.sheet_by_index(idx)
            sheet: dict[str, Any] = {"name": sh.name, "row_count": max(sh.nrows - 1, 0)}
            if sh.nrows:
                header = sh.row_values(0)
                rows = []
                for r in range(1, min(sh.nrows, DTYPE_SAMPLE_ROWS + 1)):
                    row = []
                    for c, cell in enumerate(sh.row(r)):
                        value = cell.value
                        if cell.ctype == xlrd.XL_CELL_DATE:
                            value = xlrd.xldate_as_datetime(value, book.datemode)
                        elif cell.ctype == xlrd.XL_CELL_EMPTY:
                            value = None
                        row.append(value)
                        if c >= MAX_COLUMNS:
                            break
                    rows.append(row)
                sheet.update(frame_fields(_rows_frame(header, rows)))
            sheets.append(sheet)
            book.unload_sheet(idx)
        return {
            "sheet_names": book.sheet_names(),
            "sheet_count": book.nsheets,
            "sheets": sheets,
            "format": "xls",
            "legacy": True,
        }
    finally:
        book.release_resources()


__all__ = ["csv_metadata", "json_safe", "xls_metadata", "xlsx_metadata"]
