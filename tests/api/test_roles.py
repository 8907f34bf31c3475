"""The role matrix over REST: every route, every role, from ``ROLE_PERMISSIONS``.

``ROUTES`` lists each protected route with the permission it needs and a request that is
cheap once admitted (it fails validation, or finds nothing, without starting a sandbox).
New routes add a line here; the matrix then checks them for every role.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import Depends, FastAPI

from service.api.deps import PrincipalDep, require
from service.auth.permissions import ROLE_PERMISSIONS, Permission, Role
from tests.api.keyed import bearer, keyed_client

# (method, path, permission, request keyword arguments)
ROUTES: list[tuple[str, str, Permission, dict[str, Any]]] = [
    ("POST", "/v1/execute", Permission.EXECUTE, {"json": {"code": ""}}),
    ("POST", "/v1/generate", Permission.EXECUTE, {"data": {"query": "how many rows?"}}),
    ("POST", "/v1/files/inspect", Permission.EXECUTE, {"data": {"x": "no files"}}),
    ("GET", "/v1/executions/abc123/artifacts/out.csv", Permission.EXECUTE, {}),
    ("POST", "/v1/sessions", Permission.EXECUTE, {"json": {"memory_mb": 1}}),
    ("GET", "/v1/sessions/s-none", Permission.EXECUTE, {}),
    ("DELETE", "/v1/sessions/s-none", Permission.EXECUTE, {}),
    ("POST", "/v1/sessions/s-none/execute", Permission.EXECUTE, {"json": {"code": "1"}}),
    ("GET", "/v1/sessions/s-none/files", Permission.EXECUTE, {}),
    ("GET", "/v1/sessions/s-none/environment", Permission.EXECUTE, {}),
    ("POST", "/v1/sessions/s-none/packages", Permission.INSTALL, {"json": {"name": "x"}}),
    ("POST", "/v1/sessions/s-none/scripts", Permission.RUN_SCRIPT, {"json": {"path": "a.py"}}),
]
OPEN = ["/healthz", "/metrics"]

MATRIX = [
    pytest.param(role, method, path, permission, kwargs, id=f"{role.value}-{method}-{path}")
    for role in ROLE_PERMISSIONS
    for method, path, permission, kwargs in ROUTES
]


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    def probes(app: FastAPI) -> None:
        # One probe route per permission: the same ``require`` the real routes use.
        for permission in Permission:

            async def probe(principal: PrincipalDep) -> dict[str, str]:
                return {"identity": principal.identity, "role": principal.role.value}

            app.add_api_route(
                f"/probe/{permission.value}",
                probe,
                dependencies=[Depends(require(permission))],
            )

    with keyed_client(tmp_path_factory.mktemp("roles"), app_hook=probes) as keyed:
        yield keyed


@pytest.mark.parametrize(("role", "method", "path", "permission", "kwargs"), MATRIX)
def test_route_matrix(
    keyed: Any,
    role: Role,
    method: str,
    path: str,
    permission: Permission,
    kwargs: dict[str, Any],
) -> None:
    client, keys, _ = keyed
    response = client.request(method, path, headers=bearer(keys[role]), **kwargs)
    if permission in ROLE_PERMISSIONS[role]:
        assert response.status_code not in (401, 403), response.text
    else:
        assert response.status_code == 403, response.text
        assert response.json()["message"] == f"role {role.value} may not {permission.value}"


@pytest.mark.parametrize(("method", "path", "kwargs"), [(m, p, k) for m, p, _, k in ROUTES])
def test_every_protected_route_needs_a_key(
    keyed: Any, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    client, _, _ = keyed
    response = client.request(method, path, **kwargs)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
def test_permission_matrix(keyed: Any, role: Role, permission: Permission) -> None:
    client, keys, _ = keyed
    response = client.get(f"/probe/{permission.value}", headers=bearer(keys[role]))
    if permission in ROLE_PERMISSIONS[role]:
        assert response.status_code == 200, response.text
        assert response.json()["role"] == role.value
    else:
        assert response.status_code == 403
        body = response.json()
        assert body["error"] == "Forbidden"
        assert body["message"] == f"role {role.value} may not {permission.value}"


def test_the_seed_table() -> None:
    P = Permission
    assert ROLE_PERMISSIONS[Role.DATA_SCIENTIST] == {P.EXECUTE, P.INSTALL, P.QUERY, P.READ, P.LIST}
    assert P.WRITE not in ROLE_PERMISSIONS[Role.DATA_SCIENTIST]
    assert P.RUN_SCRIPT in ROLE_PERMISSIONS[Role.DATA_ENGINEER]
    assert P.INSTALL not in ROLE_PERMISSIONS[Role.DATA_ENGINEER]
    assert P.WRITE in ROLE_PERMISSIONS[Role.ML_ENGINEER]
    assert P.RUN_SCRIPT not in ROLE_PERMISSIONS[Role.ML_ENGINEER]


@pytest.mark.parametrize("path", OPEN)
def test_health_and_metrics_stay_open(keyed: Any, path: str) -> None:
    client, _, _ = keyed
    assert client.get(path).status_code == 200


def test_environment_needs_any_valid_key(keyed: Any, tmp_path: Path) -> None:
    client, keys, _ = keyed
    assert client.get("/v1/environment").status_code == 401
    response = client.get("/v1/environment", headers=bearer(keys[Role.DATA_SCIENTIST]))
    assert response.status_code == 200, response.text


def test_artifacts_are_their_owners_and_the_admins(tmp_path: Path) -> None:
    """With API keys, one key's files are not another's to download (an admin may)."""
    from tests.conftest import subprocess_engine_missing

    with keyed_client(tmp_path, pool_max=0) as (client, keys, _app):
        owner, other = keys[Role.DATA_SCIENTIST], keys[Role.ML_ENGINEER]
        response = client.post(
            "/v1/execute",
            json={"code": "open('out.txt', 'w').write('mine')"},
            headers=bearer(owner),
        )
        if response.status_code == 503:
            subprocess_engine_missing(response.json().get("detail", response.text))
        assert response.status_code == 200 and response.json()["success"], response.text
        url = response.json()["artifacts"][0]["url"]
        assert client.get(url, headers=bearer(owner)).content == b"mine"
        refused = client.get(url, headers=bearer(other))
        assert refused.status_code == 404 and "out.txt" in refused.text
        assert client.get(url, headers=bearer(keys[Role.ADMIN])).content == b"mine"
        # The same answer as for a file that never existed: ids cannot be probed.
        missing = client.get(url.replace("out.txt", "nope.txt"), headers=bearer(other))
        assert missing.status_code == refused.status_code
