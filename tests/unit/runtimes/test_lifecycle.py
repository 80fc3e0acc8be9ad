"""The runtime lifecycle data and its phases (spec 10)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from lamina.runtimes.catalog import LAMBDA_RUNTIMES
from lamina.runtimes.lifecycle import RuntimeCalendar, RuntimeLifecycle, RuntimePhase, blocked_message


def test_every_identifier_lambda_accepts_has_a_lifecycle_entry() -> None:
    calendar = RuntimeCalendar.load()
    missing = [rid for rid in LAMBDA_RUNTIMES if calendar.get(rid) is None]
    assert missing == []
    for e in calendar.entries():
        assert e.name and e.os and e.source, e
        # A runtime blocked for update is blocked for create; one blocked for create is deprecated.
        assert (e.block_update is None) or (e.block_create is not None and e.deprecation is not None), e


@pytest.mark.parametrize(
    ("today", "phase"),
    [
        (date(2027, 6, 29), RuntimePhase.SUPPORTED),
        (date(2027, 6, 30), RuntimePhase.DEPRECATED),  # a stage applies from its date on
        (date(2027, 7, 30), RuntimePhase.DEPRECATED),
        (date(2027, 7, 31), RuntimePhase.CREATE_BLOCKED),
        (date(2027, 8, 31), RuntimePhase.UPDATE_BLOCKED),
        (date(2040, 1, 1), RuntimePhase.UPDATE_BLOCKED),
    ],
)
def test_phase_follows_the_dates(today: date, phase: RuntimePhase) -> None:
    assert RuntimeCalendar.load(today=today).phase("python3.11") is phase


def test_unscheduled_runtimes_stay_supported() -> None:
    calendar = RuntimeCalendar.load(today=date(2099, 1, 1))
    assert calendar.phase("python3.15") is RuntimePhase.SUPPORTED  # a preview: no dates yet
    assert calendar.phase("not-a-runtime") is RuntimePhase.SUPPORTED


def test_phase_rank_orders_the_restrictions() -> None:
    ranks = [p.rank for p in (RuntimePhase.SUPPORTED, RuntimePhase.DEPRECATED, RuntimePhase.CREATE_BLOCKED,
                              RuntimePhase.UPDATE_BLOCKED)]  # fmt: skip
    assert ranks == sorted(ranks) and len(set(ranks)) == 4


def test_blocked_message_is_lambdas() -> None:
    assert blocked_message("python3.7") == (
        "The runtime parameter of python3.7 is no longer supported for creating or updating AWS Lambda functions. "
        "We recommend you use a supported runtime while creating or updating functions."
    )


def test_malformed_files_are_refused_naming_the_entry(tmp_path: Path) -> None:
    bad = tmp_path / "lifecycle.toml"
    bad.write_text('[runtimes."x1"]\nname = "X"\ndeprecation = 2027-01-01\nblock_create = 2026-01-01\n')
    with pytest.raises(ValueError, match="x1's dates are out of order"):
        RuntimeCalendar.load(path=bad)
    bad.write_text('[runtimes."x2"]\ndeprecation = "soon"\n')
    with pytest.raises(ValueError, match="x2.deprecation must be a date"):
        RuntimeCalendar.load(path=bad)


def test_a_calendar_without_a_fixed_day_uses_today() -> None:
    entry = RuntimeLifecycle(identifier="r", name="R", os="", deprecation=date(2000, 1, 1))
    assert RuntimeCalendar([entry]).phase("r") is RuntimePhase.DEPRECATED
