"""Deterministic loading snippets per input type, offered to the model with every prompt.

Weak models get the loading code wrong far more often than the analysis; a snippet known to
work for the file at hand (``pd.read_csv('employees.csv')``) fixes most of that.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

_IDENT = re.compile(r"[^0-9a-zA-Z_]+")

# extension -> snippet template; {name} is the file name as a Python literal, {var} a variable
SNIPPETS: dict[str, str] = {
    ".csv": "{var} = pd.read_csv({name})",
    ".tsv": "{var} = pd.read_csv({name}, sep='\\t')",
    ".xlsx": "{var} = pd.read_excel({name}, sheet_name=None)  # dict: sheet name -> DataFrame",
    ".xlsm": "{var} = pd.read_excel({name}, sheet_name=None)  # dict: sheet name -> DataFrame",
    ".xls": "{var} = pd.read_excel({name}, sheet_name=None, engine='xlrd')",
    ".json": "with open({name}, encoding='utf-8') as fh:\n    {var} = json.load(fh)",
    ".yaml": "with open({name}, encoding='utf-8') as fh:\n    {var} = yaml.safe_load(fh)",
    ".yml": "with open({name}, encoding='utf-8') as fh:\n    {var} = yaml.safe_load(fh)",
    ".xml": "from lxml import etree\n{var} = etree.parse({name}).getroot()",
    ".parquet": "{var} = pd.read_parquet({name})",
    ".feather": "{var} = pd.read_feather({name})",
    ".h5": "import h5py\n{var} = h5py.File({name}, 'r')  # {var}.keys(), {var}['dataset'][()]",
    ".hdf5": "import h5py\n{var} = h5py.File({name}, 'r')  # {var}.keys(), {var}['dataset'][()]",
    ".nc": "import xarray as xr\n{var} = xr.open_dataset({name})",
    ".pdf": (
        "from pypdf import PdfReader\n"
        "{var} = '\\n'.join(page.extract_text() or '' for page in PdfReader({name}).pages)"
    ),
    ".docx": ("import docx\n{var} = [p.text for p in docx.Document({name}).paragraphs]"),
    ".png": "from PIL import Image\n{var} = Image.open({name})",
    ".jpg": "from PIL import Image\n{var} = Image.open({name})",
    ".jpeg": "from PIL import Image\n{var} = Image.open({name})",
    ".gif": "from PIL import Image\n{var} = Image.open({name})",
    ".bmp": "from PIL import Image\n{var} = Image.open({name})",
    ".tiff": "from PIL import Image\n{var} = Image.open({name})",
    ".zip": "import zipfile\n{var} = zipfile.ZipFile({name})  # {var}.namelist()",
    ".tar": "import tarfile\n{var} = tarfile.open({name})  # {var}.getnames()",
}
TEXT = "with open({name}, encoding={encoding}, errors='replace') as fh:\n    {var} = fh.read()"
BINARY = "with open({name}, 'rb') as fh:\n    {var} = fh.read()"
TEXT_SUFFIXES = {".txt", ".md", ".log", ".rtf", ".dat", ".svg"}


def variable_for(name: str) -> str:
    stem = _IDENT.sub("_", PurePosixPath(name).stem).strip("_").lower() or "data"
    return f"data_{stem}" if stem[0].isdigit() else stem


def loading_snippet(name: str, metadata: Mapping[str, Any] | None = None) -> str:
    """A snippet that loads ``name`` (a bare file name in the working directory)."""
    meta = metadata or {}
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in (".csv", ".tsv") or meta.get("type") in ("csv", "tsv"):
        return _read_csv(name, meta, tab=suffix == ".tsv")
    template = SNIPPETS.get(suffix)
    if template is None:
        kind = str(meta.get("type", "")).lower()
        template = SNIPPETS.get(f".{kind}")
    if template is None:
        template = TEXT if suffix in TEXT_SUFFIXES or meta.get("encoding") else BINARY
    encoding = str(meta.get("encoding") or "utf-8")
    return template.format(name=repr(name), var=variable_for(name), encoding=repr(encoding))


def _read_csv(name: str, meta: Mapping[str, Any], *, tab: bool) -> str:
    """``pd.read_csv`` with the delimiter and encoding intake detected."""
    args = [repr(name)]
    delimiter = meta.get("delimiter") or ("\t" if tab else ",")
    if delimiter != ",":
        args.append(f"sep={delimiter!r}")
    encoding = str(meta.get("encoding") or "utf-8").lower()
    if encoding not in ("utf-8", "utf8", "ascii"):
        args.append(f"encoding={encoding!r}")
    if meta.get("header_assumed") is False:
        args.append("header=None")
    return f"{variable_for(name)} = pd.read_csv({', '.join(args)})"


def preamble(files: Mapping[str, Mapping[str, Any]]) -> str:
    """The imports plus one snippet per file, in the order given."""
    if not files:
        return "import json"
    snippets = [loading_snippet(name, meta) for name, meta in files.items()]
    imports = ["import json"]
    body = "\n".join(snippets)
    if "pd." in body:
        imports.append("import pandas as pd")
    if "yaml." in body:
        imports.append("import yaml")
    return "\n".join(imports) + "\n\n" + "\n".join(snippets)
