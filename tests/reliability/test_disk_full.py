"""The execution dir runs out of space mid-job (a real, small tmpfs): a clear 503, nothing
half-written kept, and the next job runs once there is room again."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.settings import Settings

ENGINES = [
    pytest.param("docker", marks=pytest.mark.docker, id="docker"),
    pytest.param("subprocess", id="subprocess"),
]
BIG_ARTIFACT = "with open('big.bin', 'wb') as f:\n    f.write(b'0' * (40 * 1024 * 1024))\n"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs: the execution dir fills up for real (ENOSPC), not by a setting."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)], check=True
    )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_full_execution_dir_is_a_503_and_leaves_nothing(small_disk: Path, engine: str) -> None:
    settings = Settings(
        execution_dir=small_disk / "exec", engine=engine, pool_max=0, min_free_disk_mb=0
    )
    with TestClient(create_app(settings)) as client:
        # The script's file fits its sandbox, not our execution dir.
        full = client.post("/v1/execute", json={"code": BIG_ARTIFACT})
        assert full.status_code == 503, full.text
        assert full.json()["error"] == "DiskFull"
        assert "PYTHON_CODE_EXECUTION_DIR" in full.json()["message"]
        # An upload too large for the disk fails the same way, while it is stored.
        rows = b"a,b\n" + b"1,2\n" * 5_000_000
        upload = client.post(
            "/v1/execute", data={"code": "print(1)"}, files={"files": ("d.csv", rows, "text/csv")}
        )
        assert upload.status_code == 503, upload.text
        assert upload.json()["error"] == "DiskFull"
        # Nothing half-written stays behind, so the disk has room again for the next job.
        assert list((settings.execution_dir / "artifacts").iterdir()) == []
        assert list((settings.execution_dir / "jobs").iterdir()) == []
        after = client.post("/v1/execute", json={"code": "print('room again')"})
        assert after.status_code == 200 and after.json()["output"] == "room again\n"


def test_low_free_space_refuses_new_jobs_up_front(tmp_path: Path) -> None:
    settings = Settings(
        execution_dir=tmp_path / "exec", engine="subprocess", min_free_disk_mb=10**9
    )
    with TestClient(create_app(settings)) as client:
        refused = client.post("/v1/execute", json={"code": "print(1)"})
        assert refused.status_code == 503
        assert "PYTHON_CODE_MIN_FREE_DISK_MB" in refused.json()["message"]
