"""The key store: format, hashing, the two sources, live revocation, and bad configuration."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from service.auth.keys import (
    KeyStore,
    KeyStoreError,
    add_key,
    hash_key,
    key_id_of,
    new_key,
    read_key_file,
    revoke_key,
)
from service.auth.permissions import Role


def test_a_new_key_has_an_id_prefix_and_only_its_hash_is_kept() -> None:
    key, record = new_key(Role.DATA_ENGINEER)
    prefix, key_id, secret = key.split("_", 2)
    assert prefix == "pyc" and key_id == record.id and len(secret) >= 43
    assert key_id_of(key) == record.id
    assert record.hash == hash_key(key) and key not in record.to_json()
    assert new_key(Role.DATA_ENGINEER)[0] != key


def test_file_keys_authenticate_to_their_role(tmp_path: Path) -> None:
    path = tmp_path / "keys.jsonl"
    ds_key, ds = add_key(path, Role.DATA_SCIENTIST)
    admin_key, _ = add_key(path, Role.ADMIN)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_text()
    assert ds_key not in raw and admin_key not in raw
    assert [json.loads(line)["role"] for line in raw.splitlines()] == ["data_scientist", "admin"]

    store = KeyStore(path)
    principal = store.authenticate(ds_key)
    assert principal is not None
    assert (principal.identity, principal.role, principal.key_id) == (
        f"key:{ds.id}",
        Role.DATA_SCIENTIST,
        ds.id,
    )
    assert store.authenticate(admin_key).role is Role.ADMIN  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "nonsense",
        "pyc_0123456789ab",
        "pyc_0123456789ab_" + "x" * 40,  # well formed, unknown id
        "Bearer pyc_0123456789ab_" + "x" * 40,
    ],
)
def test_unknown_and_malformed_keys_are_refused(tmp_path: Path, presented: str) -> None:
    path = tmp_path / "keys.jsonl"
    add_key(path, Role.ADMIN)
    assert KeyStore(path).authenticate(presented) is None


def test_a_known_id_with_a_wrong_secret_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.jsonl"
    key, _ = add_key(path, Role.ADMIN)
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert KeyStore(path).authenticate(forged) is None


def test_revoking_takes_effect_in_a_running_store(tmp_path: Path) -> None:
    path = tmp_path / "keys.jsonl"
    key, record = add_key(path, Role.ML_ENGINEER)
    other, _ = add_key(path, Role.DATA_SCIENTIST)
    store = KeyStore(path)
    assert store.authenticate(key) is not None
    assert revoke_key(path, record.id) == record
    assert store.authenticate(key) is None
    assert store.authenticate(other) is not None
    with pytest.raises(KeyError):
        revoke_key(path, record.id)
    # A key created after the store was built works at once too.
    late, _ = add_key(path, Role.ADMIN)
    assert store.authenticate(late) is not None


def test_a_configured_but_empty_key_file_still_requires_keys(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "missing.jsonl")
    assert store.configured and store.records() == []
    assert not KeyStore().configured


def test_environment_keys_plain_and_prehashed(tmp_path: Path) -> None:
    plain, _ = new_key(Role.DATA_ENGINEER)
    hashed_key, hashed = new_key(Role.ML_ENGINEER)
    env = f" data_engineer:{plain} , ml_engineer:{hashed.id}:{hashed.hash},"
    store = KeyStore(None, env)
    assert store.configured and len(store.records()) == 2
    assert store.authenticate(plain).role is Role.DATA_ENGINEER  # type: ignore[union-attr]
    assert store.authenticate(hashed_key).role is Role.ML_ENGINEER  # type: ignore[union-attr]
    assert plain not in repr(store.records())


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ("pyc_0123456789ab_" + "x" * 40, "expected <role>:<key>"),
        ("boss:pyc_0123456789ab_" + "x" * 40, "unknown role 'boss'"),
        ("admin:changeme", "expected <role>:pyc_<id>_<secret>"),
        ("admin:pyc_0123456789ab_short", "at least 32 characters"),
        ("admin:0123456789ab:sha256:beef", "expected <role>:pyc_<id>_<secret>"),
        (
            "admin:pyc_0123456789ab_" + "x" * 40 + ",admin:pyc_0123456789ab_" + "y" * 40,
            "key id 0123456789ab is configured twice",
        ),
    ],
)
def test_bad_environment_entries_are_named(env: str, message: str) -> None:
    with pytest.raises(KeyStoreError, match=r"PYTHON_CODE_API_KEYS|configured twice") as info:
        KeyStore(None, env)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not JSON"),
        ('["a"]', "line 2: expected a JSON object"),
        ('{"id": "0123456789ab", "role": "admin"}', "missing or non-string field(s) hash"),
        ('{"id": "XYZ", "role": "admin", "hash": "sha256:' + "0" * 64 + '"}', "id 'XYZ'"),
        ('{"id": "0123456789ab", "role": "admin", "hash": "md5:00"}', "hash must read"),
        ('{"id": "0123456789ab", "role": "root", "hash": "sha256:' + "0" * 64 + '"}', "'root'"),
    ],
)
def test_bad_key_file_lines_are_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "keys.jsonl"
    add_key(path, Role.ADMIN)
    with path.open("a") as fh:
        fh.write(line + "\n")
    with pytest.raises(KeyStoreError) as info:
        read_key_file(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_a_key_file_broken_at_run_time_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "keys.jsonl"
    key, _ = add_key(path, Role.ADMIN)
    env_key, _ = new_key(Role.DATA_SCIENTIST)
    store = KeyStore(path, f"data_scientist:{env_key}")
    assert store.authenticate(key) is not None
    with path.open("a") as fh:
        fh.write("{broken\n")
    assert store.authenticate(key) is None
    assert store.authenticate(env_key) is not None  # the environment's keys stay
    path.write_text(path.read_text().replace("{broken\n", ""))
    assert store.authenticate(key) is not None
