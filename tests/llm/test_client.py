"""The one LLM client against a real HTTP server: answers, usage, and every way it fails."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest

from service.errors import LLMError, LLMNotConfigured, LLMTimeout
from service.llm.client import UsageMeter, build_llm, llm_configured, resolve_endpoint
from service.settings import Settings
from tests.llm.openai_server import Garbage, ScriptedOpenAI, Slow, Status


async def test_answer_and_usage(
    llm_server: ScriptedOpenAI, make_settings: Callable[..., Settings]
) -> None:
    llm_server.push("hello there")
    llm = build_llm(make_settings(llm_temperature=0.3))
    meter = UsageMeter()
    assert await llm.complete("sys", "user says hi", meter) == "hello there"
    await llm.close()
    request = llm_server.requests[0]
    assert request["model"] == "scripted-model"
    assert request["temperature"] == 0.3
    assert [m["role"] for m in request["messages"]] == ["system", "user"]
    assert meter.calls == 1 and meter.completion_tokens == 2 and meter.prompt_tokens == 4
    assert meter.to_usage().total_tokens == 6


def test_not_configured_names_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    settings = Settings(_env_file=None)
    assert not llm_configured(settings)
    with pytest.raises(LLMNotConfigured) as info:
        build_llm(settings)
    assert "PYTHON_CODE_LLM_BASE_URL" in info.value.message
    assert "PYTHON_CODE_LLM_MODEL" in info.value.message


def test_openai_env_variables_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    endpoint = resolve_endpoint(Settings(_env_file=None))
    assert endpoint is not None
    assert endpoint.base_url == "http://127.0.0.1:9/v1"
    assert endpoint.api_key == "not-needed"  # local servers need no key
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    own = resolve_endpoint(Settings(_env_file=None, llm_base_url="http://own/v1", llm_api_key="k"))
    assert own is not None and (own.base_url, own.api_key) == ("http://own/v1", "k")


async def test_slow_endpoint_times_out_quickly(
    llm_server: ScriptedOpenAI, make_settings: Callable[..., Settings]
) -> None:
    llm_server.push(Slow(3.0))
    llm = build_llm(make_settings(llm_timeout=0.5))
    started = time.perf_counter()
    with pytest.raises(LLMTimeout):
        await llm.complete("s", "u", UsageMeter())
    assert time.perf_counter() - started < 2.0
    await llm.close()


@pytest.mark.parametrize(
    "answer",
    [
        Status(500),
        Garbage(),
        Garbage(b"not json at all", "text/plain"),
        Garbage(b'{"choices": []}'),
    ],
    ids=["http-500", "html-as-json", "plain-text", "no-choices"],
)
async def test_failures_become_llm_error(
    llm_server: ScriptedOpenAI, make_settings: Callable[..., Settings], answer: object
) -> None:
    llm_server.push(answer)  # type: ignore[arg-type]
    llm = build_llm(make_settings())
    with pytest.raises(LLMError) as info:
        await llm.complete("s", "u", UsageMeter())
    assert not isinstance(info.value, LLMTimeout)
    await llm.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_connection_refused(make_settings: Callable[..., Settings]) -> None:
    llm = build_llm(make_settings(llm_base_url=f"http://127.0.0.1:{_closed_port()}/v1"))
    started = time.perf_counter()
    with pytest.raises(LLMError, match="cannot reach"):
        await llm.complete("s", "u", UsageMeter())
    assert time.perf_counter() - started < 3.0
    await llm.close()


@pytest.mark.parametrize("failure", ["refused", "status", "garbage"])
async def test_errors_do_not_reveal_the_endpoint(
    failure: str, llm_server: ScriptedOpenAI, make_settings: Callable[..., Settings]
) -> None:
    """The message and detail reach API callers: no internal host, port or path in them."""
    if failure == "refused":
        base_url = f"http://127.0.0.1:{_closed_port()}/internal-llm/v1"
    else:
        base_url = llm_server.base_url
        llm_server.push(Status(500) if failure == "status" else Garbage())
    llm = build_llm(make_settings(llm_base_url=base_url, llm_max_retries=0))
    with pytest.raises(LLMError) as info:
        await llm.complete("s", "u", UsageMeter())
    await llm.close()
    shown = f"{info.value.message} {info.value.detail!r}"
    host = base_url.split("//", 1)[1].split("/", 1)[0]
    assert host not in shown and "127.0.0.1" not in shown and "internal-llm" not in shown
