"""What a script will find in the sandbox: Python version, packages, engine, limits.

Asked of the engine itself (a tiny introspection script run like any job), once per engine.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path
from typing import Any

import anyio

from service.errors import ExecutorError
from service.executors.base import Executor, RunLimits, RunRequest
from service.settings import Settings

# Our own script, not a user's: it is not passed through the static policy.
_PROBE = """
import json, platform, sys
from importlib import metadata
packages = sorted(
    ({"name": d.metadata["Name"], "version": d.version} for d in metadata.distributions()
     if d.metadata["Name"]),
    key=lambda p: p["name"].lower(),
)
print(json.dumps({"python_version": platform.python_version(), "implementation":
    platform.python_implementation(), "platform": platform.platform(), "packages": packages}))
"""

_cache: dict[tuple[str, str], dict[str, Any]] = {}


def _probe(executor: Executor) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pyc-env-") as out:
        result = executor.run(
            RunRequest(
                job_id=uuid.uuid4().hex,
                code=_PROBE,
                inputs=(),
                output_dir=Path(out),
                limits=RunLimits(timeout_s=60),
            )
        )
    if not result.success:
        raise ExecutorError(
            f"environment probe failed on {executor.name}: {result.stderr or result.error}"
        )
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


async def describe_environment(executor: Executor, settings: Settings) -> dict[str, Any]:
    key = (executor.name, settings.image)
    if key not in _cache:
        _cache[key] = await anyio.to_thread.run_sync(_probe, executor)
    probe = _cache[key]
    return {
        **probe,
        "engine": executor.name,
        "isolation": list(executor.isolation()),
        "runner": executor.describe(),
        "pool": executor.pool.snapshot() if executor.pool is not None else None,
        "limits": {
            "timeout_s": settings.timeout,
            "max_timeout_s": settings.max_timeout,
            "memory_mb": settings.max_memory,
            "cpus": settings.cpus,
            "pids": settings.pids_limit,
            "max_file_size_mb": settings.max_file_size,
            "max_total_upload_mb": settings.max_total_upload,
            "max_files": settings.max_files,
            "max_output_bytes": settings.max_output_bytes,
            "max_artifact_bytes": settings.max_artifact_bytes,
            "network": "none",
        },
    }
