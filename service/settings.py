"""The one settings class, read once through the cached ``get_settings()``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.auth.keys import is_placeholder

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
    engine: str = Field("auto", description="auto or an engine of service.executors.registry")
    image: str = "python-coder-runner:latest"
    docker_runtime: str | None = None  # e.g. "runsc" for gVisor
    cpus: float = Field(1.0, gt=0)
    pids_limit: int = 128
    max_concurrent_runs: int = Field(4, ge=1, description="sandboxes at once; more jobs queue")
    # The run queue in front of the sandboxes (service/executors/queue.py): beyond this many
    # waiting jobs, or after waiting this long, a job is refused with 429 and Retry-After.
    max_queued_runs: int = Field(32, ge=0, description="jobs waiting for a sandbox at most")
    max_queue_wait_s: float = Field(60.0, gt=0, description="a job waits this long at most")
    tmpfs_size_mb: int = 1024  # the work dir inside the container (inputs + outputs)
    max_timeout: int = 600
    local_runner_dir: Path = Path("./.runner-venv")
    # Warm pool (service/executors/pool.py): sandboxes provisioned ahead with numpy, pandas
    # and matplotlib imported; 0 for pool_max turns it off.
    pool_min: int = Field(2, ge=0, description="pooled sandboxes kept waiting at least")
    pool_max: int = Field(6, ge=0, description="pooled sandboxes at most (0: no pool)")
    pool_preimport: str = Field(
        "numpy,pandas,matplotlib,matplotlib.pyplot",
        description="modules a pooled sandbox imports before its request (comma-separated)",
    )
    pool_preimport_busy: str = Field(
        "numpy,pandas,matplotlib",
        description="what pooled sandboxes import instead while requests outrun the pool "
        "(pyplot alone costs about 40% of a sandbox's CPU); pool_preimport's value turns it off",
    )
    pool_input_room_mb: int = Field(
        64, ge=0, description="inputs a pooled docker sandbox takes; larger ones run cold"
    )
    # The subprocess engine refuses to run code below bubblewrap namespaces + its seccomp
    # filter; true lets it run anyway (rlimits and a job uid only), for hosts the operator
    # trusts. Logged at every start.
    allow_weak_sandbox: bool = False

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

    # --- data tools: read-only SQL (service/tools/database.py) ----------------------------
    # One URL (the seed's DATABASE_URL) becomes the database named "default"; more databases
    # as a JSON object of name -> URL. Neither set: a sample SQLite database is made on start.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("PYTHON_CODE_DATABASE_URL", "DATABASE_URL")
    )
    databases: dict[str, str] = Field(default_factory=dict)
    query_timeout: float = Field(30.0, gt=0, le=3600, description="default query timeout, s")
    query_max_timeout: float = Field(300.0, gt=0, le=3600)
    query_max_rows: int = Field(10_000, ge=1, description="row cap per query (truncated after)")
    db_pool_size: int = Field(4, ge=1, description="connections per database")
    db_pool_timeout: float = Field(10.0, gt=0, description="wait for a free connection, s")
    # Connecting as a PostgreSQL superuser would let COPY ... TO PROGRAM through.
    db_allow_superuser: bool = False

    # --- data tools: file storage (service/tools/storage.py) ---------------------------------
    # Comma-separated local directories the storage tools may touch (or a JSON list).
    storage_roots: Annotated[list[Path], NoDecode] = [Path("/tmp/agent-data")]
    storage_max_file_size: int = Field(100, ge=1, description="largest file read or written, MB")
    storage_max_read_chars: int = Field(1_000_000, ge=1, description="read_file text cap")
    storage_max_list: int = Field(10_000, ge=1, description="entries one list_files returns")
    # Buckets the S3 tools may use (comma-separated); empty: S3 is off. Endpoint and
    # credentials come from the standard AWS variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).
    s3_buckets: Annotated[list[str], NoDecode] = []

    # --- LLM ---------------------------------------------------------------------------------
    llm_base_url: str | None = None
    llm_api_key: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_timeout: float = 60.0
    llm_temperature: float = 0.1
    llm_max_retries: int = 1
    max_repair_rounds: int = 1

    # --- sessions (service/pipeline/sessions.py) ---------------------------------------------
    # A session is a dedicated sandbox with a persistent interpreter; its state lives only as
    # long as the sandbox and the gateway process that holds it.
    session_idle_ttl: int = Field(900, ge=1, le=86400, description="idle session ends, s")
    session_max_lifetime: int = Field(3600, ge=1, le=7 * 86400, description="session ends, s")
    sessions_per_caller: int = Field(3, ge=1, description="open sessions per caller")
    max_sessions: int = Field(16, ge=1, description="open sessions in total")
    session_sweep_interval: float = Field(5.0, gt=0, description="how often TTLs are checked")
    session_interrupt_grace: float = Field(
        3.0, ge=0, le=60, description="a timed-out cell's time to stop on KeyboardInterrupt, s"
    )
    # install_package: wheels resolved and downloaded by the gateway (pip, only-binary) into
    # <execution_dir>/wheelhouse, then sent into the session; comma-separated project names.
    package_allow: str = ""  # empty: any package not denied
    package_deny: str = ""
    package_max_mb: int = Field(50, ge=1, description="all wheels of one install, MB")
    package_index_url: str | None = None  # pip's --index-url; None: pip's own default

    # --- server ----------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    environment: Literal["development", "production"] = "development"

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        from service.executors.registry import ENGINE_CHOICES

        if value not in ENGINE_CHOICES:
            raise ValueError(f"unknown engine {value!r}; choose one of {', '.join(ENGINE_CHOICES)}")
        return value

    # --- access (service/auth, service/api/access.py) ----------------------------------------
    # API keys: a JSON-lines file written by `python-coder keys create`, and/or entries
    # "<role>:<key>" or "<role>:<id>:sha256:<hex>", comma-separated. No keys: every caller is
    # the local operator, which is allowed on a loopback address only.
    api_keys_file: Path | None = None
    api_keys: SecretStr | None = None
    allow_unauthenticated: bool = False  # serve without keys on a non-loopback address
    allowed_hosts: str = ""  # extra Host names besides loopback and the bind host; "*": any
    allowed_origins: str = ""  # browser origins allowed to call the API (comma-separated)
    allowed_engines: str = ""  # engines a request may name; empty: only the configured one
    rate_limit_per_minute: float = Field(60, ge=0, description="jobs per key per minute; 0: off")
    rate_limit_burst: int = Field(20, ge=1, description="jobs a key may send at once")
    max_concurrent_jobs_per_key: int = Field(4, ge=0, description="running jobs per key; 0: off")

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> Settings:
        """Production refuses the placeholder values that ``.env.example`` shows."""
        if self.environment != "production":
            return self
        found = []
        if self.llm_api_key and is_placeholder(self.llm_api_key):
            found.append("PYTHON_CODE_LLM_API_KEY")
        if self.api_keys and is_placeholder(self.api_keys.get_secret_value()):
            found.append("PYTHON_CODE_API_KEYS")
        if found:
            raise ValueError(
                f"placeholder secret in {' and '.join(found)} (an example value from "
                ".env.example); set real secrets before running with "
                "PYTHON_CODE_ENVIRONMENT=production"
            )
        return self

    @staticmethod
    def _names(value: str) -> list[str]:
        return [name.strip() for name in value.split(",") if name.strip()]

    @property
    def allowed_host_names(self) -> list[str]:
        return self._names(self.allowed_hosts)

    @property
    def allowed_origin_list(self) -> list[str]:
        return [origin.rstrip("/") for origin in self._names(self.allowed_origins)]

    @field_validator("allowed_engines")
    @classmethod
    def _known_engines(cls, value: str) -> str:
        from service.executors.registry import ENGINE_NAMES

        unknown = [n for n in cls._names(value) if n not in ENGINE_NAMES]
        if unknown:
            raise ValueError(
                f"unknown engine(s) {', '.join(unknown)}; engines: {', '.join(ENGINE_NAMES)}"
            )
        return value

    @property
    def allowed_engine_names(self) -> list[str]:
        return self._names(self.allowed_engines) or [self.engine]

    @field_validator("storage_roots", "s3_buckets", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @property
    def storage_max_bytes(self) -> int:
        return self.storage_max_file_size * MB

    @property
    def query_results_dir(self) -> Path:
        """Query results saved as Parquet; readable by the storage tools and staging."""
        return self.execution_dir / "query-results"

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
    def wheelhouse(self) -> Path:
        return self.execution_dir / "wheelhouse"

    @property
    def package_allow_list(self) -> list[str]:
        return self._names(self.package_allow)

    @property
    def package_deny_list(self) -> list[str]:
        return self._names(self.package_deny)

    @property
    def local_runner_python(self) -> Path:
        return self.local_runner_dir / "bin" / "python"


@lru_cache
def get_settings() -> Settings:
    return Settings()
