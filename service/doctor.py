"""``python-coder doctor``: is this host ready to serve, and if not, what to fix.

Checks the Docker engine, the runner image (present, built from the current sources), the
local runner venv, the LLM endpoint (``GET {base}/models``), access (API keys against the bind
address), the limits, and disk space.
Prints one row per check (OK / WARN / FAIL) with the fix; exits 1 when anything FAILs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from service.settings import Settings, get_settings

OK, WARN, FAIL = "OK", "WARN", "FAIL"
GIB = 1024**3
LLM_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


def _docker_wanted(settings: Settings) -> bool:
    return settings.engine == "docker"


def check_engine(settings: Settings) -> Check:
    from service.errors import EngineUnavailable
    from service.executors.factory import ping_docker

    try:
        found = ping_docker()
    except EngineUnavailable as exc:
        if settings.engine == "subprocess":
            return Check("docker engine", OK, f"not used (engine=subprocess): {exc.message}")
        status = FAIL if _docker_wanted(settings) else WARN
        fallback = "" if _docker_wanted(settings) else "; auto falls back to the subprocess engine"
        return Check(
            "docker engine",
            status,
            exc.message + fallback,
            "start dockerd (or set DOCKER_HOST); in compose mount /var/run/docker.sock and set "
            "DOCKER_GID to the socket's group",
        )
    return Check("docker engine", OK, found)


def check_image(settings: Settings) -> Check:
    name = f"runner image {settings.image}"
    if settings.engine == "subprocess":
        return Check(name, OK, "not used (engine=subprocess)")
    try:
        from service.executors.factory import ping_docker

        ping_docker()
        from service.runner_build import docker_api, image_labels

        api = docker_api(timeout=10)
        try:
            labels = image_labels(api, settings.image)
        finally:
            api.close()
    except Exception as exc:
        return Check(name, WARN, f"cannot inspect (no engine?): {exc}")
    build = "`python-coder build-runner` (no registry: add --offline --bootstrap-base)"
    if labels is None:
        # The engine answers, so docker (or auto) would pick it and every run would fail.
        return Check(name, FAIL, "missing", f"run {build}, or `docker compose build`")
    try:
        from service.runner_build import SOURCE_HASH_LABEL, runner_source_hash

        wanted = runner_source_hash()
    except Exception as exc:
        return Check(name, OK, f"present (staleness not checked: {exc})")
    have = labels.get(SOURCE_HASH_LABEL)
    if have is None:
        return Check(
            name,
            WARN,
            "present, built without a source-hash label (by hand or by compose)",
            f"{build} labels it so staleness can be checked",
        )
    if have != wanted:
        return Check(
            name,
            WARN,
            f"stale: built from sources {have[:12]}, current {wanted[:12]}",
            f"rebuild: {build}",
        )
    return Check(name, OK, f"present, current (sources {wanted[:12]})")


def check_local_runner(settings: Settings) -> Check:
    python = settings.local_runner_python
    name = "local runner venv"
    fix = "python-coder build-runner --local"
    need = settings.engine == "subprocess"
    if settings.engine == "docker" and not python.exists():
        return Check(name, OK, "not used (engine=docker)")
    if not python.exists():
        return Check(name, FAIL if need else WARN, f"{python} missing", fix)
    try:
        probe = subprocess.run(
            [str(python), "-c", "import pandas, numpy; print(pandas.__version__)"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check(name, FAIL if need else WARN, f"{python} does not run: {exc}", fix)
    if probe.returncode != 0:
        tail = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return Check(name, FAIL if need else WARN, f"{python}: {tail}", fix)
    return Check(name, OK, f"{python} (pandas {probe.stdout.strip()})")


def check_llm(settings: Settings) -> Check:
    name = "LLM endpoint"
    if not settings.llm_base_url:
        return Check(
            name,
            WARN,
            "not configured: /v1/generate and `ask` are unavailable",
            "set PYTHON_CODE_LLM_BASE_URL (OpenAI-compatible, e.g. http://host:8000/v1), "
            "PYTHON_CODE_LLM_API_KEY and PYTHON_CODE_LLM_MODEL",
        )
    import httpx

    url = settings.llm_base_url.rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {settings.llm_api_key}"} if settings.llm_api_key else {}
    try:
        response = httpx.get(url, headers=headers, timeout=LLM_TIMEOUT_S)
    except httpx.HTTPError as exc:
        return Check(
            name,
            FAIL,
            f"GET {url}: {exc.__class__.__name__}: {exc}",
            "check PYTHON_CODE_LLM_BASE_URL and that the server is up and reachable from here",
        )
    if response.status_code in (401, 403):
        return Check(
            name, FAIL, f"GET {url}: HTTP {response.status_code}", "check PYTHON_CODE_LLM_API_KEY"
        )
    if response.status_code != 200:
        return Check(
            name,
            FAIL,
            f"GET {url}: HTTP {response.status_code}",
            "the base URL should end where /models and /chat/completions live (often .../v1)",
        )
    try:
        models = [m.get("id") for m in response.json().get("data", []) if isinstance(m, dict)]
    except (ValueError, AttributeError):
        return Check(name, WARN, f"GET {url}: answered, but not an OpenAI model list")
    if models and settings.llm_model not in models:
        shown = ", ".join(str(m) for m in models[:5])
        return Check(
            name,
            WARN,
            f"reachable, but model {settings.llm_model!r} is not listed ({shown})",
            "set PYTHON_CODE_LLM_MODEL to one of the listed models",
        )
    return Check(name, OK, f"{url} answers; model {settings.llm_model}")


def check_access(settings: Settings) -> Check:
    """API keys against the bind address: what ``serve`` would accept or refuse."""
    from service.auth.exposure import is_loopback, key_store_for
    from service.auth.keys import KeyStoreError

    name = "access"
    try:
        store = key_store_for(settings)
    except KeyStoreError as exc:
        return Check(name, FAIL, str(exc), "fix the entry, or make keys with python-coder keys")
    if store.configured:
        return Check(name, OK, f"{len(store.records())} API key(s); {settings.host}")
    if is_loopback(settings.host):
        return Check(name, OK, f"no API keys: local operator on {settings.host} (loopback)")
    fix = "python-coder keys create --role ROLE --file F; PYTHON_CODE_API_KEYS_FILE=F"
    if settings.allow_unauthenticated:
        return Check(name, WARN, f"no API keys on {settings.host} (explicit opt-out)", fix)
    return Check(name, FAIL, f"serve refuses {settings.host} without API keys", fix)


def _host_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_limits(settings: Settings) -> list[Check]:
    checks: list[Check] = []
    if settings.timeout > settings.max_timeout:
        checks.append(
            Check(
                "limits: timeout",
                FAIL,
                f"default timeout {settings.timeout}s exceeds max_timeout {settings.max_timeout}s",
                "lower PYTHON_CODE_TIMEOUT or raise PYTHON_CODE_MAX_TIMEOUT",
            )
        )
    if settings.max_file_size > settings.max_total_upload:
        checks.append(
            Check(
                "limits: uploads",
                WARN,
                f"per-file limit {settings.max_file_size} MB exceeds the per-request total "
                f"{settings.max_total_upload} MB",
                "raise PYTHON_CODE_MAX_TOTAL_UPLOAD",
            )
        )
    memory = _host_memory_bytes()
    if memory and settings.max_memory_bytes > memory // 2:
        checks.append(
            Check(
                "limits: memory",
                WARN,
                f"{settings.max_memory} MB per run is more than half of the host's "
                f"{memory // 1024**2} MB",
                "lower PYTHON_CODE_MAX_MEMORY",
            )
        )
    cores = os.cpu_count() or 1
    if settings.cpus > cores:
        checks.append(
            Check(
                "limits: cpus",
                WARN,
                f"{settings.cpus} CPUs per run, host has {cores}",
                f"set PYTHON_CODE_CPUS <= {cores}",
            )
        )
    if not checks:
        checks.append(
            Check(
                "limits",
                OK,
                f"timeout {settings.timeout}s (max {settings.max_timeout}s), memory "
                f"{settings.max_memory} MB, cpus {settings.cpus}, pids {settings.pids_limit}, "
                f"files {settings.max_file_size} MB each / {settings.max_total_upload} MB total",
            )
        )
    return checks


def check_disk(settings: Settings, warn_bytes: int = 2 * GIB, fail_bytes: int = GIB // 5) -> Check:
    path = settings.execution_dir
    name = f"disk ({path})"
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
    except OSError as exc:
        return Check(name, FAIL, f"cannot stat: {exc}", "check PYTHON_CODE_EXECUTION_DIR")
    writable = os.access(probe, os.W_OK)
    free = f"{usage.free / GIB:.1f} GiB free"
    if not writable:
        return Check(name, FAIL, f"{probe} is not writable ({free})", "fix its owner/permissions")
    if usage.free < fail_bytes:
        return Check(name, FAIL, free, "free space or move PYTHON_CODE_EXECUTION_DIR")
    if usage.free < warn_bytes:
        return Check(name, WARN, free, "artifacts and uploads may not fit; free some space")
    return Check(name, OK, free)


def run_checks(settings: Settings) -> list[Check]:
    steps: list[Callable[[Settings], Check | list[Check]]] = [
        check_engine,
        check_image,
        check_local_runner,
        check_llm,
        check_access,
        check_limits,
        check_disk,
    ]
    results: list[Check] = []
    for step in steps:
        try:
            found = step(settings)
        except Exception as exc:  # a broken check must not hide the others
            found = Check(step.__name__.removeprefix("check_"), FAIL, f"check crashed: {exc!r}")
        results.extend(found if isinstance(found, list) else [found])
    return results


STYLE = {OK: "green", WARN: "yellow", FAIL: "bold red"}


def render(checks: list[Check], console: Console) -> None:
    table = Table(title="python-coder doctor", show_lines=False)
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    table.add_column("fix", overflow="fold")
    for c in checks:
        table.add_row(c.name, f"[{STYLE[c.status]}]{c.status}[/]", c.detail, c.fix)
    console.print(table)


def doctor_command(args: argparse.Namespace) -> int:
    settings = get_settings()
    checks = run_checks(settings)
    console = Console(width=max(120, Console().width))
    render(checks, console)
    failed = [c for c in checks if c.status == FAIL]
    if failed:
        console.print(
            f"[bold red]{len(failed)} check(s) failed[/]: {', '.join(c.name for c in failed)}"
        )
        return 1
    warned = sum(c.status == WARN for c in checks)
    console.print("[green]ready[/]" + (f" ({warned} warning(s))" if warned else ""))
    return 0
