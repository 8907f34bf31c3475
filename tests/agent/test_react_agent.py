"""``examples/react_agent.py`` against the scripted OpenAI-protocol server and a live gateway."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from openai import OpenAI

from service.client import Client
from service.tools.registry import TOOLS as DATA_TOOLS
from tests.agent.conftest import SALES_CSV, Gateway
from tests.llm.openai_server import ScriptedOpenAI, ToolCalls

REPO = Path(__file__).resolve().parents[2]

BEST_MONTH = """
import pandas as pd
df = pd.read_csv("sales.csv")
best = df.loc[df["revenue"].idxmax()]
print(int(best["month"]), int(best["revenue"]))
"""


@pytest.fixture(scope="module")
def react_agent() -> ModuleType:
    spec = importlib.util.spec_from_file_location("react_agent", REPO / "examples/react_agent.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["react_agent"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def llm_server() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI() as server:
        yield server


def test_the_loop_calls_execute_code_and_answers_from_its_output(
    react_agent: ModuleType, llm_server: ScriptedOpenAI, local_gateway: Gateway, tmp_path: Path
) -> None:
    sales = tmp_path / "sales.csv"
    sales.write_text(SALES_CSV)
    llm_server.push(
        # A first attempt with a blocked import: the refusal comes back as an observation.
        ToolCalls(("execute_code", {"code": "import subprocess"})),
        ToolCalls(("execute_code", {"code": BEST_MONTH, "files": [{"name": "sales.csv"}]})),
        "Month 4 had the highest revenue (15).",
    )
    llm = OpenAI(base_url=llm_server.base_url, api_key="test-key", max_retries=0)
    with Client(local_gateway.url) as gateway:
        run = react_agent.run_agent(
            "Which month had the highest revenue?",
            gateway=gateway,
            llm=llm,
            model="scripted-model",
            files=[sales],
        )
    llm.close()

    assert run.finished and run.answer == "Month 4 had the highest revenue (15)."
    assert [step.tool for step in run.steps] == ["execute_code", "execute_code"]
    refused, ran = run.steps
    assert refused.is_error and "static policy rejected" in refused.observation
    assert not ran.is_error and "4 15" in ran.observation

    # The model was offered the gateway's tools and saw each observation.
    first, second, third = llm_server.requests
    offered = {t["function"]["name"] for t in first["tools"]}
    assert {"execute_code", "get_environment", "create_session"} <= offered
    assert {spec.name for spec in DATA_TOOLS} <= offered
    assert "sales.csv" in first["messages"][0]["content"]
    assert second["messages"][-1]["role"] == "tool"
    assert "static policy rejected" in second["messages"][-1]["content"]
    assert third["messages"][-1]["role"] == "tool"
    assert "4 15" in third["messages"][-1]["content"]
    assert third["messages"][-2]["tool_calls"][0]["function"]["name"] == "execute_code"


def test_unknown_tools_and_step_limits_are_reported_to_the_model(
    react_agent: ModuleType, llm_server: ScriptedOpenAI, local_gateway: Gateway
) -> None:
    llm_server.push(ToolCalls(("drop_tables", {})), ToolCalls(("get_environment", {})))
    llm = OpenAI(base_url=llm_server.base_url, api_key="test-key", max_retries=0)
    with Client(local_gateway.url) as gateway:
        run = react_agent.run_agent(
            "hi", gateway=gateway, llm=llm, model="scripted-model", max_steps=2
        )
    llm.close()
    assert not run.finished and run.answer is None
    unknown, env = run.steps
    assert unknown.is_error and "no tool named 'drop_tables'" in unknown.observation
    assert not env.is_error and "Installed packages" in env.observation
