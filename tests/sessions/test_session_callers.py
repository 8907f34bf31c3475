"""Sessions belong to the caller (API key): invisible to other keys, capped per key."""

from __future__ import annotations

from pathlib import Path

from service.auth.permissions import Role
from tests.api.keyed import bearer, keyed_client


def test_sessions_are_per_caller(tmp_path: Path) -> None:
    with keyed_client(tmp_path, sessions_per_caller=1) as (client, keys, _):
        alice, bob = bearer(keys[Role.DATA_SCIENTIST]), bearer(keys[Role.ML_ENGINEER])
        opened = client.post("/v1/sessions", json={}, headers=alice)
        assert opened.status_code == 201, opened.text
        sid = opened.json()["id"]
        assert client.post("/v1/sessions", json={}, headers=alice).status_code == 429
        for call in (
            client.get(f"/v1/sessions/{sid}", headers=bob),
            client.post(f"/v1/sessions/{sid}/execute", json={"code": "1"}, headers=bob),
            client.delete(f"/v1/sessions/{sid}", headers=bob),
        ):
            assert call.status_code == 404, call.text
        assert client.post("/v1/sessions", json={}, headers=bob).status_code == 201
        cell = client.post(f"/v1/sessions/{sid}/execute", json={"code": "6 * 7"}, headers=alice)
        assert cell.json()["value"] == "42"
        # A data scientist may not run scripts: refused before anything reaches the session.
        script = client.post(f"/v1/sessions/{sid}/scripts", json={"path": "a.py"}, headers=alice)
        assert script.status_code == 403
        assert script.json()["message"] == "role data_scientist may not run_script"
