"""Asynchronous invocation as typed values: queued events, their outcomes, event invoke configs (spec 7).

Times that must survive a restart (when an event was accepted, when it is next due, when it
failed) are wall-clock epoch seconds; nothing here reads a clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from lamina.model.ids import RequestId

# Lambda's limits and defaults for asynchronous invocation (spec 7, 11).
DEFAULT_RETRY_ATTEMPTS = 2
MAX_RETRY_ATTEMPTS = 2
DEFAULT_EVENT_AGE_S = 21_600
MIN_EVENT_AGE_S = 60
MAX_EVENT_AGE_S = 21_600
ASYNC_PAYLOAD_LIMIT = 1_048_576


class EventCondition(enum.Enum):
    """How an event's processing ended: the `condition` of Lambda's invocation record (spec 7).

    FUNCTION_NOT_FOUND is Lamina's own: the function (or its version or alias) was deleted while
    the event waited. It is never sent to a destination (the configuration naming one is gone
    with it); the event is kept in the failed-events store instead.
    """

    SUCCESS = "Success"
    RETRIES_EXHAUSTED = "RetriesExhausted"
    EVENT_AGE_EXCEEDED = "EventAgeExceeded"
    ZERO_RESERVED_CONCURRENCY = "ZeroReservedConcurrency"
    FUNCTION_NOT_FOUND = "FunctionNotFound"


@dataclass(frozen=True, slots=True, kw_only=True)
class DestinationConfig:
    """OnSuccess / OnFailure destination ARNs; None = not set."""

    on_success: str | None = None
    on_failure: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EventInvokeConfig:
    """A function's, version's or alias's asynchronous settings (PutFunctionEventInvokeConfig).

    None means "not set" (the response omits the member); `retry_attempts` and `event_age_s`
    give the values that apply.
    """

    function_name: str
    qualifier: str  # "$LATEST", a version number or an alias name
    maximum_retry_attempts: int | None = None
    maximum_event_age_s: int | None = None
    destinations: DestinationConfig = DestinationConfig()
    last_modified: float  # epoch seconds (the API's Date shape is a JSON number, spec 1.1)

    @property
    def retry_attempts(self) -> int:
        return DEFAULT_RETRY_ATTEMPTS if self.maximum_retry_attempts is None else self.maximum_retry_attempts

    @property
    def event_age_s(self) -> int:
        return DEFAULT_EVENT_AGE_S if self.maximum_event_age_s is None else self.maximum_event_age_s


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptResponse:
    """What one attempt returned: the `responseContext` and `responsePayload` of a record."""

    executed_version: str
    function_error: str | None  # "Unhandled" when the attempt failed
    payload: bytes
    error_type: str | None = None  # e.g. "Sandbox.Timedout", for the DLQ's ErrorMessage
    status_code: int = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class AsyncEvent:
    """One accepted Event invocation and its attempt bookkeeping.

    `id` is the request id the caller got with its 202 and every attempt runs under (Lambda keeps
    it across retries). `attempts` counts attempts that reached the function; throttles do not
    count (spec 7), but `throttles` drives their backoff.
    """

    id: RequestId
    function_name: str
    qualifier: str | None  # as invoked; None = unqualified ($LATEST)
    payload: bytes
    enqueued_at: float
    attempts: int = 0
    throttles: int = 0
    trace_id: str | None = None
    client_context: str | None = None  # decoded JSON; set for dead-letter deliveries only
    last_response: AttemptResponse | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimedEvent:
    """An event a dispatcher holds under a lease: settling it needs the same `lease` token."""

    event: AsyncEvent
    lease: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FailedEvent:
    """An event that ended unsuccessfully with nowhere to send it: kept until replayed."""

    event: AsyncEvent
    condition: EventCondition
    failed_at: float
    seq: int = 0  # the store's position, for paging


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueStatistics:
    queued: int  # waiting, due or not (claimed ones included)
    claimed: int  # held by a dispatcher right now
    failed: int  # in the failed-events store


@dataclass(frozen=True, slots=True, kw_only=True)
class EventConfigChanges:
    """The members of a Put/UpdateFunctionEventInvokeConfig request; None = not given.

    `destinations` is the whole DestinationConfig when given (an empty OnSuccess or OnFailure
    object clears that destination); Update replaces it as a unit.
    """

    maximum_retry_attempts: int | None = None
    maximum_event_age_s: int | None = None
    destinations: DestinationConfig | None = None

    @property
    def empty(self) -> bool:
        return self.maximum_retry_attempts is None and self.maximum_event_age_s is None and self.destinations is None
