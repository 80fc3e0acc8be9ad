"""EventRunner: one claimed event, from its attempt to its settlement (spec 7).

- success: removed; an invocation record to the OnSuccess destination, if any;
- throttled (429), or the platform failed (a 5xx: the function is not ready, an environment
  could not start): back to the queue with exponential backoff from 1 s to 5 min; not an
  attempt (spec 7: "returned to the queue");
- a function error, timeout or runtime crash: a failed attempt. Retried after 1 min, then
  2 min, up to `MaximumRetryAttempts` (default 2), then `RetriesExhausted`;
- older than `MaximumEventAgeInSeconds` (default 6 h) when due: `EventAgeExceeded`;
- reserved concurrency 0: `ZeroReservedConcurrency` at once, with no attempt (observed);
- the function, version or alias is gone: kept as failed (`FunctionNotFound`).
A failed event goes to the OnFailure destination and to the version's DeadLetterConfig target
(both, when both are set, as Lambda does); with neither, to the failed-events store.

Every outcome is one EventQueue call, so one transaction with what it causes. `time_scale`
divides every delay and age (the test-mode clock).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from lamina.asyncq import destinations
from lamina.functions.event_configs import EventConfigs
from lamina.functions.service import FunctionService
from lamina.invoke.invoker import Invoker
from lamina.model.errors import LambdaError, ResourceNotFoundException, TooManyRequestsException
from lamina.model.events import (
    DEFAULT_EVENT_AGE_S,
    DEFAULT_RETRY_ATTEMPTS,
    AsyncEvent,
    AttemptResponse,
    ClaimedEvent,
    EventCondition,
    FailedEvent,
)
from lamina.model.ids import LATEST, FunctionName, FunctionRef
from lamina.model.invocation import InvocationType, InvokeRequest
from lamina.store.queue import EventQueue

log = logging.getLogger("lamina.asyncq")

# Lambda's schedule (spec 7): ~1 min before the second attempt, ~2 min before the third.
RETRY_DELAY_S = 60.0
# Throttles and service errors: exponential from 1 s, at most 5 min.
THROTTLE_BACKOFF_FIRST_S = 1.0
THROTTLE_BACKOFF_MAX_S = 300.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """What running one event told the dispatcher."""

    warm_rtt: float | None = None  # seconds a warm attempt took (None: cold, or no attempt)
    due: float | None = None  # when something it put in the queue becomes due, if it did


@dataclass(slots=True)
class RunnerCounts:
    succeeded: int = 0
    failed_attempts: int = 0
    throttled: int = 0
    retries: int = 0
    ended_unsuccessfully: int = 0


class EventRunner:
    def __init__(
        self,
        *,
        queue: EventQueue,
        invoker: Invoker,
        functions: FunctionService,
        configs: EventConfigs,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self._queue = queue
        self._invoker = invoker
        self._functions = functions
        self._configs = configs
        self._scale = time_scale
        self._clock = clock
        self.counts = RunnerCounts()

    def expiry(self, event: AsyncEvent) -> float:
        """When `event` passes its function's MaximumEventAgeInSeconds (scaled)."""
        config = self._configs.find(event.function_name, event.qualifier)
        return event.enqueued_at + (config.event_age_s if config else DEFAULT_EVENT_AGE_S) / self._scale

    def throttle_delay(self, event: AsyncEvent) -> float:
        delay: float = min(THROTTLE_BACKOFF_FIRST_S * 2.0**event.throttles, THROTTLE_BACKOFF_MAX_S)
        return delay / self._scale

    def ends_without_running(self, event: AsyncEvent) -> bool:
        """Whether `run` will settle `event` without invoking (gone, expired, reserved 0)."""
        rec = self._functions.find(event.function_name)
        return rec is None or rec.reserved == 0 or self._clock() >= self.expiry(event)

    async def run(self, claim: ClaimedEvent, *, on_invoked: Callable[[], None] = lambda: None) -> Report:
        """Attempt the event and settle it. `on_invoked` is called once the attempt is over (or
        at once, if there is none), before the settlement is written: the concurrency the
        attempt held is free from then on. Raises only what the store raises (the event then
        stays leased and is claimed again when the lease ends)."""
        try:
            return await self._run(claim, on_invoked)
        finally:
            on_invoked()

    async def _run(self, claim: ClaimedEvent, on_invoked: Callable[[], None]) -> Report:
        event = claim.event
        rec = self._functions.find(event.function_name)
        if rec is None:
            return await self.finish(claim, event, EventCondition.FUNCTION_NOT_FOUND)
        expires = self.expiry(event)
        if self._clock() >= expires:
            return await self.finish(claim, event, EventCondition.EVENT_AGE_EXCEEDED)
        if rec.reserved == 0:
            return await self.finish(claim, event, EventCondition.ZERO_RESERVED_CONCURRENCY)
        req = InvokeRequest(
            ref=FunctionRef(name=FunctionName(rec.name), qualifier=event.qualifier),
            payload=event.payload,
            invocation_type=InvocationType.EVENT,
            client_context=event.client_context,
            trace_id=event.trace_id,
        )
        self._invoker.metrics.record_event_attempt(self._clock() - event.enqueued_at)
        started = time.perf_counter()
        try:
            result = await self._invoker.invoke(req, event.id)
        except TooManyRequestsException:
            on_invoked()
            return await self.back_off(claim, event)
        except ResourceNotFoundException:  # its version or alias was deleted meanwhile
            on_invoked()
            return await self.finish(claim, event, EventCondition.FUNCTION_NOT_FOUND)
        except (LambdaError, OSError, RuntimeError) as exc:  # the platform's failure (a 5xx), not the function's
            on_invoked()
            log.warning("event %s: %s: %s; trying again later", event.id, type(exc).__name__, exc)
            return await self.back_off(claim, event)
        rtt = time.perf_counter() - started
        on_invoked()
        warm = result.timings is not None and result.timings.start != "cold"
        response = AttemptResponse(
            executed_version=result.executed_version,
            function_error="Unhandled" if result.failed else None,
            payload=result.payload,
            error_type=result.error_type,
        )
        event = replace(event, attempts=event.attempts + 1, throttles=0, last_response=response)
        if not result.failed:
            self.counts.succeeded += 1
            report = await self.finish(claim, event, EventCondition.SUCCESS)
        else:
            self.counts.failed_attempts += 1
            config = self._configs.find(event.function_name, event.qualifier)
            if event.attempts > (config.retry_attempts if config else DEFAULT_RETRY_ATTEMPTS):
                report = await self.finish(claim, event, EventCondition.RETRIES_EXHAUSTED)
            else:
                due = min(self._clock() + RETRY_DELAY_S * event.attempts / self._scale, expires)
                self.counts.retries += 1
                await self._queue.retry(claim, event, due=due)
                report = Report(due=due)
        return replace(report, warm_rtt=rtt if warm else None)

    async def back_off(self, claim: ClaimedEvent, event: AsyncEvent) -> Report:
        """Throttled or a service error: back to the queue, not counted as an attempt."""
        self.counts.throttled += 1
        due = min(self._clock() + self.throttle_delay(event), self.expiry(event))
        await self._queue.retry(claim, replace(event, throttles=min(event.throttles + 1, 30)), due=due)
        return Report(due=due)

    async def finish(self, claim: ClaimedEvent, event: AsyncEvent, condition: EventCondition) -> Report:
        """Settle for good: records to destinations, a dead letter, or the failed-events store."""
        now = self._clock()
        deliveries: list[AsyncEvent] = []
        if condition is not EventCondition.FUNCTION_NOT_FOUND:
            target = self._destination(event, condition)
            if target is not None:
                arn = self._functions.arns.function(event.function_name, event.qualifier or LATEST)
                record = destinations.invocation_record(event, condition=condition, function_arn=arn, timestamp=now)
                deliveries.append(destinations.record_event(target, record, source=event, now=now))
            if condition is not EventCondition.SUCCESS:
                dead_letter = self._dead_letter_target(event)
                if dead_letter is not None:
                    deliveries.append(destinations.dead_letter_event(dead_letter, source=event, now=now))
        failed = None
        if condition is not EventCondition.SUCCESS:
            self.counts.ended_unsuccessfully += 1
            self._invoker.metrics.record_event_dropped(event.function_name, condition.value)
            if not deliveries:
                failed = FailedEvent(event=event, condition=condition, failed_at=now)
                log.info("event %s of %s failed (%s); kept in the failed-events store", event.id, event.function_name, condition.value)
        await self._queue.settle(claim, failed=failed, deliveries=deliveries, now=now)
        return Report(due=now if deliveries else None)

    def _destination(self, event: AsyncEvent, condition: EventCondition) -> FunctionRef | None:
        config = self._configs.find(event.function_name, event.qualifier)
        if config is None:
            return None
        d = config.destinations
        arn = d.on_success if condition is EventCondition.SUCCESS else d.on_failure
        return self._functions.arns.local_function(arn) if arn else None

    def _dead_letter_target(self, event: AsyncEvent) -> FunctionRef | None:
        """The DeadLetterConfig target of the version the event was invoked on (version-specific)."""
        try:
            config = self._functions.get_config(FunctionRef(name=FunctionName(event.function_name), qualifier=event.qualifier))
        except ResourceNotFoundException:
            return None
        if not config.dead_letter_target:
            return None
        return self._functions.arns.local_function(config.dead_letter_target)
