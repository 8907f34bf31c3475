"""``python-coder keys create / list / revoke`` as an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from service.auth.keys import KeyStore, key_id_of
from tests.deploy.gateway import REPO


def keys(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON_CODE_API_KEYS")}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "keys", *args],
        cwd=REPO,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_create_prints_the_key_once_list_never_shows_it_revoke_removes_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keys.jsonl"
    made = keys("create", "--role", "data_scientist", "--file", str(path))
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    key_id = key_id_of(key)
    assert key_id is not None and "\n" not in key
    assert f"key {key_id} (data_scientist) added to {path}" in made.stderr
    assert key not in path.read_text()
    assert KeyStore(path).authenticate(key) is not None

    # The file named by the environment is the default.
    second = keys("create", "--role", "admin", env={"PYTHON_CODE_API_KEYS_FILE": str(path)})
    assert second.returncode == 0, second.stderr

    listed = keys("list", "--file", str(path))
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["id", "role", "created", "source"]
    assert [line.split()[:2] for line in lines[1:]] == [
        [key_id, "data_scientist"],
        [key_id_of(second.stdout.strip()), "admin"],
    ]
    assert key not in listed.stdout and second.stdout.strip() not in listed.stdout

    revoked = keys("revoke", key_id, "--file", str(path))
    assert revoked.returncode == 0, revoked.stderr
    assert f"revoked key {key_id} (data_scientist)" in revoked.stderr
    assert KeyStore(path).authenticate(key) is None
    assert key_id not in keys("list", "--file", str(path)).stdout

    again = keys("revoke", key_id, "--file", str(path))
    assert again.returncode == 1 and f"no key '{key_id}' in {path}" in again.stderr


def test_create_for_the_environment_prints_a_hashed_entry() -> None:
    made = keys("create", "--role", "ml_engineer", "--env")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    entry = made.stderr.splitlines()[-1].strip()
    assert entry.startswith(f"ml_engineer:{key_id_of(key)}:sha256:") and key not in entry
    store = KeyStore(None, entry)
    assert store.authenticate(key) is not None
    listed = keys("list", env={"PYTHON_CODE_API_KEYS": entry})
    assert listed.returncode == 0 and "PYTHON_CODE_API_KEYS" in listed.stdout
    assert key_id_of(key) in listed.stdout


def test_bad_uses_are_explained() -> None:
    no_file = keys("create", "--role", "admin")
    assert no_file.returncode == 2 and "no key file" in no_file.stderr
    bad_role = keys("create", "--role", "root", "--file", "x")
    assert bad_role.returncode == 2 and "invalid choice: 'root'" in bad_role.stderr
    empty = keys("list")
    assert empty.returncode == 0 and "no API keys configured" in empty.stderr
    broken = keys("list", env={"PYTHON_CODE_API_KEYS": "admin:nope"})
    assert broken.returncode == 1 and "PYTHON_CODE_API_KEYS entry 1" in broken.stderr
