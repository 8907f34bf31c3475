"""Fixtures for the generation tests: the scripted OpenAI server and settings pointing at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from service.settings import Settings
from tests.llm.openai_server import ScriptedOpenAI


@pytest.fixture
def llm_server() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI() as server:
        yield server


@pytest.fixture
def make_settings(
    llm_server: ScriptedOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Settings]:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "llm_base_url": llm_server.base_url,
            "llm_api_key": "test-key",
            "llm_model": "scripted-model",
            "llm_timeout": 5.0,
            "llm_max_retries": 0,
            "execution_dir": tmp_path / "exec",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return make
