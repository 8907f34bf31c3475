"""An app with one API key per role (real key file, real HTTP through TestClient)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.auth.keys import add_key
from service.auth.permissions import Role
from service.settings import Settings


def keyed_settings(tmp: Path, **overrides: object) -> tuple[Settings, dict[Role, str]]:
    """Settings using a fresh key file, and a key for every role."""
    key_file = tmp / "keys.jsonl"
    keys = {role: add_key(key_file, role)[0] for role in Role}
    values: dict[str, object] = {
        "execution_dir": tmp / "exec",
        "engine": "subprocess",
        "api_keys_file": key_file,
        **overrides,
    }
    return Settings(**values), keys  # type: ignore[arg-type]


@contextmanager
def keyed_client(
    tmp: Path, app_hook: object = None, **overrides: object
) -> Iterator[tuple[TestClient, dict[Role, str], FastAPI]]:
    settings, keys = keyed_settings(tmp, **overrides)
    app = create_app(settings)
    if callable(app_hook):
        app_hook(app)
    with TestClient(app) as client:
        yield client, keys, app


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
