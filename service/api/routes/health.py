"""Liveness, readiness and the environment description."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from service.api.deps import RegistryDep, SettingsDep, get_principal
from service.environment import describe_environment

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The default engine is reachable and its runner is present")
async def readyz(registry: RegistryDep) -> JSONResponse:
    readiness = await registry.readiness()
    body = {
        "ready": readiness.ready,
        "engine": readiness.engine,
        "detail": readiness.detail,
        "checks": readiness.checks,
    }
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
