"""A real HTTP server speaking the OpenAI chat-completions protocol, with scripted answers.

Tests queue answers (``server.push("...")``) and point the real ``openai`` client at
``server.base_url``. The server records every request it got. Besides plain answers it can
be slow (``Slow``), fail (``Status(500)``), answer garbage (``Garbage``) or call tools
(``ToolCalls``). An empty queue
answers 500 with "script exhausted", so a test that asks more than it scripted fails loudly.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Slow:
    seconds: float
    content: str = "too late"


@dataclass(frozen=True)
class Status:
    code: int
    body: str = '{"error": {"message": "scripted failure", "type": "server_error"}}'


@dataclass(frozen=True)
class Garbage:
    body: bytes = b"<html>this is not JSON</html>"
    content_type: str = "application/json"


@dataclass(frozen=True)
class ToolCalls:
    """An assistant turn that calls tools: ``ToolCalls(("execute_code", {"code": ...}), ...)``."""

    calls: tuple[tuple[str, dict[str, Any]], ...]

    def __init__(self, *calls: tuple[str, dict[str, Any]]) -> None:
        object.__setattr__(self, "calls", calls)


Answer = str | Slow | Status | Garbage | ToolCalls


class ScriptedOpenAI:
    """Run with ``with ScriptedOpenAI() as server:``; ``server.base_url`` ends in ``/v1``."""

    def __init__(self) -> None:
        self.answers: deque[Answer] = deque()
        self.requests: list[dict[str, Any]] = []
        self.http_s: list[float] = []  # server-side handling time per request
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def push(self, *answers: Answer) -> None:
        with self._lock:
            self.answers.extend(answers)

    def push_json(self, *values: Any) -> None:
        self.push(*(json.dumps(v) for v in values))

    @property
    def pending(self) -> int:
        return len(self.answers)

    def prompts(self) -> list[str]:
        """The user message of every request, in order."""
        return [r["messages"][-1]["content"] for r in self.requests]

    def __enter__(self) -> ScriptedOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _next(self, request: dict[str, Any]) -> Answer:
        with self._lock:
            self.requests.append(request)
            return (
                self.answers.popleft()
                if self.answers
                else Status(500, '{"error": "script exhausted"}')
            )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else 40 ms delayed-ACK stalls per answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            def do_POST(self) -> None:
                started = time.perf_counter()
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"{}")
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, b'{"error": {"message": "not found"}}')
                    return
                answer = outer._next(payload)
                if isinstance(answer, Slow):
                    time.sleep(answer.seconds)
                    answer = answer.content
                if isinstance(answer, Status):
                    self._send(answer.code, answer.body.encode())
                elif isinstance(answer, Garbage):
                    self._send(200, answer.body, answer.content_type)
                else:
                    self._send(200, json.dumps(completion(payload, answer)).encode())
                outer.http_s.append(time.perf_counter() - started)

        return Handler


def completion(request: dict[str, Any], content: str | ToolCalls) -> dict[str, Any]:
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in request.get("messages", []))
    message: dict[str, Any] = {"role": "assistant", "content": content}
    finish_reason = "stop"
    if isinstance(content, ToolCalls):
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{time.monotonic_ns()}_{i}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(arguments)},
                }
                for i, (name, arguments) in enumerate(content.calls)
            ],
        }
        finish_reason = "tool_calls"
        content = json.dumps(message["tool_calls"])
    completion_tokens = len(content.split())
    return {
        "id": f"chatcmpl-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "scripted"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
