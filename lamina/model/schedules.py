"""Schedules as typed values: a function run on an EventBridge rate() or cron() expression.

Times are wall-clock epoch seconds (they must survive a restart); nothing here reads a clock.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

# EventBridge's rule name: 1-64 of letters, digits, '.', '-', '_'.
SCHEDULE_NAME = re.compile(r"^[\.\-_A-Za-z0-9]{1,64}$")
SCHEDULE_NAME_PATTERN = r"[\.\-_A-Za-z0-9]+"
# EventBridge's limit on a target's Input.
MAX_INPUT_CHARS = 8192


class ScheduleState(enum.Enum):
    ENABLED = "ENABLED"
    DISABLED = "DISABLED"


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """One schedule and how far it has fired.

    `fired_until`: every fire at or before this time is done with: enqueued, skipped by the
    catch-up rule, or passed while the schedule was disabled. None: nothing yet since `created`
    (a rate counts from `created`, as an EventBridge rate rule counts from its creation).
    """

    name: str
    expression: str
    function_name: str
    qualifier: str | None = None
    input: str | None = None  # EventBridge's Input: constant JSON sent instead of the event
    state: ScheduleState = ScheduleState.ENABLED
    created: float
    fired_until: float | None = None

    @property
    def since(self) -> float:
        """Fires after this time are still to come."""
        return self.created if self.fired_until is None else self.fired_until


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleStatistics:
    schedules: int
    enabled: int
    fired: int  # events enqueued on time
    caught_up: int  # events enqueued for fires missed while the server was down
    skipped: int  # missed fires older than their function's MaximumEventAgeInSeconds


@dataclass(frozen=True, slots=True, kw_only=True)
class NewSchedule:
    """What adding a schedule asks for (the admin API's request, parsed)."""

    name: str
    expression: str
    function_name: str
    qualifier: str | None = None
    input: str | None = None
    state: ScheduleState = ScheduleState.ENABLED
