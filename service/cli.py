"""The ``python-coder`` command: serve, build-runner, run, ask, mcp, doctor.

Each subcommand lives in its own module and is imported only when used, so ``--help`` and
``serve`` stay fast.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence


def _serve(args: argparse.Namespace) -> int:
    from service.server import serve

    return serve(host=args.host, port=args.port, reload=args.reload)


def _build_runner(args: argparse.Namespace) -> int:
    from service.runner_build import build_runner_command

    return build_runner_command(args)


def _run(args: argparse.Namespace) -> int:
    from service.cli_run import run_command

    return run_command(args)


def _ask(args: argparse.Namespace) -> int:
    from service.cli_ask import ask_command

    return ask_command(args)


def _doctor(args: argparse.Namespace) -> int:
    from service.doctor import doctor_command

    return doctor_command(args)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python-coder", description=__doc__)
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
    p.add_argument("--engine", choices=["auto", "docker", "subprocess"], default=None)
    p.add_argument(
        "--timeout", type=timeout_seconds, default=None, help="seconds (> 0, <= max_timeout)"
    )
    p.add_argument("--out", default=".", help="where to save artifacts")
    p.add_argument("--url", default=None, help="use a running gateway instead of local engines")
    p.set_defaults(func=_run)

    p = sub.add_parser("ask", help="generate, verify and run code for a question")
    p.add_argument("query")
    p.add_argument("--file", "-f", action="append", default=[])
    p.add_argument("--context", default=None)
    p.add_argument("--out", default=".")
    p.add_argument("--url", default=None)
    p.set_defaults(func=_ask)

    p = sub.add_parser("mcp", help="serve the agent tools over MCP on stdin/stdout")
    p.set_defaults(func=_mcp)

    p = sub.add_parser("doctor", help="check engine, image, LLM endpoint and limits")
    p.set_defaults(func=_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
