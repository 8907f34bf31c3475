"""API keys: made once, stored hashed, looked up by id, compared in constant time.

A key reads ``pyc_<id>_<secret>``: ``id`` is 12 hex characters that name the key in lists,
logs and the audit trail; ``secret`` is 32 random bytes (urlsafe base64). Only
``sha256(key)`` is stored. A plain hash is enough here because the secret is random and long
(no dictionary to try); the id makes lookup one dict access, and the hash is compared with
``hmac.compare_digest``.

Two sources, merged (an id may appear only once):

- the key file (``PYTHON_CODE_API_KEYS_FILE``): JSON lines
  ``{"id": ..., "role": ..., "hash": "sha256:<hex>", "created": "<ISO time>"}``, written by
  ``python-coder keys create`` and ``keys revoke``; it is re-read when it changes, so a
  revoked key stops working without a restart;
- the environment (``PYTHON_CODE_API_KEYS``): comma-separated entries, either
  ``<role>:<key>`` (the key itself; hashed on load and then forgotten) or
  ``<role>:<id>:sha256:<hex>`` (pre-hashed, as ``keys create --env`` prints it).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from service.auth.permissions import Principal, Role

log = logging.getLogger(__name__)

PREFIX = "pyc"
_ID = re.compile(r"[0-9a-f]{12}")
_SECRET = re.compile(r"[A-Za-z0-9_-]{32,256}")
_HASH = re.compile(r"sha256:[0-9a-f]{64}")
# Values that mean "nobody set this": refused in production (service.settings).
PLACEHOLDER_WORDS = ("changeme", "change-me", "change_me", "changethis", "replace-me", "example")


class KeyStoreError(ValueError):
    """The key configuration is unusable (the message names the source and the problem)."""


@dataclass(frozen=True)
class KeyRecord:
    """One stored key: never the key itself, only its hash."""

    id: str
    role: Role
    hash: str  # "sha256:<hex>"
    created: str  # ISO 8601, UTC

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "role": self.role.value})


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key(role: Role) -> tuple[str, KeyRecord]:
    """A fresh key (shown once, never stored) and the record that stands for it."""
    key_id = secrets.token_hex(6)
    key = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    created = datetime.now(UTC).isoformat(timespec="seconds")
    return key, KeyRecord(id=key_id, role=role, hash=hash_key(key), created=created)


def key_id_of(key: str) -> str | None:
    """The id part of a well-formed key, else ``None`` (no lookup for malformed keys)."""
    prefix, _, rest = key.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != PREFIX or not _ID.fullmatch(key_id) or not _SECRET.fullmatch(secret):
        return None
    return key_id


def is_placeholder(value: str) -> bool:
    lowered = value.lower()
    return any(word in lowered for word in PLACEHOLDER_WORDS)


def _role(text: str, where: str) -> Role:
    try:
        return Role(text.strip())
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise KeyStoreError(f"{where}: unknown role {text.strip()!r} (one of {roles})") from None


def _record(data: object, where: str) -> KeyRecord:
    if not isinstance(data, dict):
        raise KeyStoreError(f"{where}: expected a JSON object with id, role, hash, created")
    missing = [k for k in ("id", "role", "hash") if not isinstance(data.get(k), str)]
    if missing:
        raise KeyStoreError(f"{where}: missing or non-string field(s) {', '.join(missing)}")
    if not _ID.fullmatch(data["id"]):
        raise KeyStoreError(f"{where}: id {data['id']!r} is not 12 lowercase hex characters")
    if not _HASH.fullmatch(data["hash"]):
        raise KeyStoreError(f"{where}: hash must read sha256:<64 hex characters>")
    return KeyRecord(
        id=data["id"],
        role=_role(data["role"], where),
        hash=data["hash"],
        created=str(data.get("created", "")),
    )


def read_key_file(path: Path) -> list[KeyRecord]:
    """The records of a key file; a missing file holds none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyStoreError(f"key file {path}: cannot read it ({exc})") from exc
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"key file {path}, line {number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise KeyStoreError(f"{where}: not JSON ({exc.msg})") from exc
        records.append(_record(data, where))
    return records


def parse_env_keys(value: str) -> list[KeyRecord]:
    """``PYTHON_CODE_API_KEYS``: ``role:key`` or ``role:id:sha256:<hex>``, comma-separated."""
    records = []
    for number, entry in enumerate((e.strip() for e in value.split(",")), 1):
        if not entry:
            continue
        where = f"PYTHON_CODE_API_KEYS entry {number}"
        role_text, sep, rest = entry.partition(":")
        if not sep:
            raise KeyStoreError(f"{where}: expected <role>:<key> or <role>:<id>:sha256:<hex>")
        role = _role(role_text, where)
        if rest.startswith(f"{PREFIX}_"):
            key_id = key_id_of(rest)
            if key_id is None:
                raise KeyStoreError(
                    f"{where}: a key reads {PREFIX}_<12 hex>_<at least 32 characters of "
                    "A-Z a-z 0-9 _ ->; make one with: python-coder keys create --role ROLE --env"
                )
            records.append(KeyRecord(key_id, role, hash_key(rest), ""))
            continue
        key_id, sep, digest = rest.partition(":")
        if not sep or not _ID.fullmatch(key_id) or not _HASH.fullmatch(digest):
            raise KeyStoreError(
                f"{where}: expected <role>:{PREFIX}_<id>_<secret> or <role>:<id>:sha256:<hex>"
            )
        records.append(KeyRecord(key_id, role, digest, ""))
    return records


def _index(groups: Iterable[list[KeyRecord]]) -> dict[str, KeyRecord]:
    index: dict[str, KeyRecord] = {}
    for records in groups:
        for record in records:
            if record.id in index:
                raise KeyStoreError(f"key id {record.id} is configured twice")
            index[record.id] = record
    return index


class KeyStore:
    """Keys from the file and the environment; answers "which principal holds this key?"."""

    def __init__(self, file: Path | None = None, env_value: str | None = None) -> None:
        self.file = file
        self._env_records = parse_env_keys(env_value) if env_value else []
        self._lock = threading.Lock()
        self._file_stamp: tuple[int, int, int] | None = None
        self._keys = _index([self._env_records])
        if file is not None:  # a broken file stops the start here, naming the line
            self._keys = _index([self._env_records, read_key_file(file)])
            self._file_stamp = self._stamp()

    @property
    def configured(self) -> bool:
        """True when keys are in use: then every request must present one.

        A configured key file counts even while it is empty or missing (revoking the last key
        locks everyone out rather than opening the gateway).
        """
        return self.file is not None or bool(self._env_records)

    def records(self) -> list[KeyRecord]:
        self._reload_if_changed()
        return sorted(self._keys.values(), key=lambda r: r.id)

    def authenticate(self, key: str) -> Principal | None:
        """The key's principal, or ``None`` for a malformed, unknown or revoked key."""
        key_id = key_id_of(key)
        if key_id is None:
            return None
        self._reload_if_changed()
        record = self._keys.get(key_id)
        if record is None or not hmac.compare_digest(record.hash, hash_key(key)):
            return None
        return Principal(identity=f"key:{record.id}", role=record.role, key_id=record.id)

    def _stamp(self) -> tuple[int, int, int] | None:
        assert self.file is not None
        try:
            st = self.file.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _reload_if_changed(self) -> None:
        """Re-read the key file when its inode, size or mtime changed (one ``stat`` call).

        A file that breaks while the gateway runs fails closed: its keys stop working (the
        environment's stay) until it is fixed, and the problem is logged once.
        """
        if self.file is None:
            return
        stamp = self._stamp()
        if stamp == self._file_stamp:
            return
        with self._lock:
            try:
                self._keys = _index([self._env_records, read_key_file(self.file)])
            except KeyStoreError as exc:
                log.error("API keys from the key file refused until it is fixed: %s", exc)
                self._keys = _index([self._env_records])
            self._file_stamp = stamp


# --- writing the key file (the ``keys`` command) ------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside the key file, so two ``keys`` commands never interleave."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_records(path: Path, records: list[KeyRecord]) -> None:
    """Replace the file atomically (readers never see half a file), owner-only."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(record.to_json() + "\n" for record in records)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def add_key(path: Path, role: Role) -> tuple[str, KeyRecord]:
    """Make a key, append its record to ``path``; returns the key (to show once) and record."""
    with _locked(path):
        records = read_key_file(path)
        key, record = new_key(role)
        _write_records(path, [*records, record])
    return key, record


def revoke_key(path: Path, key_id: str) -> KeyRecord:
    """Remove the key ``key_id`` from ``path``; ``KeyError`` when it is not there."""
    with _locked(path):
        records = read_key_file(path)
        kept = [r for r in records if r.id != key_id]
        if len(kept) == len(records):
            raise KeyError(key_id)
        _write_records(path, kept)
    [gone] = [r for r in records if r.id == key_id]
    return gone
