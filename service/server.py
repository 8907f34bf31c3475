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
    )
    return 0
