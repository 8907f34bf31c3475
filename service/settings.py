"""The one settings class, read once through the cached ``get_settings()``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

EngineChoice = Literal["auto", "docker", "subprocess"]
# enforce: blocking findings refuse the code (422). audit: the code runs, the findings come back
# as warnings and are logged (for operators who trust the sandbox, e.g. gVisor).
PolicyMode = Literal["enforce", "audit"]

MB = 1024 * 1024


class Settings(BaseSettings):
    """Everything configurable, from environment variables prefixed ``PYTHON_CODE_``."""

    model_config = SettingsConfigDict(env_prefix="PYTHON_CODE_", env_file=".env", extra="ignore")

    # --- the seed's settings -------------------------------------------------------------
    enabled: bool = True
    timeout: int = Field(30, ge=1, le=3600, description="default script timeout, seconds")
    max_memory: int = Field(512, ge=32, description="memory limit per run, MB")
    execution_dir: Path = Path("./data/code_execution")
    max_iterations: int = Field(3, ge=1, le=10)
    allow_partial_execution: bool = False
    max_file_size: int = Field(50, ge=1, description="per uploaded file, MB")
    policy: PolicyMode = "enforce"  # PYTHON_CODE_POLICY

    # --- engine ----------------------------------------------------------------------------
    engine: EngineChoice = "auto"
    image: str = "python-coder-runner:latest"
    docker_runtime: str | None = None  # e.g. "runsc" for gVisor
    cpus: float = Field(1.0, gt=0)
    pids_limit: int = 128
    max_concurrent_runs: int = Field(4, ge=1, description="sandboxes at once; more jobs queue")
    tmpfs_size_mb: int = 1024  # the work dir inside the container (inputs + outputs)
    max_timeout: int = 600
    local_runner_dir: Path = Path("./.runner-venv")

    # --- uploads ---------------------------------------------------------------------------
    max_total_upload: int = Field(200, ge=1, description="all files of one request, MB")
    max_files: int = Field(20, ge=1)
    max_json_body: int = Field(64, ge=1, description="a JSON request (inline files), MB")
    min_free_disk_mb: int = Field(1024, ge=0, description="refuse new jobs below this, MB")

    # --- results ---------------------------------------------------------------------------
    max_output_bytes: int = 1 * MB  # stdout and stderr, each
    max_artifact_bytes: int = 50 * MB  # one produced file
    max_artifacts_total_bytes: int = 200 * MB
    max_artifacts: int = 50
    artifact_retention_s: int = 3600

    # --- operations (service/observability.py, service/cleanup.py) ---------------------------
    # One JSON line per execution; default <execution_dir>/audit.jsonl.
    audit_log_path: Path | None = None
    cleanup_interval_s: int = Field(default=60, ge=1, description="how often expired artifacts go")
    shutdown_grace_s: float = Field(default=20.0, ge=0, description="wait for running jobs on stop")

    # --- LLM ---------------------------------------------------------------------------------
    llm_base_url: str | None = None
    llm_api_key: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_timeout: float = 60.0
    llm_temperature: float = 0.1
    llm_max_retries: int = 1
    max_repair_rounds: int = 1

    # --- server ----------------------------------------------------------------------------
    host: str = "0.0.0.0"
    port: int = 8000
    log_level: str = "INFO"
    environment: Literal["development", "production"] = "development"

    @property
    def max_memory_bytes(self) -> int:
        return self.max_memory * MB

    @property
    def max_file_bytes(self) -> int:
        return self.max_file_size * MB

    @property
    def max_total_upload_bytes(self) -> int:
        return self.max_total_upload * MB

    @property
    def audit_log_file(self) -> Path:
        return self.audit_log_path or self.execution_dir / "audit.jsonl"

    @property
    def local_runner_python(self) -> Path:
        return self.local_runner_dir / "bin" / "python"


@lru_cache
def get_settings() -> Settings:
    return Settings()
