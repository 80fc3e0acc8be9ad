"""EventBridge schedule expressions: what parses, what is refused (and how it says so), and fire
times: hand-checked dates for every wildcard, and property tests of the next-fire search against a
minute-by-minute scan."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lamina.schedules.expressions import Cron, ExpressionError, Rate, RateUnit, latest_fire, parse


def at(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[misc]


def fires(text: str, start: float, n: int) -> list[datetime]:
    expr = parse(text)
    out = []
    t: float | None = start
    for _ in range(n):
        assert t is not None
        t = expr.next_after(t, anchor=start)
        if t is None:
            break
        out.append(datetime.fromtimestamp(t, tz=UTC))
    return out


def d(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# --- rate ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(1 hour)", 3600), ("rate(12 hours)", 43200),
     ("rate(1 day)", 86400), ("rate(7 days)", 604800)],
)  # fmt: skip
def test_rates_parse(text: str, seconds: int) -> None:
    expr = parse(text)
    assert isinstance(expr, Rate)
    assert expr.period() == seconds


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("rate(1 minutes)", "A value of 1 takes a singular unit: rate(1 minute)"),
        ("rate(5 minute)", "A value over 1 takes a plural unit: rate(5 minutes)"),
        ("rate(0 minutes)", "'0' must be a positive whole number"),
        ("rate(-1 minutes)", "'-1' must be a positive whole number"),
        ("rate(1.5 hours)", "'1.5' must be a positive whole number"),
        ("rate(5 seconds)", "'seconds' must be one of minute, minutes, hour, hours, day, days"),
        ("rate(5 weeks)", "'weeks' must be one of"),
        ("rate(5)", "rate(value unit)"),
        ("rate 5 minutes", "neither rate(value unit) nor cron(fields)"),
        ("", "empty"),
    ],
)
def test_bad_rates_say_why(text: str, says: str) -> None:
    assert_refused(text, says)


def assert_refused(text: str, says: str) -> None:
    with pytest.raises(ExpressionError) as exc:
        parse(text)
    assert str(exc.value).startswith("Parameter ScheduleExpression is not valid. ")
    assert says in str(exc.value)


def test_rate_counts_from_its_anchor() -> None:
    anchor = at(2024, 1, 1, 10, 0, 7)
    rate = parse("rate(5 minutes)")
    assert rate.next_after(anchor, anchor=anchor) == anchor + 300
    assert rate.next_after(anchor + 299.9, anchor=anchor) == anchor + 300
    assert rate.next_after(anchor + 300, anchor=anchor) == anchor + 600  # strictly after
    assert rate.next_after(anchor - 1000, anchor=anchor) == anchor + 300  # never before the first
    assert rate.next_after(anchor, anchor=anchor, scale=60) == anchor + 5  # the test-mode clock


@given(
    value=st.integers(1, 10_000),
    unit=st.sampled_from(list(RateUnit)),
    anchor=st.floats(1e9, 2e9),
    offset=st.floats(-1e6, 1e8),
    scale=st.sampled_from([1.0, 60.0, 1000.0]),
)
def test_rate_next_is_the_first_multiple_after(value: int, unit: RateUnit, anchor: float, offset: float, scale: float) -> None:
    rate = Rate(text="", value=value, unit=unit)
    t = anchor + offset
    fire = rate.next_after(t, anchor=anchor, scale=scale)
    assert fire is not None
    period = rate.period(scale)
    assert fire > t and fire > anchor
    k = round((fire - anchor) / period)
    assert k >= 1 and abs(anchor + k * period - fire) < 1e-6
    assert k == 1 or fire - period <= t + 1e-6


# --- cron: parsing -----------------------------------------------------------------------------


def test_the_user_guide_examples_parse_and_fire_as_described() -> None:
    start = at(2024, 1, 1)  # a Monday
    assert fires("cron(0 10 * * ? *)", start, 2) == [d(2024, 1, 1, 10), d(2024, 1, 2, 10)]
    assert fires("cron(15 12 * * ? *)", start, 1) == [d(2024, 1, 1, 12, 15)]
    assert fires("cron(0 18 ? * MON-FRI *)", at(2024, 1, 5, 19), 2) == [d(2024, 1, 8, 18), d(2024, 1, 9, 18)]
    assert fires("cron(0 8 1 * ? *)", start, 2) == [d(2024, 1, 1, 8), d(2024, 2, 1, 8)]
    assert fires("cron(0/15 * * * ? *)", start, 3) == [d(2024, 1, 1, 0, 15), d(2024, 1, 1, 0, 30), d(2024, 1, 1, 0, 45)]
    assert fires("cron(0/10 * ? * MON-FRI *)", at(2024, 1, 5, 23, 55), 1) == [d(2024, 1, 8, 0, 0)]
    assert fires("cron(0/5 8-17 ? * MON-FRI *)", at(2024, 1, 1, 17, 55), 1) == [d(2024, 1, 2, 8, 0)]
    assert fires("cron(0 9 ? * 2#1 *)", start, 2) == [d(2024, 1, 1, 9), d(2024, 2, 5, 9)]  # first Monday


def test_day_of_week_is_1_for_sunday() -> None:
    start = at(2024, 1, 1)  # Monday
    assert fires("cron(0 0 ? * 1 *)", start, 1) == [d(2024, 1, 7)]  # Sunday
    assert fires("cron(0 0 ? * SUN *)", start, 1) == [d(2024, 1, 7)]
    assert fires("cron(0 0 ? * 7 *)", start, 1) == [d(2024, 1, 6)]  # Saturday
    assert fires("cron(0 0 ? * sat *)", start, 1) == [d(2024, 1, 6)]  # names ignore case
    assert fires("cron(0 0 ? * 2,4,6 *)", start, 3) == [d(2024, 1, 3), d(2024, 1, 5), d(2024, 1, 8)]


def test_l_w_and_hash() -> None:
    assert fires("cron(0 0 L * ? *)", at(2024, 1, 1), 3) == [d(2024, 1, 31), d(2024, 2, 29), d(2024, 3, 31)]
    assert fires("cron(0 0 ? * L *)", at(2024, 1, 1), 2) == [d(2024, 1, 6), d(2024, 1, 13)]  # Saturdays
    assert fires("cron(0 0 ? * 6L *)", at(2024, 1, 1), 2) == [d(2024, 1, 26), d(2024, 2, 23)]  # last Fridays
    assert fires("cron(0 0 ? * FRIL *)", at(2024, 2, 1), 1) == [d(2024, 2, 23)]
    # 1W: June 1, 2024 is a Saturday, so the Monday after (never May 31)
    assert fires("cron(0 0 1W 6 ? 2024)", at(2024, 1, 1), 1) == [d(2024, 6, 3)]
    # 15W: September 15, 2024 is a Sunday: Monday the 16th; March 15, 2024 a Friday: itself
    assert fires("cron(0 0 15W 9 ? 2024)", at(2024, 1, 1), 1) == [d(2024, 9, 16)]
    assert fires("cron(0 0 15W 3 ? 2024)", at(2024, 1, 1), 1) == [d(2024, 3, 15)]
    # 30W in a month whose 30th is a Sunday (June 2024) stays in June: Friday the 28th
    assert fires("cron(0 0 30W 6 ? 2024)", at(2024, 1, 1), 1) == [d(2024, 6, 28)]
    # LW: March 31, 2024 is a Sunday: Friday the 29th
    assert fires("cron(0 0 LW 3 ? 2024)", at(2024, 1, 1), 1) == [d(2024, 3, 29)]
    # the fifth Friday exists in March 2024 (29th) and May 2024 (31st), not in April
    assert fires("cron(0 0 ? * 6#5 2024)", at(2024, 3, 1), 2) == [d(2024, 3, 29), d(2024, 5, 31)]
    assert fires("cron(0 0 31 * ? *)", at(2024, 4, 1), 1) == [d(2024, 5, 31)]  # months without a 31st


def test_years_and_their_end() -> None:
    assert fires("cron(0 0 1 1 ? 2030-2031)", at(2024, 1, 1), 3) == [d(2030, 1, 1), d(2031, 1, 1)]
    assert parse("cron(0 0 1 1 ? 2020)").next_after(at(2024, 1, 1), anchor=0) is None  # all in the past
    assert fires("cron(59 23 31 DEC ? *)", at(2199, 12, 31, 23, 59), 1) == []  # nothing after 2199
    assert fires("cron(0 12 * JAN,JUL ? *)", at(2024, 1, 31, 12), 1) == [d(2024, 7, 1, 12)]
    assert fires("cron(5-7/2 */12 * * ? *)", at(2024, 1, 1), 4) == [
        d(2024, 1, 1, 0, 5), d(2024, 1, 1, 0, 7), d(2024, 1, 1, 12, 5), d(2024, 1, 1, 12, 7)
    ]  # fmt: skip


def test_next_fire_is_strictly_after_and_on_whole_minutes() -> None:
    every = parse("cron(* * * * ? *)")
    assert every.next_after(1893455999.9999998, anchor=0) == at(2030, 1, 1)  # found by hypothesis
    assert every.next_after(at(2024, 1, 1, 0, 0), anchor=0) == at(2024, 1, 1, 0, 1)
    assert every.next_after(at(2024, 1, 1, 0, 0) + 0.5, anchor=0) == at(2024, 1, 1, 0, 1)
    assert every.next_after(at(2024, 12, 31, 23, 59), anchor=0) == at(2025, 1, 1)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("cron(0 10 * * *)", "six fields"),
        ("cron(0 10 * * ? * *)", "six fields"),
        ("cron(0 10 * * * *)", "Exactly one of the Day-of-month and Day-of-week fields must be '?'"),
        ("cron(0 10 ? * ? *)", "Exactly one of the Day-of-month and Day-of-week fields must be '?'"),
        ("cron(60 10 * * ? *)", "The Minutes field '60' is not valid: 60 is outside 0-59"),
        ("cron(0 24 * * ? *)", "The Hours field '24' is not valid: 24 is outside 0-23"),
        ("cron(0 0 32 * ? *)", "The Day-of-month field '32' is not valid: 32 is outside 1-31"),
        ("cron(0 0 0 * ? *)", "The Day-of-month field '0' is not valid"),
        ("cron(0 0 * 13 ? *)", "The Month field '13' is not valid: 13 is outside 1-12"),
        ("cron(0 0 * FOO ? *)", "The Month field 'FOO' is not valid: 'FOO' is not a number or JAN-DEC"),
        ("cron(0 0 ? * 0 *)", "The Day-of-week field '0' is not valid: 0 is outside 1-7"),
        ("cron(0 0 ? * 8 *)", "The Day-of-week field '8' is not valid"),
        ("cron(0 0 ? * MON/2 *)", "'/' is not allowed in Day-of-week"),
        ("cron(0 0 ? * 3#1,6#3 *)", "a field with '#' holds one item only"),
        ("cron(0 0 ? * 3#6 *)", "the week number after '#' must be 1-5"),
        ("cron(0 0 * * ? 1969)", "The Year field '1969' is not valid: 1969 is outside 1970-2199"),
        ("cron(0 0 * * ? 2200)", "The Year field '2200' is not valid"),
        ("cron(0 22-2 * * ? *)", "The Hours field '22-2' is not valid: the range 22-2 runs backwards"),
        ("cron(0/0 * * * ? *)", "the increment '0' must be a positive whole number"),
        ("cron(1,,2 * * * ? *)", "it has an empty item"),
        ("cron(0 0 L,5 * ? *)", "L, LW and nW stand alone"),
        ("cron(0 0 ? * L,5 *)", "The Day-of-week field 'L,5' is not valid"),
        ("cron(0 0 ? * 2L,5 *)", "L and nL stand alone"),
        ("cron(0 0 W * ? *)", "The Day-of-month field 'W' is not valid"),
        ("cron(0 0 ? * * *", "A cron expression is cron(Minutes Hours"),
    ],
)
def test_bad_crons_say_which_field(text: str, says: str) -> None:
    assert_refused(text, says)


# --- cron: the search against a scan ----------------------------------------------------------

SCAN_MINUTES = 3 * 24 * 60


def _minutes_field() -> st.SearchStrategy[str]:
    return st.one_of(
        st.just("*"),
        st.integers(0, 59).map(str),
        st.tuples(st.integers(0, 59), st.integers(1, 30)).map(lambda p: f"{p[0]}/{p[1]}"),
        st.lists(st.integers(0, 59), min_size=1, max_size=4).map(lambda v: ",".join(map(str, v))),
    )


def _hours_field() -> st.SearchStrategy[str]:
    return st.one_of(
        st.just("*"),
        st.integers(0, 23).map(str),
        st.tuples(st.integers(0, 23), st.integers(0, 23)).map(lambda p: f"{min(p)}-{max(p)}"),
        st.integers(1, 12).map(lambda n: f"*/{n}"),
    )


def _day_fields() -> st.SearchStrategy[tuple[str, str]]:
    dom = st.one_of(
        st.just("*"), st.just("L"), st.just("LW"),
        st.integers(1, 31).map(str), st.integers(1, 31).map(lambda n: f"{n}W"),
        st.tuples(st.integers(1, 31), st.integers(1, 10)).map(lambda p: f"{p[0]}/{p[1]}"),
    )  # fmt: skip
    dow = st.one_of(
        st.just("*"), st.just("L"), st.sampled_from(["MON-FRI", "SAT,SUN", "2-4", "1"]),
        st.integers(1, 7).map(lambda n: f"{n}L"),
        st.tuples(st.integers(1, 7), st.integers(1, 5)).map(lambda p: f"{p[0]}#{p[1]}"),
    )  # fmt: skip
    return st.one_of(dom.map(lambda x: (x, "?")), dow.map(lambda x: ("?", x)))


@st.composite
def crons(draw: st.DrawFn) -> Cron:
    dom, dow = draw(_day_fields())
    month = draw(st.sampled_from(["*", "*", "1-6", "FEB,MAR", "*/3", "DEC"]))
    text = f"cron({draw(_minutes_field())} {draw(_hours_field())} {dom} {month} {dow} *)"
    expr = parse(text)
    assert isinstance(expr, Cron)
    return expr


@settings(max_examples=150, deadline=None)
@given(cron=crons(), start=st.floats(at(2023, 1, 1), at(2030, 1, 1)))
def test_next_fire_is_the_first_matching_minute(cron: Cron, start: float) -> None:
    fire = cron.next_after(start, anchor=0)
    # (from the whole second: fromtimestamp rounds 59.9999998 s up to the next minute)
    first = datetime.fromtimestamp(math.floor(start), tz=UTC).replace(second=0) + timedelta(minutes=1)
    scanned = next((first + timedelta(minutes=i) for i in range(SCAN_MINUTES)
                    if cron.matches(first + timedelta(minutes=i))), None)  # fmt: skip
    if scanned is not None:
        assert fire == scanned.timestamp(), cron.text
    else:  # nothing in the scanned window: the fire (if any) is beyond it, and matches
        assert fire is None or fire >= (first + timedelta(minutes=SCAN_MINUTES)).timestamp()
        assert fire is None or cron.matches(datetime.fromtimestamp(fire, tz=UTC))


@settings(max_examples=100, deadline=None)
@given(cron=crons(), after=st.floats(at(2024, 1, 1), at(2026, 1, 1)), span=st.floats(0, 40 * 86400))
def test_latest_fire_is_the_last_one_in_the_window(cron: Cron, after: float, span: float) -> None:
    until = after + span
    latest = latest_fire(cron, after=after, until=until, anchor=0)
    if latest is None:
        nxt = cron.next_after(after, anchor=0)
        assert nxt is None or nxt > until
        return
    assert after < latest <= until and cron.matches(datetime.fromtimestamp(latest, tz=UTC))
    following = cron.next_after(latest, anchor=0)
    assert following is None or following > until


def test_latest_fire_of_a_rate_after_a_long_outage() -> None:
    rate = parse("rate(1 minute)")
    anchor = at(2024, 1, 1)
    # down for 30 days: the last fire is the whole minute at or before the restart
    assert latest_fire(rate, after=anchor, until=anchor + 30 * 86400 + 59, anchor=anchor) == anchor + 30 * 86400
    assert latest_fire(rate, after=anchor, until=anchor + 59, anchor=anchor) is None
