"""Streamed runs over real HTTP (``Accept: text/event-stream``), on both engines.

A real ``python-coder serve`` per engine, with a warm pool of one, so one-shot runs take the
pooled path; session cells run in their own sandbox. Arrival times are taken as the events
come off the socket.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.client import server_sent_events
from service.settings import get_settings
from tests.deploy.gateway import GatewayProcess
from tests.reliability.test_disconnect import readyz_queue, sandboxes_of, wait_for

SLEEPY = "import time\nprint('first', flush=True)\ntime.sleep(2)\nprint('second')\n"
ENGINES = [
    pytest.param("docker", marks=pytest.mark.docker, id="docker"),
    pytest.param("subprocess", id="subprocess"),
]
STREAM = {"Accept": "text/event-stream"}


def gateway_env(engine: str, tmp: Path, **extra: str) -> dict[str, str]:
    settings = get_settings()
    return {
        "PYTHON_CODE_ENGINE": engine,
        "PYTHON_CODE_IMAGE": settings.image,
        "PYTHON_CODE_EXECUTION_DIR": str(tmp / "exec"),
        "PYTHON_CODE_LOCAL_RUNNER_DIR": str(settings.local_runner_dir.resolve()),
        "PYTHON_CODE_LOG_LEVEL": "INFO",
        **extra,
    }


@pytest.fixture(scope="module", params=ENGINES)
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp(f"stream-{request.param}")
    env = gateway_env(str(request.param), tmp, PYTHON_CODE_POOL_MIN="1", PYTHON_CODE_POOL_MAX="1")
    process = GatewayProcess(env, tmp / "gateway.log")
    process.start()
    yield process
    process.terminate()


def streamed(
    url: str, body: dict[str, Any], headers: dict[str, str] = STREAM
) -> tuple[list[tuple[float, str, Any]], httpx.Response]:
    """``(arrival, event, data)`` of each event of one streamed request."""
    events: list[tuple[float, str, Any]] = []
    with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as response:
        if not response.headers["content-type"].startswith("text/event-stream"):
            response.read()
            return events, response
        for event, data in server_sent_events(response.iter_lines()):
            events.append((time.monotonic(), event, json.loads(data)))
    return events, response


def text_of(events: list[tuple[float, str, Any]], stream: str) -> str:
    return "".join(data["text"] for _, event, data in events if event == stream)


def result_of(events: list[tuple[float, str, Any]]) -> tuple[float, dict[str, Any]]:
    ((at, data),) = [(at, data) for at, event, data in events if event == "result"]
    assert events[-1][1] == "result", "the result is the last event"
    return at, data


def test_first_line_arrives_well_before_the_result(gateway: GatewayProcess) -> None:
    events, response = streamed(gateway.url + "/v1/execute", {"code": SLEEPY})
    assert response.status_code == 200
    done, result = result_of(events)
    first = next(at for at, event, data in events if "first" in data.get("text", ""))
    assert done - first > 1.0, events
    assert result["success"] is True and result["output"] == "first\nsecond\n"
    assert text_of(events, "stdout") == result["output"]


def test_session_cells_stream_too(gateway: GatewayProcess) -> None:
    opened = httpx.post(gateway.url + "/v1/sessions", json={}, timeout=120)
    assert opened.status_code == 201, opened.text
    cell_url = f"{gateway.url}/v1/sessions/{opened.json()['id']}/execute"
    try:
        events, _ = streamed(cell_url, {"code": "x = 41\n" + SLEEPY})
        done, result = result_of(events)
        first = next(at for at, event, data in events if "first" in data.get("text", ""))
        assert done - first > 1.0, events
        assert result["output"] == "first\nsecond\n"

        events, _ = streamed(cell_url, {"code": "import sys\nprint(x, file=sys.stderr)\nx + 1"})
        _, result = result_of(events)
        assert text_of(events, "stderr") == "41\n" and result["value"] == "42"
    finally:
        httpx.delete(f"{gateway.url}/v1/sessions/{opened.json()['id']}", timeout=60)


def test_stderr_and_a_flood_over_the_cap(gateway: GatewayProcess) -> None:
    code = (
        "import sys\n"
        "print('warming up', file=sys.stderr, flush=True)\n"
        "for i in range(30_000):\n"
        "    print('é' * 50, i)\n"
    )
    events, _ = streamed(gateway.url + "/v1/execute", {"code": code})
    _, result = result_of(events)
    cap = get_settings().max_output_bytes
    assert result["output_truncated"] is True
    streamed_out = text_of(events, "stdout")
    assert streamed_out == result["output"]
    assert len(streamed_out.encode()) <= cap + 3  # a character cut at the cap becomes U+FFFD
    assert text_of(events, "stderr") == "warming up\n" == result["error"]


def test_result_event_is_the_plain_answer(gateway: GatewayProcess) -> None:
    body = {"code": "import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)"}
    events, _ = streamed(gateway.url + "/v1/execute", body)
    _, result = result_of(events)
    plain = httpx.post(gateway.url + "/v1/execute", json=body, timeout=60)
    assert plain.headers["content-type"] == "application/json"
    expected = plain.json()
    varying = ("id", "timings", "execution_time")
    assert {k: v for k, v in result.items() if k not in varying} == {
        k: v for k, v in expected.items() if k not in varying
    }
    assert set(result) == set(expected)


def test_errors_before_the_run_stay_json(gateway: GatewayProcess) -> None:
    events, response = streamed(gateway.url + "/v1/execute", {"code": "import os\nos.system('id')"})
    assert events == [] and response.status_code == 422
    assert response.json()["error"] == "PolicyViolation"
    events, response = streamed(gateway.url + "/v1/execute", {"code": "1", "timeout_s": -1})
    assert events == [] and response.status_code == 400
    events, response = streamed(gateway.url + "/v1/sessions/nope/execute", {"code": "1"})
    assert events == [] and response.status_code == 404


@pytest.fixture(params=ENGINES)
def cold_gateway(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GatewayProcess]:
    process = GatewayProcess(
        gateway_env(str(request.param), tmp_path, PYTHON_CODE_POOL_MAX="0"),
        tmp_path / "gateway.log",
    )
    process.start()
    yield process
    process.terminate()


def test_hanging_up_a_stream_cancels_the_run(cold_gateway: GatewayProcess) -> None:
    engine = cold_gateway.env["PYTHON_CODE_ENGINE"]
    code = "import time\nprint('started', flush=True)\ntime.sleep(60)\n"
    with httpx.stream(
        "POST",
        cold_gateway.url + "/v1/execute",
        json={"code": code, "timeout_s": 120},
        headers=STREAM,
        timeout=60,
    ) as response:
        # Held, not dropped: closing httpx's line iterator early would close the connection.
        events = server_sent_events(response.iter_lines())
        event, data = next(events)
        assert event == "stdout" and "started" in data
        assert sandboxes_of(cold_gateway, engine)
    # The client has gone: the sandbox goes within seconds, not after the 60 s sleep.
    wait_for(lambda: not sandboxes_of(cold_gateway, engine), "the sandbox is removed", 15)
    wait_for(lambda: readyz_queue(cold_gateway)["running"] == 0, "the slot is free", 15)
    assert "client disconnected: cancelling job" in cold_gateway.logs()
