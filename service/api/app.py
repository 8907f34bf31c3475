"""The FastAPI application factory: routes, error mapping, engines for the app's lifetime."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.routing import Route

from files import warm_up
from security.policy import StaticPolicy
from service import __version__
from service.api.access import AccessGuard
from service.api.errors import install_error_handlers
from service.api.routes import data, execute, files, generate, health, sessions, tools
from service.auth.exposure import check_exposure, key_store_for
from service.auth.quotas import Quotas
from service.cleanup import ArtifactSweeper, shutdown, startup_cleanup
from service.executors.registry import ExecutorRegistry
from service.mcp.http import PATH as MCP_PATH
from service.mcp.http import MCPEndpoint, mcp_lifespan
from service.observability import install_observability
from service.pipeline.jobs import intake_limits
from service.pipeline.sessions import SessionManager
from service.settings import Settings, get_settings
from service.tools.registry import DataTools

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        keys = key_store_for(settings)  # a bad key entry stops the start, naming it
        check_exposure(settings, keys)  # no keys: loopback only, unless explicitly opted out
        app.state.keys = keys
        app.state.quotas = Quotas(
            settings.rate_limit_per_minute,
            settings.rate_limit_burst,
            settings.max_concurrent_jobs_per_key,
        )
        settings.execution_dir.mkdir(parents=True, exist_ok=True)
        registry = ExecutorRegistry(settings, pooled=True)
        registry.open_slots()
        # Orphan sandboxes and job dirs of a crashed run go before the pool starts.
        await startup_cleanup(settings, registry)
        sweeper = ArtifactSweeper(settings)
        sweeper.start()
        # Metadata workers start in the background (~2 s) so the first upload does not wait.
        threading.Thread(target=warm_up, args=(intake_limits(settings),), daemon=True).start()
        app.state.executors = registry
        app.state.policy = StaticPolicy()
        # Databases (a sample SQLite one when none is configured) and storage roots.
        app.state.data_tools = DataTools.from_settings(settings)
        # Resolving the default engine starts its warm pool.
        described = await anyio.to_thread.run_sync(registry.describe)
        log.info(
            "python-coder %s ready: %s, %s",
            __version__,
            described,
            f"{len(keys.records())} API key(s)" if keys.configured else "no API keys (local)",
        )
        # Sessions live only as long as this process (their sandboxes end with it).
        app.state.sessions = SessionManager(registry, settings, app.state.policy)
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(app.state.sessions.run_sweeper)
                try:
                    async with mcp_lifespan(app.state, settings):
                        yield
                finally:
                    tasks.cancel_scope.cancel()
        finally:
            await app.state.sessions.close()
            # Drain the pool, wait for running jobs, then kill and sweep what is left.
            await shutdown(settings, registry, sweeper)
            await anyio.to_thread.run_sync(registry.close)
            app.state.data_tools.close()

    app = FastAPI(
        title="python-coder",
        version=__version__,
        description="Run Python against uploaded files in single-use, no-network sandboxes.",
        lifespan=lifespan,
    )
    # Read by the ``SettingsDep`` dependency. Not ``app.dependency_overrides``: while any
    # override is set, FastAPI re-analyses every dependency's signature on every request.
    app.state.settings = settings
    install_error_handlers(app)
    if settings.allowed_origin_list:
        # Browser UIs the operator allowed get CORS answers (preflights included).
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origin_list,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    # Added after CORS and before observability: it sees every request first, inside the
    # request log and id.
    app.add_middleware(AccessGuard, settings=settings)
    install_observability(app, settings)  # request ids, JSON logs, /metrics
    app.include_router(health.router)
    app.include_router(execute.router)
    app.include_router(sessions.router)
    app.include_router(files.router)
    app.include_router(generate.router)
    app.include_router(tools.router)
    app.router.routes.append(Route(MCP_PATH, endpoint=MCPEndpoint()))
    app.include_router(data.router)
    return app
