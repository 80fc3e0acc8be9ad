"""Scheduler: runs functions on EventBridge rate() and cron() expressions (expressions.py).

Every schedule lives in memory (loaded at start) and in the store; changes are written to the
store first. `run` (a task of the server's) sleeps until the next fire time, or until a change
wakes it, then fires every schedule that is due, concurrently so their commits share the
queue's group commit. A fire is one transaction: the schedule's `fired_until` moves to the
fire's time and the event goes into the durable queue (ScheduleRepo.fire); the dispatcher then
runs it like any Event invoke, so retries, MaximumEventAgeInSeconds, destinations, dead letters
and the failed-events store apply.

The event is EventBridge's "Scheduled Event" (`time` is the scheduled time, `resources` the
schedule's rule ARN), or the schedule's Input instead when it has one. Its age, for
MaximumEventAgeInSeconds, counts from the scheduled time.

Fires that came due together (the server was down, or busy) are coalesced: one event, for the
latest of them. The rule for fires missed while the server was down (EventBridge's own rules
never run them): the latest missed fire runs once at start if it is younger than its function's
MaximumEventAgeInSeconds (the async time scale applied), else it is skipped with a warning in the
server's log. Fires while a schedule is disabled are never run.

Test-mode clock: `time_scale` (LAMINA_SCHEDULE_TIME_SCALE) divides rate() periods, so a
rate(1 minute) schedule fires every second at 60. cron() fires are wall-clock minutes, unscaled.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from lamina.asyncq.dispatcher import Dispatcher
from lamina.functions.service import FunctionService
from lamina.model.errors import ResourceConflictException, ResourceNotFoundException, ValidationException
from lamina.model.events import AsyncEvent
from lamina.model.ids import LATEST, VERSION_NUMBER, RequestId, validation_error
from lamina.model.schedules import (
    MAX_INPUT_CHARS,
    SCHEDULE_NAME,
    SCHEDULE_NAME_PATTERN,
    NewSchedule,
    Schedule,
    ScheduleState,
    ScheduleStatistics,
)
from lamina.schedules.expressions import Cron, Expression, ExpressionError, latest_fire, parse
from lamina.store.schedules import ScheduleExists, ScheduleRepo

log = logging.getLogger("lamina.schedules")

# The loop looks at the wall clock at least this often (a clock step, a suspended host).
MAX_SLEEP_S = 60.0
# After the store failed to record fires: wait this long before trying them again.
RETRY_AFTER_FAILURE_S = 1.0


@dataclass(slots=True)
class _Counts:
    fired: int = 0
    caught_up: int = 0
    skipped: int = 0


class Scheduler:
    def __init__(
        self,
        *,
        repo: ScheduleRepo,
        functions: FunctionService,
        dispatcher: Dispatcher,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self._repo = repo
        self._functions = functions
        self._dispatcher = dispatcher
        self._scale = time_scale
        self._clock = clock
        self._schedules: dict[str, Schedule] = {}
        # Held while a schedule changes or fires, so a fire never races a change of its schedule.
        self._locks: dict[str, asyncio.Lock] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._started: float | None = None
        self._counts = _Counts()

    async def load(self) -> None:
        """Read every schedule from the store (before `run` and before the API serves)."""
        self._schedules = {s.name: s for s in await self._repo.load_all()}

    # --- control plane -----------------------------------------------------------------------

    async def add(self, new: NewSchedule) -> Schedule:
        """Validate and store a new schedule. Raises ValidationException (name, expression,
        input), ResourceNotFoundException (function, version or alias), ResourceConflictException
        (the name is taken)."""
        if not SCHEDULE_NAME.match(new.name):
            raise validation_error(new.name, "name", f"Member must satisfy regular expression pattern: {SCHEDULE_NAME_PATTERN}"
                                   if len(new.name) <= 64 else "Member must have length less than or equal to 64")  # fmt: skip
        try:
            _parse(new.expression)
        except ExpressionError as exc:
            raise ValidationException(str(exc)) from exc
        if new.input is not None:
            _check_input(new.input)
        async with self._functions.lock(new.function_name), self._lock(new.name):
            rec = self._functions.record(new.function_name, qualifier=new.qualifier)
            q = new.qualifier
            if q is not None and q != LATEST and q not in (rec.versions if VERSION_NUMBER.match(q) else rec.aliases):
                raise ResourceNotFoundException(f"Function not found: {self._functions.arns.function(rec.name, q)}")
            if new.name in self._schedules:
                raise _exists(new.name)
            schedule = Schedule(name=new.name, expression=new.expression.strip(), function_name=rec.name,
                                qualifier=None if q == LATEST else q, input=new.input, state=new.state,
                                created=self._clock())  # fmt: skip
            try:
                await self._repo.create(schedule)
            except ScheduleExists as exc:  # (memory mirrors the store: only a bug gets here)
                raise _exists(new.name) from exc
            except sqlite3.IntegrityError as exc:  # the function's row is gone (deleted meanwhile)
                raise ResourceNotFoundException(f"Function not found: {self._functions.arns.function(rec.name)}") from exc
            self._schedules[schedule.name] = schedule
        self._wake.set()
        return schedule

    async def remove(self, name: str) -> None:
        async with self._lock(name):
            self.get(name)
            await self._repo.delete(name)
            self._schedules.pop(name, None)
        self._locks.pop(name, None)
        self._wake.set()

    async def set_state(self, name: str, state: ScheduleState) -> Schedule:
        """Enable or disable. Enabling starts from now: fires passed while disabled never run."""
        async with self._lock(name):
            current = self.get(name)
            if current.state is state:
                return current
            now = self._clock()
            changed = replace(current, state=state, fired_until=now if state is ScheduleState.ENABLED else current.fired_until)
            if not await self._repo.set_state(changed):
                self._schedules.pop(name, None)
                raise _missing(name)
            self._schedules[name] = changed
        self._wake.set()
        return changed

    def get(self, name: str) -> Schedule:
        s = self._schedules.get(name)
        if s is None or self._functions.find(s.function_name) is None:
            raise _missing(name)
        return s

    def list(self, function: str | None = None) -> list[Schedule]:
        """Schedules by name, those of `function` only if given (of live functions only)."""
        return [
            s for name, s in sorted(self._schedules.items())
            if (function is None or s.function_name == function) and self._functions.find(s.function_name) is not None
        ]  # fmt: skip

    def forget_function(self, function: str) -> None:
        """The function was deleted, and its schedules with it in the store (ON DELETE CASCADE)."""
        for name in [n for n, s in self._schedules.items() if s.function_name == function]:
            del self._schedules[name]

    def next_fire(self, s: Schedule) -> float | None:
        """When `s` fires next (in the past if it is due); None if disabled or never again."""
        if s.state is not ScheduleState.ENABLED:
            return None
        expr = _parse(s.expression)
        return expr.next_after(s.since, anchor=s.created, scale=self._scale_of(expr))

    def rule_arn(self, name: str) -> str:
        arns = self._functions.arns
        return f"arn:aws:events:{arns.region}:{arns.account_id}:rule/{name}"

    def statistics(self) -> ScheduleStatistics:
        c = self._counts
        enabled = sum(1 for s in self._schedules.values() if s.state is ScheduleState.ENABLED)
        return ScheduleStatistics(schedules=len(self._schedules), enabled=enabled, fired=c.fired,
                                  caught_up=c.caught_up, skipped=c.skipped)  # fmt: skip

    # --- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Fire schedules as they come due until `stop()`. Starts once the dispatcher has taken
        back a previous server's leases; fires older than that moment count as missed."""
        await self._dispatcher.wait_recovered()
        self._started = self._clock()
        while not self._stopping:
            self._wake.clear()  # before looking, so a change made while firing is not lost
            now = self._clock()
            due = [name for name, s in self._schedules.items() if (t := self.next_fire(s)) is not None and t <= now]
            if not due:
                await self._wait(self._next_wake(now))
                continue
            results = await asyncio.gather(*(self._fire(name, now) for name in due), return_exceptions=True)
            errors = [r for r in results if isinstance(r, Exception)]
            for error in errors:  # the store failed: the fire stays due and is tried again
                log.error("a schedule's fire could not be recorded", exc_info=error)
            if errors:
                await self._wait(self._clock() + RETRY_AFTER_FAILURE_S)

    def stop(self) -> None:
        """`run` returns once the fires under way are recorded."""
        self._stopping = True
        self._wake.set()

    async def _wait(self, until: float) -> None:
        delay = until - self._clock()
        if delay <= 0:
            return
        try:
            await asyncio.wait_for(self._wake.wait(), delay)
        except TimeoutError:
            pass

    def _next_wake(self, now: float) -> float:
        times = [t for s in self._schedules.values() if (t := self.next_fire(s)) is not None]
        return min([now + MAX_SLEEP_S, *times])

    async def _fire(self, name: str, now: float) -> None:
        async with self._lock(name):
            s = self._schedules.get(name)
            if s is None or s.state is not ScheduleState.ENABLED:
                return  # removed or disabled while others fired
            expr = _parse(s.expression)
            at = latest_fire(expr, after=s.since, until=now, anchor=s.created, scale=self._scale_of(expr))
            if at is None:
                return
            event = self._event(s, at)
            missed = self._started is not None and at < self._started
            skip = missed and self._dispatcher.expiry(event) <= now
            if not await self._repo.fire(s, at=at, event=None if skip else event):
                # Unchanged here (we hold its lock), so gone from the store: its function was deleted.
                self._schedules.pop(name, None)
                return
            self._schedules[name] = replace(s, fired_until=at)
        when = _iso(at)
        if skip:
            self._counts.skipped += 1
            log.warning("schedule %s: its fire at %s was missed while the server was down and is older than "
                        "%s's MaximumEventAgeInSeconds; skipped", name, when, s.function_name)  # fmt: skip
            return
        if missed:
            self._counts.caught_up += 1
            log.warning("schedule %s: fires missed while the server was down run once, as the fire at %s", name, when)
        else:
            self._counts.fired += 1
        self._dispatcher.notify(s.function_name)

    def _event(self, s: Schedule, at: float) -> AsyncEvent:
        if s.input is not None:
            payload = s.input.encode()
        else:
            arns = self._functions.arns
            payload = json.dumps({
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": arns.account_id,
                "time": _iso(at),
                "region": arns.region,
                "resources": [self.rule_arn(s.name)],
                "detail": {},
            }).encode()  # fmt: skip
        return AsyncEvent(id=RequestId(str(uuid.uuid4())), function_name=s.function_name, qualifier=s.qualifier,
                          payload=payload, enqueued_at=at)  # fmt: skip

    def _scale_of(self, expr: Expression) -> float:
        return 1.0 if isinstance(expr, Cron) else self._scale

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> Expression:
    return parse(text)


def _iso(t: float) -> str:
    """EventBridge's `time`: whole seconds, UTC."""
    return datetime.fromtimestamp(int(t), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_input(raw: str) -> None:
    if len(raw) > MAX_INPUT_CHARS:
        raise validation_error(raw[:40] + "...", "input", f"Member must have length less than or equal to {MAX_INPUT_CHARS}")
    try:
        json.loads(raw)
    except ValueError as exc:
        raise ValidationException(f"Parameter Input is not valid JSON text: {exc}.") from exc


def _exists(name: str) -> ResourceConflictException:
    return ResourceConflictException(f"Schedule {name} already exists.")


def _missing(name: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(f"Schedule {name} does not exist.")

