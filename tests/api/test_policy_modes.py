"""PYTHON_CODE_POLICY through the HTTP API: enforce refuses bypass scripts, audit runs them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from tests.api.conftest import make_settings


@pytest.fixture
def enforcing(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tmp_path, "subprocess"))) as client:
        yield client


# Scripts that reached a blocked call inside a sandbox while an earlier policy said ok.
BYPASSES = {
    "private-alias": ("import random\nrandom._os.system('id')\n", "private-module-attribute"),
    "reduce-getattr": (
        "import functools, random\nfunctools.reduce(getattr, ['_o' + 's', 'getcwd'], random)()\n",
        "indirect-attribute",
    ),
    "format-path": ("import random\nprint('{0._os.environ}'.format(random))\n", "escape-attribute"),
    "globals-computed": (
        "name = ''.join(['__bu', 'iltins__'][::-1][::-1])\nb = globals().get(name.strip())\n",
        "namespace-tampering",
    ),
    "query-computed": (
        "import pandas as pd\ndf = pd.DataFrame({'a': [1]})\n"
        "df.query(open('q.txt').read(), engine='python')\n",
        "string-to-code",
    ),
    "write-then-import": (
        "with open('helper.py', 'w') as f:\n    f.write('import os')\nimport helper\n",
        "import-of-written-file",
    ),
    "zip-on-sys-path": (
        "import sys\nsys.path.insert(0, 'upload.zip')\nimport payload\n",
        "import-path",
    ),
    "allow-pickle": (
        "import numpy as np\nnp.load('a.npy', allow_pickle=1)\n",
        "unsafe-deserialisation",
    ),
}


@pytest.mark.parametrize("name", sorted(BYPASSES))
def test_bypass_is_refused_with_422_and_findings(enforcing: TestClient, name: str) -> None:
    code, rule_id = BYPASSES[name]
    response = enforcing.post("/v1/execute", json={"code": code})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "PolicyViolation"
    assert rule_id in {f["rule_id"] for f in body["detail"]["findings"]}, body


AUDITED = (
    "import random\nprint('cwd-known', bool(random._os.getcwd()))\nprint('{:.1f}'.format(1.25))\n"
)


def test_audit_mode_runs_the_code_and_returns_findings_as_warnings(
    engine: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, engine, policy="audit")
    with TestClient(create_app(settings)) as client, caplog.at_level(logging.WARNING):
        response = client.post("/v1/execute", json={"code": AUDITED})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] and "cwd-known True" in body["output"], body
    audit = [w for w in body["warnings"] if w.startswith("policy audit:")]
    assert audit and "private-module-attribute" in audit[0], body["warnings"]
    assert "line 2" in audit[0]
    assert any("policy audit" in r.getMessage() for r in caplog.records)


def test_a_session_cell_follows_the_mode_too(engine: str, tmp_path: Path) -> None:
    """audit runs the cell with the findings as warnings; enforce refuses it, state kept."""
    for mode in ("audit", "enforce"):
        settings = make_settings(tmp_path / mode, engine, policy=mode)
        with TestClient(create_app(settings)) as client:
            sid = client.post("/v1/sessions", json={}).json()["id"]
            client.post(f"/v1/sessions/{sid}/execute", json={"code": "kept = 41"})
            cell = client.post(f"/v1/sessions/{sid}/execute", json={"code": AUDITED})
            after = client.post(f"/v1/sessions/{sid}/execute", json={"code": "print(kept + 1)"})
            client.delete(f"/v1/sessions/{sid}")
        if mode == "audit":
            assert cell.status_code == 200, cell.text
            assert "cwd-known True" in cell.json()["output"], cell.json()
            assert any("private-module-attribute" in w for w in cell.json()["warnings"])
        else:
            assert cell.status_code == 422, cell.text
            assert cell.json()["detail"]["findings"][0]["rule_id"] == "private-module-attribute"
        assert after.json()["output"] == "42\n", after.json()


def test_enforce_is_the_default_and_refuses_the_same_code(enforcing: TestClient) -> None:
    response = enforcing.post("/v1/execute", json={"code": AUDITED})
    assert response.status_code == 422, response.text
    assert response.json()["detail"]["findings"][0]["rule_id"] == "private-module-attribute"


def test_unknown_policy_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="policy"):
        make_settings(tmp_path, "subprocess", policy="lenient")
