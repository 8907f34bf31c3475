"""``python-coder build-runner``: the runner image for the docker engine, or the local venv.

Three ways to get the packages of ``runner_image/requirements.txt`` (a full lock):

* online (default): ``FROM python:3.11-slim`` and ``pip install`` inside the build;
* ``--offline``: the host downloads a wheelhouse (``.cache/wheelhouse``, reused between runs)
  and the build installs from it with ``--no-index``; add ``--bootstrap-base`` where no
  registry is reachable, to make the base image with debootstrap + ``docker import``;
* ``--local``: a venv for the subprocess engine (``settings.local_runner_dir``).

The image carries ``SOURCE_HASH_LABEL`` = ``runner_source_hash()``, so the readiness check and
CI can tell a stale image from a current one; a current image is not rebuilt unless ``--force``.
Expected failures raise ``RunnerBuildError`` and end as one clear message and exit code 1.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.markup import escape

from service.settings import get_settings

# A sibling of service/ both in the repo and in site-packages (package data of runner_image).
RUNNER_SOURCE_DIR = Path(__file__).resolve().parent.parent / "runner_image"
# Everything that goes into the image; their bytes make the source hash.
IMAGE_SOURCES = ("Dockerfile", "requirements.txt", "harness.py", "protocol.py", "mplseed.py")
SOURCE_HASH_LABEL = "io.python-coder.source-hash"
BASE_IMAGE_LABEL = "org.opencontainers.image.base.name"
DEFAULT_BASE_IMAGE = "python:3.11-slim"
BOOTSTRAP_BASE_IMAGE = "python-coder-base:bookworm"
BOOTSTRAP_SUITE = "bookworm"
BOOTSTRAP_PACKAGES = ("python3", "python3-venv", "ca-certificates")
DEFAULT_WHEELHOUSE = Path(".cache/wheelhouse")
WHEELS_DIR = "wheels"  # in the build context; the Dockerfile copies ``wheel[s]``
TARGET_PYTHON = "3.11"
# The newest glibc the wheels may need: bookworm's 2.36 (python:3.11-slim has the same or newer).
MAX_GLIBC_MINOR = 36
LOCAL_STAMP = ".python-coder-requirements"


class RunnerBuildError(Exception):
    """An expected failure (no engine, no debootstrap, download failed): message, no traceback."""


# --- requirements and the wheelhouse ---------------------------------------------------------


@dataclass(frozen=True)
class Pin:
    """One ``name==version`` line of the lock."""

    name: str
    version: str

    @property
    def key(self) -> str:
        return canonical_name(self.name)

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


_PIN_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9.+!_-]+)$")


def canonical_name(name: str) -> str:
    """PEP 503 normalisation: ``PyYAML`` -> ``pyyaml``, ``pdfminer.six`` -> ``pdfminer-six``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirements(text: str) -> list[Pin]:
    """Parse a lock of exact pins; anything else (ranges, URLs, options) is an error."""
    pins: list[Pin] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN_RE.match(line)
        if match is None:
            raise ValueError(f"line {number}: {raw.strip()!r} is not an exact pin (name==version)")
        pin = Pin(match.group(1), match.group(2))
        if pin.key in seen:
            raise ValueError(f"line {number}: {pin.name} is pinned twice")
        seen.add(pin.key)
        pins.append(pin)
    return pins


def read_requirements(path: Path) -> list[Pin]:
    try:
        return parse_requirements(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunnerBuildError(f"cannot use {path}: {exc}") from exc


def wheel_pin(filename: str) -> Pin | None:
    """Name and version of a wheel file (``name-version-...-platform.whl``), else ``None``."""
    if not filename.endswith(".whl"):
        return None
    parts = filename[: -len(".whl")].split("-")
    if len(parts) not in (5, 6):
        return None
    return Pin(parts[0], parts[1])


def wheels_for(pins: Iterable[Pin], wheelhouse: Path) -> dict[Pin, list[Path]]:
    """The wheel files in ``wheelhouse`` for each pin (an empty list when none is there)."""
    wanted = {(p.key, p.version): p for p in pins}
    found: dict[Pin, list[Path]] = {p: [] for p in wanted.values()}
    if wheelhouse.is_dir():
        for path in sorted(wheelhouse.iterdir()):
            w = wheel_pin(path.name)
            if w is not None and (pin := wanted.get((w.key, w.version))) is not None:
                found[pin].append(path)
    return found


def manylinux_platforms(max_glibc_minor: int = MAX_GLIBC_MINOR) -> list[str]:
    """Every x86_64 manylinux tag a glibc 2.``max_glibc_minor`` system accepts, newest first."""
    tags = [f"manylinux_2_{minor}_x86_64" for minor in range(max_glibc_minor, 4, -1)]
    return [*tags, "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def wheelhouse_download_args(
    requirements: Path, wheelhouse: Path, python: str = sys.executable
) -> list[str]:
    """The host's ``pip download`` for the image's interpreter and platform, binaries only."""
    args = [python, "-m", "pip", "download", "--disable-pip-version-check", "--progress-bar", "off"]
    args += ["--only-binary=:all:", "--python-version", TARGET_PYTHON, "--implementation", "cp"]
    args += ["--abi", "cp" + TARGET_PYTHON.replace(".", ""), "--abi", "abi3", "--abi", "none"]
    for tag in manylinux_platforms():
        args += ["--platform", tag]
    # Files already in the wheelhouse are candidates too, so pip re-uses them.
    args += ["--find-links", str(wheelhouse), "-r", str(requirements), "-d", str(wheelhouse)]
    return args


def local_install_args(python: Path, requirements: Path, wheelhouse: Path | None) -> list[str]:
    """``pip install`` of the lock into the local venv, offline when a wheelhouse is given."""
    args = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-cache-dir"]
    args += ["--only-binary=:all:", "--progress-bar", "off"]
    if wheelhouse is not None:
        args += ["--no-index", "--find-links", str(wheelhouse)]
    return [*args, "-r", str(requirements)]


def runner_source_hash(source_dir: Path = RUNNER_SOURCE_DIR) -> str:
    """sha256 over the files that make the image; the image's ``SOURCE_HASH_LABEL``."""
    digest = hashlib.sha256()
    for name in IMAGE_SOURCES:
        data = (source_dir / name).read_bytes()
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def requirements_hash(requirements: Path) -> str:
    return hashlib.sha256(requirements.read_bytes()).hexdigest()


# --- output -----------------------------------------------------------------------------------


class BuildOutput:
    """Progress on stderr: a live status line on a terminal, plain log lines elsewhere (CI)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.console = Console(stderr=True, highlight=False)
        self._status: Any = None
        self._title = ""
        self._started = 0.0

    def note(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, markup=False, soft_wrap=True)

    def error(self, message: str) -> None:
        self.console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)

    def elapsed(self) -> float:
        """Seconds since the current ``activity`` began."""
        return time.monotonic() - self._started

    def update(self, text: str) -> None:
        if self._status is not None:
            self._status.update(f"{self._title} [{self.elapsed():5.0f}s] {text}"[:200])

    @contextmanager
    def activity(self, title: str) -> Iterator[None]:
        self._title, self._started = title, time.monotonic()
        if self.quiet or not self.console.is_terminal:
            yield
            return
        with self.console.status(title) as status:
            self._status = status
            try:
                yield
            finally:
                self._status = None


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


# --- wheelhouse -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WheelhouseStats:
    wheels: int
    bytes: int
    downloaded: int
    seconds: float


def download_wheelhouse(requirements: Path, wheelhouse: Path, out: BuildOutput) -> WheelhouseStats:
    """Make ``wheelhouse`` hold a wheel for every pin; download only what is missing."""
    pins = read_requirements(requirements)
    started = time.monotonic()
    missing = [p for p, files in wheels_for(pins, wheelhouse).items() if not files]
    downloaded = 0
    if missing:
        wheelhouse.mkdir(parents=True, exist_ok=True)
        out.note(f"wheelhouse {wheelhouse}: {len(missing)} of {len(pins)} wheels to download")
        tail: deque[str] = deque(maxlen=30)
        with out.activity("downloading wheels"):
            proc = subprocess.Popen(
                wheelhouse_download_args(requirements, wheelhouse),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
            )
            assert proc.stdout is not None
            for line in proc.stdout:
                tail.append(line.rstrip())
                if line.startswith("Saved "):
                    downloaded += 1
                out.update(f"{downloaded} downloaded - {line.strip()[:90]}")
            code = proc.wait()
        if code != 0:
            detail = "\n".join(tail)
            raise RunnerBuildError(f"pip download failed (exit {code}):\n{detail}")
        still = [str(p) for p, files in wheels_for(pins, wheelhouse).items() if not files]
        if still:
            raise RunnerBuildError(f"no wheel for {', '.join(still)} after pip download")
    files = [f for fs in wheels_for(pins, wheelhouse).values() for f in fs]
    return WheelhouseStats(
        wheels=len(files),
        bytes=sum(f.stat().st_size for f in files),
        downloaded=downloaded,
        seconds=time.monotonic() - started,
    )


# --- docker -----------------------------------------------------------------------------------


def docker_api(timeout: int = 3600) -> Any:
    """A low-level docker client (``APIClient``) for the engine the environment names."""
    import docker
    from docker.errors import DockerException

    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        raise RunnerBuildError(
            f"Docker engine unreachable (no socket at {host}); start it, or use "
            "`python-coder build-runner --local` for the subprocess engine"
        )
    client = None
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except DockerException as exc:
        if client is not None:
            client.close()
        raise RunnerBuildError(
            f"Docker engine unreachable ({exc}); start it, or use `python-coder build-runner "
            "--local` for the subprocess engine"
        ) from exc
    return client.api


def image_labels(api: Any, tag: str) -> dict[str, str] | None:
    """The labels of image ``tag``, or ``None`` when it does not exist."""
    from docker.errors import ImageNotFound

    try:
        info = api.inspect_image(tag)
    except ImageNotFound:
        return None
    return dict(info.get("Config", {}).get("Labels") or {})


def write_context(fileobj: IO[bytes], source_dir: Path, wheels: Iterable[Path] = ()) -> None:
    """Write the build context as an uncompressed tar: the image sources plus ``wheels/``."""

    def add(path: Path, arcname: str) -> None:
        info = tarfile.TarInfo(arcname)
        info.size = path.stat().st_size
        info.mode = 0o644
        info.mtime = int(path.stat().st_mtime)
        with path.open("rb") as f:
            tar.addfile(info, f)

    with tarfile.open(fileobj=fileobj, mode="w") as tar:
        for name in IMAGE_SOURCES:
            path = source_dir / name
            if not path.is_file():
                raise RunnerBuildError(f"{path} is missing: the runner image cannot be built")
            add(path, name)
        for wheel in wheels:
            add(wheel, f"{WHEELS_DIR}/{wheel.name}")


_STEP_RE = re.compile(r"^Step (\d+)/(\d+) : (.*)")


def build_image(
    api: Any,
    context: IO[bytes],
    tag: str,
    buildargs: dict[str, str],
    labels: dict[str, str],
    out: BuildOutput,
    network: bool = True,
) -> str:
    """Run the build, streaming its progress; return the image id. ``network=False``: the
    build's steps run without one (an offline build needs none, nor a bridge to attach to)."""
    from docker.errors import APIError

    tail: deque[str] = deque(maxlen=40)
    image_id = ""
    context.seek(0)
    with out.activity(f"building {tag}"):
        try:
            stream = api.build(
                fileobj=context,
                custom_context=True,
                tag=tag,
                buildargs=buildargs,
                labels=labels,
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
                network_mode=None if network else "none",
            )
            for chunk in stream:
                if "error" in chunk:
                    detail = "\n".join(tail)
                    raise RunnerBuildError(
                        f"image build failed: {chunk['error'].strip()}\n{detail}"
                    )
                if "aux" in chunk and "ID" in chunk["aux"]:
                    image_id = chunk["aux"]["ID"]
                text = str(chunk.get("stream") or chunk.get("status") or "")
                for line in text.splitlines():
                    line = line.rstrip()
                    if not line:
                        continue
                    tail.append(line)
                    step = _STEP_RE.match(line)
                    if step:
                        command = " ".join(step[3].split())[:110]
                        out.note(f"[{out.elapsed():5.0f}s] step {step[1]}/{step[2]}: {command}")
                    out.update(line[:120])
        except APIError as exc:
            raise RunnerBuildError(f"image build failed: {exc.explanation or exc}") from exc
    return image_id


def bootstrap_base_image(api: Any, tag: str, out: BuildOutput) -> None:
    """Make ``tag`` from Debian packages: debootstrap a minbase rootfs, ``docker import`` it."""
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise RunnerBuildError(
                "debootstrap is missing: install it (apt-get install debootstrap) and run as root"
            )
        out.note("installing debootstrap with apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "debootstrap"],
        ):
            _run_quiet(cmd, env=env, what="apt-get")
        debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if os.geteuid() != 0:
        raise RunnerBuildError("debootstrap needs root to make the base image")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="python-coder-base-") as tmp:
        root = Path(tmp) / "rootfs"
        with out.activity(f"debootstrap {BOOTSTRAP_SUITE} (minbase + python3)"):
            _run_quiet(
                [
                    debootstrap,
                    "--variant=minbase",
                    "--include=" + ",".join(BOOTSTRAP_PACKAGES),
                    BOOTSTRAP_SUITE,
                    str(root),
                ],
                what="debootstrap",
                out=out,
            )
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (root / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()
        with out.activity(f"docker import {tag}"):
            tar = subprocess.Popen(
                ["tar", "--numeric-owner", "-C", str(root), "-c", "."], stdout=subprocess.PIPE
            )
            assert tar.stdout is not None
            pipe = tar.stdout
            repository, _, version = tag.rpartition(":") if ":" in tag else (tag, "", "latest")
            try:
                api.import_image(
                    src=iter(lambda: pipe.read(1024 * 1024), b""),
                    repository=repository,
                    tag=version,
                    changes=["ENV LANG=C.UTF-8", 'CMD ["/bin/sh"]'],
                    stream_src=True,
                )
            finally:
                pipe.close()
                tar.wait()
    if image_labels(api, tag) is None:
        raise RunnerBuildError(f"docker import did not produce {tag}")
    out.note(f"base image {tag} made in {time.monotonic() - started:.0f}s")


def _run_quiet(
    cmd: list[str], *, what: str, env: dict[str, str] | None = None, out: BuildOutput | None = None
) -> None:
    """Run ``cmd``, feeding its output to the status line; raise with its tail on failure."""
    tail: deque[str] = deque(maxlen=30)
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        tail.append(line.rstrip())
        if out is not None:
            out.update(line.strip()[:120])
    code = proc.wait()
    if code != 0:
        detail = "\n".join(tail)
        raise RunnerBuildError(f"{what} failed (exit {code}):\n{detail}")


# --- the local venv ---------------------------------------------------------------------------


def base_python() -> str:
    """The interpreter venvs are made from: the base of the one running us (3.11+)."""
    return str(getattr(sys, "_base_executable", None) or sys.executable)


def build_local_venv(
    target: Path, requirements: Path, wheelhouse: Path | None, out: BuildOutput
) -> bool:
    """Make ``target`` a venv with the lock installed; ``False`` when it is already current."""
    stamp = target / LOCAL_STAMP
    want = f"{requirements_hash(requirements)} python{sys.version_info[0]}.{sys.version_info[1]}"
    python = target / "bin" / "python"
    if python.exists() and stamp.is_file() and stamp.read_text().strip() == want:
        return False
    stamp.unlink(missing_ok=True)  # a half-built venv is rebuilt next time
    with out.activity(f"creating {target}"):
        _run_quiet([base_python(), "-m", "venv", "--clear", str(target)], what="python -m venv")
    source = f"wheelhouse {wheelhouse}" if wheelhouse is not None else "the package index"
    out.note(f"installing {len(read_requirements(requirements))} pinned packages from {source}")
    with out.activity(f"pip install into {target}"):
        _run_quiet(
            local_install_args(python, requirements, wheelhouse), what="pip install", out=out
        )
    stamp.write_text(want + "\n")
    return True


# --- the command ------------------------------------------------------------------------------


def build_runner_command(args: argparse.Namespace) -> int:
    """Entry point of ``python-coder build-runner``; returns the process exit code."""
    out = BuildOutput(quiet=bool(getattr(args, "quiet", False)))
    try:
        if args.local:
            return _local(args, out)
        return _image(args, out)
    except RunnerBuildError as exc:
        out.error(str(exc))
        return 1
    except KeyboardInterrupt:
        out.error("interrupted")
        return 130


def _wheelhouse_dir(args: argparse.Namespace) -> Path:
    return Path(args.wheelhouse) if args.wheelhouse else DEFAULT_WHEELHOUSE


def _local(args: argparse.Namespace, out: BuildOutput) -> int:
    target = get_settings().local_runner_dir
    requirements = RUNNER_SOURCE_DIR / "requirements.txt"
    wheelhouse = _wheelhouse_dir(args)
    pins = read_requirements(requirements)
    complete = all(wheels_for(pins, wheelhouse).values())
    started = time.monotonic()
    built = build_local_venv(target, requirements, wheelhouse if complete else None, out)
    if built:
        out.note(f"local runner venv {target} built in {time.monotonic() - started:.0f}s")
    else:
        out.note(f"local runner venv {target} is up to date")
    return 0


def _image(args: argparse.Namespace, out: BuildOutput) -> int:
    settings = get_settings()
    tag = args.image or settings.image
    if args.bootstrap_base:
        base = args.base_image or BOOTSTRAP_BASE_IMAGE
    else:
        base = args.base_image or DEFAULT_BASE_IMAGE
    source_hash = runner_source_hash()
    api = docker_api()

    current = image_labels(api, tag)
    force = bool(getattr(args, "force", False))
    if (
        not force
        and current is not None
        and current.get(SOURCE_HASH_LABEL) == source_hash
        and current.get(BASE_IMAGE_LABEL) == base
    ):
        out.note(f"{tag} is up to date (source {source_hash[:12]}, base {base}); --force rebuilds")
        return 0

    if image_labels(api, base) is None:
        if args.bootstrap_base:
            bootstrap_base_image(api, base, out)
        elif args.offline:
            raise RunnerBuildError(
                f"base image {base} is not present and an offline build does not pull; "
                "add --bootstrap-base to make one with debootstrap"
            )
        # online: the build's FROM pulls it, the one pull we allow

    wheels: list[Path] = []
    stats = None
    if args.offline:
        wheelhouse = _wheelhouse_dir(args)
        requirements = RUNNER_SOURCE_DIR / "requirements.txt"
        stats = download_wheelhouse(requirements, wheelhouse, out)
        pins = read_requirements(requirements)
        wheels = [f for fs in wheels_for(pins, wheelhouse).values() for f in fs]
        out.note(
            f"wheelhouse: {stats.wheels} wheels, {_size(stats.bytes)}, "
            f"{stats.downloaded} downloaded in {stats.seconds:.1f}s"
        )

    buildargs = {"BASE_IMAGE": base, "WHEELHOUSE": WHEELS_DIR if args.offline else ""}
    labels = {SOURCE_HASH_LABEL: source_hash}
    started = time.monotonic()
    # The context tar goes to a temp file on disk and is streamed from there to the engine.
    with tempfile.TemporaryFile(prefix="python-coder-context-") as context:
        write_context(context, RUNNER_SOURCE_DIR, wheels)
        context_bytes = context.tell()
        out.note(f"building {tag} from {base} (context {_size(context_bytes)})")
        image_id = build_image(api, context, tag, buildargs, labels, out, network=not args.offline)
    build_s = time.monotonic() - started
    size = int(api.inspect_image(tag)["Size"])
    print(
        f"built {tag} ({image_id[:19] or 'unknown id'}): {_size(size)}, build {build_s:.0f}s"
        + (f", wheel download {stats.seconds:.1f}s" if stats is not None else ""),
        file=sys.stdout,
    )
    return 0


__all__ = [
    "IMAGE_SOURCES",
    "SOURCE_HASH_LABEL",
    "Pin",
    "RunnerBuildError",
    "build_local_venv",
    "build_runner_command",
    "download_wheelhouse",
    "manylinux_platforms",
    "parse_requirements",
    "runner_source_hash",
    "wheelhouse_download_args",
    "write_context",
]
