"""Invocations as typed values: what flows from the API through the invoker to an environment."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from lamina.model.function import FunctionConfig
from lamina.model.ids import FunctionRef, RequestId

# Lambda's request and response limit for synchronous invocation (spec 0.14).
SYNC_PAYLOAD_LIMIT = 6_291_456


class InvocationType(enum.Enum):
    REQUEST_RESPONSE = "RequestResponse"
    EVENT = "Event"
    DRY_RUN = "DryRun"


class InvokeOutcome(enum.Enum):
    SUCCESS = "success"
    FUNCTION_ERROR = "error"  # the handler raised; the runtime posted /error
    INIT_ERROR = "init_error"  # init failed twice (init phase, then again in the invoke phase)
    TIMEOUT = "timeout"
    RUNTIME_EXIT = "runtime_exit"  # the runtime process died mid-invoke
    RESPONSE_TOO_LARGE = "response_too_large"


@dataclass(frozen=True, slots=True, kw_only=True)
class InvokeRequest:
    """An Invoke call as received, before resolution."""

    ref: FunctionRef
    payload: bytes
    invocation_type: InvocationType = InvocationType.REQUEST_RESPONSE
    client_context: str | None = None  # decoded JSON text
    tail_log: bool = False
    trace_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Invocation:
    """A resolved invocation, bound to the version it runs."""

    request_id: RequestId
    config: FunctionConfig
    invoked_arn: str
    payload: bytes
    client_context: str | None = None
    trace_id: str | None = None
    tail_log: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class InvokeTimings:
    duration_ms: float
    billed_ms: int
    max_memory_mb: int
    init_ms: float | None = None
    # How the invocation found its environment: "cold" (it ran init), "warm", or "provisioned".
    start: str = "warm"


@dataclass(frozen=True, slots=True, kw_only=True)
class InvokeResult:
    request_id: RequestId
    executed_version: str
    outcome: InvokeOutcome
    payload: bytes
    content_type: str | None = None
    # The Lambda error type for a failed outcome (e.g. "Sandbox.Timedout", "ValueError").
    error_type: str | None = None
    timings: InvokeTimings | None = None
    log_tail: bytes | None = None

    @property
    def failed(self) -> bool:
        return self.outcome is not InvokeOutcome.SUCCESS
