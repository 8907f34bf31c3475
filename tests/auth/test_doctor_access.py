"""``python-coder doctor`` says what ``serve`` would do with the access settings."""

from __future__ import annotations

from pathlib import Path

from service import doctor
from service.auth.keys import add_key
from service.auth.permissions import Role
from service.settings import Settings


def test_access_check(tmp_path: Path) -> None:
    local = doctor.check_access(Settings(host="127.0.0.1"))
    assert local.status == doctor.OK and "local operator" in local.detail
    refused = doctor.check_access(Settings(host="0.0.0.0"))
    assert refused.status == doctor.FAIL and "keys create" in refused.fix
    opted_out = doctor.check_access(Settings(host="0.0.0.0", allow_unauthenticated=True))
    assert opted_out.status == doctor.WARN
    key_file = tmp_path / "keys.jsonl"
    add_key(key_file, Role.ADMIN)
    keyed = doctor.check_access(Settings(host="0.0.0.0", api_keys_file=key_file))
    assert keyed.status == doctor.OK and keyed.detail.startswith("1 API key(s)")
    broken = doctor.check_access(Settings(api_keys="admin:nope"))  # type: ignore[arg-type]
    assert broken.status == doctor.FAIL and "PYTHON_CODE_API_KEYS entry 1" in broken.detail
