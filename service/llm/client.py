"""The one place that builds the OpenAI-compatible client from settings.

Works with OpenAI, vLLM, Ollama or a llama.cpp server: anything speaking
``POST /v1/chat/completions``. ``PYTHON_CODE_LLM_*`` wins; the openai package's own
``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` are used when those are unset. openai errors are
translated here, at the adapter, into ``LLMError`` / ``LLMTimeout``. Their messages go to
API callers, so they never carry the endpoint's address (an internal host, maybe a key in
its query): that is logged here instead.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion

from service.errors import LLMError, LLMNotConfigured, LLMTimeout
from service.models import TokenUsage
from service.observability import observe_llm
from service.settings import Settings

log = logging.getLogger(__name__)

# Local servers (vLLM, Ollama, llama.cpp) accept any key; the openai client insists on one.
PLACEHOLDER_KEY = "not-needed"

NOT_CONFIGURED_MESSAGE = (
    "no LLM configured: set PYTHON_CODE_LLM_BASE_URL (an OpenAI-compatible endpoint such as "
    "http://localhost:11434/v1) and/or PYTHON_CODE_LLM_API_KEY, and PYTHON_CODE_LLM_MODEL "
    "(OPENAI_BASE_URL / OPENAI_API_KEY work too)"
)


@dataclass(frozen=True)
class Endpoint:
    base_url: str | None
    api_key: str
    model: str


def resolve_endpoint(settings: Settings) -> Endpoint | None:
    """Where the model lives, or ``None`` when nothing is configured."""
    base_url = settings.llm_base_url or os.environ.get("OPENAI_BASE_URL") or None
    api_key = settings.llm_api_key or os.environ.get("OPENAI_API_KEY") or None
    if base_url is None and api_key is None:
        return None
    return Endpoint(base_url=base_url, api_key=api_key or PLACEHOLDER_KEY, model=settings.llm_model)


def llm_configured(settings: Settings) -> bool:
    return resolve_endpoint(settings) is not None


@dataclass
class UsageMeter:
    """Tokens and model wall time of one job (the client itself is shared by all jobs)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    model_s: float = 0.0
    per_call_s: list[float] = field(default_factory=list)

    def to_usage(self) -> TokenUsage:
        return TokenUsage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            total_tokens=self.prompt_tokens + self.completion_tokens,
            calls=self.calls,
        )


class LLMClient:
    """A chat model behind an OpenAI-compatible endpoint; returns the answer text."""

    def __init__(self, endpoint: Endpoint, settings: Settings) -> None:
        self.endpoint = endpoint
        self.model = endpoint.model
        self.temperature = settings.llm_temperature
        self.timeout = settings.llm_timeout
        self._client = AsyncOpenAI(
            base_url=endpoint.base_url,
            api_key=endpoint.api_key,
            timeout=settings.llm_timeout,
            max_retries=settings.llm_max_retries,
        )

    async def complete(self, system: str, user: str, meter: UsageMeter) -> str:
        """One chat completion; raises ``LLMTimeout`` / ``LLMError``, never an openai error."""
        started = time.perf_counter()
        try:
            response = await self._client.chat.completions.create(
                model=self.model,
                messages=[
                    {"role": "system", "content": system},
                    {"role": "user", "content": user},
                ],
                temperature=self.temperature,
            )
        except openai.APITimeoutError as exc:
            self._log_failure(exc)
            raise LLMTimeout(
                f"the model endpoint did not answer within {self.timeout:g}s",
                detail={"model": self.model},
            ) from exc
        except openai.APIConnectionError as exc:
            self._log_failure(exc)
            raise LLMError(
                f"cannot reach the model endpoint: {self._scrub(str(exc))}",
                detail={"model": self.model},
            ) from exc
        except openai.APIStatusError as exc:
            self._log_failure(exc)
            raise LLMError(
                f"the model endpoint answered HTTP {exc.status_code}",
                detail={"model": self.model},
            ) from exc
        except (openai.OpenAIError, ValueError) as exc:  # unparseable body, bad schema
            self._log_failure(exc)
            raise LLMError(f"the model endpoint answered garbage: {self._scrub(str(exc))}") from exc
        finally:
            elapsed = time.perf_counter() - started
            meter.model_s += elapsed
            meter.per_call_s.append(elapsed)
        meter.calls += 1
        if not isinstance(response, ChatCompletion):
            raise LLMError(f"the model endpoint answered garbage: {str(response)[:200]!r}")
        if response.usage is not None:
            meter.prompt_tokens += response.usage.prompt_tokens or 0
            meter.completion_tokens += response.usage.completion_tokens or 0
        usage = response.usage
        observe_llm(
            1,
            (usage.prompt_tokens or 0) if usage else 0,
            (usage.completion_tokens or 0) if usage else 0,
        )
        choices = getattr(response, "choices", None)
        if not choices or choices[0].message is None or not choices[0].message.content:
            raise LLMError("the model endpoint answered without any message content")
        return str(choices[0].message.content)

    def _log_failure(self, exc: Exception) -> None:
        log.warning("model endpoint %s failed: %r", self.endpoint.base_url or "(default)", exc)

    def _scrub(self, text: str) -> str:
        """``text`` without the endpoint's URL or host (an openai message may quote them)."""
        base = self.endpoint.base_url
        if not base:
            return text
        host = urlsplit(base).netloc
        for secret in (base, base.rstrip("/"), host):
            if secret:
                text = text.replace(secret, "<model endpoint>")
        return text

    async def close(self) -> None:
        await self._client.close()


def build_llm(settings: Settings) -> LLMClient:
    """The client for these settings; ``LLMNotConfigured`` says which variables to set."""
    endpoint = resolve_endpoint(settings)
    if endpoint is None:
        raise LLMNotConfigured(NOT_CONFIGURED_MESSAGE)
    return LLMClient(endpoint, settings)
