"""``GET /v1/tools`` (OpenAI function schemas) and ``POST /v1/tools/call``."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from service.tools.registry import TOOLS as DATA_TOOLS
from tests.agent.conftest import PLOT_CODE, SALES_CSV, Gateway, agent_settings, run_gateway
from tests.llm.openai_server import ScriptedOpenAI
from tests.llm.scripts import approve, fenced

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

VALID_ARGUMENTS: dict[str, list[dict[str, Any]]] = {
    "execute_code": [
        {"code": "print(1)"},
        {
            "code": "print(open('a.csv').read())",
            "files": [
                {"name": "a.csv", "content": "x\n1\n"},
                {"name": "b.bin", "content": "AAEC", "encoding": "base64"},
            ],
            "timeout_s": 5,
        },
        {"code": "print(1)", "stage": ["sales.csv", "s3://bucket/key.parquet"]},
    ],
    "get_environment": [{}, {"session_id": "s-1"}],
    "create_session": [{}, {"timeout_s": 5, "memory_mb": 256, "idle_ttl_s": 60}],
    "close_session": [{"session_id": "s-1"}],
    "install_package": [{"session_id": "s-1", "name": "tabulate", "version": "0.9.0"}],
    "run_script": [{"session_id": "s-1", "path": "job.py", "args": ["--n", "3"]}],
}
INVALID_ARGUMENTS: dict[str, list[dict[str, Any]]] = {
    "execute_code": [
        {},
        {"code": ""},
        {"code": "print(1)", "timeout_s": 0},
        {"code": "print(1)", "files": [{"name": "a.csv"}]},
        {"code": "print(1)", "files": [{"name": "a", "content": "x", "encoding": "latin-1"}]},
        {"code": "print(1)", "shell": True},
        {"code": "print(1)", "stage": "sales.csv"},
    ],
    "get_environment": [{"verbose": True}],
    "create_session": [{"timeout_s": 0}, {"engine": "docker"}],
    "close_session": [{}, {"session_id": ""}],
    "install_package": [{"session_id": "s-1"}, {"name": "x"}],
    "run_script": [{"session_id": "s-1"}, {"session_id": "s-1", "path": "a.py", "args": "x"}],
}


def tools_by_name(gateway: Gateway) -> dict[str, dict[str, Any]]:
    response = httpx.get(gateway.url + "/v1/tools")
    assert response.status_code == 200
    listed = response.json()
    assert all(entry["type"] == "function" for entry in listed)
    return {entry["function"]["name"]: entry["function"] for entry in listed}


def call(gateway: Gateway, body: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(gateway.url + "/v1/tools/call", json=body, timeout=120, **kwargs)


def test_tool_schemas_are_valid_json_schema_and_accept_what_the_tools_accept(
    local_gateway: Gateway,
) -> None:
    tools = tools_by_name(local_gateway)
    assert "generate_and_run" not in tools  # no LLM configured
    # The data tools' schemas are checked in test_data_tools.py.
    assert set(tools) - {spec.name for spec in DATA_TOOLS} == set(VALID_ARGUMENTS)
    for name, function in tools.items():
        if name not in VALID_ARGUMENTS:
            continue
        assert function["description"]
        schema = function["parameters"]
        Draft202012Validator.check_schema(schema)
        assert schema["type"] == "object"
        validator = Draft202012Validator(schema)
        for arguments in VALID_ARGUMENTS[name]:
            validator.validate(arguments)
        for arguments in INVALID_ARGUMENTS[name]:
            with pytest.raises(ValidationError):
                validator.validate(arguments)


def test_call_runs_code_with_files_and_returns_the_plot(local_gateway: Gateway) -> None:
    # OpenAI hands arguments over as a JSON string; the endpoint takes that as-is.
    arguments = json.dumps(
        {"code": PLOT_CODE, "files": [{"name": "sales.csv", "content": SALES_CSV}]}
    )
    response = call(local_gateway, {"name": "execute_code", "arguments": arguments})
    assert response.status_code == 200
    result = response.json()
    assert result["is_error"] is False, result["text"]
    assert result["error"] is None
    assert "total 46" in result["text"]
    [image] = result["images"]
    assert image["name"] == "revenue.png" and image["media_type"] == "image/png"
    assert base64.b64decode(image["data"]).startswith(PNG_MAGIC)
    artifacts = {a["name"]: a for a in result["data"]["artifacts"]}
    assert set(artifacts) == {"revenue.png", "summary.csv"}
    download = httpx.get(artifacts["summary.csv"]["url"])
    assert download.status_code == 200 and download.text.startswith(",month,revenue")


def test_tool_failures_are_results_the_model_can_read(local_gateway: Gateway) -> None:
    cases = [
        ({"code": "import socket\nsocket.socket()"}, "PolicyViolation", "socket"),
        ({"code": "print(1)", "timeout_s": -1}, "InvalidArguments", "timeout_s"),
        ({"cmd": "ls"}, "InvalidArguments", "code: Field required"),
        ("{not json", "InvalidArguments", "not valid JSON"),
        ("[1, 2]", "InvalidArguments", "must be a JSON object"),
        (
            {"code": "print(1)", "files": [{"name": "x", "content": "@@", "encoding": "base64"}]},
            "InvalidRequest",
            "not valid base64",
        ),
        (
            {"code": "print(1)", "files": [{"name": "../../etc/passwd", "content": "x"}]},
            "UnsafeFileName",
            "passwd",
        ),
        ({"code": "import sys\nsys.exit(3)"}, "ScriptFailed", "exit code 3"),
        ({"code": "while True: pass", "timeout_s": 1}, "Timeout", "timeout"),
    ]
    for arguments, error, fragment in cases:
        response = call(local_gateway, {"name": "execute_code", "arguments": arguments})
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["is_error"] is True, (arguments, result)
        assert result["error"] == error, (arguments, result)
        assert fragment in result["text"], (arguments, result["text"])


def test_the_call_envelope_is_checked_with_http_errors(local_gateway: Gateway) -> None:
    unknown = call(local_gateway, {"name": "rm_rf", "arguments": {}})
    assert unknown.status_code == 404
    assert "no tool named 'rm_rf'" in unknown.json()["message"]
    assert "execute_code" in unknown.json()["message"]

    for body in ({"arguments": {}}, {"name": "execute_code", "extra": 1}, ["execute_code"]):
        response = call(local_gateway, body)
        assert response.status_code == 400, body
        assert response.json()["error"] == "InvalidRequest"
        assert "invalid tool call" in response.json()["message"]

    garbage = httpx.post(
        local_gateway.url + "/v1/tools/call",
        content=b"\xff\xfe",
        headers={"content-type": "application/json"},
    )
    assert garbage.status_code == 400


def test_call_body_has_the_json_cap(tmp_path: Path, no_llm_env: None) -> None:
    with run_gateway(agent_settings(tmp_path, "subprocess", max_json_body=1)) as gateway:
        big = {"code": "print(1)", "files": [{"name": "a.txt", "content": "x" * 1_200_000}]}
        response = call(gateway, {"name": "execute_code", "arguments": big})
        assert response.status_code == 413
        assert "PYTHON_CODE_MAX_JSON_BODY" in response.json()["message"]


def test_generate_and_run_is_a_tool_when_a_model_is_configured(
    tmp_path: Path, no_llm_env: None
) -> None:
    code = (
        "import json\nimport pandas as pd\n"
        "df = pd.read_csv('sales.csv')\nprint(json.dumps({'total': int(df['revenue'].sum())}))"
    )
    with ScriptedOpenAI() as llm_server:
        llm_server.push(fenced(code), approve())
        settings = agent_settings(
            tmp_path,
            "subprocess",
            llm_base_url=llm_server.base_url,
            llm_api_key="test-key",
            llm_model="scripted-model",
            llm_max_retries=0,
        )
        with run_gateway(settings) as gateway:
            tools = tools_by_name(gateway)
            assert "generate_and_run" in tools
            Draft202012Validator.check_schema(tools["generate_and_run"]["parameters"])
            arguments = {
                "query": "total revenue",
                "files": [{"name": "sales.csv", "content": SALES_CSV}],
            }
            response = call(gateway, {"name": "generate_and_run", "arguments": arguments})
    result = response.json()
    assert response.status_code == 200 and result["is_error"] is False, result
    assert result["data"]["result"] == {"total": 46}
    assert "Code:" in result["text"] and "read_csv('sales.csv')" in result["text"]
    assert "total revenue" in llm_server.prompts()[0]
