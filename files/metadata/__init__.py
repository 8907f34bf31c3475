"""Type-specific metadata, dispatched on the sniffed kind/format.

These functions run *inside* the sandboxed worker process (``files.worker``); calling them in
the gateway process directly gives up the sandbox and the time and memory limits. ``path`` is
then ``/proc/self/fd/N`` (the job's descriptor): use ``name`` for anything shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def extract_metadata(path: Path, *, kind: str, fmt: str, extension: str,
                     max_extracted_bytes: int = 500 * 2**20,
                     name: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Fields for one file; raises on unreadable content (the worker turns that into "error")."""
    if kind in ("csv", "tsv"):
        from files.metadata.tabular import csv_metadata

        return csv_metadata(path, extension)
    if kind == "excel":
        from files.metadata.tabular import xls_metadata, xlsx_metadata

        if fmt == "xls":
            return xls_metadata(path)
        if fmt in ("xlsx", "xlsm"):
            return xlsx_metadata(path, fmt)
    if kind == "word":
        from files.metadata.documents import doc_metadata, docx_metadata

        return docx_metadata(path) if fmt == "docx" else doc_metadata(path)
    if kind == "pdf":
        from files.metadata.documents import pdf_metadata

        return pdf_metadata(path)
    if kind == "json":
        from files.metadata.structured import json_metadata

        return json_metadata(path)
    if kind == "xml":
        from files.metadata.structured import xml_metadata

        return xml_metadata(path)
    if kind == "svg":
        from files.metadata.structured import svg_metadata

        return svg_metadata(path)
    if kind == "yaml":
        from files.metadata.structured import yaml_metadata

        return yaml_metadata(path)
    if kind == "parquet":
        from files.metadata.scientific import parquet_metadata

        return parquet_metadata(path)
    if kind == "feather":
        from files.metadata.scientific import feather_metadata

        return feather_metadata(path)
    if kind == "hdf5":
        from files.metadata.scientific import hdf5_metadata

        return hdf5_metadata(path)
    if kind == "netcdf":
        from files.metadata.scientific import netcdf_metadata

        return netcdf_metadata(path)
    if kind == "image":
        from files.metadata.images import image_metadata

        return image_metadata(path)
    if kind == "archive":
        from files.archives import list_archive

        return list_archive(path, fmt, max_bytes=max_extracted_bytes, name=name)
    if kind in ("text", "rtf"):
        from files.metadata.text import text_metadata

        return text_metadata(path, kind, extension)
    if kind == "dat":
        from files.metadata.text import dat_metadata

        return dat_metadata(path, fmt)
    if kind == "legacy":
        from files.metadata.documents import ole_metadata

        return ole_metadata(path)
    return {"error": f"no metadata reader for {kind}/{fmt}"}
