"""The data tools as agent tools: the role matrix per tool and per role over MCP and
``/v1/tools/call`` (real keys from the key store, one real gateway), the schemas on
``/v1/tools``, and what a model reads back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import mcp.types as types
import pandas as pd
import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from service.auth.keys import add_key
from service.auth.permissions import ROLE_PERMISSIONS, Permission, Role
from service.tools.registry import TOOLS
from tests.agent.conftest import Gateway, agent_settings, run_gateway

DATA_TOOL_NAMES = {
    "execute_query",
    "list_tables",
    "get_schema",
    "get_table_sample",
    "describe_table",
    "read_file",
    "read_csv",
    "read_parquet",
    "list_files",
    "write_file",
}
# The Python tools every role may use (no LLM configured here: no generate_and_run).
PYTHON_TOOL_NAMES = {"execute_code", "get_environment"}
SESSION_TOOLS = {
    "create_session": Permission.EXECUTE,
    "close_session": Permission.EXECUTE,
    "install_package": Permission.INSTALL,
    "run_script": Permission.RUN_SCRIPT,
}
PERMISSION_OF = {spec.name: spec.permission for spec in TOOLS}

SALES_CSV = "region,amount\nnorth,10\nsouth,5\nnorth,1\n"


@dataclass
class KeyedGateway:
    gateway: Gateway
    root: Path
    keys: dict[Role, str]

    def headers(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyedGateway]:
    """One gateway with API keys (a key file) for each role, the sample database and a root."""
    tmp = tmp_path_factory.mktemp("data-tools")
    key_file = tmp / "keys.jsonl"
    keys = {role: add_key(key_file, role)[0] for role in Role}
    settings = agent_settings(tmp, "subprocess", api_keys_file=key_file)
    root = settings.storage_roots[0]
    root.mkdir(parents=True)
    (root / "notes.txt").write_text("grüße from the data root\n", encoding="utf-8")
    (root / "sales.csv").write_text(SALES_CSV)
    pd.DataFrame({"region": ["north", "south"], "amount": [11, 5]}).to_parquet(
        root / "sales.parquet"
    )
    with run_gateway(settings) as gateway:
        yield KeyedGateway(gateway, root, keys)


def expected_tools(role: Role) -> set[str]:
    allowed = ROLE_PERMISSIONS[role]
    return (
        PYTHON_TOOL_NAMES
        | {name for name, p in PERMISSION_OF.items() if p in allowed}
        | {name for name, p in SESSION_TOOLS.items() if p in allowed}
    )


def calls(role: Role) -> dict[str, dict[str, Any]]:
    """One call per data tool; write_file writes a file named after the role."""
    return {
        "execute_query": {"query": "SELECT count(*) AS n FROM orders"},
        "list_tables": {},
        "get_schema": {"table": "orders"},
        "get_table_sample": {"table": "customers", "n": 3},
        "describe_table": {"table": "orders"},
        "read_file": {"file_path": "notes.txt"},
        "read_csv": {"file_path": "sales.csv", "columns": ["amount"]},
        "read_parquet": {"file_path": "sales.parquet"},
        "list_files": {"directory": ".", "pattern": "sales.*"},
        "write_file": {"file_path": f"out/{role.value}.txt", "content": f"by {role.value}\n"},
    }


def check_result(name: str, role: Role, data: dict[str, Any], text: str) -> None:
    """What each allowed call must give back: the structured result and a readable text."""
    if name == "execute_query":
        assert data["columns"] == ["n"] and data["rows"] == [[400]], data
        assert "1 row from database 'default'" in text and "[400]" in text
    elif name == "list_tables":
        names = {t["name"] for t in data["tables"]}
        assert {"customers", "orders", "revenue_by_region"} <= names
        assert "- revenue_by_region (view)" in text
    elif name == "get_schema":
        assert [c["name"] for c in data["columns"]][:2] == ["id", "customer_id"]
        assert "- customer_id: INTEGER, not null" in text
    elif name == "get_table_sample":
        assert data["row_count"] == 3 and len(data["rows"]) == 3
        assert text.startswith("3 rows from database 'default'")
    elif name == "describe_table":
        assert data["row_estimate"] == 400
        assert data["foreign_keys"][0]["referred_table"] == "customers"
        assert "foreign key (customer_id) -> customers(id)" in text
    elif name == "read_file":
        assert data["content"] == "grüße from the data root\n"
        assert "grüße from the data root" in text
    elif name == "read_csv":
        assert [c["name"] for c in data["columns"]] == ["amount"]
        assert data["rows"] == [[10], [5], [1]]
        assert '["amount"]' in text and "[10]" in text
    elif name == "read_parquet":
        assert data["rows"] == [["north", 11], ["south", 5]]
        assert '["north", 11]' in text
    elif name == "list_files":
        assert sorted(f["name"] for f in data["files"]) == ["sales.csv", "sales.parquet"]
        assert "2 entries in" in text
    elif name == "write_file":
        assert data["size"] == len(f"by {role.value}\n")
        assert text.startswith(f"wrote {data['size']} bytes to ")
    else:
        raise AssertionError(f"no check for {name}")


def test_the_catalogue_offers_the_ten_data_tools_from_their_table() -> None:
    assert set(PERMISSION_OF) == DATA_TOOL_NAMES
    assert PERMISSION_OF["write_file"] is Permission.WRITE


# --- /v1/tools --------------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
def test_rest_role_matrix_per_tool(keyed: KeyedGateway, role: Role) -> None:
    headers = keyed.headers(role)
    listed = httpx.get(keyed.gateway.url + "/v1/tools", headers=headers)
    assert listed.status_code == 200, listed.text
    assert {t["function"]["name"] for t in listed.json()} == expected_tools(role)

    written = keyed.root / "out" / f"{role.value}.txt"
    written.unlink(missing_ok=True)  # the MCP test may have run first
    for name, arguments in calls(role).items():
        response = httpx.post(
            keyed.gateway.url + "/v1/tools/call",
            json={"name": name, "arguments": arguments},
            headers=headers,
            timeout=60,
        )
        if PERMISSION_OF[name] in ROLE_PERMISSIONS[role]:
            assert response.status_code == 200, (name, response.text)
            result = response.json()
            assert result["is_error"] is False, (name, result)
            check_result(name, role, result["data"], result["text"])
        else:
            assert response.status_code == 403, (name, response.text)
            body = response.json()
            assert body["error"] == "Forbidden"
            assert body["message"] == f"role {role.value} may not {PERMISSION_OF[name].value}"
    if Permission.WRITE in ROLE_PERMISSIONS[role]:
        assert written.read_text() == f"by {role.value}\n"
    else:
        assert not written.exists()


def test_rest_without_a_valid_key_is_401(keyed: KeyedGateway) -> None:
    for headers in ({}, {"Authorization": "Bearer pyc_0123456789ab_" + "x" * 43}):
        listed = httpx.get(keyed.gateway.url + "/v1/tools", headers=headers)
        call = httpx.post(
            keyed.gateway.url + "/v1/tools/call",
            json={"name": "list_tables", "arguments": {}},
            headers=headers,
        )
        assert listed.status_code == call.status_code == 401
        assert call.json()["error"] == "Unauthorized"


VALID_ARGUMENTS: dict[str, list[dict[str, Any]]] = {
    "execute_query": [
        {"query": "SELECT 1"},
        {"query": "SELECT :x", "params": {"x": 1}, "timeout": 5, "max_rows": 10},
        {"query": "SELECT 1", "database": "default", "save_as_parquet": True},
    ],
    "list_tables": [{}, {"database": "default", "schema_name": "main"}],
    "get_schema": [{"table": "orders"}],
    "get_table_sample": [{"table": "orders", "n": 5}],
    "describe_table": [{"table": "orders", "schema_name": "main"}],
    "read_file": [{"file_path": "a.txt", "max_chars": 100, "as_base64": False}],
    "read_csv": [{"file_path": "a.csv", "n_rows": 10, "columns": ["x"]}],
    "read_parquet": [{"file_path": "s3://bucket/a.parquet"}],
    "list_files": [{"directory": ".", "pattern": "*.csv", "recursive": True}],
    "write_file": [
        {"file_path": "a.txt", "content": "x"},
        {"file_path": "b.bin", "content": "AAEC", "encoding": "base64", "overwrite": False},
    ],
}
INVALID_ARGUMENTS: dict[str, list[dict[str, Any]]] = {
    "execute_query": [{}, {"query": ""}, {"query": "SELECT 1", "max_rows": 0}, {"sql": "x"}],
    "list_tables": [{"table": "orders"}],
    "get_schema": [{}, {"table": ""}],
    "get_table_sample": [{"table": "orders", "n": 0}, {"table": "orders", "n": 5000}],
    "describe_table": [{"name": "orders"}],
    "read_file": [{}, {"file_path": "a", "max_chars": 0}],
    "read_csv": [{"file_path": "a.csv", "n_rows": 0}, {"file_path": "a.csv", "columns": "x"}],
    "read_parquet": [{"path": "a.parquet"}],
    "list_files": [{}, {"directory": ".", "recursive": "yes"}],
    "write_file": [{"file_path": "a.txt"}, {"file_path": "a", "content": "x", "encoding": "hex"}],
}


def test_data_tool_schemas_are_json_schema_and_match_the_tools(keyed: KeyedGateway) -> None:
    listed = httpx.get(keyed.gateway.url + "/v1/tools", headers=keyed.headers(Role.ADMIN))
    tools = {t["function"]["name"]: t["function"] for t in listed.json()}
    assert set(tools) >= DATA_TOOL_NAMES
    for name in DATA_TOOL_NAMES:
        function = tools[name]
        assert function["description"]
        schema = function["parameters"]
        Draft202012Validator.check_schema(schema)
        assert schema["type"] == "object"
        assert schema.get("additionalProperties") is False
        validator = Draft202012Validator(schema)
        for arguments in VALID_ARGUMENTS[name]:
            validator.validate(arguments)
        for arguments in INVALID_ARGUMENTS[name]:
            with pytest.raises(ValidationError):
                validator.validate(arguments)


def test_data_tool_failures_are_results_naming_the_problem(keyed: KeyedGateway) -> None:
    cases = [
        ("execute_query", {"query": "DELETE FROM orders"}, "QueryRejected", "DELETE"),
        ("execute_query", {"query": "SELECT nope FROM orders"}, "QueryFailed", "nope"),
        ("execute_query", {"query": "SELECT 1", "database": "x"}, "NotFound", "no database"),
        ("get_schema", {"table": "nope"}, "NotFound", "no table or view 'nope'"),
        ("read_file", {"file_path": "/etc/passwd"}, "PathNotAllowed", "storage roots"),
        ("read_file", {"file_path": "missing.txt"}, "NotFound", "missing.txt"),
        ("read_csv", {"file_path": "notes.txt", "columns": ["x"]}, "InvalidRequest", "as CSV"),
        ("list_files", {"directory": "../.."}, "PathNotAllowed", "storage roots"),
        ("write_file", {"file_path": "../escape.txt", "content": "x"}, "PathNotAllowed", "roots"),
        (
            "write_file",
            {"file_path": "b", "content": "@@", "encoding": "base64"},
            "InvalidRequest",
            "base64",
        ),
        ("get_table_sample", {"table": "orders", "n": 0}, "InvalidArguments", "n: Input should"),
    ]
    for name, arguments, error, fragment in cases:
        response = httpx.post(
            keyed.gateway.url + "/v1/tools/call",
            json={"name": name, "arguments": arguments},
            headers=keyed.headers(Role.ADMIN),
            timeout=60,
        )
        assert response.status_code == 200, (name, response.text)
        result = response.json()
        assert result["is_error"] is True, (name, arguments, result)
        assert result["error"] == error, (name, arguments, result)
        assert fragment in result["text"], (name, arguments, result["text"])
    assert not (keyed.root.parent / "escape.txt").exists()


# --- MCP --------------------------------------------------------------------------------------


@asynccontextmanager
async def mcp_client(url: str, headers: dict[str, str]) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(url + "/mcp", http_client=http)) as client,
    ):
        yield client


def texts(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


@pytest.mark.parametrize("role", list(Role))
async def test_mcp_role_matrix_per_tool(keyed: KeyedGateway, role: Role) -> None:
    written = keyed.root / "out" / f"{role.value}.txt"
    written.unlink(missing_ok=True)  # the REST test may have run first
    async with mcp_client(keyed.gateway.url, keyed.headers(role)) as client:
        listed = await client.list_tools()
        assert {t.name for t in listed.tools} == expected_tools(role)
        for name, arguments in calls(role).items():
            result = await client.call_tool(name, arguments)
            if PERMISSION_OF[name] in ROLE_PERMISSIONS[role]:
                assert result.is_error is False, (name, texts(result))
                assert isinstance(result.structured_content, dict)
                check_result(name, role, result.structured_content, texts(result))
            else:
                # As for every tool: a refusal is a tool error naming the permission.
                assert result.is_error is True, name
                assert texts(result) == f"role {role.value} may not {PERMISSION_OF[name].value}"
    if Permission.WRITE in ROLE_PERMISSIONS[role]:
        assert written.read_text() == f"by {role.value}\n"
    else:
        assert not written.exists()


async def test_mcp_without_a_valid_key_is_401(keyed: KeyedGateway) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            keyed.gateway.url + "/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Authorization": "Bearer wrong", "Accept": "application/json"},
        )
    assert response.status_code == 401
    assert response.json()["error"] == "Unauthorized"


STAGED_CODE = """
import json
import pandas as pd
prices = pd.read_parquet(PARQUET)
sales = pd.read_csv("sales.csv")
print(json.dumps([len(prices), int(sales.amount.sum())]))
"""


async def test_mcp_query_to_parquet_then_staged_into_execute_code(keyed: KeyedGateway) -> None:
    """read/query -> compute without the rows passing through the agent: stage by path."""
    async with mcp_client(keyed.gateway.url, keyed.headers(Role.DATA_SCIENTIST)) as client:
        saved = await client.call_tool(
            "execute_query",
            {"query": "SELECT id, price FROM products ORDER BY id", "save_as_parquet": True},
        )
        assert saved.is_error is False, texts(saved)
        assert isinstance(saved.structured_content, dict)
        stored = saved.structured_content["stored_as"]
        assert stored and f"stored as {stored}" in texts(saved)
        code = STAGED_CODE.replace("PARQUET", repr(Path(stored).name))
        ran = await client.call_tool("execute_code", {"code": code, "stage": [stored, "sales.csv"]})
        assert ran.is_error is False, texts(ran)
        assert "[20, 16]" in texts(ran)
        outside = await client.call_tool(
            "execute_code", {"code": "print(1)", "stage": ["/etc/hostname"]}
        )
    assert outside.is_error is True
    assert "storage roots" in texts(outside)
    jobs = keyed.gateway.settings.execution_dir / "jobs"
    assert not jobs.exists() or not list(jobs.iterdir())
