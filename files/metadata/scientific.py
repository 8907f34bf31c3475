"""Parquet, Feather (Arrow IPC), HDF5 and NetCDF: schema and sizes from the file's own
metadata, never by reading every row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from files.metadata.common import MAX_LIST, SAMPLE_ROWS, json_safe, records

MAX_NODES = 200
MAX_ATTRS = 10


def _schema(schema: Any) -> dict[str, Any]:
    return {
        "columns": [f.name for f in schema][:200],
        "column_count": len(schema),
        "schema": {f.name: str(f.type) for f in list(schema)[:200]},
    }


def parquet_metadata(path: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path, memory_map=True)
    md = pf.metadata
    meta: dict[str, Any] = {
        "row_count": md.num_rows,
        "row_groups": md.num_row_groups,
        "created_by": md.created_by,
        "format_version": md.format_version,
        **_schema(pf.schema_arrow),
    }
    if md.num_row_groups:
        rg = md.row_group(0)
        compressions = {rg.column(i).compression for i in range(rg.num_columns)}
        meta["compression"] = sorted(compressions)
        batch = next(
            pf.iter_batches(batch_size=SAMPLE_ROWS, row_groups=[0], use_threads=False), None
        )
        if batch is not None:
            meta["sample_rows"] = records(batch.to_pylist())
    return meta


def feather_metadata(path: Path) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.ipc

    with pa.memory_map(str(path), "r") as source:
        try:
            reader = pyarrow.ipc.open_file(source)
        except pa.ArrowInvalid:  # Feather v1
            import pyarrow.feather as feather

            table = feather.read_table(str(path), memory_map=True)
            return {"feather_version": 1, "row_count": table.num_rows, **_schema(table.schema),
                    "sample_rows": records(table.slice(0, SAMPLE_ROWS).to_pylist())}  # fmt: skip
        rows = 0
        sample: list[dict[str, Any]] = []
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            rows += batch.num_rows
            if not sample:
                sample = batch.slice(0, SAMPLE_ROWS).to_pylist()
        return {
            "feather_version": 2,
            "row_count": rows,
            "record_batches": reader.num_record_batches,
            **_schema(reader.schema),
            "sample_rows": records(sample),
        }


def _attrs(attrs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, key in enumerate(attrs):
        if i >= MAX_ATTRS:
            out["…"] = f"{len(attrs) - MAX_ATTRS} more"
            break
        try:
            out[str(key)] = json_safe(attrs[key])
        except Exception as exc:
            out[str(key)] = f"<unreadable: {exc.__class__.__name__}>"
    return out


def hdf5_metadata(path: Path) -> dict[str, Any]:
    import h5py

    nodes: list[dict[str, Any]] = []
    counts = {"groups": 0, "datasets": 0}

    def visit(name: str, obj: Any) -> None:
        is_ds = isinstance(obj, h5py.Dataset)
        counts["datasets" if is_ds else "groups"] += 1
        if len(nodes) >= MAX_NODES:
            return
        node: dict[str, Any] = {"path": "/" + name, "kind": "dataset" if is_ds else "group"}
        if is_ds:
            node.update(shape=list(obj.shape), dtype=str(obj.dtype))
            if obj.chunks:
                node["chunks"] = list(obj.chunks)
            if obj.compression:
                node["compression"] = obj.compression
        if obj.attrs:
            node["attributes"] = _attrs(obj.attrs)
        nodes.append(node)

    # A file object, not the path: the path is /proc/self/fd/N, which HDF5 resolves to a real
    # path the worker's sandbox does not show.
    with path.open("rb") as raw, h5py.File(raw, "r") as fh:
        root_attrs = _attrs(fh.attrs)
        fh.visititems(visit)
    return {
        "root_attributes": root_attrs,
        "group_count": counts["groups"],
        "dataset_count": counts["datasets"],
        "tree": nodes,
        "tree_truncated": counts["groups"] + counts["datasets"] > len(nodes),
    }


def netcdf_metadata(path: Path) -> dict[str, Any]:
    import netCDF4

    # netCDF-4 opens through HDF5, which cannot open /proc/self/fd/N (see hdf5_metadata):
    # read from memory instead (the file is within the upload size limit).
    with netCDF4.Dataset("upload.nc", "r", memory=path.read_bytes()) as ds:
        dims = {
            name: {"size": len(d), "unlimited": d.isunlimited()}
            for name, d in ds.dimensions.items()
        }
        variables: dict[str, Any] = {}
        for i, (name, var) in enumerate(ds.variables.items()):
            if i >= MAX_NODES:
                break
            variables[name] = {
                "dimensions": list(var.dimensions),
                "shape": list(var.shape),
                "dtype": str(var.dtype),
                "attributes": _attrs({k: var.getncattr(k) for k in var.ncattrs()}),
            }
        return {
            "data_model": ds.data_model,
            "dimensions": dims,
            "variables": variables,
            "variable_count": len(ds.variables),
            "global_attributes": _attrs({k: ds.getncattr(k) for k in ds.ncattrs()}),
            "groups": list(ds.groups)[:MAX_LIST],
        }
