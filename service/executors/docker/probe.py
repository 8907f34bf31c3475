"""Is a Docker engine reachable here? A cheap check that honours ``DOCKER_HOST``."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

from service.errors import EngineUnavailable

PING_TIMEOUT_S = 2.0


def ping_docker(timeout: float = PING_TIMEOUT_S) -> str:
    """Describe the reachable engine (version, address) or raise ``EngineUnavailable``.

    Honours ``DOCKER_HOST`` and friends, like the docker CLI.
    """
    try:
        import docker
        import requests
        from docker.errors import DockerException
    except ImportError as exc:  # pragma: no cover - docker is a hard dependency
        raise EngineUnavailable(f"docker SDK not installed: {exc}") from exc
    kwargs = docker.utils.kwargs_from_env()
    address = kwargs.get("base_url") or docker.constants.DEFAULT_UNIX_SOCKET
    _connect(address, timeout)
    try:
        # An explicit (old) API version: the constructor then does not connect, so the
        # client exists to be closed whatever happens, and any engine answers /version.
        client = docker.APIClient(
            **kwargs, version=docker.constants.MINIMUM_DOCKER_API_VERSION, timeout=timeout
        )
    except (DockerException, requests.exceptions.RequestException, OSError) as exc:
        raise EngineUnavailable(f"no Docker engine reachable at {address}: {exc}") from exc
    try:
        version: dict[str, Any] = client.version()
        return f"Docker {version.get('Version', '?')} reachable at {address}"
    except (DockerException, requests.exceptions.RequestException, OSError) as exc:
        raise EngineUnavailable(f"no Docker engine reachable at {address}: {exc}") from exc
    finally:
        client.close()


def _connect(address: str, timeout: float) -> None:
    """Can anything be reached at ``address``? Checked with a plain socket first because
    docker-py leaks the socket of a failed connection (a ResourceWarning later)."""
    parsed = urlsplit(address)
    try:
        if parsed.scheme in ("unix", "http+unix"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(parsed.path)
        elif parsed.scheme in ("tcp", "http", "https") and parsed.hostname:
            default = 2376 if parsed.scheme == "https" else 2375
            socket.create_connection((parsed.hostname, parsed.port or default), timeout).close()
    except OSError as exc:
        raise EngineUnavailable(f"no Docker engine reachable at {address}: {exc}") from exc
