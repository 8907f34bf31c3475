"""``python-coder doctor``: is this host ready to serve, and if not, what to fix.

Checks the Docker engine, the runner image (present, built from the current sources), the
local runner venv, the intake workers' sandbox, the LLM endpoint (``GET {base}/models``),
access (API keys against the bind address), the limits, and disk space.
Prints one row per check (OK / WARN / FAIL) with the fix; exits 1 when anything FAILs.
"""

from __future__ import annotations

import argparse
import os
import shutil
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


def check_engines(settings: Settings) -> list[Check]:
    """One row per registered engine: can it run here, and is its runner ready?

    A problem fails the check only for the engine the settings name (or, for ``auto``, when
    no engine at all is ready); otherwise it is a warning.
    """
    from service.errors import PythonCoderError
    from service.executors.registry import ENGINES

    rows: list[tuple[str, bool, str, str]] = []  # name, ready, detail, fix
    for entry in ENGINES.values():
        try:
            found = entry.probe()
        except PythonCoderError as exc:
            rows.append((entry.name, False, exc.message, _ENGINE_FIX))
            continue
        executor = entry.load(settings)
        try:
            state = executor.readiness()
        except PythonCoderError as exc:
            rows.append((entry.name, False, exc.message, ""))
            continue
        finally:
            executor.close()
        fix = "" if state.ready else _fix_from(state.detail)
        rows.append((entry.name, state.ready, f"{found}; {state.detail}", fix))
    any_ready = any(ready for _n, ready, _d, _f in rows)
    checks = []
    for name, ready, detail, fix in rows:
        wanted = settings.engine == name or (settings.engine == "auto" and not any_ready)
        status = OK if ready else FAIL if wanted else WARN
        if not ready and not wanted and settings.engine != "auto":
            status, detail = OK, f"not used (engine={settings.engine}): {detail}"
        checks.append(Check(f"engine {name}", status, detail, fix))
    return checks


_ENGINE_FIX = (
    "start dockerd (or set DOCKER_HOST); in compose mount /var/run/docker.sock and set "
    "DOCKER_GID to the socket's group"
)


def _fix_from(detail: str) -> str:
    """The command a readiness message names (``...: `python-coder build-runner` ...``)."""
    start = detail.find("`")
    end = detail.find("`", start + 1)
    return f"run {detail[start + 1 : end]}" if 0 <= start < end else ""


def check_pool(settings: Settings) -> Check:
    if settings.pool_max <= 0:
        return Check("warm pool", WARN, "off (PYTHON_CODE_POOL_MAX=0): every run starts cold")
    return Check(
        "warm pool",
        OK,
        f"{settings.pool_min}..{settings.pool_max} sandboxes with numpy, pandas and matplotlib "
        f"imported; inputs up to {settings.pool_input_room_mb} MB",
    )


def check_intake_sandbox(settings: Settings) -> Check:
    """Where uploads are parsed: bubblewrap, the confined fallback, or (FAIL) neither."""
    from files.sandbox import worker_sandbox

    sandbox = worker_sandbox()
    name = "intake sandbox"
    if sandbox.mode == "bwrap":
        return Check(name, OK, sandbox.describe())
    if sandbox.mode == "confined":
        return Check(
            name,
            WARN,
            sandbox.describe(),
            "install bubblewrap where user namespaces are allowed for full isolation "
            "(docs/sandboxes.md: intake workers)",
        )
    return Check(
        name,
        FAIL,
        sandbox.describe(),
        "install bubblewrap (apt-get install bubblewrap) and allow user namespaces",
    )


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
        check_engines,
        check_pool,
        check_intake_sandbox,
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
