"""The data tools over REST: statuses and bodies, the role matrix per tool, and staging stored
files and saved query results into ``/v1/execute``."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.api.deps import get_principal
from service.auth.permissions import ROLE_PERMISSIONS, Permission, Principal, Role
from service.settings import Settings


def make_settings(tmp: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "execution_dir": tmp / "exec",
        "storage_roots": [tmp / "data"],
        "engine": "subprocess",
        "storage_max_file_size": 1,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def root(settings: Settings) -> Path:
    return settings.storage_roots[0]


def test_query_and_introspection_routes(client: TestClient) -> None:
    r = client.post("/v1/db/query", json={"query": "SELECT id, name FROM products LIMIT 2"})
    assert r.status_code == 200, r.text
    assert r.json()["columns"] == ["id", "name"] and r.json()["row_count"] == 2
    tables = client.get("/v1/db/tables").json()["tables"]
    assert "orders" in {t["name"] for t in tables}
    described = client.get("/v1/db/tables/orders").json()
    assert described["foreign_keys"][0]["referred_table"] == "customers"
    assert described["row_estimate"] == 400
    schema = client.get("/v1/db/tables/orders/schema").json()
    assert [c["name"] for c in schema["columns"]][:2] == ["id", "customer_id"]
    sample = client.get("/v1/db/tables/customers/sample", params={"n": 3}).json()
    assert sample["row_count"] == 3


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "needle"),
    [
        ("post", "/v1/db/query", {"query": "DELETE FROM orders"}, 422, "DELETE"),
        ("post", "/v1/db/query", {"query": "SELECT 1; SELECT 2"}, 422, "exactly one"),
        ("post", "/v1/db/query", {"query": "SELECT nope FROM orders"}, 422, "nope"),
        ("post", "/v1/db/query", {"query": "SELECT 1", "database": "x"}, 404, "no database"),
        ("post", "/v1/db/query", {"query": "SELECT 1", "max_rows": 10**6}, 400, "max_rows"),
        ("get", "/v1/db/tables/nope", None, 404, "no table or view"),
        ("get", "/v1/db/tables/orders/sample?n=0", None, 400, "invalid parameters"),
        ("post", "/v1/storage/read", {"file_path": "/etc/passwd"}, 403, "storage roots"),
        ("post", "/v1/storage/read", {"file_path": "missing.txt"}, 404, "missing.txt"),
        ("post", "/v1/storage/list", {"directory": "../.."}, 403, "storage roots"),
        ("post", "/v1/storage/read", {"file_path": "s3://b/k"}, 403, "S3 is not enabled"),
    ],
)
def test_errors_name_the_problem(
    client: TestClient, method: str, url: str, body: Any, status: int, needle: str
) -> None:
    response = client.request(method, url, json=body)
    assert response.status_code == status, response.text
    assert needle in json.dumps(response.json())


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("not json", "JSON decode error"),
        ('{"query": 5}', "query: Input should be a valid string"),
        ('{"query": "SELECT 1", "secret": "do-not-echo"}', "secret: Extra inputs"),
        ("{}", "query: Field required"),
    ],
)
def test_malformed_arguments_are_400_without_echo(
    client: TestClient, body: str, needle: str
) -> None:
    response = client.post(
        "/v1/db/query", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert needle in response.json()["message"]
    assert "do-not-echo" not in response.text
    bad_n = client.get("/v1/db/tables/orders/sample", params={"n": "abc"})
    assert bad_n.status_code == 400 and "n: Input should be a valid integer" in bad_n.text


def test_recursive_cte_times_out_with_504(client: TestClient) -> None:
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
    response = client.post("/v1/db/query", json={"query": endless, "timeout": 0.5})
    assert response.status_code == 504 and "timeout" in response.json()["message"]


def test_storage_routes(client: TestClient, root: Path) -> None:
    r = client.post(
        "/v1/storage/write", json={"file_path": "in/sales.csv", "content": "a,b\n1,2\n"}
    )
    assert r.status_code == 200 and r.json()["size"] == 8
    assert client.post("/v1/storage/read", json={"file_path": "in/sales.csv"}).json()[
        "content"
    ] == ("a,b\n1,2\n")
    table = client.post("/v1/storage/read_csv", json={"file_path": "in/sales.csv"}).json()
    assert table["rows"] == [[1, 2]]
    listing = client.post("/v1/storage/list", json={"directory": "in"}).json()
    assert [f["name"] for f in listing["files"]] == ["sales.csv"]
    big = base64.b64encode(b"x" * (1024 * 1024 + 1)).decode()
    r = client.post(
        "/v1/storage/write", json={"file_path": "big", "content": big, "encoding": "base64"}
    )
    assert r.status_code == 413 and "storage limit" in r.json()["message"]


# One call per tool: (permission, method, url, body).
TOOL_CALLS = {
    "execute_query": (Permission.QUERY, "post", "/v1/db/query", {"query": "SELECT 1 AS x"}),
    "list_tables": (Permission.QUERY, "get", "/v1/db/tables", None),
    "describe_table": (Permission.QUERY, "get", "/v1/db/tables/orders", None),
    "get_schema": (Permission.QUERY, "get", "/v1/db/tables/orders/schema", None),
    "get_table_sample": (Permission.QUERY, "get", "/v1/db/tables/orders/sample", None),
    "read_file": (Permission.READ, "post", "/v1/storage/read", {"file_path": "seed.txt"}),
    "read_csv": (Permission.READ, "post", "/v1/storage/read_csv", {"file_path": "seed.csv"}),
    "read_parquet": (
        Permission.READ,
        "post",
        "/v1/storage/read_parquet",
        {"file_path": "seed.parquet"},
    ),
    "list_files": (Permission.LIST, "post", "/v1/storage/list", {"directory": "."}),
    "write_file": (
        Permission.WRITE,
        "post",
        "/v1/storage/write",
        {"file_path": "w.txt", "content": "x"},
    ),
}


@pytest.mark.parametrize("role", list(Role))
def test_role_matrix_per_tool(role: Role, settings: Settings, root: Path) -> None:
    import pandas as pd

    app = create_app(settings)
    app.dependency_overrides[get_principal] = lambda: Principal(f"key:{role.value}", role)
    with TestClient(app) as client:
        (root / "seed.txt").write_text("hi")
        (root / "seed.csv").write_text("a\n1\n")
        pd.DataFrame({"a": [1]}).to_parquet(root / "seed.parquet")
        for tool, (permission, method, url, body) in TOOL_CALLS.items():
            response = client.request(method, url, json=body)
            if permission in ROLE_PERMISSIONS[role]:
                assert response.status_code == 200, (tool, response.text)
            else:
                assert response.status_code == 403, (tool, response.text)
                assert permission.value in response.json()["message"]
    if role is Role.DATA_SCIENTIST:
        assert not (root / "w.txt").exists()


def test_staging_a_stored_file_and_a_query_result(client: TestClient, root: Path) -> None:
    (root / "sales.csv").write_text("region,amount\nnorth,10\nsouth,5\nnorth,1\n")
    saved = client.post(
        "/v1/db/query",
        json={"query": "SELECT id, price FROM products ORDER BY id", "save_as_parquet": True},
    ).json()
    stored = saved["stored_as"]
    code = (
        "import pandas as pd, json\n"
        "sales = pd.read_csv('sales.csv')\n"
        f"prices = pd.read_parquet({Path(stored).name!r})\n"
        "print(json.dumps([int(sales.amount.sum()), len(prices)]))\n"
    )
    response = client.post(
        "/v1/execute", json={"code": code, "stage": [str(root / "sales.csv"), stored]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"], body
    assert json.loads(body["output"].strip().splitlines()[-1]) == [16, 20]
    assert sorted(body["input_files"]) == sorted(["sales.csv", Path(stored).name])


def test_staging_multipart_and_refusals(client: TestClient, root: Path) -> None:
    (root / "a.txt").write_text("staged")
    response = client.post(
        "/v1/execute", data={"code": "print(open('a.txt').read())", "stage": "a.txt"}
    )
    assert response.status_code == 200 and response.json()["output"].strip() == "staged"
    refused = client.post("/v1/execute", json={"code": "print(1)", "stage": ["/etc/passwd"]})
    assert refused.status_code == 403 and "storage roots" in refused.json()["message"]
    missing = client.post("/v1/execute", json={"code": "print(1)", "stage": ["nope.csv"]})
    assert missing.status_code == 404
