"""The ``python-coder`` command: serve, build-runner, run, ask, mcp, doctor, keys.

The parser and the shared helpers live here; ``run``, ``ask`` and ``keys`` are modules of
this package, the others (``serve``, ``doctor``, ``build-runner``, ``mcp``) belong to the
parts they drive. Each is imported only when used, so ``--help`` and ``serve`` stay fast.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

from service.executors.registry import ENGINE_CHOICES


def _serve(args: argparse.Namespace) -> int:
    from service.server import serve

    return serve(host=args.host, port=args.port, reload=args.reload)


def _build_runner(args: argparse.Namespace) -> int:
    from service.runner_build import build_runner_command

    return build_runner_command(args)


def _run(args: argparse.Namespace) -> int:
    from service.cli.run import run_command

    return run_command(args)


def _ask(args: argparse.Namespace) -> int:
    from service.cli.ask import ask_command

    return ask_command(args)


def _doctor(args: argparse.Namespace) -> int:
    from service.doctor import doctor_command

    return doctor_command(args)


def _keys(args: argparse.Namespace) -> int:
    from service.cli.keys import keys_command

    return keys_command(args)


def _mcp(args: argparse.Namespace) -> int:
    from service.mcp.stdio import mcp_command

    return mcp_command()


def timeout_seconds(text: str) -> float:
    """``--timeout``: a finite number of seconds > 0 and at most the configured maximum."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text!r}")
    from service.settings import get_settings

    maximum = get_settings().max_timeout
    if value > maximum:
        raise argparse.ArgumentTypeError(
            f"{text}s exceeds the maximum of {maximum}s (PYTHON_CODE_MAX_TIMEOUT)"
        )
    return value


API_KEY_HELP = "key for a gateway with --url (default: $PYTHON_CODER_API_KEY)"


def api_key_for(args: argparse.Namespace) -> str | None:
    """The key for ``--url`` calls, from ``--api-key`` or ``$PYTHON_CODER_API_KEY``."""
    import os

    return getattr(args, "api_key", None) or os.environ.get("PYTHON_CODER_API_KEY") or None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python-coder",
        description="A sandboxed Python execution service: serve it, build its runner, run "
        "scripts and questions through it, manage its API keys.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the HTTP gateway")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--reload", action="store_true")
    p.set_defaults(func=_serve)

    p = sub.add_parser("build-runner", help="build the runner image (or the local runner venv)")
    p.add_argument("--image", default=None, help="image tag (default: settings image)")
    p.add_argument(
        "--offline",
        action="store_true",
        help="download a wheelhouse on the host, install from it inside the build",
    )
    p.add_argument(
        "--bootstrap-base",
        action="store_true",
        help="make the base image locally with debootstrap + docker import",
    )
    p.add_argument("--base-image", default=None, help="FROM image (default python:3.11-slim)")
    p.add_argument(
        "--local",
        action="store_true",
        help="build the local runner venv for the subprocess engine instead",
    )
    p.add_argument("--wheelhouse", default=None, help="wheelhouse directory")
    p.add_argument("--quiet", action="store_true")
    p.add_argument(
        "--force",
        action="store_true",
        help="rebuild even when the image's source-hash label is current",
    )
    p.set_defaults(func=_build_runner)

    p = sub.add_parser("run", help="run a script through the service's executors")
    p.add_argument("script")
    p.add_argument("--file", "-f", action="append", default=[], help="input file (repeatable)")
    p.add_argument("--engine", choices=ENGINE_CHOICES, default=None)
    p.add_argument(
        "--timeout", type=timeout_seconds, default=None, help="seconds (> 0, <= max_timeout)"
    )
    p.add_argument("--out", default=".", help="where to save artifacts")
    p.add_argument("--url", default=None, help="use a running gateway instead of local engines")
    p.add_argument("--api-key", default=None, help=API_KEY_HELP)
    p.set_defaults(func=_run)

    p = sub.add_parser("ask", help="generate, verify and run code for a question")
    p.add_argument("query")
    p.add_argument("--file", "-f", action="append", default=[])
    p.add_argument("--context", default=None)
    p.add_argument("--out", default=".")
    p.add_argument("--url", default=None)
    p.add_argument("--api-key", default=None, help=API_KEY_HELP)
    p.set_defaults(func=_ask)

    p = sub.add_parser("mcp", help="serve the agent tools over MCP on stdin/stdout")
    p.set_defaults(func=_mcp)

    p = sub.add_parser("doctor", help="check engine, image, LLM endpoint and limits")
    p.set_defaults(func=_doctor)

    from service.auth.permissions import Role

    p = sub.add_parser("keys", help="create, list and revoke API keys (stored hashed)")
    keys = p.add_subparsers(dest="keys_command", required=True)
    file_help = "key file (default: PYTHON_CODE_API_KEYS_FILE)"
    k = keys.add_parser("create", help="make a key for a role; prints it once")
    k.add_argument("--role", required=True, choices=[r.value for r in Role])
    k.add_argument("--file", default=None, help=file_help)
    k.add_argument(
        "--env",
        action="store_true",
        help="write no file; print a hashed entry for PYTHON_CODE_API_KEYS instead",
    )
    k = keys.add_parser("list", help="ids, roles and creation times (never keys)")
    k.add_argument("--file", default=None, help=file_help)
    k = keys.add_parser("revoke", help="remove a key by id")
    k.add_argument("id")
    k.add_argument("--file", default=None, help=file_help)
    p.set_defaults(func=_keys)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)
