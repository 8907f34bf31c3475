"""The audit log covers every call that touches data or runs code, not only one-shot runs:
data tools over REST and ``/v1/tools/call``, and a session's cells, scripts and package
installs. Each line names the key id and role, the target and the outcome, and keeps SQL, code
and written content only as a digest or a size."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from service.auth.permissions import Role
from tests.api.keyed import bearer, keyed_client
from tests.sessions.conftest import build_demo_wheel

SECRET_SQL = "SELECT name FROM customers WHERE name <> 'needle-7f3a' LIMIT 3"


def audit_lines(tmp: Path) -> list[dict[str, Any]]:
    raw = (tmp / "exec" / "audit.jsonl").read_text()
    return [json.loads(line) for line in raw.splitlines()]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_data_tool_calls_are_audited_on_every_surface(tmp_path: Path) -> None:
    roots = {"storage_roots": [tmp_path / "data"]}
    (tmp_path / "data").mkdir()
    with keyed_client(tmp_path, **roots) as (client, keys, _):
        scientist, engineer = keys[Role.DATA_SCIENTIST], keys[Role.DATA_ENGINEER]
        ok = client.post("/v1/db/query", headers=bearer(scientist), json={"query": SECRET_SQL})
        assert ok.status_code == 200, ok.text
        refused = client.post(
            "/v1/db/query", headers=bearer(scientist), json={"query": "DELETE FROM customers"}
        )
        assert refused.status_code == 422, refused.text
        written = client.post(
            "/v1/storage/write",
            headers=bearer(engineer),
            json={"file_path": str(tmp_path / "data" / "note.txt"), "content": "needle-c0ntent"},
        )
        assert written.status_code == 200, written.text
        called = client.post(
            "/v1/tools/call",
            headers=bearer(scientist),
            json={"name": "describe_table", "arguments": {"table": "orders"}},
        )
        assert called.status_code == 200 and not called.json()["is_error"], called.text

    raw = (tmp_path / "exec" / "audit.jsonl").read_text()
    assert "needle-7f3a" not in raw and "needle-c0ntent" not in raw
    assert scientist not in raw and engineer not in raw
    query, rejected, write, describe = audit_lines(tmp_path)
    scientist_id, engineer_id = scientist.split("_")[1], engineer.split("_")[1]

    assert query["event"] == "data_tool" and query["tool"] == "execute_query"
    assert (query["key_id"], query["role"], query["outcome"]) == (
        scientist_id,
        "data_scientist",
        "success",
    )
    assert query["query_sha256"] == sha(SECRET_SQL) and query["row_count"] == 3
    assert query["duration_s"] >= 0 and query["request_id"]

    assert rejected["outcome"] == "QueryRejected"
    assert rejected["query_sha256"] == sha("DELETE FROM customers")
    assert "row_count" not in rejected

    assert (write["tool"], write["role"], write["outcome"]) == (
        "write_file",
        "data_engineer",
        "success",
    )
    assert write["key_id"] == engineer_id
    assert write["file_path"].endswith("note.txt")
    assert write["content_chars"] == len("needle-c0ntent") and write["size"] == 14

    assert (describe["tool"], describe["table"], describe["outcome"]) == (
        "describe_table",
        "orders",
        "success",
    )


@pytest.mark.subprocess_engine
def test_session_cells_scripts_and_installs_are_audited(tmp_path: Path) -> None:
    with keyed_client(tmp_path) as (client, keys, app):
        build_demo_wheel(app.state.settings.wheelhouse)
        admin = bearer(keys[Role.ADMIN])
        sid = client.post("/v1/sessions", headers=admin, json={}).json()["id"]

        def cell(code: str) -> int:
            return client.post(
                f"/v1/sessions/{sid}/execute", headers=admin, json={"code": code}
            ).status_code

        assert cell("x = 'needle-in-code'") == 200
        assert cell("1 / 0") == 200  # a failed cell is a result
        assert cell("import subprocess") == 422  # refused by the static policy
        installed = client.post(
            f"/v1/sessions/{sid}/packages", headers=admin, json={"name": "pyc-demo-pkg"}
        )
        assert installed.status_code == 200, installed.text
        again = client.post(
            f"/v1/sessions/{sid}/packages", headers=admin, json={"name": "pyc-demo-pkg"}
        )
        assert again.status_code == 422
        assert cell("open('job.py', 'w').write('import sys\\nprint(sys.argv[1:])')") == 200
        script = client.post(
            f"/v1/sessions/{sid}/scripts", headers=admin, json={"path": "job.py", "args": ["a"]}
        )
        assert script.status_code == 200 and script.json()["output"].strip() == "['a']"
        client.delete(f"/v1/sessions/{sid}", headers=admin)

    raw = (tmp_path / "exec" / "audit.jsonl").read_text()
    assert "needle-in-code" not in raw
    lines = [e for e in audit_lines(tmp_path) if e["event"] != "execution"]
    assert [(e["event"], e["outcome"]) for e in lines] == [
        ("session_cell", "success"),
        ("session_cell", "error"),
        ("session_cell", "PolicyViolation"),
        ("package_install", "success"),
        ("package_install", "PackageRejected"),
        ("session_cell", "success"),
        ("session_script", "success"),
    ]
    assert {e["session_id"] for e in lines} == {sid}
    assert {e["role"] for e in lines} == {"admin"}
    first = lines[0]
    assert first["code_sha256"] == sha("x = 'needle-in-code'") and first["cell"] == 1
    assert first["engine"] == "subprocess" and first["state_lost"] is False
    assert lines[3]["version"] == "1.0.0" and lines[3]["wheels"] == [
        "pyc_demo_pkg-1.0.0-py3-none-any.whl"
    ]
    assert (lines[6]["path"], lines[6]["arg_count"]) == ("job.py", 1)
