"""Upload problems are refused with a status and a message naming the file and the limit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from tests.api.conftest import make_settings


@pytest.fixture
def small_client(tmp_path: Path) -> Iterator[TestClient]:
    """Subprocess engine with tiny limits; nothing here reaches an engine."""
    settings = make_settings(
        tmp_path, "subprocess", max_file_size=1, max_total_upload=2, max_files=3
    )
    with TestClient(create_app(settings)) as client:
        yield client


CODE = {"code": "print(1)"}


def test_oversized_file_is_413_naming_file_and_limit(small_client: TestClient) -> None:
    big = b"a,b\n" + b"1,2\n" * (300 * 1024)  # ~1.2 MB > 1 MB
    response = small_client.post("/v1/execute", data=CODE, files=[("files", ("big.csv", big))])
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["file"] == "big.csv"
    assert "big.csv" in body["message"] and "1" in body["message"]


def test_whole_request_over_total_limit_is_413(small_client: TestClient) -> None:
    part = b"x" * (900 * 1024)
    files = [("files", (f"f{i}.txt", part)) for i in range(3)]
    response = small_client.post("/v1/execute", data=CODE, files=files)
    assert response.status_code == 413, response.text


def test_unsupported_extension_is_415_listing_supported(small_client: TestClient) -> None:
    response = small_client.post(
        "/v1/execute", data=CODE, files=[("files", ("tool.exe", b"MZ\x90\x00"))]
    )
    assert response.status_code == 415, response.text
    body = response.json()
    assert body["file"] == "tool.exe"
    assert ".csv" in body["supported"] and ".parquet" in body["supported"]


def test_too_many_files_is_413(small_client: TestClient) -> None:
    files = [("files", (f"f{i}.txt", b"hi")) for i in range(4)]
    response = small_client.post("/v1/execute", data=CODE, files=files)
    assert response.status_code == 413, response.text


def test_empty_file_is_400(small_client: TestClient) -> None:
    response = small_client.post("/v1/execute", data=CODE, files=[("files", ("empty.csv", b""))])
    assert response.status_code == 400, response.text
    assert response.json()["file"] == "empty.csv"


def test_traversal_name_never_escapes(small_client: TestClient, tmp_path: Path) -> None:
    response = small_client.post(
        "/v1/execute",
        data={"code": "import os\nprint(sorted(os.listdir('.')))"},
        files=[("files", ("../../escape.txt", b"hi"))],
    )
    assert response.status_code in (200, 400), response.text
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "exec" / "escape.txt").exists()


def test_missing_code_is_400(small_client: TestClient) -> None:
    response = small_client.post("/v1/execute", json={"code": " "})
    assert response.status_code in (400, 422)


def test_bad_timeout_is_400(small_client: TestClient) -> None:
    response = small_client.post("/v1/execute", data={"code": "print(1)", "timeout_s": "soon"})
    assert response.status_code == 400
    assert "timeout_s" in response.json()["message"]


def test_unknown_artifact_is_404(small_client: TestClient) -> None:
    response = small_client.get("/v1/executions/abc123/artifacts/nothing.png")
    assert response.status_code == 404


def test_archive_members_are_readable_by_relative_path(tmp_path: Path) -> None:
    import zipfile

    archive = tmp_path / "data_backup.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("data1.csv", "a\n1\n2\n")
        z.writestr("sub/data2.csv", "a\n3\n")
    settings = make_settings(tmp_path, "subprocess")
    code = (
        "import pandas as pd\n"
        "print(len(pd.read_csv('data_backup/data1.csv')) + len(pd.read_csv('data_backup/sub/data2.csv')))\n"
    )
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/v1/execute",
            data={"code": code},
            files=[("files", (archive.name, archive.read_bytes()))],
        )
    body = response.json()
    assert response.status_code == 200 and body["success"], body
    assert body["output"].strip() == "3"
    assert "data_backup/sub/data2.csv" in body["input_files"]
    assert body["file_metadata"]["data_backup.zip"]["type"] == "archive"


def test_disabled_gateway_refuses_jobs_but_stays_healthy(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "subprocess", enabled=False)
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/execute", json={"code": "print(1)"})
        assert response.status_code == 503
        assert "PYTHON_CODE_ENABLED" in response.json()["message"]
        assert client.get("/healthz").status_code == 200


def test_jobs_beyond_the_concurrency_cap_queue(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    settings = make_settings(tmp_path, "subprocess", max_concurrent_runs=1)
    code = "import time\ntime.sleep(1)\nprint('done')"
    with TestClient(create_app(settings)) as client, ThreadPoolExecutor(2) as pool:
        bodies = list(
            pool.map(lambda _: client.post("/v1/execute", json={"code": code}).json(), range(2))
        )
    assert all(b["success"] for b in bodies), bodies
    queued = sorted(b["timings"].get("queued", 0.0) for b in bodies)
    assert queued[0] < 0.5 and queued[1] >= 0.8, queued


def test_zip_slip_archive_is_422_naming_the_archive(
    small_client: TestClient, tmp_path: Path
) -> None:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("../../evil.csv", "a\n1\n")
    response = small_client.post(
        "/v1/execute", data=CODE, files=[("files", ("backup.zip", buffer.getvalue()))]
    )
    assert response.status_code == 422, response.text
    assert response.json()["file"] == "backup.zip" or "backup.zip" in response.json()["message"]
    assert not list(tmp_path.rglob("evil.csv"))


def test_binary_bytes_behind_a_text_extension_are_415(small_client: TestClient) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    response = small_client.post("/v1/execute", data=CODE, files=[("files", ("data.csv", png))])
    assert response.status_code == 415, response.text
    assert response.json()["file"] == "data.csv"


def test_inspect_returns_metadata_per_file(small_client: TestClient) -> None:
    csv = b"name,dept,salary\nAnn,IT,10\nBob,HR,20\n"
    response = small_client.post("/v1/files/inspect", files=[("files", ("staff.csv", csv))])
    assert response.status_code == 200, response.text
    meta = response.json()["metadata"]["staff.csv"]
    assert meta["columns"] == ["name", "dept", "salary"] and meta["row_count"] == 2


def test_json_bodies_have_their_own_smaller_cap(tmp_path: Path) -> None:
    import base64

    settings = make_settings(tmp_path, "subprocess", max_json_body=1)
    blob = base64.b64encode(b"a,b\n" * (400 * 1024)).decode()  # ~2.1 MB of JSON
    body = {"code": "print(1)", "files": [{"name": "x.csv", "content": blob, "encoding": "base64"}]}
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/execute", json=body)
    assert response.status_code == 413, response.text
    assert "PYTHON_CODE_MAX_JSON_BODY" in response.json()["message"]


def test_low_disk_refuses_new_jobs_with_503(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "subprocess", min_free_disk_mb=10**9)
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/execute", json={"code": "print(1)"})
        assert response.status_code == 503
        assert "PYTHON_CODE_MIN_FREE_DISK_MB" in response.json()["message"]
        assert client.get("/healthz").status_code == 200


def test_malformed_json_is_400_without_echoing_the_body(small_client: TestClient) -> None:
    for raw in (b"{bad", b"", b"\xff\xfe"):
        response = small_client.post(
            "/v1/execute", content=raw, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "InvalidRequest"
    secret_code = {"code": "print('top secret')", "unknown": 1}
    response = small_client.post("/v1/execute", json=secret_code)
    assert response.status_code == 400 and "top secret" not in response.text


def test_code_file_part_must_be_utf8(small_client: TestClient) -> None:
    response = small_client.post("/v1/execute", files=[("code", ("a.py", b"print('\xff')"))])
    assert response.status_code == 400
    assert "UTF-8" in response.json()["message"]


def test_artifact_urls_survive_awkward_names(small_client: TestClient) -> None:
    # ('%' is left out: Starlette's TestClient decodes the path twice; a real server does not)
    code = "for n in ('a b#1.txt', 'q?x.txt', 'sub/é.txt'):\n    import os; os.makedirs('sub', exist_ok=True); open(n, 'w').write(n)\n"
    body = small_client.post("/v1/execute", json={"code": code}).json()
    assert body["success"], body
    assert len(body["artifacts"]) == 3
    for artifact in body["artifacts"]:
        download = small_client.get(artifact["url"])
        assert download.status_code == 200, artifact
        assert download.text == artifact["name"]
