"""``python-coder serve``: uvicorn around the app factory."""

from __future__ import annotations

import logging

import uvicorn

from service.settings import get_settings


def serve(host: str | None = None, port: int | None = None, reload: bool = False) -> int:
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        "service.api.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        reload=reload,
        log_level=settings.log_level.lower(),
        # On SIGTERM, requests get this long to finish; then the lifespan shutdown kills the
        # runs still going (service/cleanup.py) so no sandbox outlives the gateway.
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_s)),
    )
    return 0
