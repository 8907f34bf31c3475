"""Sessions over REST on both engines: state across cells, timeouts, files, caps, TTL."""

from __future__ import annotations

import base64

from fastapi.testclient import TestClient

from service.pipeline.sessions import SessionManager
from tests.sessions.conftest import MakeClient, sandbox_exists

CSV = "city,temp\nOslo,4\nRome,18\nCairo,30\n"


def open_session(client: TestClient, **body: object) -> str:
    response = client.post("/v1/sessions", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def cell(client: TestClient, sid: str, code: str, **extra: object) -> dict:
    response = client.post(f"/v1/sessions/{sid}/execute", json={"code": code, **extra})
    assert response.status_code == 200, response.text
    return dict(response.json())


def manager(client: TestClient) -> SessionManager:
    return client.app.state.sessions  # type: ignore[attr-defined, no-any-return]


def test_three_cells_carry_state_to_a_plot(client: TestClient) -> None:
    sid = open_session(client)
    first = cell(
        client,
        sid,
        "import pandas as pd\ndf = pd.read_csv('temps.csv')\ndf",
        files=[{"name": "temps.csv", "content": CSV}],
    )
    assert first["success"], first
    assert "Oslo" in first["value"]
    assert [d["mime"] for d in first["display"]] == ["text/html"]
    assert "<table" in first["display"][0]["data"]

    second = cell(client, sid, "df['temp_f'] = df.temp * 9 / 5 + 32\nint(df.temp_f.max())")
    assert second["success"] and second["value"] == "86"

    third = cell(
        client,
        sid,
        "import matplotlib.pyplot as plt\nax = df.plot(x='city', y='temp_f')\n"
        "plt.savefig('temps.png')\nprint(len(df))",
    )
    assert third["success"], third
    assert third["output"] == "3\n"
    assert [a["name"] for a in third["artifacts"]] == ["temps.png"]
    pngs = [d for d in third["display"] if d["mime"] == "image/png"]
    assert len(pngs) == 1 and base64.b64decode(pngs[0]["data"]).startswith(b"\x89PNG")

    download = client.get(f"/v1/sessions/{sid}/files/temps.png")
    assert download.status_code == 200 and download.content.startswith(b"\x89PNG")
    assert client.get(f"/v1/sessions/{sid}").json()["cells"] == 3


def test_failures_and_timeouts_keep_the_state_unless_the_cell_will_not_stop(
    client: TestClient,
) -> None:
    sid = open_session(client, timeout_s=2)
    assert cell(client, sid, "x = 41")["success"]

    failed = cell(client, sid, "x += 1\nraise ValueError('boom')")
    assert not failed["success"] and "ValueError: boom" in failed["error"]
    assert not failed["state_lost"]
    assert cell(client, sid, "x")["value"] == "42"

    slow = cell(client, sid, "import time\nx += 1\nwhile True:\n    time.sleep(0.05)")
    assert slow["timed_out"] and not slow["state_lost"]
    assert "KeyboardInterrupt" in slow["error"]
    assert cell(client, sid, "x")["value"] == "43"

    stubborn = cell(
        client,
        sid,
        "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "while True:\n    time.sleep(0.05)",
        timeout_s=1,
    )
    assert stubborn["timed_out"] and stubborn["state_lost"]
    assert "state is lost" in stubborn["error"]
    lost = cell(client, sid, "x")
    assert not lost["success"] and "NameError" in lost["error"]
    assert cell(client, sid, "y = 1\ny + 1")["value"] == "2"  # a fresh interpreter works


def test_files_scripts_and_environment(client: TestClient) -> None:
    sid = open_session(client)
    script = "import sys\nprint('args', sys.argv[1:])\nopen('out.txt', 'w').write('done')\n"
    upload = client.post(
        f"/v1/sessions/{sid}/files",
        files=[("files", ("job.py", script.encode(), "text/x-python"))],
    )
    assert upload.status_code == 200, upload.text
    assert upload.json() == [{"name": "job.py", "size": len(script)}]
    assert cell(client, sid, "open('notes.txt', 'w').write('hi')")["success"]
    names = {f["name"] for f in client.get(f"/v1/sessions/{sid}/files").json()}
    assert names == {"job.py", "notes.txt"}
    assert client.get(f"/v1/sessions/{sid}/files/notes.txt").content == b"hi"
    missing = client.get(f"/v1/sessions/{sid}/files/nope.txt")
    assert missing.status_code == 404 and "nope.txt" in missing.json()["message"]
    assert client.get(f"/v1/sessions/{sid}/files/..%2Fetc").status_code in (400, 404)

    ran = client.post(f"/v1/sessions/{sid}/scripts", json={"path": "job.py", "args": ["a", "b"]})
    assert ran.status_code == 200, ran.text
    assert ran.json()["output"] == "args ['a', 'b']\n"
    assert [a["name"] for a in ran.json()["artifacts"]] == ["out.txt"]
    absent = client.post(f"/v1/sessions/{sid}/scripts", json={"path": "other.py"})
    assert absent.status_code == 404

    env = client.get(f"/v1/sessions/{sid}/environment").json()
    assert env["python"].startswith("3.")
    assert env["engine"] == client.app.state.settings.engine  # type: ignore[attr-defined]
    assert "pandas" in {p["name"].lower() for p in env["packages"]}
    assert env["limits"]["memory_mb"] > 0 and env["isolation"]


def test_policy_applies_to_cells(client: TestClient) -> None:
    sid = open_session(client)
    refused = client.post(
        f"/v1/sessions/{sid}/execute", json={"code": "import subprocess\nsubprocess.run(['ls'])"}
    )
    assert refused.status_code == 422
    assert refused.json()["error"] == "PolicyViolation"


def test_install_package_from_the_wheelhouse(make_client: MakeClient) -> None:
    client = make_client(package_deny="blocked-pkg")
    sid = open_session(client)
    installed = client.post(f"/v1/sessions/{sid}/packages", json={"name": "pyc-demo-pkg"})
    assert installed.status_code == 200, installed.text
    assert installed.json()["version"] == "1.0.0"
    assert cell(client, sid, "import pyc_demo_pkg\npyc_demo_pkg.VALUE")["value"] == "42"
    env = client.get(f"/v1/sessions/{sid}/environment").json()
    assert env["installed"] == {"pyc-demo-pkg": "1.0.0"}
    assert {"name": "pyc-demo-pkg", "version": "1.0.0", "session_install": True} in env["packages"]

    again = client.post(f"/v1/sessions/{sid}/packages", json={"name": "pyc_demo_pkg"})
    assert again.status_code == 422 and "already installed" in again.json()["message"]
    blocked = client.post(f"/v1/sessions/{sid}/packages", json={"name": "Blocked_Pkg"})
    assert blocked.status_code == 422 and "blocked" in blocked.json()["message"]
    in_image = client.post(f"/v1/sessions/{sid}/packages", json={"name": "pandas"})
    assert in_image.status_code == 422
    assert "runner image" in in_image.json()["message"]
    bad = client.post(f"/v1/sessions/{sid}/packages", json={"name": "x; rm -rf /"})
    assert bad.status_code == 400


def test_caps_are_clear(make_client: MakeClient) -> None:
    client = make_client(sessions_per_caller=1)
    first = open_session(client)
    over = client.post("/v1/sessions", json={})
    assert over.status_code == 429 and "per caller" in over.json()["message"]
    assert "retry-after" in over.headers
    client.delete(f"/v1/sessions/{first}")
    open_session(client)

    full = make_client(sessions_per_caller=2, max_sessions=1)
    open_session(full)
    busy = full.post("/v1/sessions", json={})
    assert busy.status_code == 503 and "maximum of 1 sessions" in busy.json()["message"]


def test_bad_requests_name_the_problem(client: TestClient) -> None:
    assert client.post("/v1/sessions", json={"memory_mb": 10**7}).status_code == 400
    assert client.post("/v1/sessions", json={"idle_ttl_s": -1}).status_code == 400
    assert client.post("/v1/sessions", json={"colour": "red"}).status_code == 422
    unknown = client.post("/v1/sessions/s-nope/execute", json={"code": "1"})
    assert unknown.status_code == 404 and "s-nope" in unknown.json()["message"]
    assert client.delete("/v1/sessions/s-nope").status_code == 404


def test_delete_and_ttl_remove_the_sandbox(client: TestClient) -> None:
    sid = open_session(client)
    ident = manager(client).get(sid, _local()).sandbox.ident
    assert sandbox_exists(client, ident)
    assert client.delete(f"/v1/sessions/{sid}").status_code == 200
    assert not sandbox_exists(client, ident)
    assert client.post(f"/v1/sessions/{sid}/execute", json={"code": "1"}).status_code == 404

    sid = open_session(client, idle_ttl_s=60)
    session = manager(client).get(sid, _local())
    ident = session.sandbox.ident
    session.last_used -= 61  # idle past its TTL, as far as the sweeper can tell
    assert client.portal.call(manager(client).sweep) == [sid]  # type: ignore[union-attr]
    assert not sandbox_exists(client, ident)
    gone = client.get(f"/v1/sessions/{sid}")
    assert gone.status_code == 404 and "expired" in gone.json()["message"]


def test_shutdown_removes_every_session(make_client: MakeClient) -> None:
    client = make_client()
    idents = []
    for _ in range(2):
        sid = open_session(client)
        idents.append(manager(client).get(sid, _local()).sandbox.ident)
    client.__exit__(None, None, None)
    assert not any(sandbox_exists(client, ident) for ident in idents)


def _local():  # type: ignore[no-untyped-def]
    from service.auth.permissions import LOCAL_OPERATOR

    return LOCAL_OPERATOR


def test_one_shot_runs_take_packages_too(make_client: MakeClient) -> None:
    client = make_client(package_deny="blocked-pkg")
    ran = client.post(
        "/v1/execute",
        json={
            "code": "import pyc_demo_pkg\nprint(pyc_demo_pkg.VALUE)",
            "packages": ["pyc-demo-pkg"],
        },
    )
    assert ran.status_code == 200, ran.text
    assert ran.json()["success"] and ran.json()["output"] == "42\n"
    assert ran.json()["artifacts"] == []  # the package's files are inputs, not results
    multipart = client.post(
        "/v1/execute",
        data={
            "code": "import pyc_demo_pkg\nprint(pyc_demo_pkg.VALUE)",
            "packages": "pyc-demo-pkg==1.0.0",
        },
    )
    assert multipart.status_code == 200 and multipart.json()["output"] == "42\n"
    for refused, word in (("blocked-pkg", "blocked"), ("pandas", "runner image")):
        answer = client.post("/v1/execute", json={"code": "1", "packages": [refused]})
        assert answer.status_code == 422 and word in answer.json()["message"]
