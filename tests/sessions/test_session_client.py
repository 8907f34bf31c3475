"""The Python client's sessions (sync and async) against a live gateway."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.client import AsyncClient, Client, NotFoundError, RateLimitedError
from tests.agent.conftest import agent_settings, run_gateway
from tests.sessions.conftest import build_demo_wheel


def test_sync_and_async_sessions(tmp_path: Path) -> None:
    settings = agent_settings(tmp_path, "subprocess", sessions_per_caller=1)
    build_demo_wheel(settings.wheelhouse)
    with run_gateway(settings) as gateway, Client(gateway.url) as client:
        with client.session(timeout_s=10) as session:
            assert session.info.timeout_s == 10
            first = session.execute(
                "import csv\nrows = list(csv.reader(open('a.csv')))",
                files=[("a.csv", b"x\n1\n2\n")],
            )
            assert first.success, first.error
            assert session.execute("len(rows)").value == "3"
            assert session.install("pyc-demo-pkg").version == "1.0.0"
            assert session.execute("import pyc_demo_pkg\npyc_demo_pkg.VALUE").value == "42"
            session.upload([("job.py", b"import sys\nprint(sys.argv[1])")])
            assert session.run_script("job.py", ["hi"]).output == "hi\n"
            assert {f.name for f in session.files()} == {"a.csv", "job.py"}
            assert session.read("a.csv") == b"x\n1\n2\n"
            assert session.environment()["installed"] == {"pyc-demo-pkg": "1.0.0"}
            with pytest.raises(RateLimitedError):
                client.session()
        with pytest.raises(NotFoundError):
            session.execute("1")  # closed on leaving the block

        async def use_async() -> str | None:
            async with AsyncClient(gateway.url) as aclient, await aclient.session() as asession:
                await asession.execute("n = 20")
                return (await asession.execute("n + 1")).value

        import anyio

        assert anyio.run(use_async) == "21"
