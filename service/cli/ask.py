"""``python-coder ask "query" --file data.csv``: print the code and the output, save artifacts.

In-process by default (needs an LLM configured in the environment); ``--url`` asks a running
gateway's ``/v1/generate`` instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import httpx

from files.errors import IntakeError
from service.cli import api_key_for
from service.cli.run import make_out_dir
from service.client import GatewayError, safe_target
from service.errors import PythonCoderError
from service.settings import get_settings


def _print_response(body: dict[str, Any], saved: list[Path]) -> None:
    out = sys.stdout
    out.write("# --- code " + "-" * 60 + "\n")
    out.write(body.get("code") or "(none)\n")
    history = body.get("verification_history") or []
    if history:
        out.write("# --- verification " + "-" * 52 + "\n")
        for round_ in history:
            issues = round_.get("issues") or []
            out.write(f"round {round_['iteration']}: {round_['action']} ({len(issues)} issues)\n")
            for issue in issues:
                out.write(f"  - [{issue.get('severity')}] {issue.get('message', '')[:200]}\n")
    out.write("# --- output " + "-" * 58 + "\n")
    out.write(body.get("output") or "(no output)\n")
    if body.get("error"):
        out.write("# --- error " + "-" * 59 + "\n" + str(body["error"]) + "\n")
    for path in saved:
        out.write(f"saved {path}\n")
    out.write(f"success: {body.get('success')}\n")


class AskError(Exception):
    """Why ``ask`` could not finish (one line, plus the gateway's detail); exit code 2."""


def _remote(args: argparse.Namespace, out_dir: Path) -> tuple[dict[str, Any], list[Path]]:
    from service.client import Client

    with Client(
        args.url, api_key=api_key_for(args), timeout=httpx.Timeout(30, read=None)
    ) as gateway:
        result = gateway.generate(args.query, args.file, context=args.context)
        saved = gateway.download_artifacts(result, out_dir)
    return result.model_dump(mode="json"), saved


def _target(out_dir: Path, name: str) -> Path:
    try:
        return safe_target(out_dir, name)
    except ValueError as exc:
        raise AskError(str(exc)) from None


def _local(args: argparse.Namespace, out_dir: Path) -> tuple[dict[str, Any], list[Path]]:
    from service.tool import artifact_dir, generate_locally

    settings = get_settings()
    response = asyncio.run(generate_locally(args.query, args.context, args.file, settings))
    source = artifact_dir(settings, response)
    saved = []
    try:
        for artifact in response.artifacts:
            target = _target(out_dir, artifact.name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / artifact.name, target)
            saved.append(target)
    finally:
        # The CLI hands the files over right away: nothing to keep for a retention period.
        shutil.rmtree(source, ignore_errors=True)
    return response.model_dump(mode="json"), saved


def ask_command(args: argparse.Namespace) -> int:
    out_dir = Path(args.out)
    problem = make_out_dir(out_dir)
    if problem:
        sys.stderr.write(f"error: {problem}\n")
        return 2
    try:
        body, saved = (_remote if args.url else _local)(args, out_dir)
    except (PythonCoderError, IntakeError) as exc:
        sys.stderr.write(f"error: {getattr(exc, 'message', None) or exc}\n")
        detail = getattr(exc, "detail", None)
        if detail:
            sys.stderr.write(json.dumps(detail, indent=1, default=str)[:4000] + "\n")
        return 2
    except GatewayError as exc:
        sys.stderr.write(f"error: {exc}\n")
        if exc.detail and not exc.findings:
            sys.stderr.write(json.dumps(exc.detail, indent=1, default=str)[:4000] + "\n")
        return 2
    except AskError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except (FileNotFoundError, httpx.HTTPError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    _print_response(body, saved)
    return 0 if body.get("success") else 1
