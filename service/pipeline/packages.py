"""``install_package``: wheels resolved and downloaded on the host, unpacked in the session.

The sandbox has no network, so the gateway runs ``pip download`` for the runner's Python and
platform (binary wheels only: nothing is built), first from its wheelhouse alone
(``<execution_dir>/wheelhouse``, so a cached package installs offline), then from the index,
caching what it fetched. Dependencies come along, minus what the session already has. The
operator's allow-list and deny-list and a size cap apply before anything reaches the session.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import anyio
from packaging.version import InvalidVersion, Version

from service.auth.permissions import Principal
from service.environment import describe_environment
from service.errors import InvalidRequest, NotFound, PackageRejected, PythonCoderError
from service.executors.base import Executor, InputFile
from service.models import InstallResponse
from service.observability import audit_event
from service.pipeline.jobs import Job
from service.pipeline.sessions import Session, SessionManager
from service.settings import MB, Settings

log = logging.getLogger(__name__)

# The runner: CPython 3.11 on glibc x86_64 (runner_image/requirements.txt says the same).
TARGET = [
    "--python-version",
    "3.11",
    "--implementation",
    "cp",
    "--abi",
    "cp311",
    "--platform",
    "manylinux2014_x86_64",
    "--platform",
    "manylinux_2_28_x86_64",
]
PIP_TIMEOUT_S = 300
_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")


def normalize(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_project(path: Path) -> tuple[str, str]:
    """(normalised name, version) from a wheel's file name."""
    parts = path.name.split("-")
    return normalize(parts[0]), parts[1] if len(parts) > 1 else ""


def check_request(name: str, version: str | None, settings: Settings) -> str:
    """The pip requirement for ``name``/``version``, or the reason it is refused."""
    if not _NAME.match(name):
        raise InvalidRequest(f"{name!r} is not a valid package name")
    if version is not None:
        try:
            Version(version)
        except InvalidVersion as exc:
            raise InvalidRequest(f"{version!r} is not a valid version") from exc
    project = normalize(name)
    if project in {normalize(n) for n in settings.package_deny_list}:
        raise PackageRejected(f"package {name!r} is blocked on this gateway (deny-list)")
    allow = {normalize(n) for n in settings.package_allow_list}
    if allow and project not in allow:
        raise PackageRejected(f"package {name!r} is not on this gateway's allow-list")
    return f"{name}=={version}" if version else name


def _pip(args: list[str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "--no-input"]
    try:
        return subprocess.run(
            command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise PackageRejected(f"resolving the package took over {PIP_TIMEOUT_S} s") from exc


def resolve_wheels(settings: Settings, requirement: str, dest: Path) -> list[Path]:
    """Download ``requirement`` and its dependencies as wheels into ``dest``."""
    wheelhouse = settings.wheelhouse
    wheelhouse.mkdir(parents=True, exist_ok=True)
    common = ["download", "--only-binary=:all:", *TARGET, "--find-links", str(wheelhouse)]
    offline = _pip([*common, "--no-index", "-d", str(dest), requirement])
    if offline.returncode != 0:
        index = ["--index-url", settings.package_index_url] if settings.package_index_url else []
        online = _pip([*common, *index, "-d", str(dest), requirement])
        if online.returncode != 0:
            raise _why_not(requirement, online.stderr, index)
        for wheel in dest.glob("*.whl"):  # cached for the next session (and offline use)
            if not (wheelhouse / wheel.name).exists():
                shutil.copy2(wheel, wheelhouse / wheel.name)
    return sorted(dest.glob("*.whl"))


def _why_not(requirement: str, stderr: str, index: list[str]) -> Exception:
    unreachable = any(
        s in stderr
        for s in ("NewConnectionError", "Network is unreachable", "Temporary failure", "timed out")
    )
    if unreachable:
        return NotFound(
            f"{requirement!r} is not in the gateway's wheelhouse and the package index cannot "
            "be reached"
        )
    name = re.split(r"[=<>!~ ]", requirement, maxsplit=1)[0]
    listed = _pip(["index", "versions", name, *index])
    if listed.returncode == 0 and "Available versions" in listed.stdout:
        return PackageRejected(
            f"{requirement!r} has no binary wheel for CPython 3.11 on manylinux x86_64 (source "
            "distributions are refused: nothing is built for the sandbox)"
        )
    if "No matching distribution" in stderr:
        return NotFound(f"unknown package {requirement!r}: the index has no such distribution")
    tail = stderr.strip().splitlines()[-1:] or ["(no message)"]
    return PackageRejected(f"{requirement!r} cannot be installed: {tail[0][:300]}")


async def install_package(
    sessions: SessionManager,
    session: Session,
    name: str,
    version: str | None,
    settings: Settings,
    caller: Principal,
) -> InstallResponse:
    """Install ``name`` (``==version``) into ``session``: importable from its next cell. The
    audit line names the package, what was installed, or the error that refused it."""
    started = time.perf_counter()
    outcome, installed = "failed", dict[str, Any]()
    try:
        done = await _install(sessions, session, name, version, settings)
        outcome, installed = "success", {"version": done.version, "wheels": done.wheels}
        return done
    except PythonCoderError as exc:
        outcome = type(exc).__name__
        raise
    finally:
        audit_event(
            settings,
            "package_install",
            caller=caller,
            outcome=outcome,
            duration_s=time.perf_counter() - started,
            session_id=session.id,
            package=name,
            requested_version=version,
            **installed,
        )


async def _install(
    sessions: SessionManager,
    session: Session,
    name: str,
    version: str | None,
    settings: Settings,
) -> InstallResponse:
    requirement = check_request(name, version, settings)
    project = normalize(name)
    env = await sessions.environment(session)
    present = {normalize(str(p.get("name"))): str(p.get("version")) for p in env["packages"]}
    if project in present and (version is None or present[project] == version):
        where = "this session" if project in session.installed else "the runner image"
        raise PackageRejected(
            f"{name} is already installed in {where} (version {present[project]})"
        )
    if project in present:
        raise PackageRejected(
            f"{name} {present[project]} is in the runner image; another version cannot be "
            "installed over it"
        )
    settings.execution_dir.mkdir(parents=True, exist_ok=True)
    dest = Path(tempfile.mkdtemp(prefix="wheels-", dir=settings.execution_dir))
    try:
        wheels = await anyio.to_thread.run_sync(resolve_wheels, settings, requirement, dest)
        send = [w for w in wheels if wheel_project(w)[0] not in present]
        skipped = [w.name for w in wheels if wheel_project(w)[0] in present]
        main = [w for w in send if wheel_project(w)[0] == project]
        if not main:
            raise PackageRejected(f"pip resolved no wheel for {requirement!r}")
        total = sum(w.stat().st_size for w in send)
        if total > settings.package_max_mb * MB:
            raise PackageRejected(
                f"{requirement!r} with its dependencies is {total // MB} MB of wheels, over the "
                f"limit of {settings.package_max_mb} MB"
            )
        answer = await sessions.send_wheels(session, send)
        if answer.get("error"):
            raise PackageRejected(f"installing {requirement!r} failed: {answer['error']}")
        for wheel in send:
            dist, dist_version = wheel_project(wheel)
            session.installed[dist] = dist_version
        log.info("session %s: installed %s", session.id, ", ".join(w.name for w in send))
        return InstallResponse(
            session_id=session.id,
            package=project,
            version=wheel_project(main[0])[1],
            wheels=[w.name for w in send],
            skipped=skipped,
        )
    finally:
        shutil.rmtree(dest, ignore_errors=True)


# --- one-shot runs: ``/v1/execute`` with ``packages`` ------------------------------------------

MAX_RUN_PACKAGES = 10


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``name`` or ``name==version``."""
    name, sep, version = spec.strip().partition("==")
    return name.strip(), (version.strip() or None) if sep else None


async def package_inputs(
    specs: list[str], job: Job, executor: Executor, settings: Settings
) -> tuple[InputFile, ...]:
    """Wheels for a one-shot run, unpacked into files for the top of its work dir (which is
    on ``sys.path``): the script imports them as if installed."""
    if len(specs) > MAX_RUN_PACKAGES:
        raise InvalidRequest(f"at most {MAX_RUN_PACKAGES} packages per run")
    requirements = [check_request(*parse_spec(spec), settings) for spec in specs]
    env = await describe_environment(executor, settings)
    present = {
        normalize(str(p.get("name"))): str(p.get("version")) for p in env.get("packages") or []
    }
    for spec in specs:
        name = parse_spec(spec)[0]
        if normalize(name) in present:
            raise PackageRejected(
                f"{name} is already in the runner image (version {present[normalize(name)]})"
            )
    wheels_dir = job.root / "packages" / "wheels"
    site = job.root / "packages" / "site"
    wheels_dir.mkdir(parents=True)
    site.mkdir()
    for requirement in requirements:
        await anyio.to_thread.run_sync(resolve_wheels, settings, requirement, wheels_dir)
    send = [w for w in sorted(wheels_dir.glob("*.whl")) if wheel_project(w)[0] not in present]
    total = sum(w.stat().st_size for w in send)
    if total > settings.package_max_mb * MB:
        raise PackageRejected(
            f"the packages are {total // MB} MB of wheels, over the limit of "
            f"{settings.package_max_mb} MB"
        )
    taken = set(job.input_names)
    return await anyio.to_thread.run_sync(_unpack, send, site, taken, settings)


def _unpack(
    wheels: list[Path], site: Path, taken: set[str], settings: Settings
) -> tuple[InputFile, ...]:
    budget = 4 * settings.package_max_mb * MB  # unpacked: wheels compress about this well
    files: list[InputFile] = []
    for wheel_path in wheels:
        with zipfile.ZipFile(wheel_path) as wheel:
            for member in wheel.infolist():
                if member.is_dir():
                    continue
                name = member.filename
                parts = name.split("/")
                if name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts):
                    raise PackageRejected(f"{wheel_path.name} holds a bad path {name!r}")
                if name in taken:
                    raise InvalidRequest(f"input file {name!r} clashes with a file of a package")
                budget -= member.file_size
                if budget < 0:
                    raise PackageRejected("the packages unpack to more than the size limit allows")
                target = site.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with wheel.open(member) as src, target.open("xb") as out:
                    shutil.copyfileobj(src, out)
                taken.add(name)
                files.append(InputFile(name=name, path=target, size=target.stat().st_size))
    return tuple(files)
