"""A real gateway (uvicorn on a loopback port, in a thread) per engine, for the agent tools."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from service.api.app import create_app
from service.settings import Settings
from tests.deploy.gateway import free_port

ENGINES = [
    pytest.param("docker", marks=pytest.mark.docker, id="docker"),
    pytest.param("subprocess", id="subprocess"),
]

PLOT_CODE = """
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

df = pd.read_csv("sales.csv")
df.plot(x="month", y="revenue")
plt.savefig("revenue.png")
df.describe().to_csv("summary.csv")
print("total", df["revenue"].sum())
"""

SALES_CSV = "month,revenue\n1,10\n2,12\n3,9\n4,15\n"


@dataclass
class Gateway:
    url: str
    settings: Settings


def agent_settings(tmp: Path, engine: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "execution_dir": tmp / "exec",
        "engine": engine,
        # The data tools: the sample SQLite database (made in execution_dir) and one root.
        "database_url": None,
        "databases": {},
        "storage_roots": [tmp / "data"],
        "llm_base_url": None,
        "llm_api_key": None,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
def no_llm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@contextmanager
def run_gateway(settings: Settings) -> Iterator[Gateway]:
    """uvicorn serving ``create_app(settings)`` until the test ends; lifespan included."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start")
        time.sleep(0.05)
    try:
        yield Gateway(url=f"http://127.0.0.1:{port}", settings=settings)
    finally:
        server.should_exit = True
        thread.join(30)
    jobs = settings.execution_dir / "jobs"
    leftovers = list(jobs.iterdir()) if jobs.exists() else []
    assert leftovers == [], f"job dirs left behind: {leftovers}"


@pytest.fixture(params=ENGINES)
def gateway(request: pytest.FixtureRequest, tmp_path: Path, no_llm_env: None) -> Iterator[Gateway]:
    with run_gateway(agent_settings(tmp_path, str(request.param))) as running:
        yield running


@pytest.fixture
def local_gateway(tmp_path: Path, no_llm_env: None) -> Iterator[Gateway]:
    """The subprocess engine only: for tests about the surface rather than the engine."""
    with run_gateway(agent_settings(tmp_path, "subprocess")) as running:
        yield running
