"""The shared job steps: each run starts from an empty output dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.errors import InvalidRequest
from service.executors.registry import make_executor
from service.pipeline.jobs import open_job, run_code, run_limits
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


@pytest.mark.parametrize("timeout", [0.0, -1.0, 601.0])
def test_out_of_range_timeouts_are_refused(tmp_path: Path, timeout: float) -> None:
    with pytest.raises(InvalidRequest):
        run_limits(make_settings(tmp_path, "subprocess"), timeout)
