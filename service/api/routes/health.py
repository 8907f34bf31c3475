"""Liveness, readiness and the environment description."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from files.sandbox import worker_sandbox
from service.api.deps import RegistryDep, SettingsDep, get_principal
from service.environment import describe_environment

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

# /readyz answers anyone who can reach the port: it names no file system path, runner
# prefix, socket or image id. The full picture is in the log and in `python-coder doctor`.
PUBLIC_CHECKS = ("isolation", "runtime", "engine", "image_present", "protocol")
_PATH = re.compile(r"(?:[a-z+]+://)?(?<![\w.~-])/[^\s;,:()'\"]*")


def _public(detail: str) -> str:
    return _PATH.sub("<path>", detail)


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The default engine is reachable and its runner is present")
async def readyz(registry: RegistryDep) -> JSONResponse:
    readiness = await registry.readiness()
    if not readiness.ready:
        log.warning("not ready: %s (%s)", readiness.detail, readiness.checks)
    body = {
        "ready": readiness.ready,
        "engine": readiness.engine,
        "detail": _public(readiness.detail),
        "checks": {k: v for k, v in readiness.checks.items() if k in PUBLIC_CHECKS},
    }
    # Where uploads are parsed (mode and labels only; the detail names paths).
    intake = await asyncio.to_thread(worker_sandbox)
    body["intake_sandbox"] = {"mode": intake.mode, "labels": list(intake.labels), "ok": intake.ok}
    if registry.queue is not None:  # how busy: runs going, jobs waiting, refusals so far
        body["queue"] = registry.queue.snapshot()
    return JSONResponse(body, status_code=200 if readiness.ready else 503)


@router.get(
    "/v1/environment",
    summary="Python version, installed packages, engine, limits",
    # Any valid key (every role): it describes the sandbox to a caller, not to a prober.
    dependencies=[Depends(get_principal)],
)
async def environment(registry: RegistryDep, settings: SettingsDep) -> dict[str, Any]:
    executor = registry.get(None)
    return await describe_environment(executor, settings)
