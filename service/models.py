"""The wire schema: one set of frozen models shared by REST, MCP and the CLI."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.errors import InvalidRequest


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Artifact(Frozen):
    """A file the script created or changed in its working directory."""

    name: str
    size: int
    media_type: str
    url: str


class Issue(Frozen):
    """One problem found while verifying code (static policy or LLM review)."""

    source: Literal["syntax", "policy", "review", "runtime"]
    message: str
    severity: Literal["critical", "major", "minor", "info"] = "major"
    category: str = "general"
    rule_id: str | None = None
    line: int | None = None
    col: int | None = None
    overridable: bool = True


class Override(Frozen):
    """A finding the model argued was a false positive, with its reason."""

    issue: Issue
    reason: str
    accepted: bool


class VerificationRound(Frozen):
    iteration: int
    issues: list[Issue] = Field(default_factory=list)
    action: Literal["approved", "modified", "rejected", "partial", "repaired"]
    changes: list[str] = Field(default_factory=list)
    overrides: list[Override] = Field(default_factory=list)


class TokenUsage(Frozen):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    calls: int = 0


class ExecutionResponse(Frozen):
    """Result of ``/v1/execute`` and ``/v1/generate`` (the seed's output format, extended)."""

    id: str
    success: bool
    code: str
    output: str = ""
    error: str | None = None
    exit_code: int | None = None
    timed_out: bool = False
    oom_killed: bool = False
    output_truncated: bool = False
    error_truncated: bool = False
    execution_time: float = 0.0
    engine: str
    isolation: list[str] = Field(default_factory=list)
    input_files: list[str] = Field(default_factory=list)
    file_metadata: dict[str, Any] = Field(default_factory=dict)
    artifacts: list[Artifact] = Field(default_factory=list)
    result: Any = None
    iterations: int = 0
    modifications: list[str] = Field(default_factory=list)
    verification_history: list[VerificationRound] = Field(default_factory=list)
    usage: TokenUsage | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)


class InlineFile(BaseModel):
    """A file sent inside a JSON body (agents that cannot send multipart)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    content: str
    encoding: Literal["utf-8", "base64"] = "utf-8"

    def to_bytes(self) -> bytes:
        if self.encoding == "base64":
            try:
                return base64.b64decode(self.content, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise InvalidRequest(f"file {self.name!r}: content is not valid base64") from exc
        return self.content.encode("utf-8")


class ExecuteJSONRequest(BaseModel):
    """JSON body of ``/v1/execute`` (``code``) and ``/v1/generate`` (``query``, ``context``);
    multipart carries the same fields plus files. Which field is required is the route's
    business."""

    model_config = ConfigDict(extra="forbid")

    code: str | None = None
    query: str | None = None
    context: str | None = None
    files: list[InlineFile] = Field(default_factory=list)
    stage: list[str] = Field(
        default_factory=list,
        description="stored files to copy in: paths under the storage roots, s3://bucket/key, "
        "or a query result's stored_as",
    )
    timeout_s: float | None = Field(default=None, gt=0)
    engine: str | None = None
    packages: list[str] = Field(
        default_factory=list,
        description="packages to install for this run: 'name' or 'name==version' (wheels only)",
    )


class ErrorBody(Frozen):
    error: str
    message: str
    detail: Any = None


class ToolImage(Frozen):
    """An image a tool produced (a matplotlib PNG), base64-encoded for JSON and MCP."""

    name: str
    media_type: str = "image/png"
    data: str = Field(description="base64 of the image bytes")

    @classmethod
    def from_bytes(cls, name: str, raw: bytes, media_type: str = "image/png") -> ToolImage:
        return cls(name=name, media_type=media_type, data=base64.b64encode(raw).decode("ascii"))

    def to_bytes(self) -> bytes:
        return base64.b64decode(self.data)


class ToolResult(Frozen):
    """What any tool returns, whatever the protocol: text for the model, structured data,
    images, and whether it failed (``error`` names the failure's class)."""

    text: str
    data: dict[str, Any] | None = None
    images: list[ToolImage] = Field(default_factory=list)
    is_error: bool = False
    error: str | None = None

    @classmethod
    def failure(cls, error: str, message: str, data: dict[str, Any] | None = None) -> ToolResult:
        return cls(text=message, data=data, is_error=True, error=error)


# --- sessions --------------------------------------------------------------------------------


class Display(Frozen):
    """A rich output of a cell: ``text/html`` (a DataFrame) or ``image/png`` (base64)."""

    mime: str
    data: str


class SessionInfo(Frozen):
    """An open session: a dedicated sandbox with a persistent interpreter."""

    id: str
    engine: str
    isolation: list[str] = Field(default_factory=list)
    created_at: float = Field(description="unix time")
    expires_at: float = Field(description="unix time the idle TTL or the lifetime ends it")
    idle_ttl_s: float
    timeout_s: float = Field(description="default cell timeout")
    memory_mb: int
    cpus: float
    cells: int = 0
    installed: dict[str, str] = Field(default_factory=dict, description="session installs")


class CellResponse(Frozen):
    """Result of a session cell (``/v1/sessions/{id}/execute``) or a ``run_script``."""

    session_id: str
    cell: int
    success: bool
    output: str = ""
    error: str | None = None
    exit_code: int | None = None
    timed_out: bool = False
    state_lost: bool = Field(False, description="the interpreter was restarted: state is gone")
    value: str | None = Field(None, description="repr of the cell's last expression")
    display: list[Display] = Field(default_factory=list)
    output_truncated: bool = False
    error_truncated: bool = False
    execution_time: float = 0.0
    artifacts: list[Artifact] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class SessionFile(Frozen):
    name: str
    size: int


class InstallResponse(Frozen):
    session_id: str
    package: str
    version: str
    wheels: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list, description="dependencies already present")
