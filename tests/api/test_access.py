"""Authentication, browser guards, per-key quotas and the audit identity, over real HTTP."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import anyio
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.api.deps import admit_job
from service.auth.keys import revoke_key
from service.auth.permissions import Role
from tests.api.conftest import make_settings
from tests.api.keyed import bearer, keyed_client

EMPTY_JOB = {"json": {"code": ""}}  # admitted, then a 400: no sandbox starts


def test_missing_wrong_and_revoked_keys_get_401(tmp_path: Path) -> None:
    with keyed_client(tmp_path) as (client, keys, _):
        missing = client.post("/v1/execute", **EMPTY_JOB)  # type: ignore[arg-type]
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert "missing API key" in missing.json()["message"]

        for wrong in ("nope", keys[Role.ADMIN][:-2] + "zz", "pyc_000000000000_" + "a" * 43):
            response = client.post("/v1/execute", headers=bearer(wrong), **EMPTY_JOB)  # type: ignore[arg-type]
            assert response.status_code == 401
            assert response.json()["message"] == "invalid API key (unknown, revoked or malformed)"
            assert wrong not in response.text

        key = keys[Role.DATA_ENGINEER]
        for headers in (bearer(key), {"X-API-Key": key}, {"authorization": f"bearer  {key} "}):
            response = client.post("/v1/execute", headers=headers, **EMPTY_JOB)  # type: ignore[arg-type]
            assert response.status_code == 400, response.text  # past the door: code is empty

        key_id = key.split("_")[1]
        revoke_key(tmp_path / "keys.jsonl", key_id)
        gone = client.post("/v1/execute", headers=bearer(key), **EMPTY_JOB)  # type: ignore[arg-type]
        assert gone.status_code == 401


def test_without_keys_the_caller_is_the_local_operator(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path, "subprocess"))) as client:
        response = client.post("/v1/execute", **EMPTY_JOB)  # type: ignore[arg-type]
        assert response.status_code == 400
        # A key sent to a gateway without keys is ignored, not an error.
        assert client.post("/v1/execute", headers=bearer("x"), **EMPTY_JOB).status_code == 400  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"Origin": "http://evil.example"}, "cross-origin request from 'http://evil.example'"),
        ({"Origin": "null"}, "cross-origin request from 'null'"),
        ({"Origin": "http://testserver:8080"}, "cross-origin request"),
        ({"Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site: cross-site"),
        ({"Sec-Fetch-Site": "same-site"}, "Sec-Fetch-Site: same-site"),
        ({"Host": "evil.example"}, "Host 'evil.example' is not an allowed name"),
        ({"Host": "127.0.0.1.nip.io:8000"}, "Host '127.0.0.1.nip.io:8000'"),
    ],
)
def test_browser_cross_origin_and_foreign_hosts_get_403(
    tmp_path: Path, headers: dict[str, str], message: str
) -> None:
    with TestClient(create_app(make_settings(tmp_path, "subprocess"))) as client:
        form = client.post("/v1/execute", data={"code": "print(1)"}, headers=headers)
        assert form.status_code == 403
        assert form.json()["error"] == "Forbidden" and message in form.json()["message"]
        assert "x-request-id" in form.headers  # refused inside the request log and id


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://testserver"},  # the /docs page of this very gateway
        {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},  # typed into the address bar
        {"Host": "127.0.0.1:8000"},
        {"Host": "localhost"},
        {"Host": "[::1]:8000"},
        {"Host": "127.0.0.2"},
        {"Origin": "https://notebook.example.org", "Sec-Fetch-Site": "cross-site"},  # allowed
    ],
)
def test_same_origin_loopback_and_allowed_origins_pass(
    tmp_path: Path, headers: dict[str, str]
) -> None:
    settings = make_settings(
        tmp_path, "subprocess", allowed_origins="https://notebook.example.org/"
    )
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/execute", json={"code": ""}, headers=headers)
        assert response.status_code == 400, response.text


def test_an_allowed_origin_gets_cors_answers_and_others_none(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "subprocess", allowed_origins="https://ui.example")
    preflight = {
        "Origin": "https://ui.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
        "Sec-Fetch-Site": "cross-site",
    }
    with TestClient(create_app(settings)) as client:
        response = client.options("/v1/execute", headers=preflight)
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "https://ui.example"
        foreign = client.options(
            "/v1/execute", headers={**preflight, "Origin": "https://x.example"}
        )
        assert foreign.status_code == 403 and "access-control-allow-origin" not in foreign.headers


def test_a_cross_site_link_to_a_page_still_opens(tmp_path: Path) -> None:
    navigate = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    with TestClient(create_app(make_settings(tmp_path, "subprocess"))) as client:
        assert client.get("/healthz", headers=navigate).status_code == 200
        assert client.post("/v1/execute", json={"code": ""}, headers=navigate).status_code == 403


def test_allowed_hosts_extend_the_list_and_star_turns_it_off(tmp_path: Path) -> None:
    named = make_settings(tmp_path, "subprocess", allowed_hosts="testserver, gw.internal")
    with TestClient(create_app(named)) as client:
        assert client.get("/healthz", headers={"Host": "gw.internal:8000"}).status_code == 200
        assert client.get("/healthz", headers={"Host": "other.internal"}).status_code == 403
    star = make_settings(tmp_path, "subprocess", allowed_hosts="*")
    with TestClient(create_app(star)) as client:
        assert client.get("/healthz", headers={"Host": "anything.example"}).status_code == 200


def test_the_request_engine_is_limited_to_allowed_engines(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path, "subprocess"))) as client:
        refused = client.post("/v1/execute", json={"code": "print(1)", "engine": "docker"})
        assert refused.status_code == 400
        assert refused.json()["message"] == (
            "engine 'docker' is not allowed on this gateway (allowed: subprocess; "
            "PYTHON_CODE_ALLOWED_ENGINES)"
        )
    both = make_settings(tmp_path, "subprocess", allowed_engines="subprocess,docker")
    with TestClient(create_app(both)) as client:
        response = client.post("/v1/execute", json={"code": "", "engine": "docker"})
        assert response.status_code == 400 and "code" in response.json()["message"]


def test_the_job_rate_per_key_answers_429_with_retry_after(tmp_path: Path) -> None:
    with keyed_client(tmp_path, rate_limit_per_minute=1, rate_limit_burst=2) as (
        client,
        keys,
        _,
    ):
        scientist = bearer(keys[Role.DATA_SCIENTIST])
        for _ in range(2):
            assert client.post("/v1/execute", headers=scientist, **EMPTY_JOB).status_code == 400  # type: ignore[arg-type]
        limited = client.post("/v1/files/inspect", headers=scientist, data={"x": "y"})
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert "faster than 1 per minute" in limited.json()["message"]
        # Another key is not affected.
        other = client.post("/v1/execute", headers=bearer(keys[Role.ADMIN]), **EMPTY_JOB)  # type: ignore[arg-type]
        assert other.status_code == 400


def test_running_jobs_per_key_are_capped_with_429(tmp_path: Path) -> None:
    gate = threading.Event()

    def hold_route(app: FastAPI) -> None:
        async def hold() -> dict[str, bool]:
            await anyio.to_thread.run_sync(gate.wait)
            return {"done": True}

        app.add_api_route("/hold", hold, dependencies=[Depends(admit_job)])

    with keyed_client(tmp_path, app_hook=hold_route, max_concurrent_jobs_per_key=1) as (
        client,
        keys,
        app,
    ):
        key = keys[Role.ML_ENGINEER]
        identity = "key:" + key.split("_")[1]
        first: dict[str, int] = {}
        holder = threading.Thread(
            target=lambda: first.update(status=client.get("/hold", headers=bearer(key)).status_code)
        )
        holder.start()
        try:
            while app.state.quotas.running(identity) == 0:
                assert holder.is_alive()
                gate.wait(0.01)
            second = client.get("/hold", headers=bearer(key))
            assert second.status_code == 429 and second.headers["retry-after"] == "1"
            assert "1 job(s) running" in second.json()["message"]
        finally:
            gate.set()
            holder.join(30)
        assert first == {"status": 200}
        assert app.state.quotas.running(identity) == 0


@pytest.mark.subprocess_engine
def test_the_audit_entry_names_key_id_and_role_never_the_key(tmp_path: Path) -> None:
    with keyed_client(tmp_path) as (client, keys, _):
        key = keys[Role.DATA_ENGINEER]
        response = client.post(
            "/v1/execute", headers={"X-API-Key": key}, json={"code": "print(6 * 7)"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["output"].strip() == "42"
    raw = (tmp_path / "exec" / "audit.jsonl").read_text()
    assert key not in raw
    [entry] = [json.loads(line) for line in raw.splitlines()]
    key_id = key.split("_")[1]
    assert (entry["caller"], entry["key_id"], entry["role"]) == (
        f"key:{key_id}",
        key_id,
        "data_engineer",
    )
    assert entry["job_id"] == response.json()["id"]
