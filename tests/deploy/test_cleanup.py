"""Cleanup of job dirs and expired artifacts, and the shutdown kill of leftover runs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from service import cleanup
from service.observability import track_active_container
from service.settings import Settings


def make_dir(path: Path, age_s: float, files: int = 1) -> Path:
    path.mkdir(parents=True)
    stamp = time.time() - age_s
    for i in range(files):
        f = path / f"f{i}.txt"
        f.write_text("x")
        os.utime(f, (stamp, stamp))
    os.utime(path, (stamp, stamp))
    return path


def test_sweep_removes_only_expired_artifacts(tmp_path: Path) -> None:
    settings = Settings(execution_dir=tmp_path / "exec", artifact_retention_s=600)
    old = make_dir(settings.execution_dir / "artifacts" / "old", age_s=601)
    fresh = make_dir(settings.execution_dir / "artifacts" / "fresh", age_s=10)
    # An old dir with one fresh file inside is still in use.
    touched = make_dir(settings.execution_dir / "artifacts" / "touched", age_s=5000)
    (touched / "new.png").write_bytes(b"png")
    running = make_dir(settings.execution_dir / "jobs" / "running", age_s=30)
    audit = settings.audit_log_file
    audit.write_text("{}\n")
    os.utime(audit, (0, 0))

    report = cleanup.sweep_expired(settings)

    assert report.artifact_dirs == ["old"]
    assert not old.exists()
    assert fresh.exists() and touched.exists() and running.exists() and audit.exists()


def test_startup_cleanup_removes_every_stale_job_dir(tmp_path: Path) -> None:
    settings = Settings(execution_dir=tmp_path / "exec", artifact_retention_s=600)
    scratch = make_dir(settings.execution_dir / "jobs" / "crashed", age_s=1)
    subprocess_tmp = make_dir(settings.execution_dir / "job-abc-123", age_s=1)
    kept = make_dir(settings.execution_dir / "artifacts" / "recent", age_s=1)

    report = cleanup.startup_cleanup_sync(settings)

    assert not scratch.exists() and not subprocess_tmp.exists()
    assert kept.exists()
    assert report.job_dirs == ["crashed"]
    assert "job-abc-123" in report.sandboxes["subprocess"]


def test_shutdown_returns_at_once_when_idle(tmp_path: Path) -> None:
    settings = Settings(execution_dir=tmp_path / "exec", shutdown_grace_s=30)
    started = time.monotonic()
    report = cleanup.shutdown_sync(settings)
    assert time.monotonic() - started < 1
    assert report.killed_processes == [] and report.cancelled == []


def test_shutdown_waits_for_a_run_that_finishes_in_the_grace_period(tmp_path: Path) -> None:
    settings = Settings(execution_dir=tmp_path / "exec", shutdown_grace_s=10)
    release = threading.Event()

    def job() -> None:
        with track_active_container("subprocess"):
            release.wait(5)

    worker = threading.Thread(target=job)
    worker.start()
    time.sleep(0.05)
    threading.Timer(0.3, release.set).start()
    started = time.monotonic()
    report = cleanup.shutdown_sync(settings)
    waited = time.monotonic() - started
    worker.join()
    assert 0.2 < waited < 5
    assert report.killed_processes == []


def test_shutdown_kills_runs_that_outlive_the_grace_period(tmp_path: Path) -> None:
    runner_dir = tmp_path / "runner-venv"
    settings = Settings(
        execution_dir=tmp_path / "exec", shutdown_grace_s=0.3, local_runner_dir=runner_dir
    )
    sleeper = "import sys, time; time.sleep(60)"
    # A stand-in for a script of the subprocess engine (own session, runner path in argv)...
    script = subprocess.Popen(
        [sys.executable, "-c", sleeper, str(runner_dir.resolve())], start_new_session=True
    )
    # ...and a child of ours that is not a script: it must survive.
    bystander = subprocess.Popen([sys.executable, "-c", sleeper], start_new_session=True)
    done = threading.Event()

    def job() -> None:
        with track_active_container("subprocess"):
            script.wait()  # returns once the shutdown kills it
        done.set()

    worker = threading.Thread(target=job)
    worker.start()
    try:
        report = cleanup.shutdown_sync(settings)
        assert script.pid in report.killed_processes
        assert script.wait(5) == -9
        assert done.wait(5)
        assert bystander.poll() is None
    finally:
        for proc in (script, bystander):
            proc.kill()
            proc.wait()
        worker.join(5)
