"""Which file types we accept and what kind of content each extension promises."""

from __future__ import annotations

SUPPORTED_FILE_TYPES: tuple[str, ...] = (
    ".txt", ".md", ".log", ".rtf",  # text
    ".csv", ".tsv", ".json", ".xml", ".yaml", ".yml",  # data
    ".xlsx", ".xls", ".xlsm", ".docx", ".doc",  # office
    ".pdf",
    ".dat", ".h5", ".hdf5", ".nc", ".parquet", ".feather",  # scientific
    ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tiff", ".svg",  # images
    ".zip", ".tar", ".gz", ".bz2", ".7z",  # compressed
)  # fmt: skip

# Spellings accepted on top of the seed's list (".tar.gz" and ".tar.bz2" end in ".gz"/".bz2").
EXTENSION_ALIASES: dict[str, str] = {".tif": ".tiff", ".tgz": ".tar.gz", ".tbz2": ".tar.bz2"}

ACCEPTED_EXTENSIONS: tuple[str, ...] = SUPPORTED_FILE_TYPES + tuple(EXTENSION_ALIASES)

# The kind of content an extension promises; metadata's "type" field uses these names.
KIND_BY_EXTENSION: dict[str, str] = {
    ".txt": "text", ".md": "text", ".log": "text", ".rtf": "rtf",
    ".csv": "csv", ".tsv": "tsv", ".json": "json", ".xml": "xml", ".yaml": "yaml", ".yml": "yaml",
    ".xlsx": "excel", ".xlsm": "excel", ".xls": "excel", ".docx": "word", ".doc": "word",
    ".pdf": "pdf", ".dat": "dat", ".h5": "hdf5", ".hdf5": "hdf5", ".nc": "netcdf",
    ".parquet": "parquet", ".feather": "feather",
    ".png": "image", ".jpg": "image", ".jpeg": "image", ".gif": "image", ".bmp": "image",
    ".tiff": "image", ".tif": "image", ".svg": "svg",
    ".zip": "archive", ".tar": "archive", ".gz": "archive", ".bz2": "archive", ".7z": "archive",
    ".tgz": "archive", ".tbz2": "archive", ".tar.gz": "archive", ".tar.bz2": "archive",
}  # fmt: skip

# Extensions whose content must be text: binary bytes behind them are refused.
TEXT_EXTENSIONS = frozenset({".txt", ".md", ".log", ".rtf", ".csv", ".tsv", ".json", ".xml",
                             ".yaml", ".yml", ".svg"})  # fmt: skip

MEDIA_TYPES: dict[str, str] = {
    "text": "text/plain", "csv": "text/csv", "tsv": "text/tab-separated-values",
    "json": "application/json", "xml": "application/xml", "yaml": "application/yaml",
    "rtf": "application/rtf", "svg": "image/svg+xml", "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "xlsm": "application/vnd.ms-excel.sheet.macroEnabled.12",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "ole": "application/x-ole-storage", "xls": "application/vnd.ms-excel",
    "doc": "application/msword", "hdf5": "application/x-hdf5", "netcdf": "application/x-netcdf",
    "parquet": "application/vnd.apache.parquet", "feather": "application/vnd.apache.arrow.file",
    "png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "bmp": "image/bmp",
    "tiff": "image/tiff", "zip": "application/zip", "tar": "application/x-tar",
    "gzip": "application/gzip", "bzip2": "application/x-bzip2", "7z": "application/x-7z-compressed",
    "binary": "application/octet-stream",
}  # fmt: skip


def extension_of(name: str) -> str:
    """Lower-case extension, keeping the compound archive ones (``.tar.gz``, ``.tar.bz2``)."""
    lower = name.lower()
    for compound in (".tar.gz", ".tar.bz2"):
        if lower.endswith(compound) and len(lower) > len(compound):
            return compound
    dot = lower.rfind(".")
    if dot <= 0 or dot == len(lower) - 1:
        return ""
    return lower[dot:]


def is_accepted(extension: str) -> bool:
    return extension in ACCEPTED_EXTENSIONS or extension in (".tar.gz", ".tar.bz2")


def stem_of(name: str) -> str:
    """The name without its (possibly compound) extension: ``data.tar.gz`` -> ``data``."""
    ext = extension_of(name)
    return name[: len(name) - len(ext)] if ext else name
