"""A ReAct agent loop on python-coder's OpenAI tools: think, call a tool, observe, repeat.

The model (any OpenAI-compatible endpoint) gets the gateway's tools from ``GET /v1/tools``;
each tool call it makes goes to ``POST /v1/tools/call`` and the result's text comes back to
it as the observation, until it answers in plain text.

    python examples/react_agent.py "Which month had the highest revenue?" \\
        --file sales.csv --gateway http://127.0.0.1:8000 \\
        --llm-base-url http://localhost:11434/v1 --model qwen2.5-coder

Files given with ``--file`` are listed to the model, which passes them to ``execute_code``
inline (the loop fills their content in, so the model never has to copy bytes).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openai import OpenAI

from service.client import Client, GatewayError

SYSTEM_PROMPT = """You are a data analyst who answers questions by running Python.
Work in steps: think about what you need, call a tool, read its result, and repeat.
Use execute_code to compute; print() every number you will rely on. Never guess a value you
could compute. When you know the answer, reply with it in plain text, without calling a tool.
{files}"""


@dataclass
class Step:
    """One tool call and what came back (the Action and Observation of ReAct)."""

    tool: str
    arguments: dict[str, Any] | str
    observation: str
    is_error: bool
    images: list[str] = field(default_factory=list)


@dataclass
class AgentRun:
    answer: str | None
    steps: list[Step]
    finished: bool  # False when max_steps ran out before an answer


def _attach_files(arguments: Any, files: dict[str, Path]) -> Any:
    """Fill in the content of files the model named but did not send."""
    if not isinstance(arguments, dict) or not files:
        return arguments
    wanted = arguments.get("files") or []
    filled = []
    for item in wanted:
        name = item.get("name") if isinstance(item, dict) else item
        if (
            isinstance(name, str)
            and name in files
            and not (isinstance(item, dict) and "content" in item)
        ):
            raw = files[name].read_bytes()
            filled.append(
                {"name": name, "content": base64.b64encode(raw).decode(), "encoding": "base64"}
            )
        else:
            filled.append(item)
    return {**arguments, "files": filled}


def run_agent(
    question: str,
    *,
    gateway: Client,
    llm: OpenAI,
    model: str,
    files: list[Path] | None = None,
    max_steps: int = 8,
) -> AgentRun:
    local_files = {path.name: path for path in files or []}
    listing = (
        "Files available (pass them to execute_code by name in `files`, e.g. "
        '[{"name": "sales.csv"}]; they land in the working directory): ' + ", ".join(local_files)
        if local_files
        else ""
    )
    tools = gateway.tools()
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM_PROMPT.format(files=listing)},
        {"role": "user", "content": question},
    ]
    steps: list[Step] = []
    for _ in range(max_steps):
        reply = llm.chat.completions.create(model=model, messages=messages, tools=tools)  # type: ignore[arg-type]
        message = reply.choices[0].message
        if not message.tool_calls:
            return AgentRun(answer=message.content, steps=steps, finished=True)
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            if call.type != "function":  # every call needs an answer; only functions exist
                messages.append(
                    {"role": "tool", "tool_call_id": call.id, "content": "not a function tool"}
                )
                continue
            name = call.function.name
            try:
                arguments: Any = json.loads(call.function.arguments or "{}")
            except json.JSONDecodeError:
                arguments = call.function.arguments  # the gateway explains what is wrong
            try:
                result = gateway.call_tool(name, _attach_files(arguments, local_files))
                observation, is_error = result.text, result.is_error
                images = [image.name for image in result.images]
            except GatewayError as exc:  # an unknown tool or a refused call: tell the model
                observation, is_error, images = str(exc), True, []
            steps.append(Step(name, arguments, observation, is_error, images))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": observation})
    return AgentRun(answer=None, steps=steps, finished=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("question")
    parser.add_argument("--file", "-f", action="append", default=[], type=Path)
    parser.add_argument(
        "--gateway", default=os.environ.get("PYTHON_CODER_URL", "http://127.0.0.1:8000")
    )
    parser.add_argument("--api-key", default=os.environ.get("PYTHON_CODER_API_KEY"))
    parser.add_argument("--llm-base-url", default=os.environ.get("OPENAI_BASE_URL"))
    parser.add_argument("--llm-api-key", default=os.environ.get("OPENAI_API_KEY", "not-needed"))
    parser.add_argument("--model", default=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"))
    parser.add_argument("--max-steps", type=int, default=8)
    args = parser.parse_args(argv)
    for path in args.file:
        if not path.is_file():
            parser.error(f"no such file: {path}")

    llm = OpenAI(base_url=args.llm_base_url, api_key=args.llm_api_key)
    with Client(args.gateway, api_key=args.api_key) as gateway:
        run = run_agent(
            args.question,
            gateway=gateway,
            llm=llm,
            model=args.model,
            files=args.file,
            max_steps=args.max_steps,
        )
    for number, step in enumerate(run.steps, 1):
        status = "error" if step.is_error else "ok"
        print(f"--- step {number}: {step.tool} ({status})", file=sys.stderr)
        print(step.observation, file=sys.stderr)
    if not run.finished:
        print(f"no answer after {args.max_steps} steps", file=sys.stderr)
        return 1
    print(run.answer or "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
