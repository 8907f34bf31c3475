"""Bypass classes of the static policy: each class, several spellings, some not special-cased.

Every script here reached a blocked call inside a sandbox (or would, with the spelling changed)
while an earlier policy said ok. A class is closed when spellings nobody wrote a rule for are
refused too; the last spellings of each list are such variations.
"""

from __future__ import annotations

import pytest

from security import PolicyReport, StaticPolicy
from tests.api.test_execute_tasks import TASKS
from tests.security.corpus import CORPUS
from tests.security.scripts import SCRIPTS


@pytest.fixture(scope="module")
def policy() -> StaticPolicy:
    return StaticPolicy()


def refused(report: PolicyReport, *rules: str) -> None:
    assert not report.ok, "the policy let it through"
    got = {f.rule_id for f in report.findings if f.severity in ("critical", "major")}
    assert got & set(rules), f"expected one of {rules}, got {report.to_dicts()}"


PRIVATE_ALIASES = [
    "import random\nrandom._os.system('id')",
    "import tempfile\ntempfile._os.popen('id')",
    "from random import _os\n_os.system('id')",
    "import random as r\nx = r._os\nx.system('id')",
    "import tempfile\ng = tempfile._os\ngetattr(g, 'system')('id')",
    "import collections\ncollections._sys.modules['os'].system('id')",
    "import pandas as pd\npd.io.common._os.system('id')",
    "import shutil\nshutil.os.execv('/bin/sh', ['sh'])",
    "import json\njson.decoder._private_helper('x')",
    "import random\ngetattr(random, '_' + 'os').system('id')",
    "import numpy as np\nnp._core._multiarray_umath",
    "import glob\n[glob][0].os.system('id')",
    "import glob\nholder = {'g': glob}\nholder['g'].os.system('id')",
    "import glob\ngetattr([glob][0], 'os').system('id')",
]


@pytest.mark.parametrize("code", PRIVATE_ALIASES)
def test_private_aliases_of_modules(policy: StaticPolicy, code: str) -> None:
    refused(
        policy.check(code),
        "private-module-attribute",
        "blocked-call",
        "module-as-value",
        "dynamic-attribute-module",
    )


INDIRECT_ATTRIBUTES = [
    "import functools, random\nfunctools.reduce(getattr, ['_os', 'system'], random)('id')",
    "from functools import reduce\nimport random\nreduce(getattr, 'x.y'.split('.'), random)",
    "import random\nlist(map(getattr, [random], ['x']))",
    "g = getattr\nimport random\nfrom functools import reduce\nreduce(g, ['a'], random)",
    "import random\ndef f(fn, o, n):\n    return fn(o, n)\nf(getattr, random, 'x')",
    "import operator, random\noperator.attrgetter('_os.system')(random)('id')",
    "import operator, random\noperator.attrgetter('os.system')(random)",
    "import operator, random\noperator.methodcaller('system', 'id')(random._os)",
    "import operator\nlist(map(operator.attrgetter, names))",
    "fetch = getattr.__call__\nfetch(obj, 'x')",
    "import inspect\ninspect.getmodule(f).system('id')",
]


@pytest.mark.parametrize("code", INDIRECT_ATTRIBUTES)
def test_indirect_attribute_access(policy: StaticPolicy, code: str) -> None:
    refused(
        policy.check(code),
        "indirect-attribute",
        "private-module-attribute",
        "dynamic-attribute-module",
        "escape-attribute",
    )


FORMAT_PATHS = [
    "import string\nstring.Formatter().get_field('0.__class__', [1], {})",
    "import string, random\nf = string.Formatter()\nf.get_field('0._os', [random], {})",
    "print('{0.__class__}'.format(1))",
    "import random\nprint('{0._os.environ}'.format(random))",
    "print('{0.__init__.__globals__[os]}'.format(obj))",
    "str.format('{0.__globals__}', f)",
    "'{0.__class__:{1}}'.format(1, 2)",
    "fmt = '{0.' + '__class__}'\nfmt.format(1)",
    "t = open('t.txt').read()\nprint(t.format(obj))",
    "import string\nclass F(string.Formatter):\n    pass\nF().vformat(open('f').read(), [1], {})",
    "'{0.os.environ}'.format(module_holder)",
    "import matplotlib.ticker as mt\nf = mt.StrMethodFormatter('{x.__class__}')",
    "import logging\nlogging.Formatter('{name.__init__.__globals__}', style='{')",
    "import pandas as pd\npd.read_csv('a.csv').style.format('{0.__class__}')",
]


@pytest.mark.parametrize("code", FORMAT_PATHS)
def test_format_string_attribute_paths(policy: StaticPolicy, code: str) -> None:
    refused(policy.check(code), "escape-attribute", "computed-format")


NAMESPACE_LOOKUPS = [
    "n = ''.join(chr(c) for c in [95, 95])\nglobals().get(n)",
    "globals()[input()]",
    "vars().get(input())",
    "locals().get(name)",
    "globals().get('__builtins__')",
    "globals().get('eval')('1')",
    "for k, v in globals().items():\n    pass",
    "vals = list(globals().values())",
    "g = globals()\ng['x']",
    "import random\nrandom.__dict__['_os']",
    "import random\nvars(random)['_os']",
    "f(**globals())",
]


@pytest.mark.parametrize("code", NAMESPACE_LOOKUPS)
def test_namespace_lookups_by_computed_name(policy: StaticPolicy, code: str) -> None:
    refused(
        policy.check(code),
        "namespace-tampering",
        "escape-attribute",
        "blocked-call",
        "private-module-attribute",
    )


STRING_TO_CODE = [
    "from sympy.parsing.sympy_parser import parse_expr\nparse_expr(\"__import__('os')\")",
    "import sympy\nsympy.sympify(\"__import__('os').system('id')\")",
    "import sympy\ns = open('f').read()\nsympy.sympify(s)",
    'from sympy import S\nS("().__class__")',
    "import sympy as sp\nsp.simplify(\"getattr(x, 'y')\")",
    "import sympy as sp\nsp.solve(\"S('__import__(1)')\")",
    "import patsy\npatsy.dmatrix(\"y ~ __import__('os').system('id')\", {})",
    "import statsmodels.formula.api as smf\nsmf.ols(\"y ~ os.system('id')\", data=df)",
    "import statsmodels.api as sm\nsm.OLS.from_formula(\"y ~ eval('1')\", df)",
    "import pandas as pd\ndf = pd.DataFrame()\ndf.query(\"@pd.io.common.os.system('id')\")",
    "import pandas as pd\ndf = pd.DataFrame()\ndf.query(open('q').read(), engine='numexpr')",
    "import pandas as pd\ndf = pd.DataFrame()\ndf.eval(f'{payload}', engine='python')",
    "import pandas as pd\npd.eval('[].__class__')",
    "import numexpr\nnumexpr.evaluate(expression)",
    "import xarray as xr\nds = xr.open_dataset('a.nc')\nds.query(x=cond_from_file)",
    "import typing\ntyping.get_type_hints(f)",
    "import logging.config\nlogging.config.dictConfig({'x': {'()': 'os.system'}})",
    "import yaml\nyaml.unsafe_load(open('a.yml'))",
    "import yaml\nyaml.load(open('a.yml'), Loader=yaml.Loader)",
    "import yaml\nL = yaml.UnsafeLoader\nyaml.load(open('a.yml'), L)",
    "import yaml\nyaml.full_load(open('a.yml'))",
    "import yaml\nyaml.load_all(open('a.yml'), Loader=loader_from_somewhere)",
    "import joblib\njoblib.load('m.pkl')",
    "import torch\ntorch.load('m.pt')",
    "import pandas as pd\npd.read_pickle('x.pkl')",
    "import pandas as pd\ndf = pd.DataFrame()\ngetattr(df, 'query')(open('q').read())",
    "import pandas as pd\ndf = pd.DataFrame()\nf = df.query\nf(open('q').read())",
    "import sympy as sp\nlist(map(sp.sympify, lines))",
    "import sympy as sp\nf = sp.sympify\nf(open('x').read())",
    "import operator\noperator.methodcaller('eval', text)(df)",
]


@pytest.mark.parametrize("code", STRING_TO_CODE)
def test_strings_and_data_that_become_code(policy: StaticPolicy, code: str) -> None:
    refused(
        policy.check(code),
        "string-to-code",
        "computed-formula",
        "unsafe-deserialisation",
        "blocked-call",
    )


def test_computed_formula_is_soft_and_literal_formula_is_clean(policy: StaticPolicy) -> None:
    computed = (
        "import statsmodels.formula.api as smf\nf = 'y ~ ' + ' + '.join(cols)\nsmf.ols(f, df)"
    )
    findings = policy.check(computed).findings
    assert [f.rule_id for f in findings] == ["computed-formula"] and not findings[0].hard
    assert policy.check("import statsmodels.formula.api as smf\nsmf.ols('y ~ x', df)").ok


NATIVE_CODE = [
    "import numpy.ctypeslib as c\nc.load_library('libc', '.')",
    "import numpy as np\nnp.ctypeslib.load_library('libc', '/lib')",
    "import pyarrow.cffi\npyarrow.cffi.ffi.dlopen(None)",
    "from pyarrow import cffi\ncffi.ffi.dlopen(None)",
    "import cffi\ncffi.FFI().dlopen(None)",
    "from importlib.machinery import ExtensionFileLoader",
    "import ctypes\nctypes.CDLL(None)",
    "import pyarrow as pa\npa.Array._import_from_c(1, 2)",
    "import pyarrow as pa\npa.foreign_buffer(0x1000, 64)",
    "import pyximport\npyximport.install()",
    "import numpy as np\na = np.zeros(3)\na.ctypes._ctypes",
]


@pytest.mark.parametrize("code", NATIVE_CODE)
def test_native_code_loaders(policy: StaticPolicy, code: str) -> None:
    refused(policy.check(code), "native-code", "blocked-import", "private-module-attribute")


VIEWERS = [
    "from PIL import ImageShow\nImageShow.register(viewer)",
    "import PIL.ImageShow\nPIL.ImageShow.show(img)",
    "from PIL.ImageShow import UnixViewer",
    "import PIL\nPIL.ImageShow.register(v)",
    "from PIL import ImageGrab\nImageGrab.grab()",
]


@pytest.mark.parametrize("code", VIEWERS)
def test_pil_viewers_run_commands(policy: StaticPolicy, code: str) -> None:
    refused(policy.check(code), "blocked-import")


ALLOW_PICKLE = [
    "import numpy as np\nnp.load('a.npy', allow_pickle=True)",
    "import numpy as np\nnp.load('a.npy', allow_pickle=1)",
    "import numpy as np\nflag = True\nnp.load('a.npy', allow_pickle=flag)",
    "import numpy as np\nnp.load('a.npy', allow_pickle='yes')",
    "import numpy as np\nnp.load('a.npy', None, True)",
    "import numpy as np\nnp.load('a.npy', **{'allow_pickle': True})",
    "from numpy import load\nload('a.npy', **opts)",
    "import numpy as np\nnp.lib.format.read_array(f, True)",
]


@pytest.mark.parametrize("code", ALLOW_PICKLE)
def test_numpy_allow_pickle_must_be_literal_false(policy: StaticPolicy, code: str) -> None:
    refused(policy.check(code), "unsafe-deserialisation")


def test_numpy_load_without_pickle_is_clean(policy: StaticPolicy) -> None:
    assert policy.check("import numpy as np\nnp.load('a.npy', allow_pickle=False)").ok
    assert policy.check("import numpy as np\nnp.load('a.npy')").ok


WRITE_THEN_IMPORT = [
    "open('evil.py', 'w').write('import os')\nimport evil",
    "n = 'ev' + 'il.py'\nwith open(n, 'w') as f:\n    f.write('x')\nimport evil",
    "from pathlib import Path\nPath('helper.py').write_text(src)\nimport helper",
    "from pathlib import Path\np = Path('m').with_suffix('.py')\np.write_text('x')\nimport m",
    "import shutil\nshutil.copy('data.txt', 'mod.py')\nimport mod",
    "import pandas as pd\npd.DataFrame().to_csv('evil.py')\nimport evil",
    "open('yaml.py', 'w').write('x')\nimport yaml",
    "open('x.pth', 'w').write('import os')",
    "with open(name + '.py', 'w') as f:\n    f.write(src)\nimport json",
    "with open(computed_name, 'w') as f:\n    f.write(src)\nimport payload",
    "def later():\n    import payload\nopen(computed_name, 'wb').write(blob)",
    "import os\nos.rename('data.bin', 'native.so')\nimport native",
    "import shutil\nshutil.unpack_archive('upload.zip', '.')\nimport payload",
    "import zipfile\nzipfile.ZipFile('u.zip').extractall()\nimport payload",
    "import tarfile\ntarfile.open('u.tgz').extractall('.')\nfrom payload import run",
    "for i in range(2):\n    try:\n        import evil\n    except ImportError:\n"
    "        open('evil.py', 'w').write('x')",
    "import evil\nopen('evil/__init__.py', 'w').write('x')",
    "import os\nfd = os.open('m.py', os.O_WRONLY | os.O_CREAT)\nimport m",
    "import io\nio.FileIO('m.py', 'w').write(b'x')\nimport m",
    "import os\nimport numpy as np\n"
    "open(os.path.join(os.path.dirname(np.__file__), 'evil.py'), 'w').write(src)\n"
    "from numpy import evil",
]


@pytest.mark.parametrize("code", WRITE_THEN_IMPORT)
def test_writing_a_module_then_importing_it(policy: StaticPolicy, code: str) -> None:
    refused(policy.check(code), "import-of-written-file")


IMPORT_SYSTEM = [
    "import sys\nsys.path.insert(0, 'upload.zip')\nimport payload",
    "import sys\nsys.path.append('.')",
    "import sys\nsys.path = ['x'] + sys.path",
    "import sys\nsys.path += ['x']",
    "import sys\nsys.path[0:0] = ['x']",
    "from sys import path\npath.insert(0, 'u.zip')",
    "import sys as s\ndef f(p):\n    p.append('x')\nf(s.path)",
    "import sys\nsys.meta_path.append(finder)",
    "import sys\nsys.path_hooks.insert(0, hook)",
    "import numpy as np\nnp.sys.path.append('x')",
    "import zipimport\nzipimport.zipimporter('u.zip').load_module('m')",
    "import importlib.util",
    "import site\nsite.addsitedir('.')",
    "import pydoc\npydoc.locate('os.system')",
    "import pkgutil\npkgutil.resolve_name('os:system')",
    "import runpy\nrunpy.run_path('x.py')",
]


@pytest.mark.parametrize("code", IMPORT_SYSTEM)
def test_import_path_and_machinery(policy: StaticPolicy, code: str) -> None:
    refused(policy.check(code), "import-path", "blocked-import")


# --- false positives ------------------------------------------------------------------------

ORDINARY = {
    **{f"corpus:{k}": v for k, v in CORPUS.items()},
    **{f"scripts:{k}": v for k, v in SCRIPTS.items()},
    **{f"execute-tasks:{k}": v[2] for k, v in TASKS.items()},
}


@pytest.mark.parametrize("name", sorted(ORDINARY))
def test_ordinary_data_scripts_stay_clean(policy: StaticPolicy, name: str) -> None:
    report = policy.check(ORDINARY[name])
    blocking = [f for f in report.findings if f.severity in ("critical", "major")]
    assert not blocking, report.to_dicts()
