"""EventBridge schedule expressions: `rate(...)` and `cron(...)`, parsed, and their fire times.

The dialect is EventBridge's, as its user guide states it ("Cron expressions reference", "Rate
expressions reference"), not Unix cron's:
- `rate(1 minute|hour|day)`, `rate(N minutes|hours|days)`: N a positive whole number, the unit
  singular for 1 and plural otherwise. A rate counts from when the schedule was created.
- `cron(Minutes Hours Day-of-month Month Day-of-week Year)`, six fields, UTC:
  Minutes 0-59 and Hours 0-23 (`, - * /`), Day-of-month 1-31 (`, - * ? / L W`), Month 1-12 or
  JAN-DEC (`, - * /`), Day-of-week 1-7 or SUN-SAT, 1 = Sunday (`, - * ? L #`), Year 1970-2199
  (`, - * /`). One of Day-of-month and Day-of-week must be `?`, the other not.
  `L`: the month's last day; in Day-of-week alone, Saturday (the week's last day); `5L` the
  month's last Thursday. `15W`: the weekday nearest the 15th, within the month; `LW` the month's
  last weekday. `2#1`: the month's first Monday; a field with `#` holds that one item only.
  `a/n`: a, a+n, ... up to the field's end; `a-b/n` within a-b; `*/n` from the field's start.
Ranges run low to high (`22-2` is refused, not wrapped); names are case-insensitive.

Invalid expressions raise ExpressionError with EventBridge's message, "Parameter
ScheduleExpression is not valid.", followed by what is wrong and in which field.
Pure: no I/O, no clock; times are epoch seconds (UTC).
"""

from __future__ import annotations

import calendar
import enum
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime

_INVALID = "Parameter ScheduleExpression is not valid."
MIN_YEAR, MAX_YEAR = 1970, 2199
_MONTHS = {name: i for i, name in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}
_DAYS = {name: i for i, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), 1)}


class ExpressionError(ValueError):
    """A schedule expression EventBridge would refuse; the message says what and where."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"{_INVALID} {detail}")


class RateUnit(enum.Enum):
    MINUTE = 60
    HOUR = 3600
    DAY = 86400


_UNITS = {"minute": RateUnit.MINUTE, "hour": RateUnit.HOUR, "day": RateUnit.DAY}
_RATE = re.compile(r"^rate\(\s*(?P<value>\S+)\s+(?P<unit>\S+)\s*\)$")
_CRON = re.compile(r"^cron\((?P<fields>.*)\)$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Rate:
    """`rate(value unit)`: every `value` units, counted from `anchor` (the schedule's creation)."""

    text: str
    value: int
    unit: RateUnit

    def period(self, scale: float = 1.0) -> float:
        """Seconds between fires; `scale` (the test-mode clock) divides it."""
        return self.value * self.unit.value / scale

    def next_after(self, t: float, *, anchor: float, scale: float = 1.0) -> float | None:
        """The first fire strictly after `t`: anchor + k·period, k ≥ 1."""
        period = self.period(scale)
        k = max(1, math.floor((t - anchor) / period) + 1)
        fire = anchor + k * period
        while fire <= t:  # float rounding of the division, either way
            k += 1
            fire = anchor + k * period
        while k > 1 and anchor + (k - 1) * period > t:
            k -= 1
            fire = anchor + k * period
        return fire


@dataclass(frozen=True, slots=True, kw_only=True)
class MonthDays:
    """Day-of-month, when Day-of-week is `?`."""

    days: frozenset[int] = frozenset()
    last: bool = False  # L
    last_weekday: bool = False  # LW
    nearest_weekday: int | None = None  # nW

    def resolve(self, year: int, month: int) -> set[int]:
        length = calendar.monthrange(year, month)[1]
        out = {d for d in self.days if d <= length}
        if self.last:
            out.add(length)
        if self.last_weekday:
            out.add(_nearest_weekday(year, month, length, length))
        if self.nearest_weekday is not None and self.nearest_weekday <= length:
            out.add(_nearest_weekday(year, month, self.nearest_weekday, length))
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class WeekDays:
    """Day-of-week (1 = Sunday ... 7 = Saturday), when Day-of-month is `?`."""

    days: frozenset[int] = frozenset()
    last_of_month: int | None = None  # nL: the month's last such day
    nth: tuple[int, int] | None = None  # (day, k) from d#k: the month's k-th such day

    def resolve(self, year: int, month: int) -> set[int]:
        length = calendar.monthrange(year, month)[1]
        first = _weekday(year, month, 1)
        out = {d for d in range(1, length + 1) if (first + d - 2) % 7 + 1 in self.days}
        if self.last_of_month is not None:
            last = length - ((_weekday(year, month, length) - self.last_of_month) % 7)
            out.add(last)
        if self.nth is not None:
            day, k = self.nth
            date = 1 + (day - first) % 7 + 7 * (k - 1)
            if date <= length:
                out.add(date)
        return out


def _weekday(year: int, month: int, day: int) -> int:
    """EventBridge's day number: 1 = Sunday ... 7 = Saturday."""
    return (calendar.weekday(year, month, day) + 1) % 7 + 1


def _nearest_weekday(year: int, month: int, day: int, length: int) -> int:
    """The weekday (Monday-Friday) nearest `day`, never leaving the month (as Quartz's W)."""
    wd = _weekday(year, month, day)
    if wd == 7:  # Saturday: the Friday before, unless that is last month
        return day - 1 if day > 1 else day + 2
    if wd == 1:  # Sunday: the Monday after, unless that is next month
        return day + 1 if day < length else day - 2
    return day


@dataclass(frozen=True, slots=True, kw_only=True)
class Cron:
    """`cron(...)`: wall-clock minutes in UTC (never scaled by the test-mode clock)."""

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: MonthDays | WeekDays
    months: tuple[int, ...]
    years: tuple[int, ...]

    def matches(self, when: datetime) -> bool:
        """Whether the whole minute `when` (UTC) is a fire time."""
        return (
            when.second == 0
            and when.microsecond == 0
            and when.minute in self.minutes
            and when.hour in self.hours
            and when.month in self.months
            and when.year in self.years
            and when.day in self.days.resolve(when.year, when.month)
        )

    def next_after(self, t: float, *, anchor: float = 0.0, scale: float = 1.0) -> float | None:
        """The first fire strictly after `t`; None if there is none before 2200. (`anchor` and
        `scale` concern rates only.)"""
        start = datetime.fromtimestamp((math.floor(t) // 60 + 1) * 60, tz=UTC)  # (t/60 may round up a minute)
        for year in self.years:
            if year < start.year:
                continue
            for month in self.months:
                if (year, month) < (start.year, start.month):
                    continue
                same_month = (year, month) == (start.year, start.month)
                for day in sorted(self.days.resolve(year, month)):
                    if same_month and day < start.day:
                        continue
                    same_day = same_month and day == start.day
                    for hour in self.hours:
                        if same_day and hour < start.hour:
                            continue
                        same_hour = same_day and hour == start.hour
                        for minute in self.minutes:
                            if same_hour and minute < start.minute:
                                continue
                            return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()
        return None


Expression = Rate | Cron


def parse(text: str) -> Expression:
    """Parse a ScheduleExpression; raises ExpressionError saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("It is empty: use rate(...) or cron(...).")
    text = text.strip()
    if len(text) > 256:
        raise ExpressionError("It is longer than 256 characters.")
    if text.startswith("rate("):
        return _parse_rate(text)
    if text.startswith("cron("):
        return _parse_cron(text)
    raise ExpressionError(f"'{text}' is neither rate(value unit) nor cron(fields).")


def _parse_rate(text: str) -> Rate:
    m = _RATE.match(text)
    if m is None:
        raise ExpressionError("A rate expression is rate(value unit), e.g. rate(5 minutes).")
    raw, unit_text = m.group("value"), m.group("unit")
    if not raw.isdigit() or int(raw) < 1:
        raise ExpressionError(f"The rate value '{raw}' must be a positive whole number.")
    value = int(raw)
    singular = unit_text.removesuffix("s")
    if singular not in _UNITS:
        raise ExpressionError(f"The rate unit '{unit_text}' must be one of minute, minutes, hour, hours, day, days.")
    if value == 1 and unit_text != singular:
        raise ExpressionError(f"A value of 1 takes a singular unit: rate(1 {singular}), not rate(1 {unit_text}).")
    if value > 1 and unit_text == singular:
        raise ExpressionError(f"A value over 1 takes a plural unit: rate({value} {singular}s), not rate({value} {unit_text}).")
    return Rate(text=text, value=value, unit=_UNITS[singular])


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    lo: int
    hi: int
    names: dict[str, int] | None = None


_MINUTES = _Field("Minutes", 0, 59)
_HOURS = _Field("Hours", 0, 23)
_DOM = _Field("Day-of-month", 1, 31)
_MONTH = _Field("Month", 1, 12, _MONTHS)
_DOW = _Field("Day-of-week", 1, 7, _DAYS)
_YEAR = _Field("Year", MIN_YEAR, MAX_YEAR)


def _parse_cron(text: str) -> Cron:
    m = _CRON.match(text)
    if m is None:
        raise ExpressionError("A cron expression is cron(Minutes Hours Day-of-month Month Day-of-week Year).")
    parts = m.group("fields").split()
    if len(parts) != 6:
        raise ExpressionError(
            f"A cron expression has six fields (Minutes Hours Day-of-month Month Day-of-week Year); this one has {len(parts)}."
        )
    minute, hour, dom, month, dow, year = parts
    if (dom == "?") == (dow == "?"):
        raise ExpressionError(
            "Exactly one of the Day-of-month and Day-of-week fields must be '?' "
            f"(here Day-of-month is '{dom}' and Day-of-week is '{dow}')."
        )
    days: MonthDays | WeekDays = _month_days(dom) if dow == "?" else _week_days(dow)
    return Cron(
        text=text,
        minutes=tuple(sorted(_values(minute, _MINUTES))),
        hours=tuple(sorted(_values(hour, _HOURS))),
        days=days,
        months=tuple(sorted(_values(month, _MONTH))),
        years=tuple(sorted(_values(year, _YEAR))),
    )


def _bad(f: _Field, raw: str, why: str) -> ExpressionError:
    return ExpressionError(f"The {f.name} field '{raw}' is not valid: {why}.")


def _number(token: str, f: _Field, raw: str) -> int:
    upper = token.upper()
    if f.names is not None and upper in f.names:
        return f.names[upper]
    if not token.isdigit():
        allowed = f" or {next(iter(f.names))}-{list(f.names)[-1]}" if f.names else ""
        raise _bad(f, raw, f"'{token}' is not a number{allowed}")
    value = int(token)
    if not f.lo <= value <= f.hi:
        raise _bad(f, raw, f"{value} is outside {f.lo}-{f.hi}")
    return value


def _values(raw: str, f: _Field) -> set[int]:
    """A field of `, - * /` items (names allowed where the field has them)."""
    out: set[int] = set()
    for item in raw.split(","):
        if not item:
            raise _bad(f, raw, "it has an empty item")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise _bad(f, raw, f"the increment '{step_text}' must be a positive whole number")
            step = int(step_text)
        if base == "*":
            lo, hi = f.lo, f.hi
        elif "-" in base:
            a, _, b = base.partition("-")
            lo, hi = _number(a, f, raw), _number(b, f, raw)
            if lo > hi:
                raise _bad(f, raw, f"the range {base} runs backwards")
        else:
            lo = _number(base, f, raw)
            hi = f.hi if slash else lo
        out.update(range(lo, hi + 1, step))
    return out


def _month_days(raw: str) -> MonthDays:
    f = _DOM
    upper = raw.upper()
    if upper == "L":
        return MonthDays(last=True)
    if upper == "LW":
        return MonthDays(last_weekday=True)
    if upper.endswith("W"):
        return MonthDays(nearest_weekday=_number(raw[:-1], f, raw))
    if "L" in upper or "W" in upper:
        raise _bad(f, raw, "L, LW and nW stand alone in the field")
    return MonthDays(days=frozenset(_values(raw, f)))


def _week_days(raw: str) -> WeekDays:
    f = _DOW
    upper = raw.upper()
    if "/" in raw:
        raise _bad(f, raw, "'/' is not allowed in Day-of-week")
    if upper == "L":
        return WeekDays(days=frozenset({7}))  # the last day of the week: Saturday
    if "#" in raw:
        day_text, _, k_text = raw.partition("#")
        if "," in raw or "-" in raw:
            raise _bad(f, raw, "a field with '#' holds one item only")
        if not k_text.isdigit() or not 1 <= int(k_text) <= 5:
            raise _bad(f, raw, f"the week number after '#' must be 1-5, not '{k_text}'")
        return WeekDays(nth=(_number(day_text, f, raw), int(k_text)))
    if "L" in upper:  # (no day name has an L)
        if "," in raw or "-" in raw or not upper.endswith("L"):
            raise _bad(f, raw, "L and nL stand alone in the field")
        return WeekDays(last_of_month=_number(raw[:-1], f, raw))
    return WeekDays(days=frozenset(_values(raw, f)))


def latest_fire(expr: Expression, *, after: float, until: float, anchor: float, scale: float = 1.0) -> float | None:
    """The last fire time t with after < t ≤ until, or None if there is none.

    For the catch-up rule: only the latest missed fire matters. Looks back from `until` in
    windows that double, so a server down for a month costs a few dozen steps, not one per fire.
    """
    first = expr.next_after(after, anchor=anchor, scale=scale)
    if first is None or first > until:
        return None
    window = 60.0 / scale
    while True:
        start = max(after, until - window)
        fire = expr.next_after(start, anchor=anchor, scale=scale)
        if fire is not None and fire <= until:
            while True:
                following = expr.next_after(fire, anchor=anchor, scale=scale)
                if following is None or following > until:
                    return fire
                fire = following
        window *= 2
