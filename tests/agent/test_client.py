"""The Python client, sync and async, against a live gateway."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.client import (
    ArtifactDownloadError,
    AsyncClient,
    Client,
    CodeRejectedError,
    GatewayUnreachable,
    InvalidRequestError,
    NotFoundError,
    ServiceUnavailableError,
)
from service.models import Artifact, ExecutionResponse, ToolResult
from service.tools.registry import TOOLS as DATA_TOOLS
from tests.agent.conftest import PLOT_CODE, SALES_CSV, Gateway
from tests.deploy.gateway import free_port

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_sync_client_runs_code_with_files_and_downloads_artifacts(
    local_gateway: Gateway, tmp_path: Path
) -> None:
    csv = tmp_path / "sales.csv"
    csv.write_text(SALES_CSV)
    with Client(local_gateway.url) as gateway:
        result = gateway.execute(PLOT_CODE, [csv], timeout_s=60)
        assert isinstance(result, ExecutionResponse)
        assert result.success, result.error
        assert "total 46" in result.output
        assert result.input_files == ["sales.csv"]
        saved = gateway.download_artifacts(result, tmp_path / "out")
        # In-memory files work too, under the name given.
        again = gateway.execute("print(open('x.txt').read())", [("x.txt", b"in memory")])
        assert again.output == "in memory\n"
    assert sorted(p.name for p in saved) == ["revenue.png", "summary.csv"]
    assert (tmp_path / "out" / "revenue.png").read_bytes().startswith(PNG_MAGIC)
    assert (tmp_path / "out" / "summary.csv").read_text().startswith(",month,revenue")


def test_sync_client_raises_typed_errors_from_the_error_body(
    local_gateway: Gateway, tmp_path: Path
) -> None:
    with Client(local_gateway.url) as gateway:
        with pytest.raises(CodeRejectedError) as rejected:
            gateway.execute("import subprocess\nsubprocess.run(['id'])")
        assert rejected.value.status == 422
        assert rejected.value.error == "PolicyViolation"
        assert rejected.value.findings[0]["line"] == 1
        assert "line 1:" in str(rejected.value) and "subprocess" in str(rejected.value)

        with pytest.raises(InvalidRequestError) as invalid:
            gateway.execute("print(1)", timeout_s=10_000)
        assert invalid.value.status == 400 and "timeout_s" in invalid.value.message

        with pytest.raises(ServiceUnavailableError) as no_llm:
            gateway.generate("average revenue")
        assert no_llm.value.error == "LLMNotConfigured"

        with pytest.raises(NotFoundError):
            gateway.call_tool("no_such_tool", {})

        gone = Artifact(
            name="x.csv", size=1, media_type="text/csv", url="/v1/executions/0/artifacts/x.csv"
        )
        with pytest.raises(
            ArtifactDownloadError, match=r"downloading artifact 'x\.csv' failed: HTTP 404"
        ):
            gateway.download(gone, tmp_path / "x.csv")
        assert not (tmp_path / "x.csv").exists()

    with Client(f"http://127.0.0.1:{free_port()}") as nobody, pytest.raises(GatewayUnreachable):
        nobody.environment()


async def test_async_client_lists_and_calls_tools(local_gateway: Gateway, tmp_path: Path) -> None:
    async with AsyncClient(local_gateway.url) as gateway:
        names = [t["function"]["name"] for t in await gateway.tools()]
        assert names[:2] == ["execute_code", "get_environment"]
        assert {"create_session", "close_session", "install_package", "run_script"} <= set(names)
        assert {spec.name for spec in DATA_TOOLS} <= set(names)
        called = await gateway.call_tool(
            "execute_code",
            {"code": PLOT_CODE, "files": [{"name": "sales.csv", "content": SALES_CSV}]},
        )
        assert isinstance(called, ToolResult)
        assert not called.is_error, called.text
        assert called.images[0].to_bytes().startswith(PNG_MAGIC)
        refused = await gateway.call_tool("execute_code", '{"code": "import ctypes"}')
        assert refused.is_error and refused.error == "PolicyViolation"

        env = await gateway.environment()
        assert env["engine"] == "subprocess"
        result = await gateway.execute("open('r.txt', 'w').write('ok')")
        [artifact] = result.artifacts
        assert await gateway.artifact_bytes(artifact) == b"ok"
        [saved] = await gateway.download_artifacts(result, tmp_path / "out")
        assert saved.read_text() == "ok"
        with pytest.raises(CodeRejectedError):
            await gateway.execute("import socket")
