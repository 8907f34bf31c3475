"""Which modules generated code may import, and which it may never import.

Names are *import* names (``sklearn``, ``docx``, ``PIL``), not distribution names. A dotted
entry covers that module and everything below it. Blocked entries win over allowed ones.
"""

from __future__ import annotations

# The seed's SAFE_PACKAGES, translated to import names (scikit-learn -> sklearn,
# python-docx -> docx, beautifulsoup4 -> bs4, Pillow -> PIL), plus the modules the runner image
# ships that data scripts import directly (yaml, dateutil, pdfminer, cftime, patsy, ...).
_SEED_SAFE = (
    # standard library (seed)
    "json", "csv", "math", "datetime", "collections", "itertools", "re",
    "os", "sys", "zipfile", "tarfile", "gzip", "bz2", "statistics",
    # data science core
    "numpy", "pandas", "scipy", "sklearn", "sympy", "statsmodels",
    # visualisation
    "matplotlib", "mpl_toolkits", "seaborn", "plotly",
    # office formats
    "openpyxl", "xlrd", "xlwt", "docx",
    # PDF
    "PyPDF2", "pdfplumber", "pypdf", "pdfminer",
    # big data formats
    "pyarrow", "h5py", "tables", "netCDF4", "cftime", "xarray",
    # text / web (parsing only)
    "lxml", "bs4", "chardet", "charset_normalizer", "defusedxml", "yaml",
    # image
    "PIL", "imageio",
    # data validation
    "jsonschema", "cerberus",
    # NLP
    "nltk", "textblob",
    # small helpers data scripts use through pandas/statsmodels
    "dateutil", "pytz", "patsy", "formulaic", "numexpr", "tqdm",
)  # fmt: skip

# Harmless standard-library modules a data script reaches for. None of them spawns processes,
# opens sockets or executes strings; the few dangerous members some of them have (sqlite3's
# load_extension, types.CodeType, gc.get_referrers, concurrent.futures' process pool, asyncio
# subprocesses, logging's socket handlers) are blocked individually in ``security.rules``.
_STDLIB_SAFE = (
    "__future__", "string", "textwrap", "random", "fractions", "decimal", "functools",
    "operator", "typing", "typing_extensions", "dataclasses", "enum", "pathlib", "io", "glob",
    "fnmatch", "hashlib", "hmac", "secrets", "base64", "binascii", "struct", "codecs", "time",
    "calendar", "zoneinfo", "copy", "pprint", "reprlib", "heapq", "bisect", "array",
    "unicodedata", "uuid", "warnings", "traceback", "locale", "html", "xml", "email",
    "mimetypes", "logging", "abc", "contextlib", "contextvars", "numbers", "cmath", "difflib",
    "zlib", "lzma", "shutil", "tempfile", "filecmp", "stat", "errno", "configparser", "tomllib",
    "plistlib", "argparse", "shlex", "keyword", "graphlib", "weakref", "types", "colorsys",
    "wave", "quopri", "ast", "atexit", "gc", "queue", "threading", "concurrent", "urllib.parse",
    "urllib.error",
    # sqlite3 is in-process and file based (pandas.read_sql); its native-extension loader is
    # blocked as a call, and its file name goes through the path rules like open().
    "sqlite3",
)  # fmt: skip

SAFE_PACKAGES: frozenset[str] = frozenset(_SEED_SAFE + _STDLIB_SAFE)

# The seed's BLOCKED_IMPORTS, kept verbatim: it mixes modules with callables (os.system,
# shutil.rmtree) and builtins (eval, exec, __import__). Modules are matched here by prefix;
# the callables are matched as references too (see ``security.rules.BLOCKED_NAMES``), so
# ``from os import system`` and ``o.system(...)`` are both caught.
_SEED_BLOCKED = (
    "socket", "subprocess", "os.system", "eval", "exec", "__import__", "importlib",
    "shutil.rmtree", "pickle",
)  # fmt: skip

# What a careful reviewer adds, grouped by the reason the finding gives.
_REVIEW_BLOCKED: dict[str, tuple[str, ...]] = {
    "starts or controls processes": (
        "_posixsubprocess", "multiprocessing", "_multiprocessing", "concurrent.futures.process",
        "asyncio.subprocess", "pty", "posix", "nt", "_winapi", "msvcrt", "winreg", "pexpect",
        "plumbum",
    ),
    "calls native code directly": (
        "ctypes", "_ctypes", "cffi", "_cffi_backend", "numpy.ctypeslib", "pyarrow.cffi",
        "pyarrow.jvm", "llvmlite", "numba", "pyximport", "Cython", "cython",
    ),
    # PIL's viewers and screen grabbers run external commands (a registered viewer is a shell
    # command line)
    "runs external commands": ("PIL.ImageShow", "PIL.ImageGrab"),
    # the container sets the limits; a script has no business reading or raising them
    "changes resource limits": ("resource",),
    "imports modules by computed name": (
        "imp", "_imp", "zipimport", "pkgutil", "runpy", "builtins", "__builtin__", "site",
        "pydoc", "pkg_resources", "importlib_metadata", "importlib_resources", "setuptools",
        "distutils", "unittest.mock", "py_compile", "compileall", "zipapp",
    ),
    "executes strings or steps through frames": (
        "code", "codeop", "pdb", "bdb", "trace", "timeit", "profile", "cProfile", "doctest",
    ),
    # the seed blocks pickle; these are pickle by another name
    "deserialisation that runs code": (
        "_pickle", "cPickle", "dill", "cloudpickle", "shelve", "marshal",
    ),
    # the container has no network, and the seed's intent is "no network" regardless
    "network access; the sandbox has no network": (
        "_socket", "ssl", "socketserver", "http", "urllib.request", "urllib.response",
        "urllib.robotparser", "ftplib", "smtplib", "smtpd", "poplib", "imaplib", "nntplib",
        "telnetlib", "xmlrpc", "webbrowser", "requests", "httpx", "aiohttp", "urllib3",
        "pycurl", "websocket", "websockets", "paramiko",
    ),
    "installs packages": ("pip", "ensurepip", "venv"),
}  # fmt: skip

_SEED_REASONS = {
    "socket": "network access; the sandbox has no network",
    "subprocess": "starts or controls processes",
    "os.system": "starts or controls processes",
    "eval": "executes strings",
    "exec": "executes strings",
    "__import__": "imports modules by computed name",
    "importlib": "imports modules by computed name",
    "shutil.rmtree": "deletes directory trees",
    "pickle": "deserialisation that runs code",
}

BLOCKED_IMPORT_REASONS: dict[str, str] = {
    **{name: why for why, names in _REVIEW_BLOCKED.items() for name in names},
    **_SEED_REASONS,
}
BLOCKED_IMPORTS: frozenset[str] = frozenset(_SEED_BLOCKED) | frozenset(BLOCKED_IMPORT_REASONS)

# Decisions on modules deliberately *not* blocked (they land in "import-not-allowlisted" or
# the allow-list):
# - threading, signal: they act on the script's own process only; the container bounds it.
# - inspect, gc, types, sys, os: only their escape hatches are blocked (frames, referrers,
#   code objects, sys.modules, os.system ...), the rest is ordinary.
# - asyncio: only its subprocess API is blocked; sockets fail without a network anyway.
# - signal.pthread_kill and friends reach only the script's own threads.


def module_prefixes(dotted: str) -> list[str]:
    """``"a.b.c"`` -> ``["a", "a.b", "a.b.c"]``."""
    parts = dotted.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def blocked_module(dotted: str) -> str | None:
    """The BLOCKED_IMPORTS entry that covers ``dotted``, if any."""
    for prefix in module_prefixes(dotted):
        if prefix in BLOCKED_IMPORTS:
            return prefix
    return None


def is_allowed(dotted: str, allowed: frozenset[str]) -> bool:
    return any(prefix in allowed for prefix in module_prefixes(dotted))
