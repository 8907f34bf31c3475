"""PDF, Word .docx and legacy .doc."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from files.metadata.common import PREVIEW_CHARS, json_safe, truncate
from files.ole import ole_stream_names

PDF_PAGES_SCANNED = 3
MAX_HEADINGS = 50
MAX_TABLES_SHOWN = 3
TABLE_ROWS_SHOWN = 3


def pdf_metadata(path: Path) -> dict[str, Any]:
    import logging

    import pypdf

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    logging.getLogger("pdfminer").setLevel(logging.ERROR)
    reader = pypdf.PdfReader(path, strict=False)
    meta: dict[str, Any] = {"encrypted": bool(reader.is_encrypted)}
    readable = True
    if reader.is_encrypted:
        try:
            readable = bool(reader.decrypt(""))
        except Exception:
            readable = False
        meta["password_required"] = not readable
    if not readable:
        meta["note"] = "encrypted with a password; page count and text are not readable"
        return meta
    meta["page_count"] = len(reader.pages)
    info: dict[str, Any] = dict(reader.metadata or {})
    doc_info = {k.lstrip("/").lower(): json_safe(str(v)) for k, v in info.items() if v}
    meta["document_info"] = {k: v for k, v in doc_info.items() if k in
                             ("title", "author", "subject", "creator", "producer", "creationdate")}  # fmt: skip
    texts = []
    for page in reader.pages[:PDF_PAGES_SCANNED]:
        try:
            texts.append(page.extract_text() or "")
        except Exception as exc:  # one broken page must not hide the rest
            texts.append(f"[page text unreadable: {exc.__class__.__name__}]")
    preview = re.sub(r"[ \t]+", " ", "\n".join(texts)).strip()
    meta["text_preview"] = truncate(preview, PREVIEW_CHARS)
    meta["has_text"] = bool(preview)
    meta.update(_pdf_tables(path))
    return meta


def _pdf_tables(path: Path) -> dict[str, Any]:
    import pdfplumber

    found = 0
    try:
        with pdfplumber.open(path) as pdf:
            for page in pdf.pages[:PDF_PAGES_SCANNED]:
                found += len(page.find_tables())
    except Exception as exc:
        return {"has_tables": None, "tables_note": f"table scan failed: {exc.__class__.__name__}"}
    return {
        "has_tables": found > 0,
        "tables_found_in_first_pages": found,
        "pages_scanned_for_tables": PDF_PAGES_SCANNED,
    }


def docx_metadata(path: Path) -> dict[str, Any]:
    import docx

    document = docx.Document(str(path))
    paragraphs = document.paragraphs
    headings: list[dict[str, Any]] = []
    texts: list[str] = []
    for p in paragraphs:
        text = p.text.strip()
        if text:
            texts.append(text)
        style = (p.style.name if p.style is not None else "") or ""
        if text and len(headings) < MAX_HEADINGS:
            if style == "Title":
                headings.append({"level": 0, "text": truncate(text, 120)})
            elif m := re.match(r"Heading (\d)", style):
                headings.append({"level": int(m.group(1)), "text": truncate(text, 120)})
    tables = []
    for table in document.tables[:MAX_TABLES_SHOWN]:
        rows = [
            [truncate(c.text.strip(), 80) for c in row.cells]
            for row in table.rows[:TABLE_ROWS_SHOWN]
        ]
        tables.append({"rows": len(table.rows), "columns": len(table.columns), "first_rows": rows})
    props = document.core_properties
    return {
        "paragraph_count": len(texts),
        "headings": headings,
        "table_count": len(document.tables),
        "tables": tables,
        "text_preview": truncate("\n".join(texts), PREVIEW_CHARS),
        "properties": {
            k: json_safe(v)
            for k, v in (
                ("title", props.title),
                ("author", props.author),
                ("created", props.created),
            )
            if v
        },
    }


_UTF16_RUN = re.compile(rb"(?:[\x20-\x7e]\x00){8,}")
_ASCII_RUN = re.compile(rb"[\x20-\x7e\xa0-\xff]{12,}")


def doc_metadata(path: Path) -> dict[str, Any]:
    """Legacy Word 97-2003: no maintained pure-Python reader, so say what we can."""
    meta: dict[str, Any] = {
        "format": "doc",
        "legacy": True,
        "note": (
            "legacy Word 97-2003 binary; python-docx cannot read it. Streams are listed and "
            "text_preview is a best-effort scrape of readable runs; convert to .docx for real "
            "structure (e.g. LibreOffice --convert-to docx)"
        ),
    }
    try:
        meta["ole_streams"] = ole_stream_names(path)[:50]
    except (ValueError, OSError, IndexError) as exc:
        meta["ole_streams"] = []
        meta["ole_note"] = f"OLE directory unreadable: {exc}"
    with path.open("rb") as fh:
        data = fh.read(4 * 1024 * 1024)
    runs = [r.decode("utf-16-le") for r in _UTF16_RUN.findall(data)[:200]]
    if not runs:
        runs = [r.decode("cp1252", errors="replace") for r in _ASCII_RUN.findall(data[512:])[:200]]
    meta["text_preview"] = truncate(" ".join(r.strip() for r in runs if r.strip()), PREVIEW_CHARS)
    return meta


def ole_metadata(path: Path) -> dict[str, Any]:
    try:
        streams = ole_stream_names(path)[:50]
    except (ValueError, OSError, IndexError) as exc:
        return {"error": f"OLE container unreadable: {exc}"}
    return {"legacy": True, "ole_streams": streams,
            "note": "OLE2 compound file of unknown flavour (not Word or Excel)"}  # fmt: skip
