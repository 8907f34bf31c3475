"""The gateway's edges: hostile bodies, served artifacts, what /readyz tells strangers, the
weak-sandbox refusal, and blocking work kept off the event loop.

The subprocess engine serves these (the docker engine shares the routes).
"""

from __future__ import annotations

import asyncio
import io
import threading
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from files import intake as intake_module
from files.intake import FileIntake
from security.policy import StaticPolicy
from service.api.app import create_app
from service.executors.local import executor as subprocess_engine
from service.executors.local.probe import detect_isolation
from service.pipeline.execute import INLINE_POLICY_CHARS
from tests.api.conftest import make_settings


@pytest.fixture
def sub_client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tmp_path, "subprocess"))) as client:
        yield client


def test_deeply_nested_json_is_a_400(sub_client: TestClient) -> None:
    depth = 100_000
    body = '{"code": "print(1)", "files": ' + "[" * depth + "]" * depth + "}"
    response = sub_client.post(
        "/v1/execute", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text[:300]
    assert "JSON" in response.json()["message"]
    assert sub_client.get("/healthz").status_code == 200


def test_a_code_file_part_is_capped_while_it_is_read(sub_client: TestClient) -> None:
    policy: StaticPolicy = sub_client.app.state.policy  # type: ignore[attr-defined]
    big = b"# x\n" * (policy.max_code_bytes // 4 + 1)
    response = sub_client.post("/v1/execute", files=[("code", ("job.py", big))])
    assert response.status_code == 413, response.text[:300]
    assert "code size limit" in response.json()["message"]
    fits = sub_client.post("/v1/execute", files=[("code", ("job.py", b"print(6 * 7)\n"))])
    assert fits.status_code == 200 and fits.json()["output"] == "42\n"


def test_artifacts_are_inert_downloads(sub_client: TestClient) -> None:
    code = (
        "open('page.html', 'w').write('<script>alert(1)</script>')\n"
        "open('pic.svg', 'w').write('<svg xmlns=\"http://www.w3.org/2000/svg\"/>')\n"
        "open('data.csv', 'w').write('a,b\\n1,2\\n')\n"
    )
    body = sub_client.post("/v1/execute", json={"code": code}).json()
    assert body["success"], body
    assert {a["name"] for a in body["artifacts"]} == {"page.html", "pic.svg", "data.csv"}
    for artifact in body["artifacts"]:
        download = sub_client.get(artifact["url"])
        assert download.status_code == 200
        headers = download.headers
        assert headers["x-content-type-options"] == "nosniff"
        assert "default-src 'none'" in headers["content-security-policy"]
        assert "sandbox" in headers["content-security-policy"]
        assert headers["content-disposition"].startswith("attachment")


def test_readyz_names_no_internal_paths(tmp_path: Path) -> None:
    runner = tmp_path / "secret-place" / "venv"
    settings = make_settings(tmp_path, "subprocess", local_runner_dir=runner)
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    text = response.text
    assert "secret-place" not in text and str(tmp_path) not in text
    assert "/usr/bin" not in text
    assert "build-runner --local" in response.json()["detail"]  # still says what to do


def _without_bwrap(sandbox: str) -> Any:
    return detect_isolation("none")


def test_a_weak_sandbox_is_refused_unless_the_operator_opts_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host without bubblewrap (forced here by leaving it out of the real detection)."""
    monkeypatch.setattr(subprocess_engine, "detect_isolation", _without_bwrap)
    settings = make_settings(tmp_path, "subprocess")
    with TestClient(create_app(settings)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "PYTHON_CODE_ALLOW_WEAK_SANDBOX" in ready.json()["detail"]
        run = client.post("/v1/execute", json={"code": "print(1)", "engine": "subprocess"})
        assert run.status_code == 503
        assert "PYTHON_CODE_ALLOW_WEAK_SANDBOX" in run.json()["message"]
    opted_in = make_settings(tmp_path / "in", "subprocess", allow_weak_sandbox=True)
    with TestClient(create_app(opted_in)) as client:
        run = client.post("/v1/execute", json={"code": "print(1)", "engine": "subprocess"})
        # Past the refusal; the runner may still be unusable without bwrap (e.g. a base
        # Python under /root that the job uid cannot read), which is its own clear 503.
        assert "PYTHON_CODE_ALLOW_WEAK_SANDBOX" not in run.text
        if run.status_code == 200:
            assert "netns" not in run.json()["isolation"]
        else:
            assert run.status_code == 503 and "unprivileged sandbox uid" in run.text


class _RecordingPolicy(StaticPolicy):
    """The real policy, noting which thread it ran on."""

    threads: list[int]

    def check(self, code: str) -> Any:
        self.threads.append(threading.get_ident())
        return super().check(code)


def test_policy_check_of_long_source_runs_off_the_event_loop(sub_client: TestClient) -> None:
    """Short source is checked on the loop (the thread hop cost more than the check)."""
    policy = _RecordingPolicy()
    policy.threads = []
    sub_client.app.state.policy = policy  # type: ignore[attr-defined]
    loop_thread: list[int] = []

    @sub_client.app.get("/_loop_thread")  # type: ignore[attr-defined, misc]
    async def loop_ident() -> int:
        loop_thread.append(threading.get_ident())
        return 0

    sub_client.get("/_loop_thread")
    assert sub_client.post("/v1/execute", json={"code": "print(1)"}).status_code == 200
    assert policy.threads == loop_thread
    long = "x = 1\n" * (INLINE_POLICY_CHARS // 6 + 1) + "print(x)\n"
    assert sub_client.post("/v1/execute", json={"code": long}).status_code == 200
    assert len(policy.threads) == 2 and policy.threads[1] != loop_thread[0]


def test_zip_scan_runs_off_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real_sniff = intake_module.sniff

    def recording_sniff(*args: Any, **kwargs: Any) -> Any:
        seen.append(threading.get_ident())
        return real_sniff(*args, **kwargs)

    monkeypatch.setattr(intake_module, "sniff", recording_sniff)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("a.csv", "x\n1\n")

    async def chunks() -> AsyncIterator[bytes]:
        yield buffer.getvalue()

    async def main() -> int:
        (tmp_path / "in").mkdir()
        intake = FileIntake(tmp_path / "in")
        stored = await intake.add_async_stream("data.zip", chunks())
        assert stored.name == "data.zip"
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert seen and loop_thread not in seen
