"""Builders for executor tests: real input files on disk, a fresh output dir per request."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import pytest

from service.executors.base import InputFile, RunLimits, RunRequest


class MakeRequest(Protocol):
    job_ids: list[str]  # every job id handed out, for leak checks

    def __call__(
        self, code: str, files: dict[str, bytes] | None = None, **limits: Any
    ) -> RunRequest: ...


@pytest.fixture
def make_request(tmp_path: Path) -> MakeRequest:
    """``make_request(code, {"data/a.csv": b"..."}, timeout_s=5)`` -> a ready ``RunRequest``.

    Input bodies are written under ``tmp_path/inputs-N`` (the way the intake stores uploads),
    the output dir ``tmp_path/out-N`` exists and is empty; keyword arguments override
    ``RunLimits`` fields (default timeout 20 s, so a hanging test fails fast).
    """
    counter = itertools.count()
    token = uuid.uuid4().hex[:8]
    job_ids: list[str] = []

    def build(code: str, files: dict[str, bytes] | None = None, **limits: Any) -> RunRequest:
        n = next(counter)
        stored = tmp_path / f"inputs-{n}"
        inputs = []
        for i, (name, body) in enumerate((files or {}).items()):
            path = stored / f"{i}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
            inputs.append(InputFile(name=name, path=path, size=len(body)))
        output_dir = tmp_path / f"out-{n}"
        output_dir.mkdir()
        limits.setdefault("timeout_s", 20.0)
        job_ids.append(f"t{token}-{n}")
        return RunRequest(
            job_id=job_ids[-1],
            code=code,
            inputs=tuple(inputs),
            output_dir=output_dir,
            limits=replace(RunLimits(), **limits),
        )

    build.job_ids = job_ids  # type: ignore[attr-defined]
    return build  # type: ignore[return-value]


@pytest.fixture
def csv_bytes() -> Callable[[int], bytes]:
    """A small sales table ``region,product,amount`` with ``rows`` data rows."""

    def build(rows: int = 12) -> bytes:
        regions = ["north", "south", "east"]
        lines = ["region,product,amount"]
        lines += [f"{regions[i % 3]},p{i % 4},{(i * 7) % 50 + 1}" for i in range(rows)]
        return ("\n".join(lines) + "\n").encode()

    return build
