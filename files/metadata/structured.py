"""JSON, XML, SVG and YAML: shape, keys, counts. Parsers are the hardened ones:
XML goes through expat with defusedxml's rules (entity declarations and external references
refused: billion laughs, XXE);
YAML is read with the safe loader only; JSON nesting beyond Python's limit is an error."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from files.metadata.common import MAX_LIST, json_safe, truncate
from files.metadata.text import CHUNK, decode_head, read_head

MAX_XML_ELEMENTS = 5_000_000
XML_SCAN_SECONDS = 4.0  # then report counts so far (the worker's deadline is longer)
TOP_TAGS = 20
SCHEMA_DEPTH = 3


def _type_name(v: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(v), type(v).__name__)  # fmt: skip


def _sketch(v: Any, depth: int = 0) -> Any:
    """A bounded schema sketch: key -> type, nested up to SCHEMA_DEPTH."""
    if depth >= SCHEMA_DEPTH:
        return _type_name(v)
    if isinstance(v, dict):
        return {str(k): _sketch(x, depth + 1) for k, x in list(v.items())[:MAX_LIST]}
    if isinstance(v, list):
        return [_sketch(v[0], depth + 1)] if v else []
    return _type_name(v)


def describe_value(data: Any) -> dict[str, Any]:
    if isinstance(data, list):
        head = data[:1000]
        if head and all(isinstance(x, dict) for x in head):
            keys: dict[str, None] = {}
            for item in head:
                for k in item:
                    if len(keys) < MAX_LIST:
                        keys[str(k)] = None
            structure = "array of objects"
            out: dict[str, Any] = {"keys": list(keys), "schema": _sketch(head[0])}
        elif head and all(isinstance(x, list) for x in head):
            structure, out = "array of arrays", {}
        elif head and all(not isinstance(x, dict | list) for x in head):
            structure, out = "array of scalars", {}
        else:
            structure, out = ("array (mixed)" if head else "empty array"), {}
        return {"structure": structure, "item_count": len(data), **out,
                "sample_items": json_safe(data[:3])}  # fmt: skip
    if isinstance(data, dict):
        return {
            "structure": "object",
            "keys": [str(k) for k in list(data)[:MAX_LIST]],
            "item_count": len(data),
            "schema": _sketch(data),
        }
    return {"structure": f"scalar ({_type_name(data)})", "value": json_safe(data)}


def json_metadata(path: Path) -> dict[str, Any]:
    from files.encoding import detect_encoding

    head = read_head(path)
    encoding = detect_encoding(head, complete=len(head) == path.stat().st_size).encoding
    try:
        with path.open(encoding=encoding) as fh:
            data = json.load(fh)
    except RecursionError:
        return {
            "encoding": encoding,
            "error": "JSON nested deeper than the parser allows (refused)",
        }
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":
            return {"encoding": encoding, **_json_lines(path, encoding)}
        return {
            "encoding": encoding,
            "error": f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
        }
    return {"encoding": encoding, **describe_value(data)}


def _json_lines(path: Path, encoding: str) -> dict[str, Any]:
    items: list[Any] = []
    count = 0
    with path.open(encoding=encoding) as fh:
        for line in fh:
            if not line.strip():
                continue
            count += 1
            if len(items) < 1000:
                try:
                    items.append(json.loads(line))
                except (json.JSONDecodeError, RecursionError):
                    return {
                        "error": f"invalid JSON: neither one document nor JSON Lines (line {count})"
                    }
    out = describe_value(items)
    out.update(structure=f"json lines ({out['structure']})", item_count=count)
    return out


class XmlRefused(Exception):
    """The document declares entities or references external ones: never processed."""


def _tag(name: str) -> str:
    uri, _, local = name.rpartition(" ")
    return f"{{{uri}}}{local}" if uri else local


def xml_metadata(path: Path) -> dict[str, Any]:
    """Stream the document through expat with the defusedxml rules: any entity declaration,
    external entity reference or unparsed entity is refused, parameter entities are never
    parsed, nothing is fetched. No tree is built, so memory stays flat."""
    from xml.parsers import expat

    counts: Counter[str] = Counter()
    namespaces: dict[str, str] = {}
    state = {"depth": 0, "max_depth": 0, "total": 0}
    deadline = time.monotonic() + XML_SCAN_SECONDS
    root: dict[str, Any] = {}

    def start(name: str, attrs: dict[str, str]) -> None:
        state["total"] += 1
        state["depth"] += 1
        state["max_depth"] = max(state["max_depth"], state["depth"])
        tag = _tag(name)
        if not root:
            root["tag"] = tag
            root["attrs"] = {_tag(k): truncate(v, 120) for k, v in list(attrs.items())[:20]}
        counts[tag] += 1
        if state["total"] % 65536 == 0 and (
            state["total"] >= MAX_XML_ELEMENTS or time.monotonic() > deadline
        ):
            raise StopIteration

    def end(name: str) -> None:
        state["depth"] -= 1

    def namespace(prefix: str | None, uri: str) -> None:
        if len(namespaces) < MAX_LIST:
            namespaces[prefix or "(default)"] = uri

    def refuse(*args: Any) -> int:
        raise XmlRefused

    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.StartNamespaceDeclHandler = namespace
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    truncated = False
    try:
        with path.open("rb") as fh:
            parser.ParseFile(fh)
    except XmlRefused:
        return {"error": "XML refused: it declares or references entities (entity expansion and "
                         "external entities are never processed)"}  # fmt: skip
    except StopIteration:
        truncated = True
    except expat.ExpatError as exc:
        return {"error": f"invalid XML: {expat.ErrorString(exc.code)} at line {exc.lineno}"}
    meta: dict[str, Any] = {
        "root_tag": root.get("tag"),
        "root_attributes": root.get("attrs", {}),
        "namespaces": namespaces,
        "element_count": state["total"],
        "max_depth": state["max_depth"],
        "top_tags": dict(counts.most_common(TOP_TAGS)),
        "distinct_tags": len(counts),
    }
    if truncated:
        meta["element_count_truncated"] = True
        meta["note"] = "counts cover the first elements only (scan capped by size and time)"
    return meta


def svg_metadata(path: Path) -> dict[str, Any]:
    meta = xml_metadata(path)
    if "error" in meta:
        return meta
    attrs = meta.get("root_attributes", {})
    root = str(meta.get("root_tag") or "")
    meta["is_svg"] = root.endswith("svg")
    for key in ("width", "height", "viewBox"):
        if key in attrs:
            meta[key] = attrs[key]
    return meta


def yaml_metadata(path: Path) -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    head = read_head(path)
    from files.encoding import detect_encoding

    encoding = detect_encoding(head, complete=len(head) == path.stat().st_size).encoding
    try:
        with path.open(encoding=encoding) as fh:
            docs = []
            for i, doc in enumerate(yaml.load_all(fh, Loader=loader)):
                if i >= 10:
                    break
                docs.append(doc)
    except yaml.YAMLError as exc:
        return {"encoding": encoding, "error": f"invalid YAML: {truncate(str(exc), 300)}"}
    except RecursionError:
        return {"encoding": encoding, "error": "YAML nested deeper than the parser allows"}
    meta: dict[str, Any] = {"encoding": encoding, "document_count": len(docs)}
    first = docs[0] if docs else None
    meta["top_level_type"] = _type_name(first)
    if isinstance(first, dict):
        meta["top_level_keys"] = [str(k) for k in list(first)[:MAX_LIST]]
        meta["value_types"] = {str(k): _type_name(v) for k, v in list(first.items())[:MAX_LIST]}
    elif isinstance(first, list):
        meta["item_count"] = len(first)
    meta["preview"] = truncate(decode_head(head[:4096], encoding))
    return meta


__all__ = ["CHUNK", "json_metadata", "svg_metadata", "xml_metadata", "yaml_metadata"]
