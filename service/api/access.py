"""Browser-facing guards: the ``Host`` allow-list (DNS rebinding) and cross-origin refusal.

A web page can make its visitor's browser POST to ``http://127.0.0.1:8000`` (a "simple"
multipart or urlencoded request needs no CORS preflight), and with DNS rebinding it can read
the answers too. Both are stopped before any route runs:

- ``Host`` must name this gateway: loopback names, the bind host, the address the connection
  arrived on, or a name in ``PYTHON_CODE_ALLOWED_HOSTS`` (``*`` turns the check off, for a
  reverse proxy that checks names itself). A rebinding page sends its own name: refused.
- A request carrying an ``Origin`` is allowed when that origin is this very host (the
  ``/docs`` page) or listed in ``PYTHON_CODE_ALLOWED_ORIGINS``; a request without ``Origin``
  whose ``Sec-Fetch-Site`` says ``cross-site``/``same-site`` is refused unless it is a plain
  top-level navigation (a link someone clicked: GET, nothing changes).

Both answer 403 with a JSON body naming the problem and the setting. Non-browser clients
(curl, SDKs, agents) send neither header and are unaffected.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from service.auth.exposure import is_loopback
from service.settings import Settings

log = logging.getLogger(__name__)

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
SAFE_METHODS = frozenset({"GET", "HEAD"})


def host_name(header: str) -> str:
    """``Host`` without its port, lowercased: ``[::1]:8000`` -> ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    name, sep, port = header.rpartition(":")
    return name if sep and port.isdigit() else header


class AccessGuard:
    """Pure ASGI middleware applying the two checks above to HTTP and WebSocket scopes."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        extra = {name.lower().rstrip(".") for name in settings.allowed_host_names}
        self.any_host = "*" in extra
        self.hosts = LOOPBACK_NAMES | extra
        if settings.host not in WILDCARD_HOSTS:
            self.hosts |= {settings.host.strip("[]").lower()}
        self.origins = frozenset(settings.allowed_origin_list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        problem = self.problem(scope)
        if problem is None:
            await self.app(scope, receive, send)
            return
        log.info("request refused (403): %s", problem, extra={"path": scope.get("path")})
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": problem[:120]})
            return
        body = json.dumps({"error": "Forbidden", "message": problem}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def problem(self, scope: Scope) -> str | None:
        """Why this request is refused, or ``None``."""
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host_header = headers.get("host", "")
        name = host_name(host_header)
        if not self.any_host and not self._known_host(name, scope):
            return (
                f"Host {host_header!r} is not an allowed name for this gateway "
                "(add it to PYTHON_CODE_ALLOWED_HOSTS)"
                if host_header
                else "the request has no Host header"
            )
        origin = headers.get("origin")
        if origin is not None:
            if origin.rstrip("/") in self.origins or self._same_origin(origin, host_header):
                return None
            return (
                f"cross-origin request from {origin!r} refused "
                "(allow the origin with PYTHON_CODE_ALLOWED_ORIGINS)"
            )
        site = headers.get("sec-fetch-site")
        navigation = (
            headers.get("sec-fetch-mode") == "navigate" and scope.get("method") in SAFE_METHODS
        )
        if site in ("cross-site", "same-site") and not navigation:
            return f"cross-site browser request refused (Sec-Fetch-Site: {site})"
        return None

    def _known_host(self, name: str, scope: Scope) -> bool:
        if name in self.hosts or is_loopback(name):
            return True
        # An IP literal naming the address this connection came in on cannot be rebound.
        server = scope.get("server")
        return server is not None and name == str(server[0]).lower()

    @staticmethod
    def _same_origin(origin: str, host_header: str) -> bool:
        try:
            netloc = urlsplit(origin).netloc
        except ValueError:
            return False
        return bool(netloc) and netloc.lower() == host_header.strip().lower()
