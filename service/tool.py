"""``python_coder`` as an in-process tool for agents embedding the library.

    result = await execute_code_task("average salary by department", files=["employees.csv"])

Returns the seed's output format as a plain dict (``success``, ``code``, ``output``,
``error``, ``iterations``, ``modifications``, ``execution_time``, ``input_files``,
``file_metadata``, ``verification_history``, plus ``result``, ``artifacts``, ``usage``,
``timings``). Failures an agent should reason about (verification failed, LLM down, bad
file) come back as ``success: false`` with ``error`` and ``error_type``, never as exceptions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio

from files.errors import IntakeError
from service.errors import PythonCoderError
from service.executors.registry import ExecutorRegistry
from service.llm.client import build_llm
from service.models import ExecutionResponse
from service.pipeline.generate import run_generation
from service.pipeline.jobs import Upload, artifacts_root, intake_uploads, open_job
from service.settings import Settings, get_settings

CHUNK = 1024 * 1024

PYTHON_CODER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "python_coder",
        "description": (
            "Write, verify and run Python (pandas, numpy, scipy, matplotlib, openpyxl, pypdf, "
            "...) in an isolated sandbox without network to answer a question, optionally "
            "about uploaded files (CSV, Excel, PDF, JSON, Parquet, HDF5, images, archives...). "
            "Returns the executed code, its output, the final JSON answer as `result`, "
            "produced files and an audit trail of the verification rounds."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "query": {
                    "type": "string",
                    "description": "What to compute, in plain language.",
                },
                "context": {
                    "type": "string",
                    "description": "Optional background: earlier findings, constraints, units.",
                },
                "files": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Paths of local files the code should read.",
                },
            },
            "required": ["query"],
            "additionalProperties": False,
        },
    },
}


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as fh:
        while chunk := await fh.read(CHUNK):
            yield chunk


def _uploads(files: Sequence[str | Path]) -> list[Upload]:
    uploads = []
    for item in files:
        path = Path(item).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"input file not found: {path}")
        uploads.append(Upload(path.name, _file_chunks(path)))
    return uploads


async def generate_locally(
    query: str,
    context: str | None,
    files: Sequence[str | Path],
    settings: Settings,
    *,
    engine: str | None = None,
) -> ExecutionResponse:
    """The ``/v1/generate`` pipeline without HTTP; raises the gateway's exceptions."""
    llm = build_llm(settings)
    uploads = _uploads(files)
    registry = ExecutorRegistry(settings)
    try:
        executor = registry.get(engine)
        async with open_job(settings) as job:
            await intake_uploads(job, uploads, settings)
            return await run_generation(query, context, job, executor, settings, llm)
    finally:
        registry.close()
        await llm.close()


def artifact_dir(settings: Settings, response: ExecutionResponse) -> Path:
    """Where the produced files of ``response`` are kept (for the retention period)."""
    return artifacts_root(settings) / response.id


async def execute_code_task(
    query: str,
    context: str | None = None,
    files: Sequence[str | Path] = (),
    *,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Generate, verify and run code for ``query``; the seed's tool entry point."""
    settings = settings or get_settings()
    try:
        response = await generate_locally(query, context, files, settings)
    except (PythonCoderError, IntakeError, FileNotFoundError) as exc:
        detail = getattr(exc, "detail", None)
        failure: dict[str, Any] = {
            "success": False,
            "error": getattr(exc, "message", None) or str(exc),
            "error_type": type(exc).__name__,
            "code": "",
            "output": "",
            "iterations": 0,
            "modifications": [],
            "execution_time": 0.0,
            "input_files": [Path(f).name for f in files],
            "file_metadata": {},
            "verification_history": [],
        }
        if isinstance(detail, dict):
            failure["code"] = detail.get("code", "")
            failure["verification_history"] = detail.get("verification_history", [])
            failure["detail"] = detail
        return failure
    result = response.model_dump(mode="json")
    result["artifacts_dir"] = str(artifact_dir(settings, response))
    return result
