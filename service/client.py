"""The Python client of a python-coder gateway: ``Client`` (sync) and ``AsyncClient``, on httpx.

    from service.client import Client

    with Client("http://127.0.0.1:8000", api_key="...") as gateway:
        result = gateway.execute("import pandas as pd; print(pd.read_csv('a.csv'))",
                                 files=["a.csv"])
        gateway.download_artifacts(result, "out/")

``execute`` (and a session's) take ``on_output=lambda stream, text: ...`` to get the script's
stdout/stderr while it runs (Server-Sent Events); the result is the same either way.

Results are the service's own models (``ExecutionResponse``, ``ToolResult``). An error
answer raises a ``GatewayError`` subclass chosen by status, carrying the gateway's error
name, message and detail:

    GatewayError                    .status .error .message .detail
    ├── GatewayUnreachable          no answer (connection refused, timeout)
    ├── InvalidRequestError         400 / 413 / 415  malformed input, too large, wrong file type
    ├── AuthenticationError         401
    ├── PermissionDeniedError       403
    ├── NotFoundError               404 / 410  unknown execution, artifact, tool or session
    ├── RateLimitedError            429  over a quota or the per-caller session cap
    ├── CodeRejectedError           422  policy or verification refused the code (.findings)
    ├── ServiceUnavailableError     502 / 503 / 504  engine or model unavailable
    ├── ServerError                 500 and anything else unexpected
    └── ArtifactDownloadError       a produced file could not be fetched
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from service.models import (
    Artifact,
    CellResponse,
    ExecutionResponse,
    InstallResponse,
    SessionFile,
    SessionInfo,
    ToolResult,
)

FileSpec = str | os.PathLike[str] | tuple[str, bytes]
"""An input file: a path on disk, or ``(name, content)``."""

CHUNK = 1024 * 1024
DEFAULT_TIMEOUT = httpx.Timeout(30.0, read=660.0)  # a run may take up to the max timeout
M = TypeVar("M", bound=BaseModel)
EVENT_STREAM = "text/event-stream"
OnOutput = Callable[[str, str], None]


class GatewayError(Exception):
    """An error answer (or no answer) from the gateway."""

    def __init__(self, status: int | None, error: str, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.detail = detail

    @property
    def findings(self) -> list[dict[str, Any]]:
        """The static policy's findings, when the code was refused."""
        found = self.detail.get("findings", []) if isinstance(self.detail, dict) else []
        return [f for f in found if isinstance(f, dict)]

    def __str__(self) -> str:
        head = f"HTTP {self.status}: {self.message}" if self.status else self.message
        lines = [head] + [
            f"  line {f.get('line')}: {f.get('message')} [{f.get('rule_id')}]"
            for f in self.findings
        ]
        return "\n".join(lines)


class GatewayUnreachable(GatewayError):
    pass


class InvalidRequestError(GatewayError):
    pass


class AuthenticationError(GatewayError):
    pass


class PermissionDeniedError(GatewayError):
    pass


class NotFoundError(GatewayError):
    pass


class RateLimitedError(GatewayError):
    """429: over the key's quota, or holding as many sessions as allowed."""


class CodeRejectedError(GatewayError):
    pass


class ServiceUnavailableError(GatewayError):
    pass


class ServerError(GatewayError):
    pass


class ArtifactDownloadError(GatewayError):
    pass


_BY_STATUS: dict[int, type[GatewayError]] = {
    400: InvalidRequestError,
    413: InvalidRequestError,
    415: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    410: NotFoundError,
    429: RateLimitedError,
    422: CodeRejectedError,
    502: ServiceUnavailableError,
    503: ServiceUnavailableError,
    504: ServiceUnavailableError,
}


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def error_from(response: httpx.Response) -> GatewayError:
    """The typed error for an error answer; a non-JSON page (a proxy's) becomes one line."""
    cls = _BY_STATUS.get(response.status_code, ServerError)
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "message" not in body:
        text = _one_line(response.text or "(empty body)")
        return cls(response.status_code, "HTTPError", text)
    return _error_of(response.status_code, body)


def _error_of(status: int, body: dict[str, Any]) -> GatewayError:
    cls = _BY_STATUS.get(status, ServerError)
    return cls(
        status, str(body.get("error") or "HTTPError"), str(body.get("message")), body.get("detail")
    )


def server_sent_events(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """``(event, data)`` of a ``text/event-stream`` read line by line; comments skipped."""
    event = "message"
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)


def result_of_events(events: Iterator[tuple[str, str]], model: type[M], on_output: OnOutput) -> M:
    """Hand the output events to ``on_output``; the ``result`` event as ``model``."""
    for event, data in events:
        if event in ("stdout", "stderr"):
            on_output(event, json.loads(data)["text"])
        elif event == "result":
            return model.model_validate_json(data)
        elif event == "error":
            body = json.loads(data)
            raise _error_of(int(body.get("status") or 500), body)
    raise ServerError(None, "UnexpectedReply", "the event stream ended without a result")


def _parse(response: httpx.Response, model: type[M]) -> M:
    if response.status_code >= 400:
        raise error_from(response)
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise ServerError(
            response.status_code,
            "UnexpectedReply",
            f"the gateway's reply is not a valid {model.__name__}: "
            + _one_line(response.text or "(empty body)"),
        ) from exc


def _json(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise error_from(response)
    try:
        return response.json()
    except ValueError as exc:
        raise ServerError(
            response.status_code, "UnexpectedReply", "the gateway's reply is not JSON"
        ) from exc


def safe_target(out_dir: Path, name: str) -> Path:
    """Where artifact ``name`` goes under ``out_dir``; never outside it."""
    target = (out_dir / name).resolve()
    if not target.is_relative_to(out_dir.resolve()):
        raise ValueError(f"refusing artifact name {name!r}")
    return target


def _targets(result: ExecutionResponse, out_dir: Path) -> list[tuple[Artifact, Path]]:
    """Where each artifact goes; all names are checked before anything is written."""
    targets = []
    for artifact in result.artifacts:
        try:
            targets.append((artifact, safe_target(out_dir, artifact.name)))
        except ValueError as exc:
            raise ArtifactDownloadError(None, "UnsafeArtifactName", str(exc)) from None
    return targets


def _form(
    stack: ExitStack, fields: dict[str, str | float | None], files: Sequence[FileSpec]
) -> tuple[dict[str, str], list[tuple[str, tuple[str, IO[bytes] | bytes]]]]:
    data = {key: str(value) for key, value in fields.items() if value is not None}
    parts: list[tuple[str, tuple[str, IO[bytes] | bytes]]] = []
    for spec in files:
        if isinstance(spec, tuple):
            name, content = spec
            parts.append(("files", (name, content)))
        else:
            path = Path(spec)
            parts.append(("files", (path.name, stack.enter_context(path.open("rb")))))
    return data, parts


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _unreachable(base_url: str, exc: httpx.TransportError) -> GatewayUnreachable:
    return GatewayUnreachable(None, type(exc).__name__, f"cannot reach {base_url}: {exc}")


class Client:
    """Talk to a gateway synchronously; use as a context manager (or call ``close``)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc

    def _post(self, url: str, model: type[M], on_output: OnOutput | None, **kwargs: Any) -> M:
        """POST, as Server-Sent Events when someone wants the output as it comes."""
        if on_output is None:
            return _parse(self._send("POST", url, **kwargs), model)
        try:
            with self._http.stream(
                "POST", url, headers={"Accept": EVENT_STREAM}, **kwargs
            ) as response:
                if not response.headers.get("content-type", "").startswith(EVENT_STREAM):
                    response.read()  # an error answer (before the run started) is JSON
                    return _parse(response, model)
                return result_of_events(server_sent_events(response.iter_lines()), model, on_output)
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc

    def execute(
        self,
        code: str,
        files: Sequence[FileSpec] = (),
        *,
        timeout_s: float | None = None,
        engine: str | None = None,
        on_output: OnOutput | None = None,
    ) -> ExecutionResponse:
        """``POST /v1/execute``: run ``code`` against ``files`` in a fresh sandbox;
        ``on_output(stream, text)`` gets stdout/stderr while it runs."""
        with ExitStack() as stack:
            data, parts = _form(
                stack, {"code": code, "timeout_s": timeout_s, "engine": engine}, files
            )
            return self._post(
                "/v1/execute", ExecutionResponse, on_output, data=data, files=parts or None
            )

    def generate(
        self,
        query: str,
        files: Sequence[FileSpec] = (),
        *,
        context: str | None = None,
        timeout_s: float | None = None,
        engine: str | None = None,
    ) -> ExecutionResponse:
        """``POST /v1/generate``: the gateway's model writes, verifies and runs the code."""
        fields = {"query": query, "context": context, "timeout_s": timeout_s, "engine": engine}
        with ExitStack() as stack:
            data, parts = _form(stack, fields, files)
            response = self._send("POST", "/v1/generate", data=data, files=parts or None)
        return _parse(response, ExecutionResponse)

    def environment(self) -> dict[str, Any]:
        """``GET /v1/environment``: Python version, packages, engine, limits."""
        body: dict[str, Any] = _json(self._send("GET", "/v1/environment"))
        return body

    def tools(self) -> list[dict[str, Any]]:
        """``GET /v1/tools``: the tools as OpenAI function schemas."""
        body: list[dict[str, Any]] = _json(self._send("GET", "/v1/tools"))
        return body

    def call_tool(self, name: str, arguments: dict[str, Any] | str | None = None) -> ToolResult:
        """``POST /v1/tools/call``; a failing tool is a result with ``is_error``."""
        payload = {"name": name, "arguments": arguments}
        return _parse(self._send("POST", "/v1/tools/call", json=payload), ToolResult)

    def iter_artifact(self, artifact: Artifact | str) -> Iterator[bytes]:
        """The bytes of a produced file, streamed (an ``Artifact`` or its URL)."""
        url = artifact.url if isinstance(artifact, Artifact) else artifact
        name = artifact.name if isinstance(artifact, Artifact) else url.rsplit("/", 1)[-1]
        try:
            with self._http.stream("GET", url) as response:
                if response.status_code != 200:
                    raise ArtifactDownloadError(
                        response.status_code,
                        "ArtifactDownloadFailed",
                        f"downloading artifact {name!r} failed: HTTP {response.status_code}",
                    )
                yield from response.iter_bytes(CHUNK)
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc

    def download(self, artifact: Artifact, target: str | os.PathLike[str]) -> Path:
        """Save one produced file to ``target``; a partial file is removed on failure."""
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with path.open("wb") as fh:
                for chunk in self.iter_artifact(artifact):
                    fh.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    def download_artifacts(
        self, result: ExecutionResponse, out_dir: str | os.PathLike[str]
    ) -> list[Path]:
        """Save every produced file under ``out_dir`` by its relative name."""
        targets = _targets(result, Path(out_dir))
        return [self.download(artifact, target) for artifact, target in targets]

    def session(
        self,
        *,
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        cpus: float | None = None,
        idle_ttl_s: float | None = None,
        engine: str | None = None,
    ) -> Session:
        """``POST /v1/sessions``: a stateful session; ``with gateway.session() as s:`` closes
        it at the end."""
        body = _session_body(timeout_s, memory_mb, cpus, idle_ttl_s, engine)
        return Session(self, _parse(self._send("POST", "/v1/sessions", json=body), SessionInfo))


def _session_body(
    timeout_s: float | None,
    memory_mb: int | None,
    cpus: float | None,
    idle_ttl_s: float | None,
    engine: str | None,
) -> dict[str, Any]:
    values = {
        "timeout_s": timeout_s,
        "memory_mb": memory_mb,
        "cpus": cpus,
        "idle_ttl_s": idle_ttl_s,
        "engine": engine,
    }
    return {key: value for key, value in values.items() if value is not None}


def _files(body: Any) -> list[SessionFile]:
    return [SessionFile.model_validate(entry) for entry in body]


class Session:
    """An open session of a ``Client``: cells keep their variables, imports and files."""

    def __init__(self, client: Client, info: SessionInfo) -> None:
        self.client = client
        self.info = info
        self.id = info.id
        self._path = f"/v1/sessions/{info.id}"

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(
        self,
        code: str,
        files: Sequence[FileSpec] = (),
        *,
        timeout_s: float | None = None,
        on_output: OnOutput | None = None,
    ) -> CellResponse:
        """Run a cell; ``value`` is the repr of its last expression; ``on_output`` as for
        ``Client.execute``."""
        with ExitStack() as stack:
            data, parts = _form(stack, {"code": code, "timeout_s": timeout_s}, files)
            return self.client._post(
                f"{self._path}/execute", CellResponse, on_output, data=data, files=parts or None
            )

    def upload(self, files: Sequence[FileSpec]) -> list[SessionFile]:
        with ExitStack() as stack:
            _, parts = _form(stack, {}, files)
            response = self.client._send("POST", f"{self._path}/files", files=parts)
        return _files(_json(response))

    def files(self) -> list[SessionFile]:
        return _files(_json(self.client._send("GET", f"{self._path}/files")))

    def read(self, name: str) -> bytes:
        """A file of the session's work dir (one written by a cell, or uploaded)."""
        response = self.client._send("GET", f"{self._path}/files/{name}")
        if response.status_code >= 400:
            raise error_from(response)
        return response.content

    def install(self, name: str, version: str | None = None) -> InstallResponse:
        body = {"name": name, "version": version}
        return _parse(
            self.client._send("POST", f"{self._path}/packages", json=body), InstallResponse
        )

    def run_script(
        self, path: str, args: Sequence[str] = (), *, timeout_s: float | None = None
    ) -> CellResponse:
        body = {"path": path, "args": list(args), "timeout_s": timeout_s}
        return _parse(self.client._send("POST", f"{self._path}/scripts", json=body), CellResponse)

    def environment(self) -> dict[str, Any]:
        body: dict[str, Any] = _json(self.client._send("GET", f"{self._path}/environment"))
        return body

    def close(self) -> None:
        """End the session (a session that already ended is fine)."""
        response = self.client._send("DELETE", self._path)
        if response.status_code not in (200, 404):
            raise error_from(response)


class AsyncClient:
    """The same as ``Client``, for asyncio code: ``async with AsyncClient(url) as gateway``."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc

    async def execute(
        self,
        code: str,
        files: Sequence[FileSpec] = (),
        *,
        timeout_s: float | None = None,
        engine: str | None = None,
    ) -> ExecutionResponse:
        with ExitStack() as stack:
            data, parts = _form(
                stack, {"code": code, "timeout_s": timeout_s, "engine": engine}, files
            )
            response = await self._send("POST", "/v1/execute", data=data, files=parts or None)
        return _parse(response, ExecutionResponse)

    async def generate(
        self,
        query: str,
        files: Sequence[FileSpec] = (),
        *,
        context: str | None = None,
        timeout_s: float | None = None,
        engine: str | None = None,
    ) -> ExecutionResponse:
        fields = {"query": query, "context": context, "timeout_s": timeout_s, "engine": engine}
        with ExitStack() as stack:
            data, parts = _form(stack, fields, files)
            response = await self._send("POST", "/v1/generate", data=data, files=parts or None)
        return _parse(response, ExecutionResponse)

    async def environment(self) -> dict[str, Any]:
        body: dict[str, Any] = _json(await self._send("GET", "/v1/environment"))
        return body

    async def tools(self) -> list[dict[str, Any]]:
        body: list[dict[str, Any]] = _json(await self._send("GET", "/v1/tools"))
        return body

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | str | None = None
    ) -> ToolResult:
        payload = {"name": name, "arguments": arguments}
        return _parse(await self._send("POST", "/v1/tools/call", json=payload), ToolResult)

    async def artifact_bytes(self, artifact: Artifact | str) -> bytes:
        """The whole content of a produced file (use ``download`` for big ones)."""
        url = artifact.url if isinstance(artifact, Artifact) else artifact
        response = await self._send("GET", url)
        if response.status_code != 200:
            raise ArtifactDownloadError(
                response.status_code,
                "ArtifactDownloadFailed",
                f"downloading {url!r} failed: HTTP {response.status_code}",
            )
        return response.content

    async def download(self, artifact: Artifact, target: str | os.PathLike[str]) -> Path:
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            async with self._http.stream("GET", artifact.url) as response:
                if response.status_code != 200:
                    raise ArtifactDownloadError(
                        response.status_code,
                        "ArtifactDownloadFailed",
                        f"downloading artifact {artifact.name!r} failed: "
                        f"HTTP {response.status_code}",
                    )
                with path.open("wb") as fh:
                    async for chunk in response.aiter_bytes(CHUNK):
                        fh.write(chunk)
        except httpx.TransportError as exc:
            path.unlink(missing_ok=True)
            raise _unreachable(self.base_url, exc) from exc
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    async def download_artifacts(
        self, result: ExecutionResponse, out_dir: str | os.PathLike[str]
    ) -> list[Path]:
        targets = _targets(result, Path(out_dir))
        return [await self.download(artifact, target) for artifact, target in targets]

    async def session(
        self,
        *,
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        cpus: float | None = None,
        idle_ttl_s: float | None = None,
        engine: str | None = None,
    ) -> AsyncSession:
        """``async with await gateway.session() as s:``."""
        body = _session_body(timeout_s, memory_mb, cpus, idle_ttl_s, engine)
        info = _parse(await self._send("POST", "/v1/sessions", json=body), SessionInfo)
        return AsyncSession(self, info)


class AsyncSession:
    """``Session`` for ``AsyncClient``."""

    def __init__(self, client: AsyncClient, info: SessionInfo) -> None:
        self.client = client
        self.info = info
        self.id = info.id
        self._path = f"/v1/sessions/{info.id}"

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def execute(
        self, code: str, files: Sequence[FileSpec] = (), *, timeout_s: float | None = None
    ) -> CellResponse:
        with ExitStack() as stack:
            data, parts = _form(stack, {"code": code, "timeout_s": timeout_s}, files)
            response = await self.client._send(
                "POST", f"{self._path}/execute", data=data, files=parts or None
            )
        return _parse(response, CellResponse)

    async def install(self, name: str, version: str | None = None) -> InstallResponse:
        body = {"name": name, "version": version}
        response = await self.client._send("POST", f"{self._path}/packages", json=body)
        return _parse(response, InstallResponse)

    async def run_script(
        self, path: str, args: Sequence[str] = (), *, timeout_s: float | None = None
    ) -> CellResponse:
        body = {"path": path, "args": list(args), "timeout_s": timeout_s}
        response = await self.client._send("POST", f"{self._path}/scripts", json=body)
        return _parse(response, CellResponse)

    async def files(self) -> list[SessionFile]:
        return _files(_json(await self.client._send("GET", f"{self._path}/files")))

    async def read(self, name: str) -> bytes:
        response = await self.client._send("GET", f"{self._path}/files/{name}")
        if response.status_code >= 400:
            raise error_from(response)
        return response.content

    async def environment(self) -> dict[str, Any]:
        body: dict[str, Any] = _json(await self.client._send("GET", f"{self._path}/environment"))
        return body

    async def close(self) -> None:
        response = await self.client._send("DELETE", self._path)
        if response.status_code not in (200, 404):
            raise error_from(response)
