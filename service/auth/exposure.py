"""Who may reach the gateway at all: no keys means loopback only, unless the operator opts out.

Checked by ``python-coder serve`` before it binds and again in the app's lifespan, so a
gateway started any other way refuses too.
"""

from __future__ import annotations

import ipaddress
import logging

from service.auth.keys import KeyStore
from service.settings import Settings

log = logging.getLogger(__name__)


class StartupRefused(RuntimeError):
    """The configuration must not be served; the message says what to change."""


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP literal; any other name may resolve anywhere."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def key_store_for(settings: Settings) -> KeyStore:
    """The key store the settings describe (``KeyStoreError`` names a bad entry)."""
    env_value = settings.api_keys.get_secret_value() if settings.api_keys else None
    return KeyStore(settings.api_keys_file, env_value)


def check_exposure(settings: Settings, store: KeyStore) -> None:
    """Refuse a non-loopback bind without keys; log loudly when the operator opted out."""
    if store.configured or is_loopback(settings.host):
        return
    if settings.allow_unauthenticated:
        log.warning(
            "SERVING WITHOUT AUTHENTICATION on %s: anyone who can reach this address can run "
            "code here (PYTHON_CODE_ALLOW_UNAUTHENTICATED=true). Configure API keys "
            "(python-coder keys create) to turn authentication on.",
            settings.host,
        )
        return
    raise StartupRefused(
        f"refusing to serve on {settings.host} without API keys: anyone who can reach that "
        "address could run code. Either create keys (python-coder keys create --role ROLE "
        "--file FILE, then PYTHON_CODE_API_KEYS_FILE=FILE), bind a loopback address "
        "(PYTHON_CODE_HOST=127.0.0.1), or accept the risk with "
        "PYTHON_CODE_ALLOW_UNAUTHENTICATED=true."
    )
