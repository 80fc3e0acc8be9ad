"""Functions, versions and aliases as typed values (spec 2.1)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from lamina.model.ids import LATEST


class FunctionState(enum.Enum):
    PENDING = "Pending"
    ACTIVE = "Active"
    INACTIVE = "Inactive"
    FAILED = "Failed"


class LastUpdateStatus(enum.Enum):
    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    IN_PROGRESS = "InProgress"


@dataclass(frozen=True, slots=True, kw_only=True)
class CodeRef:
    """A function's code: a stored deployment zip addressed by its SHA-256, or a snapshot of a
    source directory addressed by its tree hash (then `source` names that directory)."""

    sha256_hex: str
    size: int
    source: str | None = None  # the host directory a source-directory function is watched in

    @property
    def sha256_b64(self) -> str:
        import base64

        return base64.b64encode(bytes.fromhex(self.sha256_hex)).decode()


class LogFormat(enum.Enum):
    JSON = "JSON"  # in botocore's order, which Lambda's enum messages list
    TEXT = "Text"


class LogLevel(enum.IntEnum):
    """Lambda's log levels, most detailed first: a record passes a filter at its level or above.

    ApplicationLogLevel takes all six; SystemLogLevel only DEBUG, INFO and WARN (spec 6).
    """

    # From 1, so that every member is truthy (`level or default` is how defaults apply).
    TRACE = 1
    DEBUG = 2
    INFO = 3
    WARN = 4
    ERROR = 5
    FATAL = 6


APPLICATION_LOG_LEVELS = tuple(LogLevel)
SYSTEM_LOG_LEVELS = (LogLevel.DEBUG, LogLevel.INFO, LogLevel.WARN)


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerRef:
    """A layer version a function uses: its ARN and content, kept even if the version is deleted
    (Lambda keeps a deleted version's content for the functions that use it)."""

    arn: str
    code: CodeRef
    unzipped_size: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggingConfig:
    """A function's LoggingConfig. Levels exist only with JSON (Lambda's defaults: INFO, INFO)."""

    log_format: LogFormat = LogFormat.TEXT
    application_log_level: LogLevel | None = None
    system_log_level: LogLevel | None = None
    log_group: str = ""  # "" = the default, /aws/lambda/<function name>

    @property
    def json(self) -> bool:
        return self.log_format is LogFormat.JSON

    @property
    def application_level(self) -> LogLevel | None:
        """The level application logs are filtered at; None in Text format (nothing is)."""
        return (self.application_log_level or LogLevel.INFO) if self.json else None

    @property
    def system_level(self) -> LogLevel | None:
        """The level platform records are filtered at; None in Text format (nothing is)."""
        return (self.system_log_level or LogLevel.INFO) if self.json else None


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggingChanges:
    """The LoggingConfig members of a request; None = not given (a partial update keeps them)."""

    log_format: LogFormat | None = None
    application_log_level: LogLevel | None = None
    system_log_level: LogLevel | None = None
    log_group: str | None = None


class UpdateRuntimeOn(enum.Enum):
    """When a function moves to a newer runtime version (spec 10, PutRuntimeManagementConfig)."""

    AUTO = "Auto"  # at its next cold start
    FUNCTION_UPDATE = "FunctionUpdate"  # at its next code or configuration update
    MANUAL = "Manual"  # never: it stays on a pinned version


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeManagement:
    update_on: UpdateRuntimeOn = UpdateRuntimeOn.AUTO
    # Manual: the pinned runtime version ARN. FunctionUpdate: the version current at the last
    # create or update. Auto: None (each cold start takes the newest installed version).
    version_arn: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StateInfo:
    """State and LastUpdateStatus with their reasons: what the waiters poll (spec 1.6)."""

    state: FunctionState = FunctionState.PENDING
    state_reason: str | None = "The function is being created."
    state_reason_code: str | None = "Creating"
    last_update_status: LastUpdateStatus | None = None
    last_update_reason: str | None = None
    last_update_reason_code: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class VpcConfig:
    """A function's VpcConfig: stored and returned, never acted on (Lamina has no VPC; see
    model/parity.py). Empty lists are Lambda's "no VPC"."""

    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    ipv6_allowed_for_dual_stack: bool = False

    @property
    def is_set(self) -> bool:
        return bool(self.subnet_ids or self.security_group_ids)


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionConfig:
    """Everything that describes one version of a function."""

    name: str
    version: str = LATEST
    runtime: str
    handler: str
    role: str
    code: CodeRef
    description: str = ""
    memory_size: int = 128
    timeout: int = 3
    environment: dict[str, str] = field(default_factory=dict)
    architectures: tuple[str, ...] = ("x86_64",)
    ephemeral_storage: int = 512
    tracing_mode: str = "PassThrough"
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    layers: tuple[LayerRef, ...] = ()  # in order: later layers overwrite earlier files in /opt
    dead_letter_target: str | None = None
    kms_key_arn: str | None = None
    vpc: VpcConfig = field(default_factory=VpcConfig)
    package_type: str = "Zip"
    revision_id: str
    last_modified: str
    status: StateInfo = field(default_factory=StateInfo)
    runtime_management: RuntimeManagement = field(default_factory=RuntimeManagement)

    @property
    def is_latest(self) -> bool:
        return self.version == LATEST

    @property
    def log_group(self) -> str:
        return self.logging.log_group or f"/aws/lambda/{self.name}"

    def runs_like(self, other: FunctionConfig) -> bool:
        """True if an environment built for `other` can serve this config unchanged."""
        return (
            self.code == other.code
            and self.runtime == other.runtime
            and self.handler == other.handler
            and self.memory_size == other.memory_size
            and self.timeout == other.timeout
            and self.environment == other.environment
            and self.layers == other.layers
            and self.ephemeral_storage == other.ephemeral_storage
            and self.logging == other.logging
            and self.runtime_management == other.runtime_management
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Alias:
    function_name: str
    name: str
    function_version: str
    description: str = ""
    # At most one extra version with a weight in [0, 1] (spec 2.3).
    additional_weights: dict[str, float] = field(default_factory=dict)
    revision_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigChanges:
    """Configuration members of a Create or UpdateFunctionConfiguration request; None = not given."""

    runtime: str | None = None
    handler: str | None = None
    role: str | None = None
    description: str | None = None
    memory_size: int | None = None
    timeout: int | None = None
    environment: dict[str, str] | None = None
    architectures: tuple[str, ...] | None = None
    ephemeral_storage: int | None = None
    tracing_mode: str | None = None
    logging: LoggingChanges | None = None
    layers: tuple[str, ...] | None = None  # layer version ARNs, as the request gives them
    dead_letter_target: str | None = None
    kms_key_arn: str | None = None
    vpc: VpcConfig | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateFunctionInput:
    name: str
    changes: ConfigChanges
    zip_file: bytes | None
    code: CodeRef | None = None  # code already in the store (a source snapshot) instead of a zip
    package_type: str = "Zip"
    publish: bool = False
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvisionedState:
    """How far provisioned concurrency for one version has got."""

    requested: int
    allocated: int
    failure: str | None = None  # a StatusReason, e.g. FUNCTION_ERROR_INIT_FAILURE


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvisionedConfig:
    function_name: str
    qualifier: str  # as configured: a version number or an alias name
    requested: int
    last_modified: str
