"""``python-coder keys``: create, list and revoke API keys in the key file.

``create`` prints the new key once, on stdout alone (so ``KEY=$(python-coder keys create
...)`` works); only its hash is stored. ``list`` shows ids and roles, never keys.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from service.auth.keys import (
    KeyRecord,
    KeyStoreError,
    add_key,
    new_key,
    parse_env_keys,
    read_key_file,
    revoke_key,
)
from service.auth.permissions import Role


def _key_file(args: argparse.Namespace) -> Path | None:
    if args.file:
        return Path(args.file)
    from service.settings import get_settings

    return get_settings().api_keys_file


def _no_file() -> int:
    sys.stderr.write(
        "error: no key file: pass --file FILE or set PYTHON_CODE_API_KEYS_FILE "
        "(or use --env to get an entry for PYTHON_CODE_API_KEYS)\n"
    )
    return 2


def _create(args: argparse.Namespace) -> int:
    role = Role(args.role)
    if args.env:
        key, record = new_key(role)
        sys.stdout.write(key + "\n")
        sys.stderr.write(
            f"key {record.id} ({role.value}), shown once. For PYTHON_CODE_API_KEYS (hashed):\n"
            f"  {role.value}:{record.id}:{record.hash}\n"
        )
        return 0
    path = _key_file(args)
    if path is None:
        return _no_file()
    key, record = add_key(path, role)
    sys.stdout.write(key + "\n")
    sys.stderr.write(
        f"key {record.id} ({role.value}) added to {path}; this is the only time it is shown. "
        "Send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'.\n"
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    rows: list[tuple[KeyRecord, str]] = []
    path = _key_file(args)
    if path is not None:
        rows += [(r, str(path)) for r in read_key_file(path)]
    from service.settings import get_settings

    env = get_settings().api_keys
    if env is not None:
        rows += [(r, "PYTHON_CODE_API_KEYS") for r in parse_env_keys(env.get_secret_value())]
    if not rows:
        sys.stderr.write("no API keys configured: every caller is the local operator\n")
        return 0
    sys.stdout.write(f"{'id':<14}{'role':<16}{'created':<27}source\n")
    for record, source in rows:
        sys.stdout.write(
            f"{record.id:<14}{record.role.value:<16}{record.created or '-':<27}{source}\n"
        )
    return 0


def _revoke(args: argparse.Namespace) -> int:
    path = _key_file(args)
    if path is None:
        return _no_file()
    try:
        record = revoke_key(path, args.id)
    except KeyError:
        sys.stderr.write(f"error: no key {args.id!r} in {path}\n")
        return 1
    sys.stderr.write(
        f"revoked key {record.id} ({record.role.value}); a running gateway stops accepting it "
        "at its next request\n"
    )
    return 0


KEYS_COMMANDS = {"create": _create, "list": _list, "revoke": _revoke}


def keys_command(args: argparse.Namespace) -> int:
    try:
        return KEYS_COMMANDS[args.keys_command](args)
    except (KeyStoreError, OSError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
