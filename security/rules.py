"""The rule catalogue and the name tables the static policy matches against.

Every finding carries one of the rule ids below; its severity and whether the LLM may argue it
away (``hard=False``) come from this table only, so a rule id always means the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["critical", "major", "minor", "info"]


@dataclass(frozen=True)
class Rule:
    rule_id: str
    severity: Severity
    hard: bool
    summary: str


def _rules(*rules: Rule) -> dict[str, Rule]:
    return {r.rule_id: r for r in rules}


RULES: dict[str, Rule] = _rules(
    Rule("syntax-error", "critical", False, "the code does not parse"),
    Rule("code-too-large", "critical", True, "the code exceeds the size limit"),
    Rule("code-too-complex", "critical", True, "the code is too deep or too big to analyse"),
    Rule("blocked-import", "critical", True, "imports a blocked module or name"),
    Rule("blocked-call", "critical", True, "uses a blocked callable (eval, os.system, ...)"),
    Rule("escape-attribute", "critical", True, "introspection used to escape the policy"),
    Rule("namespace-tampering", "critical", True, "reads or writes module namespaces by name"),
    Rule("dynamic-attribute-module", "critical", True, "computed attribute name on a module"),
    Rule("module-as-value", "critical", True, "os/sys/... passed around as an object"),
    Rule("dynamic-attribute", "major", False, "computed attribute name on an object"),
    Rule("indirect-attribute", "critical", True, "getattr and friends passed around as values"),
    Rule("private-module-attribute", "critical", True, "reaches a private name of a module"),
    Rule("string-to-code", "critical", True, "a library turns a string into code"),
    Rule("computed-formula", "major", False, "a formula string built at run time"),
    Rule("computed-format", "major", False, "a format string built at run time"),
    Rule("native-code", "critical", True, "loads native code or reads raw memory"),
    Rule("unsafe-deserialisation", "critical", True, "deserialises data that can run code"),
    Rule("import-path", "critical", True, "changes where imports come from"),
    Rule("import-of-written-file", "critical", True, "writes a file it may then import"),
    Rule("path-system", "critical", True, "constant path into a system location"),
    Rule("path-outside-workdir", "major", False, "constant path outside the working directory"),
    Rule("network-url", "major", False, "reads or writes a URL; the sandbox has no network"),
    Rule("ownership-change", "major", False, "changes file ownership"),
    Rule("import-not-allowlisted", "minor", False, "module not in the allow-list"),
    Rule("environment-read", "info", False, "reads environment variables"),
)


# --- qualified names ----------------------------------------------------------------------
# Matched against what a name or attribute chain resolves to after following imports and
# aliases: ``import os as o; o.system`` and ``from os import system as s`` both give
# "os.system"; an unshadowed builtin ``eval`` gives "builtins.eval".

_PROCESS = "starts or controls processes"
_EXEC = "executes a string or code object"
_FRAMES = "reaches interpreter frames or module tables"

BLOCKED_NAMES: dict[str, tuple[str, str]] = {
    "builtins.eval": ("blocked-call", _EXEC),
    "builtins.exec": ("blocked-call", _EXEC),
    "builtins.compile": ("blocked-call", _EXEC),
    "builtins.__import__": ("blocked-call", "imports a module by computed name"),
    "builtins.breakpoint": ("blocked-call", "starts the debugger"),
    "shutil.rmtree": ("blocked-call", "deletes directory trees"),
    "os.chroot": ("blocked-call", "changes the root directory"),
    "os.mknod": ("blocked-call", "creates device nodes"),
    "os.symlink": ("blocked-call", "links can point outputs outside the working directory"),
    "os.link": ("blocked-call", "links can point outputs outside the working directory"),
    "os.chown": ("ownership-change", "changes file ownership"),
    "os.lchown": ("ownership-change", "changes file ownership"),
    "os.fchown": ("ownership-change", "changes file ownership"),
    "shutil.chown": ("ownership-change", "changes file ownership"),
    "sys.modules": ("namespace-tampering", _FRAMES),
    "sys.meta_path": ("namespace-tampering", "rewires the import system"),
    "sys.path_hooks": ("namespace-tampering", "rewires the import system"),
    "sys.path_importer_cache": ("namespace-tampering", "rewires the import system"),
    "sys._getframe": ("escape-attribute", _FRAMES),
    "sys._current_frames": ("escape-attribute", _FRAMES),
    "sys._current_exceptions": ("escape-attribute", _FRAMES),
    "sys.settrace": ("escape-attribute", "installs a tracer that sees every frame"),
    "sys.setprofile": ("escape-attribute", "installs a profiler that sees every frame"),
    "inspect.currentframe": ("escape-attribute", _FRAMES),
    "inspect.stack": ("escape-attribute", _FRAMES),
    "inspect.trace": ("escape-attribute", _FRAMES),
    "inspect.getouterframes": ("escape-attribute", _FRAMES),
    "inspect.getinnerframes": ("escape-attribute", _FRAMES),
    "inspect.getframeinfo": ("escape-attribute", _FRAMES),
    "inspect.getmembers": ("escape-attribute", "enumerates module namespaces by name"),
    "inspect.getmembers_static": ("escape-attribute", "enumerates module namespaces by name"),
    "inspect.getattr_static": ("escape-attribute", "fetches attributes by computed name"),
    "inspect.getclosurevars": ("escape-attribute", "reads function globals"),
    "gc.get_referrers": ("escape-attribute", "walks the object graph to hidden objects"),
    "gc.get_referents": ("escape-attribute", "walks the object graph to hidden objects"),
    "gc.get_objects": ("escape-attribute", "walks the object graph to hidden objects"),
    # Building code objects by hand. types.FunctionType stays allowed (isinstance checks):
    # without a code object (compile, __code__, marshal, CodeType: all blocked) it runs nothing.
    "types.CodeType": ("blocked-call", _EXEC),
    "concurrent.futures.ProcessPoolExecutor": ("blocked-call", _PROCESS),
    "asyncio.create_subprocess_exec": ("blocked-call", _PROCESS),
    "asyncio.create_subprocess_shell": ("blocked-call", _PROCESS),
    "logging.config.listen": ("blocked-call", "opens a network listener"),
    "logging.handlers.SocketHandler": ("blocked-call", "network logging handler"),
    "logging.handlers.DatagramHandler": ("blocked-call", "network logging handler"),
    "logging.handlers.SysLogHandler": ("blocked-call", "network logging handler"),
    "logging.handlers.SMTPHandler": ("blocked-call", "network logging handler"),
    "logging.handlers.HTTPHandler": ("blocked-call", "network logging handler"),
    "fcntl.ioctl": ("blocked-call", "raw device control (terminal injection)"),
    "signal.pidfd_send_signal": ("blocked-call", _PROCESS),
    "pandas.read_pickle": ("blocked-call", "unpickling runs code"),
    # downloaders generated code likes to call; they fail without a network
    "nltk.download": ("network-url", "downloads data; the sandbox has no network"),
    "seaborn.load_dataset": ("network-url", "downloads data; the sandbox has no network"),
    "sklearn.datasets.fetch_openml": ("network-url", "downloads data; the sandbox has no network"),
    "sklearn.datasets.fetch_california_housing": (
        "network-url",
        "downloads data; the sandbox has no network",
    ),
    "sklearn.datasets.fetch_20newsgroups": (
        "network-url",
        "downloads data; the sandbox has no network",
    ),
}

_OS_PROCESS = (
    "system", "popen", "fork", "forkpty", "kill", "killpg", "posix_spawn", "posix_spawnp",
    "execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp", "execvpe",
    "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe",
    "startfile", "pidfd_open", "setuid", "setgid", "seteuid", "setegid", "setreuid",
    "setregid", "setresuid", "setresgid", "setgroups", "initgroups", "plock",
)  # fmt: skip
for _name in _OS_PROCESS:
    BLOCKED_NAMES[f"os.{_name}"] = ("blocked-call", _PROCESS)

# Names read from the environment: harmless without a network, reported for the record.
ENVIRONMENT_NAMES = frozenset({"os.environ", "os.environb", "os.getenv", "os.getenvb"})

# Attribute chains are re-rooted at these modules, so ``shutil.os.system`` or
# ``pandas.io.common.os.system`` is judged as ``os.system``. Only names that are unambiguous
# as attributes belong here (``numpy.trace`` is not the ``trace`` module).
REROOT_MODULES = frozenset({
    "os", "sys", "subprocess", "builtins", "posix", "shutil", "socket", "importlib",
    "ctypes", "pickle", "multiprocessing", "pty", "marshal",
})  # fmt: skip

# Libraries keep private aliases of these modules (``random._os``, ``collections._sys``):
# ``_os`` on anything is read as ``os``, so the chain is judged against the os rules.
PRIVATE_MODULE_ALIASES: dict[str, str] = {f"_{m}": m for m in REROOT_MODULES} | {
    "_importlib": "importlib",
    "_subprocess": "subprocess",
    "_posixsubprocess": "subprocess",
}
# Builtins and operator factories that fetch attributes by name: passed around as values
# (``functools.reduce(getattr, names, obj)``, ``map(getattr, ...)``) the names they will fetch
# cannot be checked.
ATTRIBUTE_FETCHER_VALUES = frozenset({
    "builtins.getattr", "builtins.setattr", "builtins.delattr", "operator.attrgetter",
    "operator.methodcaller", "inspect.getattr_static", "builtins.object.__getattribute__",
    "builtins.type.__getattribute__",
})  # fmt: skip

# Modules whose objects must only be used through ``module.member``: passed as a value
# (``f(os)``, ``[sys]``, ``return os``) they would carry their members past name resolution.
VALUE_SENSITIVE_MODULES = REROOT_MODULES | {"inspect", "gc", "types"}

# --- attribute names, whatever the object ------------------------------------------------
# Blocked even when the object cannot be resolved (``f().popen(...)`` with ``f`` returning
# ``os``): these names mean one thing only. ``system`` and ``kill`` are not here because
# ``platform.system()`` and ``proc.kill()`` are ordinary.
ANY_OBJECT_ATTRIBUTES: dict[str, tuple[str, str]] = {
    name: ("blocked-call", _PROCESS)
    for name in _OS_PROCESS
    if name not in {"system", "kill", "fork", "startfile", "plock"}
}
ANY_OBJECT_ATTRIBUTES.update(
    {
        "_getframe": ("escape-attribute", _FRAMES),
        "_current_frames": ("escape-attribute", _FRAMES),
        "read_pickle": ("blocked-call", "unpickling runs code"),
        "to_pickle": ("blocked-call", "pickle files run code when loaded"),
        "enable_load_extension": ("blocked-call", "loads native code into sqlite3"),
        "load_extension": ("blocked-call", "loads native code into sqlite3"),
        "subprocess_exec": ("blocked-call", _PROCESS),
        "subprocess_shell": ("blocked-call", _PROCESS),
        "create_subprocess_exec": ("blocked-call", _PROCESS),
        "create_subprocess_shell": ("blocked-call", _PROCESS),
        "symlink_to": ("blocked-call", "links can point outputs outside the working directory"),
        "hardlink_to": ("blocked-call", "links can point outputs outside the working directory"),
        "get_referrers": ("escape-attribute", "walks the object graph to hidden objects"),
        "get_referents": ("escape-attribute", "walks the object graph to hidden objects"),
        # string.Formatter walks attribute paths given as strings
        "get_field": ("escape-attribute", "walks an attribute path given as a string"),
        # raw pointers in and out of Arrow: memory corruption on demand
        "_import_from_c": ("native-code", "reads raw memory"),
        "_export_to_c": ("native-code", "writes raw memory"),
        "_ctypes": ("native-code", "reads raw memory"),
        "ctypeslib": ("native-code", "loads native code"),
        "unsafe_load": ("unsafe-deserialisation", "deserialisation runs code from the file"),
        "unsafe_load_all": ("unsafe-deserialisation", "deserialisation runs code from the file"),
    }
)
ANY_OBJECT_ATTRIBUTES.update(
    {
        alias: ("private-module-attribute", f"private alias of the {module} module")
        for alias, module in PRIVATE_MODULE_ALIASES.items()
    }
)

# Introspection that leads from any object to globals, builtins, code or frames. Ordinary
# dunders (__name__, __class__, __init__, __doc__, __version__, __len__) are fine.
ESCAPE_ATTRIBUTES = frozenset({
    "__subclasses__", "__globals__", "__builtins__", "__code__", "__closure__", "__mro__",
    "__bases__", "__base__", "__self__", "__getattribute__", "__reduce__", "__reduce_ex__",
    "__loader__", "__spec__", "__import__", "mro",
    "f_globals", "f_locals", "f_back", "f_builtins", "f_code", "f_trace",
    "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code", "tb_frame",
})  # fmt: skip

# Bare names that only an escape attempt uses.
ESCAPE_NAMES = frozenset({"__builtins__", "__loader__", "__spec__", "__build_class__"})

# Builtins whose result is a live namespace dict.
NAMESPACE_BUILTINS = frozenset({"builtins.globals", "builtins.locals", "builtins.vars"})
NAMESPACE_MUTATORS = frozenset(
    {"update", "setdefault", "pop", "popitem", "clear", "__setitem__", "__delitem__"}
)
# dict.update(globals(), ...) is globals().update(...) spelled differently.
NAMESPACE_UNBOUND_MUTATORS = frozenset(f"builtins.dict.{m}" for m in NAMESPACE_MUTATORS)

# --- paths ----------------------------------------------------------------------------------
# Calls whose string arguments are file names. Matched on the last name of the callee, so
# ``pd.read_csv``, ``df.to_parquet`` and ``np.load`` all count. ``read_*``/``to_*`` match by
# prefix.
FILE_API_NAMES = frozenset({
    "open", "Path", "PurePath", "PosixPath", "PurePosixPath", "WindowsPath", "FileIO",
    "listdir", "scandir", "mkdir", "makedirs", "rmdir", "unlink", "chdir", "chmod", "readlink",
    "symlink", "exists", "isfile", "isdir", "getsize", "glob", "iglob", "rglob", "copyfile",
    "copy2", "copytree", "make_archive", "unpack_archive", "load", "save", "savez",
    "savez_compressed", "savetxt", "loadtxt", "genfromtxt", "fromfile", "tofile", "savefig",
    "imread", "imwrite", "imsave", "mimread", "mimwrite", "File", "Dataset", "MFDataset",
    "open_dataset", "open_mfdataset", "open_dataarray", "open_zarr", "load_workbook",
    "Document", "PdfReader", "PdfWriter", "PdfFileReader", "ZipFile", "TarFile", "ExcelFile",
    "ExcelWriter", "HDFStore", "open_file", "connect", "parse", "iterparse", "joinpath",
    "expanduser",
})  # fmt: skip
# Every function of these modules takes file names (os.remove, shutil.move, glob.glob ...);
# matched on the resolved name, so ``str.replace('/', '-')`` is not mistaken for os.replace.
FILE_API_MODULES = frozenset({"os", "shutil", "glob", "fileinput"})
FILE_API_QUALIFIED = frozenset({
    "os.path.exists", "os.path.isfile", "os.path.isdir", "os.path.islink", "os.path.getsize",
    "os.path.getmtime", "os.path.getctime", "os.path.getatime", "os.path.samefile",
    "io.open", "tarfile.open", "gzip.open", "bz2.open", "lzma.open", "sqlite3.connect",
})  # fmt: skip
FILE_API_PREFIXES = ("read_", "to_")
# Keyword arguments that carry a file name in the common readers and writers.
PATH_KEYWORDS = frozenset({
    "path", "filepath", "filepath_or_buffer", "path_or_buf", "path_or_buffer", "file",
    "fname", "filename", "io", "excel_writer", "src", "dst", "source", "destination",
    "target", "root_dir", "base_dir", "extract_dir", "fp",
})  # fmt: skip

# Helpers that build a path from parts: their string arguments are path components.
PATH_BUILDERS = frozenset(
    {"join", "Path", "PurePath", "PosixPath", "PurePosixPath", "joinpath", "fspath"}
)
# pathlib methods that touch the file a path expression names.
PATH_METHODS = frozenset({
    "open", "read_text", "read_bytes", "write_text", "write_bytes", "iterdir", "glob", "rglob",
    "exists", "is_file", "is_dir", "stat", "unlink", "mkdir", "rmdir", "touch", "rename",
    "replace", "chmod", "symlink_to", "hardlink_to", "readlink", "walk",
})  # fmt: skip
PATH_WRAPPERS = frozenset(
    {"abspath", "realpath", "normpath", "expanduser", "str", "resolve", "absolute"}
)

# Absolute paths into these locations are hard findings; other absolute paths are only
# "outside the working directory" (the model may have meant a bare file name).
SYSTEM_PATH_ROOTS = (
    "/proc", "/sys", "/dev", "/etc", "/root", "/boot", "/run", "/var/run", "/var/lib",
    "/home",
)  # fmt: skip
HARMLESS_DEVICES = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/stdin"})
URL_SCHEMES = (
    "http://", "https://", "ftp://", "ftps://", "s3://", "s3a://", "gs://", "gcs://",
    "az://", "abfs://", "abfss://", "hdfs://", "sftp://", "ssh://", "ws://", "wss://",
)  # fmt: skip

# --- entry points that turn data into code -------------------------------------------------
# The curated catalogue of library calls that evaluate a string as Python (or as something that
# reaches Python attributes and calls), that deserialise objects, or that load native code.
# Keep it as data: a new library entry point is one line here plus a spelling in the tests.

_DESERIALISE = "deserialisation runs code from the file"
_NATIVE = "loads native code or reads raw memory"
_IMPORT_PATH = "changes where imports come from"

BLOCKED_NAMES.update(
    {
        # deserialisers (pickle, dill, cloudpickle, shelve, marshal are blocked as modules)
        "joblib.load": ("unsafe-deserialisation", _DESERIALISE),
        "sklearn.externals.joblib.load": ("unsafe-deserialisation", _DESERIALISE),
        "statsmodels.api.load": ("unsafe-deserialisation", _DESERIALISE),
        "statsmodels.iolib.smpickle.load_pickle": ("unsafe-deserialisation", _DESERIALISE),
        "jsonpickle.decode": ("unsafe-deserialisation", _DESERIALISE),
        "yaml.unsafe_load": ("unsafe-deserialisation", _DESERIALISE),
        "yaml.unsafe_load_all": ("unsafe-deserialisation", _DESERIALISE),
        "yaml.full_load": ("unsafe-deserialisation", _DESERIALISE),
        "yaml.full_load_all": ("unsafe-deserialisation", _DESERIALISE),
        "yaml.Loader": ("unsafe-deserialisation", _DESERIALISE),
        "yaml.UnsafeLoader": ("unsafe-deserialisation", _DESERIALISE),
        "yaml.FullLoader": ("unsafe-deserialisation", _DESERIALISE),
        "yaml.CLoader": ("unsafe-deserialisation", _DESERIALISE),
        "yaml.CUnsafeLoader": ("unsafe-deserialisation", _DESERIALISE),
        "yaml.CFullLoader": ("unsafe-deserialisation", _DESERIALISE),
        "yaml.add_constructor": ("unsafe-deserialisation", "custom constructors run code"),
        "yaml.add_multi_constructor": ("unsafe-deserialisation", "custom constructors run code"),
        # native code and raw memory
        "pyarrow.foreign_buffer": ("native-code", _NATIVE),
        "pyarrow.cffi": ("native-code", _NATIVE),
        "pyarrow.jvm": ("native-code", _NATIVE),
        "numpy.ctypeslib": ("native-code", _NATIVE),
        "numpy.ctypes": ("native-code", _NATIVE),
        "scipy.LowLevelCallable": ("native-code", _NATIVE),
        # the import system
        "sys.path": ("import-path", _IMPORT_PATH),
        "sys.path_hooks": ("import-path", _IMPORT_PATH),
        "sys.meta_path": ("import-path", _IMPORT_PATH),
        "sys.path_importer_cache": ("import-path", _IMPORT_PATH),
        "sys.pycache_prefix": ("import-path", _IMPORT_PATH),
        # strings evaluated as code by the standard library
        "typing.get_type_hints": ("string-to-code", "evaluates string annotations"),
        "typing.ForwardRef": ("string-to-code", "evaluates string annotations"),
        "typing_extensions.get_type_hints": ("string-to-code", "evaluates string annotations"),
        "inspect.get_annotations": ("string-to-code", "evaluates string annotations"),
        "inspect.getmodule": ("escape-attribute", "returns a module object found at run time"),
        "logging.config.dictConfig": ("string-to-code", "resolves dotted names to callables"),
        "logging.config.fileConfig": ("string-to-code", "evaluates strings from the file"),
        "logging.config.valid_ident": ("string-to-code", "part of logging's name resolver"),
    }
)

# Library calls that evaluate an expression string. qualified name -> (position, keyword).
# Literal strings are checked (see ``CODE_STRING_NAMES``); strings built at run time are refused.
# pandas' ``eval``/``query`` resolve ``@names`` and attributes while parsing, whatever the
# engine, and numexpr falls back to Python for much of the grammar: engine= is not trusted.
STRING_TO_CODE_CALLS: dict[str, tuple[int, str]] = {
    "pandas.eval": (0, "expr"),
    "pandas.core.computation.eval.eval": (0, "expr"),
    "numexpr.evaluate": (0, "ex"),
    "numexpr.re_evaluate": (0, "ex"),
    "sympy.sympify": (0, "a"),
    "sympy.S": (0, "a"),
    "sympy.core.sympify.sympify": (0, "a"),
    "sympy.parse_expr": (0, "s"),
    "sympy.parsing.parse_expr": (0, "s"),
    "sympy.parsing.sympy_parser.parse_expr": (0, "s"),
    "sympy.parsing.sympy_parser.eval_expr": (0, "code"),
    "sympy.parsing.sympy_parser.stringify_expr": (0, "s"),
    "sympy.parsing.mathematica.parse_mathematica": (0, "s"),
    "sympy.parsing.maxima.parse_maxima": (0, "str"),
    "sympy.lambdify": (1, "expr"),
    "sympy.utilities.lambdify.lambdify": (1, "expr"),
}
# Method names that evaluate their first argument on any object (DataFrame, Series, Dataset).
# Only calls with an argument count: ``model.eval()`` (torch) takes none.
STRING_TO_CODE_METHODS: dict[str, tuple[int, str]] = {"eval": (0, "expr"), "query": (0, "expr")}
# Every sympy callable sympifies string arguments: literal strings given to any of them are
# checked like an expression (``sympy.simplify("x**2")``); only these take names, not code.
SYMPY_NAME_TAKERS = frozenset({
    "sympy.symbols", "sympy.Symbol", "sympy.Dummy", "sympy.Wild", "sympy.Function",
    "sympy.var", "sympy.IndexedBase", "sympy.Idx", "sympy.MatrixSymbol", "sympy.latex",
    "sympy.pprint", "sympy.plot", "sympy.core.symbol.symbols", "sympy.core.symbol.Symbol",
})  # fmt: skip
# Formula interfaces evaluate each term as Python in the caller's namespace. Literal formulas
# are checked; formulas built at run time are a soft finding (column names are data).
FORMULA_MODULES = ("patsy", "formulaic", "statsmodels.formula", "statsmodels.api.formula")
FORMULA_METHODS = frozenset({"from_formula"})
FORMULA_KEYWORDS = frozenset({"formula", "formula_like", "spec"})
# yaml.load/load_all are fine with these loaders only.
SAFE_YAML_LOADERS = frozenset(
    {"yaml.SafeLoader", "yaml.CSafeLoader", "yaml.BaseLoader", "yaml.CBaseLoader"}
)
YAML_LOADS = frozenset({"yaml.load", "yaml.load_all"})
# torch.load unpickles unless weights_only=True.
WEIGHTS_ONLY_LOADERS = frozenset({"torch.load"})
# numpy loaders whose allow_pickle must be a literal False; (position, keyword).
ALLOW_PICKLE_LOADERS: dict[str, int] = {
    "numpy.load": 2,
    "numpy.lib.npyio.load": 2,
    "numpy.lib.format.read_array": 1,
}

# Names that have no business inside an expression string handed to a library: a literal
# passed to eval/query/sympify/a formula is refused when it mentions one of them, any dunder,
# or any private name (``_os``).
CODE_STRING_NAMES = frozenset({
    "eval", "exec", "compile", "getattr", "setattr", "delattr", "globals", "locals", "vars",
    "open", "input", "breakpoint", "lambda", "import", "exit", "quit", "help", "memoryview",
    "object", "type", "super", "classmethod", "staticmethod", "property", "dir",
    "system", "popen", "Popen", "spawn", "fork", "modules", "environ", "path",
})  # fmt: skip

# --- file names a script must not write ----------------------------------------------------
# Written into the working directory (the first entry of sys.path) they become importable, or
# they change the import system when the interpreter starts.
IMPORTABLE_SUFFIXES = (".py", ".pyc", ".pyo", ".pyw", ".pth", ".so", ".pyd", ".egg", ".whl")
# Modules every interpreter has loaded before the script starts (``python -I``, 3.11): a file
# written later cannot shadow them, so importing them after a write is fine.
STARTUP_MODULES = frozenset({
    "abc", "builtins", "codecs", "encodings", "genericpath", "io", "marshal", "os", "os.path",
    "posix", "posixpath", "site", "stat", "sys", "time", "zipimport",
})  # fmt: skip
# Calls that write or move a file: the target is their last path argument.
FILE_WRITERS = frozenset({
    "write_text", "write_bytes", "copy", "copy2", "copyfile", "copytree", "move", "rename",
    "replace", "symlink_to", "hardlink_to", "savetxt", "tofile", "savefig", "save",
    "extract", "extractall", "unpack_archive", "urlretrieve", "touch",
})  # fmt: skip
