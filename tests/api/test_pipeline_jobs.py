"""The shared job steps: directories made on first use, each run from an empty output dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.errors import InvalidRequest
from service.executors.registry import make_executor
from service.pipeline.jobs import artifact_owner, open_job, run_code, run_limits
from tests.api.conftest import make_settings


async def test_a_second_run_never_serves_the_first_runs_files(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "subprocess")
    executor = make_executor(settings, "subprocess")
    try:
        async with open_job(settings) as job:
            first = await run_code(
                job, "open('wrong.csv', 'w').write('x')", executor, settings, None
            )
            second = await run_code(
                job, "open('right.csv', 'w').write('y')", executor, settings, None
            )
            assert [a.name for a in first.artifacts] == ["wrong.csv"]
            assert [a.name for a in second.artifacts] == ["right.csv"]
            assert sorted(p.name for p in job.output_dir.iterdir()) == ["right.csv"]
    finally:
        executor.close()


async def test_a_job_makes_its_directories_only_when_it_needs_them(tmp_path: Path) -> None:
    """No upload, no file written: no directory made (an ext4 mkdir/rmdir pair per request);
    files written: the output dir, private, with its owner recorded once the job ends."""
    settings = make_settings(tmp_path, "subprocess")
    executor = make_executor(settings, "subprocess")
    try:
        async with open_job(settings, "key:abc") as quiet:
            run = await run_code(quiet, "print(1)", executor, settings, None)
            assert run.success and run.artifacts == ()
            assert not quiet.root.exists() and not quiet.output_dir.exists()
        assert artifact_owner(settings, quiet.id) is None
        async with open_job(settings, "key:abc") as busy:
            assert busy.input_dir.is_dir() and busy.input_dir.stat().st_mode & 0o777 == 0o700
            run = await run_code(busy, "open('out.csv', 'w').write('x')", executor, settings, None)
            assert [a.name for a in run.artifacts] == ["out.csv"]
            assert busy.output_dir.stat().st_mode & 0o777 == 0o700
        assert not busy.root.exists()
        assert (busy.output_dir / "out.csv").read_text() == "x"
        assert artifact_owner(settings, busy.id) == "key:abc"
    finally:
        executor.close()


@pytest.mark.parametrize("timeout", [0.0, -1.0, 601.0])
def test_out_of_range_timeouts_are_refused(tmp_path: Path, timeout: float) -> None:
    with pytest.raises(InvalidRequest):
        run_limits(make_settings(tmp_path, "subprocess"), timeout)
