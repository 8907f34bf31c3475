"""StaticPolicy: blocked imports and calls, escape tricks, paths, clean data scripts, guards."""

from __future__ import annotations

import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from security import (
    BLOCKED_CALLS,
    BLOCKED_IMPORTS,
    RULES,
    SAFE_PACKAGES,
    Finding,
    PolicyReport,
    StaticPolicy,
)
from tests.security.scripts import SCRIPTS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def policy() -> StaticPolicy:
    return StaticPolicy()


def rules_of(report: PolicyReport) -> set[str]:
    return {f.rule_id for f in report.findings}


def assert_hit(report: PolicyReport, rule_id: str) -> Finding:
    hits = [f for f in report.findings if f.rule_id == rule_id]
    assert hits, f"expected {rule_id}, got {report.to_dicts()}"
    return hits[0]


# --- the seed's lists ---------------------------------------------------------------------

SEED_SAFE_IMPORT_NAMES = [
    "json", "csv", "math", "datetime", "collections", "itertools", "re", "os", "sys",
    "zipfile", "tarfile", "gzip", "bz2", "statistics", "numpy", "pandas", "scipy", "sklearn",
    "sympy", "statsmodels", "matplotlib", "seaborn", "plotly", "openpyxl", "xlrd", "xlwt",
    "docx", "PyPDF2", "pdfplumber", "pypdf", "pyarrow", "h5py", "tables", "netCDF4", "xarray",
    "lxml", "bs4", "chardet", "PIL", "imageio", "jsonschema", "cerberus", "nltk", "textblob",
]  # fmt: skip
SEED_BLOCKED = [
    "socket", "subprocess", "os.system", "eval", "exec", "__import__", "importlib",
    "shutil.rmtree", "pickle",
]  # fmt: skip


def test_seed_lists_are_included() -> None:
    assert set(SEED_SAFE_IMPORT_NAMES) <= SAFE_PACKAGES
    assert set(SEED_BLOCKED) <= BLOCKED_IMPORTS
    assert not SAFE_PACKAGES & BLOCKED_IMPORTS
    assert {"builtins.eval", "builtins.exec", "builtins.__import__", "os.system"} <= BLOCKED_CALLS


@pytest.mark.parametrize("module", SEED_SAFE_IMPORT_NAMES)
def test_seed_safe_imports_are_clean(policy: StaticPolicy, module: str) -> None:
    assert policy.check(f"import {module}\n").findings == ()


# --- blocked imports, every form ------------------------------------------------------------

BLOCKED_MODULES = [
    "socket", "subprocess", "importlib", "pickle", "cPickle", "_pickle", "dill", "cloudpickle",
    "shelve", "marshal", "ctypes", "cffi", "multiprocessing", "pty", "resource", "posix",
    "code", "codeop", "builtins", "pdb", "timeit", "runpy", "pkgutil", "zipimport", "ssl",
    "http", "requests", "httpx", "urllib3", "ftplib", "smtplib", "telnetlib", "webbrowser",
    "xmlrpc", "socketserver", "pip",
]  # fmt: skip


@pytest.mark.parametrize("module", BLOCKED_MODULES)
@pytest.mark.parametrize(
    "template",
    [
        "import {m}",
        "import {m} as z",
        "import {m}.sub as z",
        "from {m} import something",
        "from {m}.sub import something",
        "import json, {m}",
        "def f():\n    import {m}",
    ],
)
def test_blocked_import_forms(policy: StaticPolicy, module: str, template: str) -> None:
    report = policy.check(template.format(m=module))
    finding = assert_hit(report, "blocked-import")
    assert finding.hard and finding.severity == "critical"
    assert not report.ok


@pytest.mark.parametrize(
    "code",
    [
        "from os import system",
        "from os import system as s",
        "from shutil import rmtree",
        "from urllib import request",
        "from urllib import parse, request",
        "import urllib.request",
        "from concurrent.futures import ProcessPoolExecutor",
        "import concurrent.futures.process",
        "from asyncio import subprocess",
        "from http.client import HTTPConnection",
    ],
)
def test_blocked_names_through_allowed_packages(policy: StaticPolicy, code: str) -> None:
    finding = assert_hit(policy.check(code), "blocked-import")
    assert finding.hard


def test_relative_imports_are_ignored(policy: StaticPolicy) -> None:
    assert policy.check("from . import helpers\nfrom .subprocess import x\n").findings == ()


# --- blocked calls -----------------------------------------------------------------------------

BLOCKED_CALL_CASES = [
    "eval('1 + 1')",
    "exec('print(1)')",
    "compile('1', '<s>', 'eval')",
    "__import__('os')",
    "breakpoint()",
    "import os\nos.system('ls')",
    "import os\nos.popen('ls').read()",
    "import os\nos.execv('sh', ['sh'])",
    "import os\nos.execlp('sh', 'sh')",
    "import os\nos.spawnlp(os.P_WAIT, 'sh', 'sh')",
    "import os\nos.fork()",
    "import os\nos.forkpty()",
    "import os\nos.kill(1, 9)",
    "import os\nos.killpg(1, 9)",
    "import os\nos.posix_spawn('sh', ['sh'], {})",
    "import os\nos.posix_spawnp('sh', ['sh'], {})",
    "import os\nos.setuid(0)",
    "import os\nos.chroot('jail')",
    "import os\nos.symlink('a', 'b')",
    "import shutil\nshutil.rmtree('output')",
    "import types\ntypes.CodeType(*args)",
    "import concurrent.futures as cf\ncf.ProcessPoolExecutor()",
    "import asyncio\nasyncio.create_subprocess_exec('ls')",
    "import asyncio\nasyncio.get_event_loop().subprocess_shell(p, 'ls')",
    "import pandas as pd\npd.read_pickle('model.pkl')",
    "df.to_pickle('frame.pkl')",
    "import sqlite3\ncon = sqlite3.connect('db.sqlite')\ncon.enable_load_extension(True)",
    "from pathlib import Path\nPath('link').symlink_to('target')",
    "import fcntl\nfcntl.ioctl(0, 0x5412, b'x')",
    "import logging.handlers\nlogging.handlers.SocketHandler('host', 9020)",
]


@pytest.mark.parametrize("code", BLOCKED_CALL_CASES)
def test_blocked_calls(policy: StaticPolicy, code: str) -> None:
    report = policy.check(code)
    finding = assert_hit(report, "blocked-call")
    assert finding.hard and not report.ok


def test_blocked_call_position(policy: StaticPolicy) -> None:
    finding = assert_hit(policy.check("x = 1\nif x:\n    y = eval('2')\n"), "blocked-call")
    assert (finding.line, finding.col) == (3, 8)


# --- aliasing, attribute chains and other escape tricks ------------------------------------

ESCAPES = [
    # aliasing a blocked callable or module
    ("e = eval\ne('1')", "blocked-call"),
    ("x = [eval][0]", "blocked-call"),
    ("f = exec if True else print", "blocked-call"),
    ("import os as o\no.system('id')", "blocked-call"),
    ("import os\nm = os\nm.system('id')", "blocked-call"),
    ("import os\na, b = os, 1\na.system('id')", "blocked-call"),
    ("from os import system as s\ns('id')", "blocked-import"),
    ("from os import *\nsystem('id')", "blocked-call"),
    ("import os\nf = os.system\nf('id')", "blocked-call"),
    ("import os\nlist(map(os.system, ['id']))", "blocked-call"),
    ("import os\ndef run():\n    global o\n    o = os\nrun()\no.system('id')", "blocked-call"),
    ("import os\nclass A:\n    def go(self):\n        return os.popen('id')", "blocked-call"),
    ("import shutil\nshutil.os.system('id')", "blocked-call"),
    ("import pandas as pd\npd.io.common.os.system('id')", "blocked-call"),
    ("import asyncio\nasyncio.subprocess.PIPE", "blocked-import"),
    ("import os as sys\nsys.system('id')", "blocked-call"),
    ("import os\n(m := os).system('id')", "blocked-call"),
    ("from os import path\npath.os.system('id')", "blocked-call"),
    ("import os\ngetattr(os.path, 'os').system('id')", "blocked-call"),
    ("if False:\n    import os as eval\neval('id')", "blocked-call"),
    (
        "import os\ntry:\n    pass\nexcept Exception as os:\n    pass\nos.system('id')",
        "blocked-call",
    ),
    ("\uff45\uff56\uff41\uff4c('1')", "blocked-call"),  # fullwidth "eval", NFKC-normalised
    # getattr with constant, folded or computed names
    ("import os\ngetattr(os, 'system')('id')", "blocked-call"),
    ("import os\ngetattr(os, 'sys' + 'tem')('id')", "blocked-call"),
    ("import os\ngetattr(os, 'metsys'[::-1])('id')", "blocked-call"),
    ("import os\nname = ''.join(['sys', 'tem'])\ngetattr(os, name)('id')", "blocked-call"),
    ("import os\ngetattr(os, f'{\"sys\"}tem')('id')", "blocked-call"),
    ("import os\ngetattr(os, name)('id')", "dynamic-attribute-module"),
    ("import sys\nsetattr(sys, n, v)", "dynamic-attribute-module"),
    ("getattr(__builtins__, 'eval')", "escape-attribute"),
    ("getattr(f, '__glo' + 'bals__')", "escape-attribute"),
    ("getattr(f, '__globals__')", "escape-attribute"),
    ("getattr(f, '__' + name)", "escape-attribute"),
    ("import operator\noperator.attrgetter('__globals__')(f)", "escape-attribute"),
    # module objects passed around to hide their members
    ("import os\ndef f(m):\n    return m.system('id')\nf(os)", "module-as-value"),
    ("import os\n[os][0].system('id')", "module-as-value"),
    ("import os\nd = {'m': os}", "module-as-value"),
    ("import sys\ndef f():\n    return sys", "module-as-value"),
    ("import os\nclass A:\n    m = os", "module-as-value"),
    ("import os\nf = lambda m=os: m.system('id')", "module-as-value"),
    ("import os\nimport operator\noperator.methodcaller('system', 'id')(os)", "module-as-value"),
    ("import os\nself.m = os", "module-as-value"),
    (
        "class A:\n    import os\n    def f(self):\n        return self.os.system('id')",
        "module-as-value",
    ),
    # namespaces by name
    ("globals()['__builtins__']", "escape-attribute"),
    ("globals()['ev' + 'al']('1')", "blocked-call"),
    ("locals()['exec']", "blocked-call"),
    ("globals()[name]", "namespace-tampering"),
    ("globals()['x'] = 1", "namespace-tampering"),
    ("del globals()['x']", "namespace-tampering"),
    ("globals().update({'e': 1})", "namespace-tampering"),
    ("dict.update(globals(), {'e': 1})", "namespace-tampering"),
    ("vars(__builtins__)['eval']", "escape-attribute"),
    ("import os\nvars(os)['system']('id')", "namespace-tampering"),
    ("import os\nos.__dict__['system']('id')", "namespace-tampering"),
    ("import builtins\nbuiltins.__dict__['__import__']('os')", "escape-attribute"),
    ("type(x).__dict__['f']", "namespace-tampering"),
    ("x.__class__.__dict__", "namespace-tampering"),
    ("import sys\nsys.modules['os'].system('id')", "namespace-tampering"),
    ("import sys\nmods = sys.modules", "namespace-tampering"),
    ("import sys\nsys.meta_path.insert(0, finder)", "import-path"),
    ("import builtins\nbuiltins.open = None", "namespace-tampering"),
    ("setattr(__builtins__, 'open', None)", "escape-attribute"),
    # introspection: dunders, frames, code objects
    ("().__class__.__bases__[0].__subclasses__()", "escape-attribute"),
    ("().__class__.__mro__[1].__subclasses__()", "escape-attribute"),
    ("object.__subclasses__()", "escape-attribute"),
    ("type.mro(int)", "escape-attribute"),
    ("(lambda: 0).__globals__['os']", "escape-attribute"),
    ("f.__code__.co_consts", "escape-attribute"),
    ("f.__closure__[0].cell_contents", "escape-attribute"),
    ("print.__self__", "escape-attribute"),
    ("x.__init__.__globals__", "escape-attribute"),
    ("object.__getattribute__(x, name)", "escape-attribute"),
    ("x.__reduce_ex__(2)", "escape-attribute"),
    ("__builtins__.eval('1')", "escape-attribute"),
    ("__loader__.load_module('os')", "escape-attribute"),
    ("__spec__", "escape-attribute"),
    ("import sys\nsys._getframe(1).f_globals", "escape-attribute"),
    ("import sys\nsys.settrace(tracer)", "escape-attribute"),
    ("import inspect\ninspect.currentframe().f_back", "escape-attribute"),
    ("import inspect\ninspect.stack()", "escape-attribute"),
    ("import gc\ngc.get_referrers(obj)", "escape-attribute"),
    ("import gc\ngc.get_objects()", "escape-attribute"),
    ("def g():\n    yield 1\ng().gi_frame.f_globals", "escape-attribute"),
    ("try:\n    1 / 0\nexcept Exception as e:\n    e.__traceback__.tb_frame", "escape-attribute"),
    ("'{0.__init__.__globals__}'.format(f)", "escape-attribute"),
    ("'{x.__class__.__mro__}'.format_map({'x': 1})", "escape-attribute"),
    ("import string\nstring.Formatter().format('{0.f_back}', frame)", "escape-attribute"),
    ("key = '__subclasses__'", "escape-attribute"),
    ("key = '__sub' + 'classes__'", "escape-attribute"),
]


@pytest.mark.parametrize(("code", "rule_id"), ESCAPES)
def test_escape_tricks(policy: StaticPolicy, code: str, rule_id: str) -> None:
    report = policy.check(code)
    finding = assert_hit(report, rule_id)
    assert finding.hard and finding.severity == "critical"
    assert not report.ok


def test_computed_getattr_on_plain_objects_is_major_and_overridable(
    policy: StaticPolicy,
) -> None:
    report = policy.check("value = getattr(model, attribute_name)\n")
    finding = assert_hit(report, "dynamic-attribute")
    assert (finding.severity, finding.hard) == ("major", False)


# --- paths -----------------------------------------------------------------------------------

PATH_CASES = [
    ("open('/etc/passwd')", "path-system", True),
    ("open('/proc/self/environ').read()", "path-system", True),
    ("open(file='/etc/shadow')", "path-system", True),
    ("import pandas as pd\npd.read_csv('/etc/passwd')", "path-system", True),
    ("import pandas as pd\npd.read_csv('file:///etc/passwd')", "path-system", True),
    ("from pathlib import Path\nPath('/etc') / 'passwd'", "path-system", True),
    ("from pathlib import Path\np = Path('/root/.ssh')", "path-system", True),
    ("import os\nos.listdir('/')", "path-system", True),
    ("import os\nos.walk('/home')", "path-system", True),
    ("import glob\nglob.glob('/*')", "path-system", True),
    ("import os\nopen(os.path.join('/etc', 'passwd'))", "path-system", True),
    ("import os\nos.path.expanduser('~/.aws/credentials')", "path-system", True),
    ("p = '/var/run/docker.sock'\nopen(p)", "path-system", True),
    ("import shutil\nshutil.copy('/etc/hosts', 'hosts.txt')", "path-system", True),
    ("import sqlite3\nsqlite3.connect('/var/lib/app/db.sqlite')", "path-system", True),
    ("open('/data/input.csv')", "path-outside-workdir", False),
    ("open('../secret.csv')", "path-outside-workdir", False),
    ("import pandas as pd\npd.read_excel('data/../../x.xlsx')", "path-outside-workdir", False),
    ("df.to_csv('/tmp/out.csv')", "path-outside-workdir", False),
    (
        "DATA = '/mnt/data'\nimport pandas as pd\npd.read_csv(f'{DATA}/x.csv')",
        "path-outside-workdir",
        False,
    ),
    ("import os\nos.chdir('..')", "path-outside-workdir", False),
    ("import os\nos.remove('/tmp/x')", "path-outside-workdir", False),
    (
        "from pathlib import Path\n(Path('data') / '..' / 'x').read_text()",
        "path-outside-workdir",
        False,
    ),
    (
        "import matplotlib.pyplot as plt\nplt.savefig('/out/plot.png')",
        "path-outside-workdir",
        False,
    ),
    ("import pandas as pd\npd.read_csv('https://example.com/data.csv')", "network-url", False),
    ("import xarray as xr\nxr.open_dataset('s3://bucket/x.nc')", "network-url", False),
    ("import nltk\nnltk.download('punkt')", "network-url", False),
    ("import seaborn as sns\nsns.load_dataset('iris')", "network-url", False),
    ("from sklearn.datasets import fetch_openml\nfetch_openml('mnist_784')", "network-url", False),
]


@pytest.mark.parametrize(("code", "rule_id", "hard"), PATH_CASES)
def test_paths_outside_the_working_directory(
    policy: StaticPolicy, code: str, rule_id: str, hard: bool
) -> None:
    report = policy.check(code)
    finding = assert_hit(report, rule_id)
    assert finding.hard is hard
    assert not report.ok


# --- what must stay allowed (false positives are a bug too) ----------------------------------

ALLOWED = [
    "open(path)",  # a variable: cannot be known statically; the container is the boundary
    "def load(name):\n    return open(name).read()",
    "with open(f'{name}.csv', 'w') as fh:\n    fh.write('/etc/passwd is a path')",
    "open('/dev/null', 'w')",
    "open('output/result.json', 'w')",
    "import os\nos.makedirs('output/plots', exist_ok=True)",
    "import os\nos.path.join(os.getcwd(), 'x.csv')",
    "text = 'a/b'.replace('/', '-')",
    "parts = '2024/01/31'.split('/')",
    "import re\nre.sub('/', '_', name)",
    "tree.xpath('//book/title/text()')",
    "import pandas as pd\ndf = pd.read_csv('data.csv')\ndf.eval('c = a + b')\ndf.query('a > 1')",
    "import numpy as np\nnp.trace(np.eye(3))",
    "import platform\nprint(platform.system())",
    "proc.kill()",
    "from re import compile\npattern = compile('a+')",
    "import re\ncompile = re.compile\ncompile('x')",
    "def eval(x):\n    return x\n",
    "[x for eval in range(3)]",
    "class A:\n    def __init__(self):\n        super().__init__()\n        self.__dict__.update({})",
    "print(self.__class__.__name__, type(x).__name__, f.__name__, f.__doc__)",
    "import pandas as pd\nprint(pd.__version__)",
    "if __name__ == '__main__':\n    print(__file__)",
    "if 'df' in globals():\n    print(globals().get('df'))",
    "print('{a} {b}'.format(**locals()))",
    "print('{0.name}: {row[_id]} {1._x} {2:>{3}}'.format(obj, y, z, w, row=r))",
    "print(vars(args))",
    "getattr(np, 'mean')(values)",
    "hasattr(obj, name)",
    "setattr(self, key, value)",
    "import gc\ngc.collect()",
    "import threading\nt = threading.Thread(target=print)\nt.start()\nt.join()",
    "from concurrent.futures import ThreadPoolExecutor\nwith ThreadPoolExecutor(2) as ex:\n    list(ex.map(str, [1]))",
    "import sys\nprint('x', file=sys.stderr)\nsys.exit(0)",
    "import os\nprint(os.sep, os.linesep, os.getcwd(), os.cpu_count())",
    "from dataclasses import dataclass\n@dataclass(frozen=True)\nclass P:\n    x: int\n    def __post_init__(self):\n        object.__setattr__(self, 'x', 1)",
    "import ast\nast.literal_eval('[1, 2]')",
    "import types\nisinstance(f, (types.FunctionType, types.SimpleNamespace))",
    "import sqlite3\ncon = sqlite3.connect('local.db')",
    "from urllib.parse import urlparse, quote\nurlparse('https://example.com')",
    "url = 'https://example.com/report'\nprint(url)",
    "import tempfile\nwith tempfile.TemporaryDirectory() as d:\n    pass",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pandas as pd",
]


@pytest.mark.parametrize("code", ALLOWED)
def test_ordinary_code_passes(policy: StaticPolicy, code: str) -> None:
    report = policy.check(code)
    assert report.ok, report.to_dicts()
    assert report.hard_findings == ()


def test_invalid_escape_sequences_are_not_findings(policy: StaticPolicy) -> None:
    # pytest runs with warnings as errors; the parser's DeprecationWarning must not leak out
    code = "import re\nre.findall('\\d+', text)\n"
    assert policy.check(code).findings == ()


def test_concurrent_checks_leave_warning_filters_alone(policy: StaticPolicy) -> None:
    before = list(warnings.filters)
    code = "import re\nre.findall('\\d+', text)\n" + SCRIPTS["groupby"]
    with ThreadPoolExecutor(4) as pool:
        reports = list(pool.map(policy.check, [code] * 40))
    assert all(r.ok for r in reports)
    assert warnings.filters == before


def test_environment_reads_are_info_only(policy: StaticPolicy) -> None:
    report = policy.check("import os\nhome = os.environ.get('HOME')\nuser = os.getenv('USER')\n")
    assert report.ok
    assert {f.severity for f in report.findings} == {"info"}
    assert rules_of(report) == {"environment-read"}


def test_ownership_change_is_major_and_overridable(policy: StaticPolicy) -> None:
    finding = assert_hit(policy.check("import os\nos.chown('x', 1000, 1000)"), "ownership-change")
    assert (finding.severity, finding.hard) == ("major", False)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_data_science_scripts_are_clean(policy: StaticPolicy, name: str) -> None:
    code = SCRIPTS[name]
    compile(code, name, "exec")  # they are real Python
    report = policy.check(code)
    assert report.ok, report.to_dicts()
    assert [f for f in report.findings if f.severity != "info"] == []


def test_seed_examples_are_clean(policy: StaticPolicy) -> None:
    example_1 = (
        "import pandas as pd\ndf = pd.read_csv('employees.csv')\n"
        "result = df.groupby('department')['salary'].mean()\nprint(result.to_json())\n"
    )
    example_2 = (
        "import PyPDF2\nimport re\nimport json\n"
        "with open('contract.pdf', 'rb') as f:\n"
        "    reader = PyPDF2.PdfReader(f)\n    text = ''\n"
        "    for page in reader.pages:\n        text += page.extract_text()\n"
        "emails = re.findall(r'[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\\.[a-zA-Z]{2,}', text)\n"
        "print(json.dumps({'emails': emails}))\n"
    )
    assert policy.check(example_1).findings == ()
    assert policy.check(example_2).findings == ()


# --- allow-list ------------------------------------------------------------------------------


def test_unknown_import_is_minor(policy: StaticPolicy) -> None:
    report = policy.check("import polars as pl\nfrom tabulate import tabulate\n")
    assert report.ok  # minor findings do not block
    assert [(f.rule_id, f.severity, f.hard, f.line) for f in report.findings] == [
        ("import-not-allowlisted", "minor", False, 1),
        ("import-not-allowlisted", "minor", False, 2),
    ]


def test_extra_allowed_extends_but_cannot_unblock() -> None:
    policy = StaticPolicy(extra_allowed=["polars", "socket"])
    assert policy.check("import polars\n").findings == ()
    assert rules_of(policy.check("import socket\n")) == {"blocked-import"}


def test_allowed_submodule_entries(policy: StaticPolicy) -> None:
    assert policy.check("from urllib.parse import urljoin\nfrom urllib import parse\n").ok
    assert policy.check("import xml.etree.ElementTree as ET\nimport email.utils\n").findings == ()


# --- syntax errors and guards ----------------------------------------------------------------


def test_syntax_error_has_line_and_col(policy: StaticPolicy) -> None:
    report = policy.check("import pandas as pd\n\ndf = pd.read_csv('x.csv'\nprint(df)\n")
    (finding,) = report.findings
    assert finding.rule_id == "syntax-error"
    assert (finding.severity, finding.hard) == ("critical", False)
    assert finding.line == 3 and finding.col >= 0
    assert not report.ok


def test_syntax_error_col_points_at_the_problem(policy: StaticPolicy) -> None:
    (finding,) = policy.check("x = (1 +\n").findings
    assert finding.rule_id == "syntax-error"
    assert (finding.line, finding.col) == (1, 4)


def test_indentation_error(policy: StaticPolicy) -> None:
    (finding,) = policy.check("if True:\nprint(1)\n").findings
    assert finding.rule_id == "syntax-error"
    assert finding.line == 2
    assert "IndentationError" in finding.message


PATHOLOGICAL = {
    "nested_parens": "(" * 100_000 + "1" + ")" * 100_000,
    "nested_brackets": "x = " + "[" * 5_000 + "]" * 5_000,
    "unary_chain": "-" * 100_000 + "1",
    "not_chain": "not " * 50_000 + "x",
    "attribute_chain": "a" + ".b" * 100_000,
    "call_chain": "f" + "()" * 100_000,
    "binop_chain": "+".join(["a"] * 100_000),
    "binop_chain_400": "x = " + "+".join(["a"] * 400),
    "lambda_nest": "lambda: " * 20_000 + "1",
    "deep_indent": "".join(" " * i + "if x:\n" for i in range(200)) + " " * 200 + "pass\n",
    "elif_chain": "if x: pass\n" + "elif x: pass\n" * 50_000,
    "huge_int": "x = " + "9" * 500_000,
    "huge_list": "x = [" + "1," * 150_000 + "]",
    "too_large": "x = 1\n" * 200_000,
    "null_byte": "x = 1\0\n",
    "lone_surrogate": "x = '\ud800'\n",
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_pathological_input_returns_quickly_with_a_finding(policy: StaticPolicy, name: str) -> None:
    code = PATHOLOGICAL[name]
    start = time.perf_counter()
    report = policy.check(code)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"{name} took {elapsed:.2f}s"
    assert report.findings, name
    assert rules_of(report) <= {"code-too-complex", "code-too-large", "syntax-error"}
    assert not report.ok


def test_huge_string_literal_is_fine(policy: StaticPolicy) -> None:
    start = time.perf_counter()
    report = policy.check("x = '" + "a" * 900_000 + "'\nprint(len(x))\n")
    assert time.perf_counter() - start < 2.0
    assert report.findings == ()


def test_size_limit_is_configurable() -> None:
    report = StaticPolicy(max_code_bytes=100).check("x = 1\n" * 50)
    (finding,) = report.findings
    assert (finding.rule_id, finding.severity, finding.hard) == ("code-too-large", "critical", True)


def test_string_folding_cannot_explode(policy: StaticPolicy) -> None:
    doubling = "x0 = 'ab'\n" + "".join(f"x{i + 1} = x{i} + x{i}\n" for i in range(80))
    start = time.perf_counter()
    report = policy.check(doubling + "getattr(obj, x80)\ngetattr(obj, 'a' * 10**12)\n")
    assert time.perf_counter() - start < 2.0
    assert rules_of(report) == {"dynamic-attribute"}


def test_long_alias_chain_still_resolves(policy: StaticPolicy) -> None:
    chain = "".join(f"a{i + 1} = a{i}\n" for i in range(200))
    report = policy.check("import os\na0 = os\n" + chain + "a200.system('id')\n")
    finding = assert_hit(report, "blocked-call")
    assert finding.line == 203


# Names bound and read thousands of times: each read walked every binding again, so these
# took 20 s (a gateway thread and a core per request) before reads shared the walk.
REBOUND = {
    "bound_and_read": "x = 1\n" * 2500 + "print(x)\n" * 2500,
    "dataframe_reassigned": "import pandas as pd\n"
    + "df = pd.read_csv('sales.csv')\nprint(df.groupby('region')['amount'].sum())\n" * 1200,
    "in_a_function": "def f():\n" + "    x = 1\n" * 2500 + "    print(x)\n" * 2500,
}


@pytest.mark.parametrize("name", sorted(REBOUND))
def test_a_name_rebound_and_read_thousands_of_times_is_checked_quickly(
    policy: StaticPolicy, name: str
) -> None:
    start = time.perf_counter()
    report = policy.check(REBOUND[name])
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"{name} took {elapsed:.2f}s"
    assert report.ok and report.findings == (), report.to_dicts()


def test_a_rebound_alias_is_still_followed_through_every_binding(policy: StaticPolicy) -> None:
    """Reads share one walk of a name's bindings, cycles included (``r = r.os``)."""
    reads = "print(r)\n" * 50
    code = "import shutil\nr = shutil\n" + reads + "r = r.os\n" + reads + "r.system('id')\n"
    finding = assert_hit(policy.check(code), "blocked-call")
    assert finding.line == 104 and "os.system" in finding.message


# --- the report --------------------------------------------------------------------------------


def test_findings_are_sorted_and_deduplicated(policy: StaticPolicy) -> None:
    code = "import socket\nimport os\nos.system('a'); os.system('b')\neval('1')\neval('1')\n"
    report = policy.check(code)
    positions = [(f.line, f.col) for f in report.findings]
    assert positions == sorted(positions)
    keys = [(f.rule_id, f.line, f.col) for f in report.findings]
    assert len(keys) == len(set(keys))
    assert [(f.rule_id, f.line) for f in report.findings] == [
        ("blocked-import", 1),
        ("blocked-call", 3),
        ("blocked-call", 3),
        ("blocked-call", 4),
        ("blocked-call", 5),
    ]


def test_report_api(policy: StaticPolicy) -> None:
    report = policy.check("import polars\nimport os\nos.getenv('X')\nopen('../x')\n")
    assert not report.ok  # the '..' path is major
    assert report.hard_findings == ()
    dicts = report.to_dicts()
    assert set(dicts[0]) == {"rule_id", "severity", "message", "line", "col", "hard"}
    assert [d["rule_id"] for d in dicts] == [
        "import-not-allowlisted",
        "environment-read",
        "path-outside-workdir",
    ]
    clean = policy.check("print(1)\n")
    assert clean.ok and clean.findings == () and clean.to_dicts() == []


def test_columns_count_characters_not_bytes(policy: StaticPolicy) -> None:
    finding = assert_hit(policy.check("s = 'ééé'; eval('1')\n"), "blocked-call")
    assert finding.col == 11


def test_every_finding_follows_the_rule_catalogue(policy: StaticPolicy) -> None:
    codes = [c for c, _ in ESCAPES] + BLOCKED_CALL_CASES + [c for c, _, _ in PATH_CASES]
    seen = set()
    for code in codes:
        for f in policy.check(code).findings:
            rule = RULES[f.rule_id]
            assert (f.severity, f.hard) == (rule.severity, rule.hard)
            assert f.message and f.line >= 1 and f.col >= 0
            seen.add(f.rule_id)
    assert len(seen) >= 10


def test_policy_is_a_pure_library() -> None:
    probe = (
        "import sys, security, security.policy\n"
        "bad = [m for m in sys.modules if m == 'fastapi' or m.split('.')[0] == 'service']\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", probe], cwd=REPO, check=True, timeout=60)


def test_a_400_line_script_checks_fast(policy: StaticPolicy) -> None:
    # one long script, its imports at the top as in each of its parts (an import after a
    # file copy with a computed name is a finding of its own)
    lines = "\n".join(SCRIPTS.values()).splitlines()
    imports = [line for line in lines if line.startswith(("import ", "from "))]
    code = "\n".join(imports + [line for line in lines if line not in imports])
    assert code.count("\n") >= 300
    policy.check(code)  # warm up
    start = time.perf_counter()
    report = policy.check(code)
    assert time.perf_counter() - start < 1.0
    assert report.ok
