"""The wire schema: one set of frozen models shared by REST, MCP and the CLI."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


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
    engine: Literal["auto", "docker", "subprocess"] | None = None


class ErrorBody(Frozen):
    error: str
    message: str
    detail: Any = None
