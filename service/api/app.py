"""The FastAPI application factory: routes, error mapping, engines for the app's lifetime."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from files import warm_up
from security.policy import StaticPolicy
from service import __version__
from service.api.errors import install_error_handlers
from service.api.routes import data, execute, files, generate, health
from service.cleanup import ArtifactSweeper, shutdown, startup_cleanup
from service.executors.factory import ExecutorRegistry
from service.observability import install_observability
from service.pipeline.jobs import intake_limits
from service.settings import Settings, get_settings
from service.tools.registry import DataTools

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.execution_dir.mkdir(parents=True, exist_ok=True)
        await startup_cleanup(settings)  # orphan containers and job dirs of a crashed run
        registry = ExecutorRegistry(settings)
        sweeper = ArtifactSweeper(settings)
        sweeper.start()
        # Metadata workers start in the background (~2 s) so the first upload does not wait.
        threading.Thread(target=warm_up, args=(intake_limits(settings),), daemon=True).start()
        app.state.executors = registry
        app.state.policy = StaticPolicy()
        # Databases (a sample SQLite one when none is configured) and storage roots.
        app.state.data_tools = DataTools.from_settings(settings)
        log.info("python-coder %s ready: %s", __version__, registry.describe())
        try:
            yield
        finally:
            await shutdown(settings, sweeper)  # wait for running jobs, then kill leftovers
            registry.close()
            app.state.data_tools.close()

    app = FastAPI(
        title="python-coder",
        version=__version__,
        description="Run Python against uploaded files in single-use, no-network sandboxes.",
        lifespan=lifespan,
    )
    app.dependency_overrides[get_settings] = lambda: settings
    install_error_handlers(app)
    install_observability(app, settings)  # request ids, JSON logs, /metrics
    app.include_router(health.router)
    app.include_router(execute.router)
    app.include_router(files.router)
    app.include_router(generate.router)
    app.include_router(data.router)
    return app
