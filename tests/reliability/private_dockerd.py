"""A Docker daemon of the test's own, to stop and restart without touching the shared one.

It has its own data root, exec root (so its own containerd), socket, pid file and cgroup
parent, no bridge and no iptables rules, in a network namespace of its own: nothing it does
reaches the host's engine or its containers. (The namespace matters: a dockerd started with
``--bridge=none`` deletes any ``docker0`` link it can see, which would cut the host engine's
default bridge from under it.) ``close`` leaves nothing behind: its containers, daemon, containerd and shim
processes, the mounts under its directory, its cgroups and the directory itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import requests
from docker.errors import DockerException

CGROUP_ROOT = Path("/sys/fs/cgroup")
MNT_DETACH = 2
LOAD_CHUNK = 1024 * 1024
BUILTIN_RUNTIMES = {"runc", "io.containerd.runc.v2", "io.containerd.runtime.v1.linux"}


def private_dockerd_problem() -> str | None:
    """``None`` when this host can run a second daemon beside its engine, else why not."""
    if os.geteuid() != 0:
        return "a private Docker daemon needs root"
    if shutil.which("dockerd") is None:
        return "no dockerd binary on PATH"
    if shutil.which("containerd") is None:
        return "no containerd binary on PATH (the private daemon starts its own)"
    if shutil.which("unshare") is None:
        return "no unshare binary on PATH (the private daemon gets its own network namespace)"
    return None


def host_runtimes() -> dict[str, dict[str, object]]:
    """The extra OCI runtimes the host's engine has registered (gVisor's runsc), as
    ``daemon.json`` declares them."""
    client = docker.APIClient(**docker.utils.kwargs_from_env(), version="1.41", timeout=30)
    try:
        runtimes: dict[str, dict[str, object]] = client.info().get("Runtimes") or {}
    finally:
        client.close()
    return {
        name: {k: v for k, v in spec.items() if k in ("path", "runtimeArgs")}
        for name, spec in runtimes.items()
        if name not in BUILTIN_RUNTIMES and spec.get("path")
    }


class PrivateDockerd:
    """``dockerd`` on ``unix://<root>/docker.sock``; ``start``, ``stop(signal)``, ``close``."""

    def __init__(self, runtimes: dict[str, dict[str, object]] | None = None) -> None:
        # Short: containerd's socket path under the exec root must stay below 108 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="dockerd-fault-"))
        self.cgroup_parent = f"/{self.root.name}"
        # Not the host's /etc/docker/daemon.json (its hosts or data root would clash); only
        # the runtimes it registers (runsc), so PYTHON_CODE_DOCKER_RUNTIME works here too.
        (self.root / "daemon.json").write_text(json.dumps({"runtimes": runtimes or {}}))
        self.log_path = self.root / "dockerd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.root}/docker.sock"

    def client(self, timeout: int = 60) -> docker.APIClient:
        return docker.APIClient(base_url=self.host, version="1.41", timeout=timeout)

    def start(self, timeout_s: float = 60) -> float:
        """Start the daemon and wait until it answers; returns the seconds that took."""
        began = time.monotonic()
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                # unshare execs dockerd in a new network namespace (same pid, no fork)
                "unshare",
                "--net",
                "--",
                "dockerd",
                f"--config-file={self.root / 'daemon.json'}",
                f"--data-root={self.root / 'data'}",
                f"--exec-root={self.root / 'exec'}",
                f"--pidfile={self.root / 'dockerd.pid'}",
                f"--host={self.host}",
                f"--cgroup-parent={self.cgroup_parent}",
                "--storage-driver=overlay2",
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
                "--userland-proxy=false",
                "--log-level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = began + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited early:\n{self.logs()[-3000:]}")
            if self.answers():
                return time.monotonic() - began
            time.sleep(0.2)
        raise RuntimeError(f"dockerd did not answer within {timeout_s} s:\n{self.logs()[-3000:]}")

    def answers(self) -> bool:
        # A plain connect first: docker-py leaks the socket of a refused connection, and a
        # SIGKILLed daemon leaves its socket file behind.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(2)
            try:
                probe.connect(str(self.root / "docker.sock"))
            except OSError:
                return False
        client = self.client(timeout=2)
        try:
            return bool(client.ping())
        except (DockerException, requests.exceptions.RequestException):
            return False
        finally:
            client.close()

    def load_image(self, image: str) -> float:
        """Copy ``image`` from the host's engine into this daemon; returns the seconds taken."""
        began = time.monotonic()
        source = docker.APIClient(**docker.utils.kwargs_from_env(), version="1.41", timeout=600)
        target = self.client(timeout=600)
        try:
            target.load_image(source.get_image(image, chunk_size=LOAD_CHUNK))
            target.inspect_image(image)  # raises when the load did not take
        finally:
            source.close()
            target.close()
        return time.monotonic() - began

    def shims(self) -> list[int]:
        """Shim processes of this daemon's containers (each outlives a killed daemon)."""
        return [
            pid
            for pid, args in self._processes()
            if os.path.basename(args[0]).startswith("containerd-shim")
        ]

    def containerd_pids(self) -> list[int]:
        """The daemon's own containerd (not the shims, which outlive both)."""
        return [pid for pid, args in self._processes() if os.path.basename(args[0]) == "containerd"]

    def stop(self, sig: signal.Signals = signal.SIGTERM, *, with_containerd: bool = False) -> None:
        """Send ``sig`` to the daemon (and its containerd) and wait until it has exited."""
        assert self.proc is not None
        victims = self.containerd_pids() if with_containerd else []
        self.proc.send_signal(sig)
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        self.proc.wait(60)
        deadline = time.monotonic() + 30
        while self.containerd_pids() and time.monotonic() < deadline:
            time.sleep(0.1)

    def containers(self) -> list[dict[str, object]]:
        client = self.client()
        try:
            listed: list[dict[str, object]] = client.containers(all=True)
            return listed
        finally:
            client.close()

    def cgroup_tasks(self) -> list[int]:
        """Processes still in a container cgroup under this daemon's parent (any controller)."""
        pids: set[int] = set()
        for parent in CGROUP_ROOT.glob(f"*{self.cgroup_parent}"):
            for procs in parent.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in procs.read_text().split())
        return sorted(pids)

    def mounts(self) -> list[str]:
        """Mount points under this daemon's directory, deepest first."""
        found = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point == str(self.root) or point.startswith(f"{self.root}/"):
                found.append(point)
        return sorted(found, key=len, reverse=True)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        """Remove the containers, stop the daemon, and clear every trace of it."""
        if self.proc is not None and self.proc.poll() is None and self.answers():
            client = self.client()
            try:
                for c in client.containers(all=True):
                    with contextlib.suppress(DockerException, requests.exceptions.RequestException):
                        client.remove_container(c["Id"], force=True, v=True)
            finally:
                client.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        # Whatever survived (shims and their containers after a SIGKILL): by pid, ours only.
        for _ in range(50):
            strays = [pid for pid, _ in self._processes()] + self.cgroup_tasks()
            if not strays:
                break
            for pid in strays:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        libc = ctypes.CDLL(None, use_errno=True)
        for point in self.mounts():
            libc.umount2(point.encode(), MNT_DETACH)
        for parent in CGROUP_ROOT.glob(f"*{self.cgroup_parent}"):
            for d in sorted(_dirs(parent), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    d.rmdir()
        shutil.rmtree(self.root, ignore_errors=True)

    def _processes(self) -> Iterator[tuple[int, list[str]]]:
        """Live processes whose command line names this daemon's directory."""
        marker = str(self.root)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            decoded = [a.decode(errors="replace") for a in args if a]
            if decoded and any(marker in a for a in decoded):
                yield int(entry.name), decoded


def _dirs(root: Path) -> list[Path]:
    return [root, *(p for p in root.rglob("*") if p.is_dir())]
