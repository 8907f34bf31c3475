"""The docker adapter: one fresh, locked-down container per run, spoken to over attach only.

Lifecycle by hand (``containers.run()`` would pull missing images and wait without a timeout):
create -> attach stdin/stdout/stderr -> start -> send the request frame and the input files on
stdin, then half-close (a second thread) while reading the multiplexed stream (stdout carries
the result frame and the artifacts, stderr the harness's diagnostics) -> wait -> inspect ->
remove, always. Blocking throughout: call it from a worker thread, never the event loop.

No ``docker exec`` (processes it starts escape the pids limit), no bind mounts, no archive
copies: the work dir is a tmpfs that lives and dies with the container.

``/work`` and ``/tmp`` are mounted ``noexec,nosuid,nodev``: scripts are Python source read by
the interpreter, so nothing legitimate needs to execute a file from them, and it stops a
script from dropping and running a binary. tmpfs pages are charged to the container's memory
limit, so the container gets ``memory_bytes`` plus the size of its inputs: uploads do not eat
the script's budget; files the script produces do share it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import LogConfig, Ulimit

from runner_image.protocol import MAGIC, ProtocolError, copy_exact, encode_header
from service.errors import EngineUnavailable, ExecutorError, RunnerImageMissing
from service.executors.base import (
    CONTAINER_LABEL,
    JOB_LABEL,
    Executor,
    InputFile,
    ProducedFile,
    Readiness,
    RunRequest,
    RunResult,
)
from service.executors.results import (
    read_result_header,
    receive_artifacts,
    result_from_header,
)
from service.executors.seccomp_profile import runner_seccomp_profile
from service.settings import Settings

log = logging.getLogger(__name__)

# Docker 20.10 speaks API 1.41; pinning it saves a version round trip per client.
API_VERSION = "1.41"
# Time allowed on top of the script's timeout: interpreter start, pre-imports, collection.
GRACE_S = 10.0
# Sending the request: generous, but a wedged engine must not hang a worker thread forever.
SEND_BASE_S = 30.0
ASSUMED_BYTES_PER_S = 50 * 1024 * 1024
MAX_DIAGNOSTICS = 64 * 1024
PROTOCOL_LABEL = "io.python-coder.protocol"
RUNNER_UID = 10001
# What the harness imports before it reads the request. That only pays when a container is
# started ahead of its request (a warm pool); in a cold run it delays every script by ~0.4 s
# for modules most scripts import themselves anyway, so cold runs import nothing ahead.
COLD_PREIMPORT = ""

_STREAM_HEADER = struct.Struct(">BxxxI")
_NAME_OK = re.compile(r"[^a-zA-Z0-9_.-]")


@dataclass
class Phases:
    """Wall time of each lifecycle step, seconds (logged per run, returned by ``run_timed``)."""

    create: float = 0.0
    start: float = 0.0
    run: float = 0.0  # send the request until the result stream ends
    collect: float = 0.0  # wait + inspect
    remove: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "create": round(self.create, 4),
            "start": round(self.start, 4),
            "run": round(self.run, 4),
            "collect": round(self.collect, 4),
            "remove": round(self.remove, 4),
        }


class StreamTimeout(Exception):
    """The container kept the stream open past the deadline."""


class Demux:
    """Reads docker's multiplexed attach stream: stdout on demand, stderr kept (capped)."""

    def __init__(self, sock: socket.socket, deadline: Callable[[], float]) -> None:
        self.sock = sock
        self.deadline = deadline  # asked again before every read: it moves once sending ends
        self.pending = bytearray()  # stdout bytes read but not yet consumed
        self.diagnostics = bytearray()
        self.diagnostics_truncated = False
        self.eof = False

    def _recv_exact(self, n: int) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            remaining = self.deadline() - time.monotonic()
            if remaining <= 0:
                raise StreamTimeout
            # Short slices, so a deadline that moves (sending ended) is noticed.
            self.sock.settimeout(min(remaining, 0.5))
            try:
                chunk = self.sock.recv(n - len(buf))
            except TimeoutError:
                continue
            if not chunk:
                if buf:
                    raise ProtocolError("attach stream ended inside a frame")
                return None
            buf += chunk
        return bytes(buf)

    def _next_stdout_frame(self) -> bool:
        """Read frames until one carries stdout; False at end of stream."""
        while not self.eof:
            header = self._recv_exact(_STREAM_HEADER.size)
            if header is None:
                self.eof = True
                return False
            stream, size = _STREAM_HEADER.unpack(header)
            body = self._recv_exact(size) if size else b""
            if body is None:
                raise ProtocolError("attach stream ended inside a frame")
            if stream == 1:
                self.pending += body
                return True
            if stream == 2:
                room = MAX_DIAGNOSTICS - len(self.diagnostics)
                self.diagnostics += body[: max(room, 0)]
                self.diagnostics_truncated |= len(body) > room
        return False

    def read_stdout(self, n: int) -> bytes:
        """Up to ``n`` stdout bytes; ``b""`` only at the end of the stream."""
        while not self.pending:
            if not self._next_stdout_frame():
                return b""
        chunk = bytes(self.pending[:n])
        del self.pending[:n]
        return chunk

    def drain(self) -> None:
        """Read to the end so stderr diagnostics are complete (stdout past the frame is junk)."""
        while self._next_stdout_frame():
            self.pending.clear()

    def diagnostics_text(self) -> str:
        return bytes(self.diagnostics).decode("utf-8", errors="replace")


class Attachment:
    """The hijacked attach connection: the raw socket plus the HTTP response that owns it.

    ``APIClient.attach_socket`` hands out only the socket, and closing that under the response
    makes the response's finalizer raise later. Closing the response first, then the socket,
    leaves neither an fd nor an unraisable exception behind.
    """

    def __init__(self, client: docker.APIClient, container_id: str) -> None:
        self.response = client.post(
            client._url("/containers/{0}/attach", container_id),
            None,
            params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1},
            stream=True,
            headers={"Connection": "Upgrade", "Upgrade": "tcp"},
        )
        client._raise_for_status(self.response)
        raw = self.response.raw._fp.fp.raw  # socket.SocketIO under http.client's reader
        sock = getattr(raw, "_sock", None)
        if not isinstance(sock, socket.socket):
            self.response.close()
            raise ExecutorError(f"unsupported attach transport {type(raw).__name__}")
        self.sock = sock

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.response.close()
        with contextlib.suppress(OSError):
            self.sock.close()


class Sender(threading.Thread):
    """Writes the request frame and the input files, then half-closes stdin.

    It runs beside the reader: a harness that stops reading early (a bad name, a full work
    dir) answers and exits, and the daemon then stops taking stdin; writing and reading in
    one thread would wait on each other until the deadline. It writes through its own socket
    object (same connection) so its timeouts do not disturb the reader's.
    """

    def __init__(
        self, sock: socket.socket, header: bytes, inputs: tuple[InputFile, ...], deadline: float
    ) -> None:
        super().__init__(name="pyc-docker-send", daemon=True)
        self.sock = sock.dup()
        self.header = header
        self.inputs = inputs
        self.deadline = deadline
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self.completed = False
        self.finished_at: float | None = None  # monotonic time the sending ended, either way

    def _write(self, data: bytes) -> None:
        if self.stopping.is_set():
            raise InterruptedError("the runner has answered")
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("sending the request took too long")
        self.sock.settimeout(remaining)
        self.sock.sendall(data)

    def run(self) -> None:
        try:
            self._write(self.header)
            for item in self.inputs:
                with item.path.open("rb") as f:
                    copy_exact(f.read, self._write, item.size)
            self.completed = True
        except BaseException as exc:  # reported by finish(); the thread must not die loudly
            self.error = exc
        finally:
            # EOF for the harness, also after a failure, so it never waits for more bytes.
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)
            self.finished_at = time.monotonic()

    def finish(self) -> None:
        """Stop sending (the answer is in) and release the thread and its socket."""
        self.stopping.set()
        self.join(0.5)
        if self.is_alive():  # blocked in sendall on a runner that stopped reading
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.join(GRACE_S)
        self.sock.close()


def container_name(job_id: str) -> str:
    return f"pyc-{_NAME_OK.sub('-', job_id)[:12]}-{secrets.token_hex(3)}"


class DockerExecutor(Executor):
    """Runs each script in a new container from the runner image, removed afterwards."""

    name = "docker"

    def __init__(self, settings: Settings, client: docker.APIClient | None = None) -> None:
        self.settings = settings
        self.image = settings.image
        self.runtime = settings.docker_runtime
        self._client = client
        self._owns_client = client is None
        self.preimport = COLD_PREIMPORT

    # ------------------------------------------------------------------------- plumbing

    @property
    def client(self) -> docker.APIClient:
        if self._client is None:
            try:
                self._client = docker.APIClient(
                    **docker.utils.kwargs_from_env(), version=API_VERSION, timeout=60
                )
            except DockerException as exc:
                raise EngineUnavailable(f"cannot reach the Docker engine: {exc}") from exc
        return self._client

    def close(self) -> None:
        if self._client is not None and self._owns_client:
            self._client.close()
            self._client = None

    @property
    def isolation(self) -> tuple[str, ...]:
        return (
            "docker",
            "network:none",
            "read-only-rootfs",
            "cap-drop:ALL",
            "no-new-privileges",
            # gVisor (runsc) takes the profile but does not apply it: its own kernel is the wall.
            *(("seccomp",) if self.runtime != "runsc" else ()),
            "non-root",
            "pids",
            "memory",
            f"runtime:{self.runtime or 'runc'}",
        )

    def _translate(self, exc: Exception, doing: str) -> Exception:
        if isinstance(exc, ImageNotFound) or (
            isinstance(exc, NotFound) and "image" in str(exc).lower()
        ):
            return RunnerImageMissing(
                f"runner image {self.image} not found: build it with `python-coder build-runner` "
                "(images are never pulled)"
            )
        if isinstance(exc, requests.exceptions.ConnectionError | ConnectionError):
            return EngineUnavailable(f"Docker engine unreachable while {doing}: {exc}")
        if isinstance(exc, requests.exceptions.Timeout):
            return EngineUnavailable(f"Docker engine did not answer in time while {doing}")
        if isinstance(exc, APIError) and exc.is_server_error():
            return ExecutorError(f"Docker engine failed while {doing}: {exc.explanation or exc}")
        if isinstance(exc, DockerException | requests.exceptions.RequestException):
            return ExecutorError(f"Docker error while {doing}: {exc}")
        return exc

    def _host_config(self, request: RunRequest) -> dict[str, Any]:
        limits = request.limits
        mount = "rw,nosuid,nodev,noexec"
        # Docker copies the image's directory mode onto a tmpfs but not its owner, so the
        # owner is set here: the work dir does not depend on how the image made /work.
        work = f"{mount},uid={RUNNER_UID},gid={RUNNER_UID},size={limits.workdir_bytes}"
        memory = limits.memory_bytes + sum(f.size for f in request.inputs)
        return self.client.create_host_config(
            network_mode="none",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges", "seccomp=" + runner_seccomp_profile()],
            read_only=True,
            tmpfs={"/work": work, "/tmp": f"{mount},mode=1777,size=64m"},
            pids_limit=limits.pids,
            mem_limit=memory,
            memswap_limit=memory,
            nano_cpus=int(limits.cpus * 1e9),
            ulimits=[
                Ulimit(name="nofile", soft=limits.nofile, hard=limits.nofile),
                Ulimit(name="fsize", soft=limits.fsize_bytes, hard=limits.fsize_bytes),
                Ulimit(name="core", soft=0, hard=0),
            ],
            runtime=self.runtime,
            log_config=LogConfig(type="none"),
        )

    def _request_header(self, request: RunRequest) -> bytes:
        wire = request.limits.to_wire()
        wire["memory_bytes"] = None  # the memory cgroup does it; RLIMIT_AS would also count
        wire["nproc"] = None  # mapped pages and is per-uid host-wide: pids cgroup instead
        return encode_header(
            {
                "code": request.code,
                "files": [{"name": f.name, "size": f.size} for f in request.inputs],
                "timeout_s": request.limits.timeout_s,
                "limits": wire,
            }
        )

    # ------------------------------------------------------------------------- the port

    def run(self, request: RunRequest) -> RunResult:
        return self.run_timed(request)[0]

    def run_timed(self, request: RunRequest) -> tuple[RunResult, dict[str, float]]:
        """``run`` plus the wall time of each lifecycle phase."""
        began = time.monotonic()
        phases = Phases()
        container_id: str | None = None
        name = container_name(request.job_id)
        try:
            mark = time.monotonic()
            try:
                created = self.client.create_container(
                    self.image,
                    name=name,
                    user=f"{RUNNER_UID}:{RUNNER_UID}",
                    working_dir="/work",
                    stdin_open=True,
                    tty=False,
                    environment={
                        "PYC_PREIMPORT": self.preimport,
                        "HOME": "/tmp",
                        "MPLBACKEND": "Agg",
                        "LANG": "C.UTF-8",
                    },
                    labels={CONTAINER_LABEL: "1", JOB_LABEL: request.job_id},
                    stop_signal="SIGKILL",
                    host_config=self._host_config(request),
                )
                container_id = created["Id"]
                # Attached before start, so not a byte of output can be missed.
                attachment = Attachment(self.client, container_id)
            except (DockerException, requests.exceptions.RequestException) as exc:
                raise self._translate(exc, "creating the container") from exc
            phases.create = time.monotonic() - mark
            try:
                result = self._drive(request, container_id, attachment.sock, phases)
            finally:
                attachment.close()
        finally:
            if container_id is not None:
                mark = time.monotonic()
                self._remove(container_id)
                phases.remove = time.monotonic() - mark
        wall = time.monotonic() - began
        timings = phases.as_dict()
        log.info(
            "docker run %s: exit=%s timed_out=%s oom=%s wall=%.3fs phases=%s",
            request.job_id,
            result.exit_code,
            result.timed_out,
            result.oom_killed,
            wall,
            json.dumps(timings),
        )
        return replace(result, wall_s=round(wall, 4)), timings

    def _drive(
        self, request: RunRequest, container_id: str, sock: socket.socket, phases: Phases
    ) -> RunResult:
        mark = time.monotonic()
        try:
            self.client.start(container_id)
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise self._translate(exc, "starting the container") from exc
        phases.start = time.monotonic() - mark

        mark = time.monotonic()
        limits = request.limits
        send_budget = SEND_BASE_S + sum(f.size for f in request.inputs) / ASSUMED_BYTES_PER_S
        sender = Sender(sock, self._request_header(request), request.inputs, mark + send_budget)
        # The script's clock starts when the harness has the whole request.
        run_budget = (
            limits.timeout_s + GRACE_S + limits.max_artifacts_total_bytes / ASSUMED_BYTES_PER_S
        )

        def read_deadline() -> float:
            sent = sender.finished_at
            return (sent if sent is not None else sender.deadline) + run_budget

        demux = Demux(sock, read_deadline)
        header: dict[str, Any] | None = None
        produced: tuple[ProducedFile, ...] = ()
        stream_timed_out = False
        problem: str | None = None
        sender.start()
        try:
            header = read_result_header(demux.read_stdout, request)
            # Read apart from the header: bad files after a good header are an unreadable
            # result (below), never mistaken for a runner that died of OOM before answering.
            produced = receive_artifacts(header, demux.read_stdout, request)
            demux.drain()
        except StreamTimeout:
            stream_timed_out = True
        except ProtocolError as exc:
            problem = str(exc)
            with contextlib.suppress(StreamTimeout, ProtocolError, OSError):
                demux.drain()
        except OSError as exc:
            problem = f"attach stream failed: {exc}"
        finally:
            sender.finish()
        if isinstance(sender.error, ProtocolError):
            raise ExecutorError(f"an input file changed while being sent: {sender.error}")
        if sender.error is not None and not isinstance(sender.error, InterruptedError):
            log.info("sending the request to %s stopped: %s", request.job_id, sender.error)
        phases.run = time.monotonic() - mark

        mark = time.monotonic()
        if stream_timed_out:
            self._kill(container_id)
        state = self._finish(container_id)
        phases.collect = time.monotonic() - mark

        oom = bool(state.get("OOMKilled"))
        diagnostics = demux.diagnostics_text()
        if diagnostics:
            log.debug("harness diagnostics for %s: %s", request.job_id, diagnostics[-4000:])
        if header is None:
            if stream_timed_out:
                return RunResult(
                    engine=self.name,
                    timed_out=True,
                    isolation=self.isolation,
                    error=f"timed out after {limits.timeout_s:g} s (runner did not answer)",
                )
            if oom:
                return self._oom_result(request, RunResult(engine=self.name))
            detail = problem or (
                "no result frame" if sender.completed else f"request not sent: {sender.error}"
            )
            raise ExecutorError(
                f"runner gave no result ({detail}; container exit {state.get('ExitCode')})",
                detail={"diagnostics": diagnostics[-4000:]},
            )
        if problem is not None:
            raise ExecutorError(f"runner result unreadable: {problem}")
        if stream_timed_out:  # the header came, the produced files did not
            raise ExecutorError("runner stalled while sending the produced files")
        result = result_from_header(
            header,
            engine=self.name,
            artifacts=produced,
            isolation=self.isolation,
            limits=request.limits,
        )
        # Docker 20.10 on cgroup v1 sets OOMKilled whenever the kernel OOM-killed anything in
        # the container, also when only the forked script died and the harness (PID 1)
        # answered: that flag is the authority, the harness's SIGKILL report only a hint.
        # A script that survived the loss of one of its own subprocesses still succeeded.
        if oom and result.exit_code != 0:
            return self._oom_result(request, result)
        if header.get("signal") == 9 and not result.timed_out:
            result = replace(result, error="killed (SIGKILL); the engine reported no OOM kill")
        return result

    def _oom_result(self, request: RunRequest, result: RunResult) -> RunResult:
        limit_mb = request.limits.memory_bytes // (1024 * 1024)
        return replace(
            result,
            oom_killed=True,
            isolation=self.isolation,
            exit_code=result.exit_code if result.exit_code is not None else -9,
            error=f"out of memory (limit {limit_mb} MB)",
        )

    def _kill(self, container_id: str) -> None:
        with contextlib.suppress(DockerException, requests.exceptions.RequestException):
            self.client.kill(container_id)

    def _finish(self, container_id: str) -> dict[str, Any]:
        """Wait for the container to stop (killing it if it lingers) and return its State."""
        try:
            self.client.wait(container_id, timeout=GRACE_S)
        except (DockerException, requests.exceptions.RequestException):
            self._kill(container_id)
            with contextlib.suppress(DockerException, requests.exceptions.RequestException):
                self.client.wait(container_id, timeout=GRACE_S)
        try:
            state: dict[str, Any] = self.client.inspect_container(container_id)["State"]
        except NotFound:
            log.warning("container %s vanished before it was inspected", container_id[:12])
            return {}
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise self._translate(exc, "inspecting the container") from exc
        return state

    def _remove(self, container_id: str) -> None:
        try:
            self.client.remove_container(container_id, force=True, v=True)
        except NotFound:
            pass
        except APIError as exc:
            if exc.status_code != 409 or "in progress" not in str(exc):
                log.error("could not remove container %s: %s", container_id[:12], exc)
                return
            # Someone else (an orphan sweep) is removing it: wait until it is really gone.
            give_up = time.monotonic() + GRACE_S
            while time.monotonic() < give_up:
                try:
                    self.client.inspect_container(container_id)
                except NotFound:
                    return
                except (DockerException, requests.exceptions.RequestException):
                    return
                time.sleep(0.1)
        except (DockerException, requests.exceptions.RequestException) as exc:
            # Leave it to remove_orphans() at the next start rather than mask the result.
            log.error("could not remove container %s: %s", container_id[:12], exc)

    # ------------------------------------------------------------------------- readiness

    def readiness(self) -> Readiness:
        checks: dict[str, Any] = {"image": self.image, "runtime": self.runtime or "runc"}
        try:
            self.client.ping()
            checks["engine"] = "reachable"
        except (DockerException, requests.exceptions.RequestException, EngineUnavailable) as exc:
            return Readiness(False, self.name, f"Docker engine unreachable: {exc}", checks)
        try:
            image = self.client.inspect_image(self.image)
        except ImageNotFound:
            checks["image_present"] = False
            return Readiness(
                False,
                self.name,
                f"runner image {self.image} not found: build it with `python-coder build-runner`",
                checks,
            )
        except (DockerException, requests.exceptions.RequestException) as exc:
            return Readiness(False, self.name, f"cannot inspect the runner image: {exc}", checks)
        checks["image_present"] = True
        checks["image_id"] = image.get("Id", "")[:19]
        labels = (image.get("Config") or {}).get("Labels") or {}
        wanted = MAGIC.decode("ascii")
        if PROTOCOL_LABEL in labels:
            checks["protocol"] = labels[PROTOCOL_LABEL]
            if labels[PROTOCOL_LABEL] != wanted:
                return Readiness(
                    False,
                    self.name,
                    f"runner image speaks protocol {labels[PROTOCOL_LABEL]}, gateway {wanted}: "
                    "rebuild it with `python-coder build-runner`",
                    checks,
                )
        detail = "docker engine and runner image ready"
        current = _image_is_current(labels)
        if current is not None:
            checks["image_current"] = current
            if not current:
                detail += " (image built from older runner sources: `python-coder build-runner`)"
        return Readiness(True, self.name, detail, checks)


def _image_is_current(labels: dict[str, str]) -> bool | None:
    """Does the image's source-hash label match the runner sources here? None: cannot tell."""
    try:
        from service.runner_build import SOURCE_HASH_LABEL, runner_source_hash

        if SOURCE_HASH_LABEL not in labels:
            return None
        return bool(labels[SOURCE_HASH_LABEL] == runner_source_hash())
    except (ImportError, OSError):
        return None


def remove_orphans(
    client: docker.APIClient,
    only: dict[str, str] | None = None,
    live_for_s: float = 900.0,
) -> list[str]:
    """Remove containers carrying our label that no run can still own; returns their names.

    Stopped ones always go. A created or running one goes only when older than
    ``live_for_s`` (longer than any run may take), so a gateway that starts beside another one
    on the same engine, or a test suite beside another, does not kill runs in flight. A crashed
    gateway's runs stop by themselves: the harness ends when its stdin closes or its timeout
    hits. ``only`` narrows the selection to containers that also carry these labels.
    """
    removed: list[str] = []
    selectors = [CONTAINER_LABEL] + [f"{k}={v}" for k, v in (only or {}).items()]
    try:
        containers = client.containers(all=True, filters={"label": selectors})
    except (DockerException, requests.exceptions.RequestException) as exc:
        raise EngineUnavailable(f"cannot list containers: {exc}") from exc
    now = time.time()
    for c in containers:
        names: list[str] = c.get("Names") or [c["Id"][:12]]
        live = c.get("State") in ("created", "running", "paused", "restarting")
        if live and now - float(c.get("Created") or 0) < live_for_s:
            continue
        try:
            client.remove_container(c["Id"], force=True, v=True)
        except NotFound:
            continue
        except (DockerException, requests.exceptions.RequestException) as exc:
            log.error("could not remove orphan %s: %s", names[0], exc)
            continue
        removed.append(names[0].lstrip("/"))
    return removed
