"""The docker engine: each sandbox is a fresh, locked-down container, spoken to over attach.

Provisioning (``DockerExecutor.provision``) creates the container, attaches to its
stdin/stdout/stderr, starts it and waits for the harness's ready frame: from then on the
container only waits for its one request. ``DockerSandbox.run`` sends the request frame and
the input files on stdin (a second thread) while reading the result frame and the artifacts
from stdout, over the already-open attach socket: a successful run makes no engine API call,
so a pooled sandbox answers in milliseconds. A failed run asks the engine why (OOM kill,
exit state). ``dispose`` removes the container. Blocking throughout: call it from a worker
thread, never the event loop. ``containers.run()`` is not used: it pulls missing images and
waits without a timeout.

No ``docker exec`` (processes it starts escape the pids limit), no bind mounts, no archive
copies: the work dir is a tmpfs that lives and dies with the container. ``stdin_once`` makes
the engine close the harness's stdin when the gateway's attach connection drops, so a pooled
container of a gateway that was SIGKILLed ends by itself and is swept as stopped.

``/work`` and ``/tmp`` are mounted ``noexec,nosuid,nodev``: scripts are Python source read by
the interpreter, so nothing legitimate needs to execute a file from them, and it stops a
script from dropping and running a binary. tmpfs pages are charged to the container's memory
limit, so the container gets ``memory_bytes`` plus room for its inputs (their size in a cold
run, the pool's allowance in a pooled one): uploads do not eat the script's budget; files
the script produces do share it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import LogConfig, Ulimit

from runner_image.protocol import MAGIC, ProtocolError, read_header
from service.errors import EngineUnavailable, ExecutorError, PythonCoderError, RunnerImageMissing
from service.executors.base import (
    BACKGROUND_CPU_SHARES,
    CONTAINER_LABEL,
    DEFAULT_CPU_SHARES,
    GATEWAY_ID,
    GATEWAY_LABEL,
    JOB_LABEL,
    Executor,
    ProducedFile,
    Readiness,
    RunLimits,
    RunRequest,
    RunResult,
    Sandbox,
)
from service.executors.docker.attach import (
    GRACE_S,
    Attachment,
    Demux,
    Sender,
    StreamTimeout,
    peer_closed,
)
from service.executors.docker.orphans import remove_orphans
from service.executors.docker.seccomp_profile import runner_seccomp_profile
from service.executors.request import encode_request
from service.executors.results import read_result_header, receive_artifacts, result_from_header
from service.settings import Settings

log = logging.getLogger(__name__)

# Docker 20.10 speaks API 1.41; pinning it saves a version round trip per client.
API_VERSION = "1.41"
# Sending the request: generous, but a wedged engine must not hang a worker thread forever.
SEND_BASE_S = 30.0
ASSUMED_BYTES_PER_S = 50 * 1024 * 1024
# Container start until the harness says it is ready (its pre-imports done); gVisor is slow.
READY_TIMEOUT_S = 60.0
PROTOCOL_LABEL = "io.python-coder.protocol"
SANDBOX_LABEL = "io.python-coder.sandbox"
RUNNER_UID = 10001
# Seconds a client should wait before retrying when the engine does not answer (a daemon
# restart takes a few seconds; the pool refills by itself once it is back).
ENGINE_RETRY_AFTER_S = 5

_NAME_OK = re.compile(r"[^a-zA-Z0-9_.-]")


@dataclass
class Phases:
    """Wall time of each lifecycle step, seconds (logged per run)."""

    create: float = 0.0
    start: float = 0.0  # start + the harness's ready frame
    run: float = 0.0  # send the request until the result stream ends
    collect: float = 0.0  # asking the engine how a failed run ended

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in self.__dict__.items()}


def container_name(tag: str) -> str:
    return f"pyc-{_NAME_OK.sub('-', tag)[:12]}-{secrets.token_hex(3)}"


class DockerSandbox(Sandbox):
    """A started runner container whose harness waits for its request on stdin."""

    engine = "docker"

    def __init__(
        self,
        executor: DockerExecutor,
        container_id: str,
        name: str,
        attachment: Attachment,
        demux: Demux,
        limits: RunLimits,
        input_room: int,
        phases: Phases,
    ) -> None:
        super().__init__()
        self.executor = executor
        self.container_id = container_id
        self.ident = name
        self.attachment = attachment
        self.demux = demux
        self.limits = limits
        self.input_bytes = input_room
        self.phases = phases
        self._disposed = False

    def alive(self) -> bool:
        return not self._disposed and not peer_closed(self.attachment.sock)

    def kill(self) -> None:
        self.executor.kill(self.container_id)

    def dispose(self) -> None:
        if self._disposed:
            return
        self._disposed = True
        self.attachment.close()
        self.executor.remove(self.container_id)

    def wire_limits(self, limits: RunLimits) -> dict[str, Any]:
        # As encode_request here: the container's cgroup holds memory and tasks.
        return {**limits.to_wire(), "memory_bytes": None, "nproc": None}

    def send_bytes(self, data: bytes, deadline: float) -> None:
        sock = self.attachment.sock
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        sock.sendall(data)

    def reader(self, deadline: float) -> Callable[[int], bytes]:
        self.demux.deadline = lambda: deadline
        demux = self.demux

        def read(n: int) -> bytes:
            try:
                return demux.read_stdout(n)
            except StreamTimeout as exc:
                raise TimeoutError("the session's runner did not answer in time") from exc

        return read

    def run(self, request: RunRequest) -> RunResult:
        began = time.monotonic()
        result = self._drive(request)
        wall = time.monotonic() - began
        log.info(
            "docker run %s in %s: exit=%s timed_out=%s oom=%s wall=%.3fs phases=%s",
            request.job_id,
            self.ident,
            result.exit_code,
            result.timed_out,
            result.oom_killed,
            wall,
            json.dumps(self.phases.as_dict()),
        )
        return replace(result, wall_s=round(wall, 4))

    def _drive(self, request: RunRequest) -> RunResult:
        mark = time.monotonic()
        limits = request.limits
        isolation = self.executor.isolation()
        send_budget = SEND_BASE_S + sum(f.size for f in request.inputs) / ASSUMED_BYTES_PER_S
        header_frame = encode_request(request, memory_bytes=None, nproc=None)
        sender = Sender(self.attachment.sock, header_frame, request.inputs, mark + send_budget)
        # The script's clock starts when the harness has the whole request.
        run_budget = (
            limits.timeout_s + GRACE_S + limits.max_artifacts_total_bytes / ASSUMED_BYTES_PER_S
        )

        def read_deadline() -> float:
            sent = sender.finished_at
            return (sent if sent is not None else sender.deadline) + run_budget

        demux = self.demux
        demux.deadline = read_deadline
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
        except StreamTimeout:
            stream_timed_out = True
        except ProtocolError as exc:
            problem = str(exc)
        except OSError as exc:
            problem = f"attach stream failed: {exc}"
        finally:
            sender.finish()
        if isinstance(sender.error, ProtocolError):
            raise ExecutorError(f"an input file changed while being sent: {sender.error}")
        if sender.error is not None and not isinstance(sender.error, InterruptedError):
            log.info("sending the request to %s stopped: %s", request.job_id, sender.error)
        self.phases.run = time.monotonic() - mark

        result: RunResult | None = None
        if header is not None and problem is None and not stream_timed_out:
            result = result_from_header(
                header,
                engine=self.engine,
                artifacts=produced,
                isolation=isolation,
                limits=request.limits,
            )
            if result.exit_code == 0:
                return result  # the fast path: no engine API call at all
        # Something went wrong: ask the engine how the container ended.
        mark = time.monotonic()
        if stream_timed_out:
            self.executor.kill(self.container_id)
        with contextlib.suppress(StreamTimeout, ProtocolError, OSError):
            demux.deadline = lambda: time.monotonic() + 2.0
            demux.drain()
        state = self.executor.final_state(self.container_id)
        self.phases.collect = time.monotonic() - mark
        oom = bool(state.get("OOMKilled"))
        diagnostics = demux.diagnostics_text()
        if diagnostics:
            log.debug("harness diagnostics for %s: %s", request.job_id, diagnostics[-4000:])
        if header is None:
            if stream_timed_out:
                return RunResult(
                    engine=self.engine,
                    timed_out=True,
                    isolation=isolation,
                    error=f"timed out after {limits.timeout_s:g} s (runner did not answer)",
                )
            if oom:
                return _oom_result(request, RunResult(engine=self.engine), isolation)
            # The sandbox died without answering (a fork bomb under gVisor, a killed harness):
            # a failed run with the reason, not a gateway error.
            detail = problem or (
                "no result frame" if sender.completed else f"request not sent: {sender.error}"
            )
            log.warning(
                "runner of %s gave no result (%s; container exit %s): %s",
                request.job_id,
                detail,
                state.get("ExitCode"),
                diagnostics[-2000:],
            )
            return RunResult(
                engine=self.engine,
                isolation=isolation,
                exit_code=None,
                error=(
                    f"the sandbox died before it reported a result (container exit "
                    f"{state.get('ExitCode')}); the script may have exhausted its process, "
                    "memory or file limits"
                ),
            )
        if problem is not None:
            raise self.executor.down_or(
                ExecutorError(f"runner result unreadable: {problem}"), "reading the result"
            )
        if stream_timed_out or result is None:  # the header came, the produced files did not
            raise self.executor.down_or(
                ExecutorError("runner stalled while sending the produced files"),
                "reading the produced files",
            )
        # Docker 20.10 on cgroup v1 sets OOMKilled whenever the kernel OOM-killed anything in
        # the container, also when only the forked script died and the harness (PID 1)
        # answered: that flag is the authority, the harness's SIGKILL report only a hint.
        # A script that survived the loss of one of its own subprocesses still succeeded.
        if oom and result.exit_code != 0:
            return _oom_result(request, result, isolation)
        if header.get("signal") == 9 and not result.timed_out:
            result = replace(result, error="killed (SIGKILL); the engine reported no OOM kill")
        return result


def engine_down(message: str) -> EngineUnavailable:
    """The engine does not answer: a 503 that tells the client when to come back."""
    return EngineUnavailable(
        f"{message}; the engine may be restarting: retry in {ENGINE_RETRY_AFTER_S} s",
        retry_after_s=ENGINE_RETRY_AFTER_S,
    )


def _oom_result(request: RunRequest, result: RunResult, isolation: tuple[str, ...]) -> RunResult:
    limit_mb = request.limits.memory_bytes // (1024 * 1024)
    return replace(
        result,
        oom_killed=True,
        isolation=isolation,
        exit_code=result.exit_code if result.exit_code is not None else -9,
        error=f"out of memory (limit {limit_mb} MB)",
    )


class DockerExecutor(Executor):
    """Provisions runner containers from ``settings.image``; each serves one request."""

    name = "docker"
    charges_inputs_to_memory = True

    def __init__(self, settings: Settings, client: docker.APIClient | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.image = settings.image
        self.runtime = settings.docker_runtime
        self._runtime_seccomp: bool | None = None  # learnt from the engine on first need
        self._client = client
        self._owns_client = client is None
        # Containers whose removal failed because the engine did not answer (stopped,
        # restarting): removed once it answers again, by whichever call notices first.
        self._unremoved: set[str] = set()
        self._unremoved_lock = threading.Lock()

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

    def isolation(self) -> tuple[str, ...]:
        return (
            "docker",
            "network:none",
            "read-only-rootfs",
            "cap-drop:ALL",
            "no-new-privileges",
            *(("seccomp",) if self.applies_seccomp() else ()),
            "non-root",
            "pids",
            "memory",
            f"runtime:{self.runtime or 'runc'}",
        )

    def applies_seccomp(self) -> bool:
        """Does the runtime enforce the runner's seccomp profile? OCI runtimes (runc) do.
        gVisor (runsc) takes the profile but applies it inside its own kernel only when
        registered with ``--oci-seccomp`` (``.ci/install-runsc.sh`` does); without it gVisor's
        kernel is the only wall, and results say so."""
        if self.runtime != "runsc":
            return True
        if self._runtime_seccomp is None:
            try:
                runtimes = self.client.info().get("Runtimes") or {}
            except Exception:  # unreachable now: say nothing we have not checked
                return False
            args = (runtimes.get(self.runtime) or {}).get("runtimeArgs") or []
            self._runtime_seccomp = any(
                a.lstrip("-") in ("oci-seccomp", "oci-seccomp=true") for a in args
            )
        return self._runtime_seccomp

    def describe(self) -> str:
        runtime = self.runtime or "runc"
        return f"image {self.image}, runtime {runtime}"

    def _translate(self, exc: Exception, doing: str) -> Exception:
        if isinstance(exc, ImageNotFound) or (
            isinstance(exc, NotFound) and "image" in str(exc).lower()
        ):
            return RunnerImageMissing(
                f"runner image {self.image} not found: build it with `python-coder build-runner` "
                "(images are never pulled)"
            )
        if isinstance(exc, requests.exceptions.ConnectionError | ConnectionError):
            return engine_down(f"Docker engine unreachable while {doing}: {exc}")
        if isinstance(exc, requests.exceptions.Timeout):
            return engine_down(f"Docker engine did not answer in time while {doing}")
        if isinstance(exc, APIError) and exc.is_server_error():
            return ExecutorError(f"Docker engine failed while {doing}: {exc.explanation or exc}")
        if isinstance(exc, DockerException | requests.exceptions.RequestException):
            return ExecutorError(f"Docker error while {doing}: {exc}")
        return exc

    def down_or(self, error: ExecutorError, doing: str) -> PythonCoderError:
        """``error``, unless the engine does not answer now: then the sandbox broke because
        the engine went away (stopped, restarting), which is a retryable 503, not our bug."""
        try:
            self.client.ping()
        except (DockerException, requests.exceptions.RequestException, EngineUnavailable) as exc:
            log.warning("%s; and the Docker engine does not answer: %s", error.message, exc)
            return engine_down(f"Docker engine went away while {doing}")
        return error

    def lowers_priority(self) -> bool:
        """Can a pooled sandbox start at a low CPU weight and be raised once ready? The raise
        is ``docker update``, which runc does and gVisor's ``runsc`` does not."""
        return self.runtime in (None, "", "runc")

    def _host_config(
        self, limits: RunLimits, input_room: int, background: bool = False
    ) -> dict[str, Any]:
        mount = "rw,nosuid,nodev,noexec"
        # Docker copies the image's directory mode onto a tmpfs but not its owner, so the
        # owner is set here: the work dir does not depend on how the image made /work.
        work = f"{mount},uid={RUNNER_UID},gid={RUNNER_UID},size={limits.workdir_bytes}"
        memory = limits.memory_bytes + input_room
        return self.client.create_host_config(
            network_mode="none",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges", "seccomp=" + runner_seccomp_profile(self.runtime)],
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
            cpu_shares=BACKGROUND_CPU_SHARES if background else None,
        )

    # ------------------------------------------------------------------------- the port

    def provision(
        self,
        limits: RunLimits,
        *,
        preimport: str = "",
        input_room: int = 0,
        tag: str | None = None,
        session: bool = False,
        background: bool = False,
    ) -> DockerSandbox:
        """Create, attach, start, and wait for the harness's ready frame.

        ``input_room``: bytes of inputs the container's memory limit makes room for (tmpfs
        pages are charged to it). ``tag``: a cold run's job id, put in the name and a label.
        """
        phases = Phases()
        self.applies_seccomp()  # learnt here, off the request path of a pooled sandbox
        background = background and self.lowers_priority()
        name = container_name(tag or "pool")
        labels = {CONTAINER_LABEL: "1", SANDBOX_LABEL: name, GATEWAY_LABEL: GATEWAY_ID}
        if tag:
            labels[JOB_LABEL] = tag
        container_id: str | None = None
        attachment: Attachment | None = None
        try:
            mark = time.monotonic()
            try:
                created = self.client.create_container(
                    self.image,
                    name=name,
                    user=f"{RUNNER_UID}:{RUNNER_UID}",
                    working_dir="/work",
                    # docker-py sets StdinOnce (and the attach flags) for a non-detached
                    # container with stdin_open: stdin closes when our attach ends.
                    stdin_open=True,
                    tty=False,
                    environment={
                        "PYC_PREIMPORT": preimport,
                        "PYC_HELLO": "1",
                        "PYC_MODE": "session" if session else "oneshot",
                        "HOME": "/tmp",
                        "MPLBACKEND": "Agg",
                        "LANG": "C.UTF-8",
                    },
                    labels=labels,
                    stop_signal="SIGKILL",
                    host_config=self._host_config(limits, input_room, background),
                )
                container_id = created["Id"]
                # Attached before start, so not a byte of output can be missed.
                attachment = Attachment(self.client, container_id)
            except (DockerException, requests.exceptions.RequestException) as exc:
                raise self._translate(exc, "creating the container") from exc
            self._remove_left_over()
            phases.create = time.monotonic() - mark
            mark = time.monotonic()
            try:
                self.client.start(container_id)
            except (DockerException, requests.exceptions.RequestException) as exc:
                raise self._translate(exc, "starting the container") from exc
            ready_by = time.monotonic() + READY_TIMEOUT_S
            demux = Demux(attachment.sock, lambda: ready_by)
            try:
                hello = read_header(demux.read_stdout)
            except (StreamTimeout, ProtocolError, OSError) as exc:
                raise self.down_or(
                    ExecutorError(
                        f"the runner in {name} did not report ready ({exc.__class__.__name__}: "
                        f"{exc}); is {self.image} built from this gateway's runner sources? "
                        f"`python-coder build-runner`; harness said: "
                        f"{demux.diagnostics_text()[-500:] or '(nothing)'}"
                    ),
                    "starting the sandbox",
                ) from exc
            if not hello.get("ready"):
                raise ExecutorError(f"the runner in {name} sent {hello!r} instead of ready")
            if session and hello.get("mode") != "session":
                raise RunnerImageMissing(
                    f"runner image {self.image} has no session mode (built from older runner "
                    "sources): rebuild it with `python-coder build-runner`"
                )
            if background:  # ready: it runs its request at the normal weight
                try:
                    self.client.update_container(container_id, cpu_shares=DEFAULT_CPU_SHARES)
                except (DockerException, requests.exceptions.RequestException) as exc:
                    raise self._translate(exc, "raising the sandbox's CPU weight") from exc
            phases.start = time.monotonic() - mark
            sandbox = DockerSandbox(
                self, container_id, name, attachment, demux, limits, input_room, phases
            )
            container_id = attachment = None  # the sandbox owns them now
            return sandbox
        finally:
            if attachment is not None:
                attachment.close()
            if container_id is not None:
                self.remove(container_id)

    def fingerprint(self) -> str:
        try:
            image_id = str(self.client.inspect_image(self.image)["Id"])
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise self._translate(exc, "inspecting the runner image") from exc
        self._remove_left_over()  # the pool's keeper asks every few seconds
        return image_id

    def sweep_orphans(
        self, *, everything: bool = False, jobs: list[str] | None = None
    ) -> list[str]:
        removed = remove_orphans(self.client, live_for_s=0.0 if everything else 900.0)
        for job in jobs or []:
            removed += remove_orphans(self.client, only={JOB_LABEL: job}, live_for_s=0)
        return removed

    # ------------------------------------------------------------------------- engine calls

    def kill(self, container_id: str) -> None:
        with contextlib.suppress(DockerException, requests.exceptions.RequestException):
            self.client.kill(container_id)

    def final_state(self, container_id: str) -> dict[str, Any]:
        """Wait for the container to stop (killing it if it lingers) and return its State."""
        try:
            self.client.wait(container_id, timeout=GRACE_S)
        except (DockerException, requests.exceptions.RequestException):
            self.kill(container_id)
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

    def remove(self, container_id: str) -> None:
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
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            # The engine is away (a daemon restart): retried once it answers again.
            with self._unremoved_lock:
                self._unremoved.add(container_id)
            log.warning(
                "could not remove container %s, the engine does not answer (%s): "
                "retried when it is back",
                container_id[:12],
                exc.__class__.__name__,
            )
        except (DockerException, requests.exceptions.RequestException) as exc:
            # Leave it to remove_orphans() at the next start rather than mask the result.
            log.error("could not remove container %s: %s", container_id[:12], exc)

    def _remove_left_over(self) -> None:
        """Remove the containers the engine could not remove while it was away; called
        after an engine call succeeded (cheap when there are none)."""
        with self._unremoved_lock:
            if not self._unremoved:
                return
            pending, self._unremoved = self._unremoved, set()
        log.info("the Docker engine is back: removing %d container(s) left over", len(pending))
        for container_id in pending:
            self.remove(container_id)

    # ------------------------------------------------------------------------- readiness

    def readiness(self) -> Readiness:
        checks: dict[str, Any] = {"image": self.image, "runtime": self.runtime or "runc"}
        try:
            self.client.ping()
            checks["engine"] = "reachable"
            self._remove_left_over()
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
