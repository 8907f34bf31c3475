"""Stored files are parsed where uploads are: read_csv and read_parquet never run a C parser in
the gateway (issue 11, section 4).

Agents write stored files (``write_file``) and S3 objects come from anywhere, so they are as
hostile as uploads. By class, not by file: the gateway process loads no pandas or Arrow module
at all for these tools (a fresh interpreter playing the gateway); the parse happens in the
intake pool's workers, which carry the sandbox's seccomp filter; a file that breaks the parser,
the deadline or the result cap is a clear 4xx and the next request is served as before.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from files.intake import IntakeLimits
from files.sandbox import worker_sandbox
from files.worker import shared_pool, shutdown_workers
from service.api.app import create_app
from service.errors import ExecutorError, InvalidRequest
from service.settings import Settings
from service.tools import storage
from service.tools.models import ReadTableArgs
from service.tools.registry import DataTools
from tests.security.test_intake_sandbox import _descendants, _status

REPO = Path(__file__).resolve().parents[2]


def _parquet_bytes() -> bytes:
    buffer = io.BytesIO()
    pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}).to_parquet(buffer)
    return buffer.getvalue()


def _seed(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "t.csv").write_text("a,b\n1,x\n2,y\n")
    # Private to the gateway's uid: a root gateway's workers run as another uid, so they must
    # read the descriptor they are given, not reopen the file.
    (root / "t.csv").chmod(0o600)
    good = _parquet_bytes()
    (root / "t.parquet").write_bytes(good)
    # Hostile stand-ins: Parquet magic around garbage, a cut-off file, CSV named .parquet,
    # a CSV whose quote never closes.
    (root / "garbage.parquet").write_bytes(b"PAR1" + bytes(range(256)) * 8 + b"PAR1")
    (root / "cut.parquet").write_bytes(good[: len(good) // 2])
    (root / "csv.parquet").write_bytes(b"a,b\n1,2\n")
    (root / "quote.csv").write_bytes(b'a,b\n"1,2\n3,4\n')


def _settings(tmp: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "execution_dir": tmp / "exec",
        "storage_roots": [tmp / "data"],
        "s3_buckets": [],
        "engine": "subprocess",
        "storage_max_file_size": 1,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(autouse=True, scope="module")
def _stop_workers() -> Iterator[None]:
    yield
    shutdown_workers()


GATEWAY = """
import json, sys
from pathlib import Path
from service.errors import ExecutorError, InvalidRequest
from service.settings import Settings
from service.tools.models import ReadTableArgs
from service.tools.registry import DataTools
from service.tools.storage import read_csv, read_parquet

tmp = Path(sys.argv[1])
tools = DataTools.from_settings(
    Settings(execution_dir=tmp / "exec", storage_roots=[tmp / "data"], s3_buckets=[])
)
out = {
    "csv": read_csv(tools, ReadTableArgs(file_path="t.csv")).rows,
    "parquet": read_parquet(tools, ReadTableArgs(file_path="t.parquet", columns=["b"])).rows,
    "refused": [],
}
for name, read in [("garbage.parquet", read_parquet), ("quote.csv", read_csv)]:
    try:
        read(tools, ReadTableArgs(file_path=name))
    except InvalidRequest as exc:
        out["refused"].append(exc.message)
out["loaded"] = sorted(m for m in sys.modules if m.split(".")[0] in ("pandas", "pyarrow"))
tools.close()
print(json.dumps(out))
"""


def test_the_gateway_loads_no_table_parser(tmp_path: Path) -> None:
    """A fresh interpreter builds the data tools and reads good and hostile tables: neither
    pandas nor Arrow (nor their C readers) is ever imported in it."""
    _seed(tmp_path / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON_CODE_")}
    out = subprocess.run(
        [sys.executable, "-c", GATEWAY, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.splitlines()[-1])
    assert found["csv"] == [[1, "x"], [2, "y"]]
    assert found["parquet"] == [["x"], ["y"], ["z"]]
    assert len(found["refused"]) == 2, found["refused"]
    assert found["loaded"] == [], found["loaded"]


def _tripwire(*_: object, **__: object) -> NoReturn:
    raise AssertionError("a stored file was parsed in the gateway process")


def test_the_parse_runs_in_a_confined_intake_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the gateway's own readers booby-trapped the tools still answer: the rows come from
    the shared intake pool, whose workers run under the sandbox's seccomp filter."""
    import pyarrow.parquet as pq

    for target, name in [
        (pd, "read_csv"),
        (pd.io.parsers.readers, "read_csv"),
        (pd.io.parsers.readers, "TextFileReader"),
        (pq, "ParquetFile"),
        (pq, "read_table"),
    ]:
        monkeypatch.setattr(target, name, _tripwire)
    _seed(tmp_path / "data")
    tools = DataTools.from_settings(_settings(tmp_path))
    try:
        assert storage.read_csv(tools, ReadTableArgs(file_path="t.csv")).rows == [
            [1, "x"],
            [2, "y"],
        ]
        table = storage.read_parquet(tools, ReadTableArgs(file_path="t.parquet"))
        assert table.rows == [[1, "x"], [2, "y"], [3, "z"]] and table.total_rows == 3
    finally:
        tools.close()
    pool = shared_pool(IntakeLimits().metadata_memory_bytes)
    assert pool.sandbox == worker_sandbox() and worker_sandbox().ok, worker_sandbox().detail
    pids = pool.worker_pids()
    assert pids
    for pid in pids:
        statuses = [_status(p) for p in [pid, *_descendants(pid)]]
        python = [s for s in statuses if s.get("Name", "").startswith("python")]
        assert python, statuses
        assert all(s["Seccomp"] == "2" and s["NoNewPrivs"] == "1" for s in python), python


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = _settings(tmp_path)
    _seed(settings.storage_roots[0])
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("route", "name", "message"),
    [
        ("read_parquet", "garbage.parquet", "could not be read as Parquet"),
        ("read_parquet", "cut.parquet", "could not be read as Parquet"),
        ("read_parquet", "csv.parquet", "could not be read as Parquet"),
        ("read_csv", "quote.csv", "could not be read as CSV"),
    ],
)
def test_a_hostile_table_is_a_clear_400_and_the_service_stays_up(
    client: TestClient, route: str, name: str, message: str
) -> None:
    r = client.post(f"/v1/storage/{route}", json={"file_path": name})
    assert r.status_code == 400, r.text
    assert message in r.json()["message"] and name in r.json()["message"]
    assert client.get("/healthz").status_code == 200
    good = client.post("/v1/storage/read_parquet", json={"file_path": "t.parquet"})
    assert good.status_code == 200 and good.json()["rows"][0] == [1, "x"], good.text


def test_unknown_columns_and_the_result_cap(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = client.post("/v1/storage/read_parquet", json={"file_path": "t.parquet", "columns": ["z"]})
    assert r.status_code == 400 and "has no column(s) ['z']" in r.text, r.text
    r = client.post("/v1/storage/read_csv", json={"file_path": "t.csv", "columns": ["z"]})
    assert r.status_code == 400 and "could not be read as CSV" in r.text, r.text
    monkeypatch.setattr(storage, "PREVIEW_MAX_BYTES", 40)
    r = client.post("/v1/storage/read_csv", json={"file_path": "t.csv"})
    assert r.status_code == 413 and "over the cap of 40 bytes" in r.text, r.text


def test_a_parse_past_the_deadline_is_killed_and_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(tmp_path / "data")
    tools = DataTools.from_settings(_settings(tmp_path))
    try:
        monkeypatch.setattr(storage, "PARSE_LIMITS", IntakeLimits(metadata_timeout_s=0.0001))
        with pytest.raises(InvalidRequest, match=r"timed out after 0\.0001 s \(worker killed\)"):
            storage.read_parquet(tools, ReadTableArgs(file_path="t.parquet"))
        monkeypatch.undo()
        assert storage.read_parquet(tools, ReadTableArgs(file_path="t.parquet")).row_count == 3
    finally:
        tools.close()


ONE_COLUMN = [{"name": "a", "type": "int"}]


@pytest.mark.parametrize(
    "answer",
    [
        {"columns": []},  # no rows at all
        {"rows": "x", "columns": [], "total_rows": 0, "truncated": False},
        {"rows": [[1]], "columns": [{"type": "int"}], "total_rows": 1, "truncated": False},
        {"rows": [[1, 2]], "columns": ONE_COLUMN, "total_rows": 1, "truncated": False},
        {"rows": [[1]] * 3, "columns": ONE_COLUMN, "total_rows": 3, "truncated": False},
    ],
)
def test_the_gateway_distrusts_what_a_worker_answers(answer: dict[str, Any]) -> None:
    """A worker taken over by a hostile file can lie: a malformed answer is a 500, never a
    result with more rows than asked for or rows that do not fit the columns."""
    with pytest.raises(ExecutorError, match="malformed CSV preview"):
        storage._table_data("t.csv", "csv", 2, answer)
