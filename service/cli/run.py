"""``python-coder run SCRIPT.py --file ...``: one script, locally or through a gateway.

Locally it goes through the same pipeline steps as ``POST /v1/execute`` (intake, static
policy, the executor factory); with ``--url`` it posts to a running gateway. Either way the
script's stdout/stderr are printed as they come (``Echo``; a gateway streams them as
Server-Sent Events), produced files are saved into ``--out``, a spinner with the elapsed time
shows while it runs, and the exit code is the script's own (124 when it timed out, 137 when it
was killed for memory, 2 when it never ran).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

from service.cli import api_key_for
from service.client import safe_target
from service.models import ExecutionResponse

EXIT_TIMEOUT = 124
EXIT_OOM = 137
EXIT_NOT_RUN = 2
CHUNK = 1024 * 1024

err = Console(stderr=True, highlight=False)


@contextmanager
def spinner(what: str, console: Console = err) -> Iterator[None]:
    """A spinner with the elapsed seconds on a terminal; silent when stderr is not one."""
    if not console.is_terminal:
        yield
        return
    started = time.monotonic()
    stop = threading.Event()
    with console.status(f"{what} 0.0s", spinner="dots") as status:

        def tick() -> None:
            while not stop.wait(0.1):
                status.update(f"{what} {time.monotonic() - started:.1f}s")

        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join()


def exit_code_of(result: ExecutionResponse) -> int:
    if result.timed_out:
        return EXIT_TIMEOUT
    if result.oom_killed:
        return EXIT_OOM
    if result.exit_code is None:
        return 1
    return result.exit_code


class Echo:
    """Writes the script's output to our stdout/stderr as it arrives, and remembers it."""

    def __init__(self) -> None:
        self.shown = {"stdout": "", "stderr": ""}

    def __call__(self, stream: str, text: str) -> None:
        target = sys.stdout if stream == "stdout" else sys.stderr
        target.write(text)
        target.flush()
        self.shown[stream] += text


def report(result: ExecutionResponse, saved: list[Path], echo: Echo | None = None) -> int:
    """Print what the script wrote (unless ``echo`` showed it live) and a one-line summary;
    return the exit code."""
    output, error = result.output, result.error
    if echo is not None:
        output = output.removeprefix(echo.shown["stdout"])
        # ``error`` is the reason the run failed, if any, then its stderr (already shown).
        error = (error or "").removesuffix(echo.shown["stderr"]).rstrip("\n") or None
        if echo.shown["stdout"] and not echo.shown["stdout"].endswith("\n") and not output:
            sys.stdout.write("\n")
    if output:
        sys.stdout.write(output)
        if not output.endswith("\n"):
            sys.stdout.write("\n")
        sys.stdout.flush()
    if error:
        sys.stderr.write(error if error.endswith("\n") else error + "\n")
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/] {warning}")
    code = exit_code_of(result)
    state = "timed out" if result.timed_out else "killed (memory)" if result.oom_killed else None
    summary = state or f"exit {result.exit_code}"
    err.print(
        f"[dim]{summary} in {result.execution_time:.2f}s on {result.engine}"
        + (f"; saved {', '.join(str(p) for p in saved)}" if saved else "")
        + "[/]"
    )
    return code


def make_out_dir(out_dir: Path) -> str | None:
    """Create ``--out``; a one-line reason when that is impossible, else None."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create output directory {out_dir}: {exc.strerror or exc}"
    return None


# --- through a gateway -----------------------------------------------------------------------


def run_remote(
    url: str,
    code: str,
    files: list[Path],
    out_dir: Path,
    engine: str | None,
    timeout_s: float | None,
    api_key: str | None = None,
    echo: Echo | None = None,
) -> tuple[ExecutionResponse, list[Path]]:
    import httpx

    from service.client import Client

    wait = (timeout_s or 600) + 60
    with Client(url, api_key=api_key, timeout=httpx.Timeout(30, read=wait)) as gateway:
        with spinner(f"running {len(files)} file(s) on {gateway.base_url}"):
            result = gateway.execute(
                code, files, timeout_s=timeout_s, engine=engine, on_output=echo
            )
        return result, gateway.download_artifacts(result, out_dir)


# --- locally, through the pipeline -----------------------------------------------------------


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def run_local(
    code: str,
    files: list[Path],
    out_dir: Path,
    engine: str | None,
    timeout_s: float | None,
    echo: Echo | None = None,
) -> tuple[ExecutionResponse, list[Path]]:
    import anyio

    from security.policy import StaticPolicy
    from service.executors.registry import make_executor
    from service.pipeline.execute import run_execution
    from service.pipeline.jobs import Upload, intake_uploads, open_job
    from service.pipeline.live import LiveOutput, relayed
    from service.settings import get_settings

    settings = get_settings()
    executor = make_executor(settings, engine)

    async def pipeline() -> tuple[ExecutionResponse, list[Path]]:
        async with open_job(settings) as job:
            uploads = [Upload(filename=p.name, chunks=_chunks(p)) for p in files]
            await intake_uploads(job, uploads, settings)

            async def execution(live: LiveOutput | None) -> ExecutionResponse:
                return await run_execution(
                    job,
                    code,
                    executor=executor,
                    settings=settings,
                    policy=StaticPolicy(),
                    timeout_s=timeout_s,
                    live=live,
                )

            async def show(stream: str, text: str) -> None:
                if echo is not None:
                    echo(stream, text)

            with spinner(f"running on {executor.name}"):
                if echo is None:
                    result = await execution(None)
                else:
                    result = await relayed(execution, show)
            saved: list[Path] = []
            for artifact in result.artifacts:
                target = safe_target(out_dir, artifact.name)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(job.output_dir / artifact.name, target)
                saved.append(target)
            # The CLI hands the files over right away: nothing to keep for a retention period.
            shutil.rmtree(job.output_dir, ignore_errors=True)
            return result, saved

    try:
        return anyio.run(pipeline)
    finally:
        executor.close()


def run_command(args: argparse.Namespace) -> int:
    from files.errors import IntakeError
    from service.client import GatewayError
    from service.errors import PythonCoderError

    script = Path(args.script)
    files = [Path(f) for f in args.file]
    for path in [script, *files]:
        if not path.is_file():
            err.print(f"[red]error:[/] no such file: {path}")
            return EXIT_NOT_RUN
    try:
        code = script.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        sys.stderr.write(f"error: {script} is not UTF-8 text (byte {exc.start})\n")
        return EXIT_NOT_RUN
    except OSError as exc:
        sys.stderr.write(f"error: cannot read {script}: {exc.strerror or exc}\n")
        return EXIT_NOT_RUN
    out_dir = Path(args.out)
    problem = make_out_dir(out_dir)
    if problem:
        sys.stderr.write(f"error: {problem}\n")
        return EXIT_NOT_RUN
    echo = Echo()
    try:
        if args.url:
            result, saved = run_remote(
                args.url, code, files, out_dir, args.engine, args.timeout, api_key_for(args), echo
            )
        else:
            result, saved = run_local(code, files, out_dir, args.engine, args.timeout, echo)
    except GatewayError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_NOT_RUN
    except (PythonCoderError, IntakeError) as exc:
        sys.stderr.write(f"error: {_service_error_text(exc)}\n")
        return EXIT_NOT_RUN
    return report(result, saved, echo)


def _service_error_text(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc)
    detail = getattr(exc, "detail", None)
    lines = [str(message)]
    if isinstance(detail, dict):
        for finding in detail.get("findings", []):
            lines.append(
                f"  line {finding.get('line')}: {finding.get('message')} [{finding.get('rule_id')}]"
            )
    return "\n".join(lines)
