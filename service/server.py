"""``python-coder serve``: uvicorn around the app factory, after the access checks."""

from __future__ import annotations

import logging
import os
import sys

import uvicorn
from pydantic import ValidationError

from service.auth.exposure import StartupRefused, check_exposure, key_store_for
from service.auth.keys import KeyStoreError
from service.settings import get_settings


def serve(host: str | None = None, port: int | None = None, reload: bool = False) -> int:
    # The app factory reads the same settings: --host/--port reach it (and its Host
    # allow-list and exposure check) through the environment, reload workers included.
    if host:
        os.environ["PYTHON_CODE_HOST"] = host
    if port:
        os.environ["PYTHON_CODE_PORT"] = str(port)
    get_settings.cache_clear()
    try:
        settings = get_settings()
    except ValidationError as exc:
        # Only the messages: pydantic's own text would repeat the input values (secrets).
        problems = "\n".join(f"  {error['msg']}" for error in exc.errors())
        sys.stderr.write(f"python-coder: invalid settings:\n{problems}\n")
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        check_exposure(settings, key_store_for(settings))
    except (StartupRefused, KeyStoreError) as exc:
        sys.stderr.write(f"python-coder: {exc}\n")
        return 2
    uvicorn.run(
        "service.api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        reload=reload,
        log_level=settings.log_level.lower(),
        # On SIGTERM, requests get this long to finish; then the lifespan shutdown kills the
        # runs still going (service/cleanup.py) so no sandbox outlives the gateway.
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_s)),
    )
    return 0
