"""The tuning report: REPORT-line parsing, percentiles, GB-seconds and cost, cheapest and fastest."""

from __future__ import annotations

import pytest

from lamina.tune.report import (
    PRICE_PER_GB_SECOND_USD,
    PRICE_PER_REQUEST_USD,
    Measurement,
    Sample,
    parse_report_line,
    percentile,
    summarize,
)

COLD_TAIL = (
    "START RequestId: r1 Version: 3\nhello\n"
    "END RequestId: r1\n"
    "REPORT RequestId: r1\tDuration: 12.34 ms\tBilled Duration: 13 ms\tMemory Size: 512 MB\t"
    "Max Memory Used: 40 MB\tInit Duration: 101.50 ms\tStart: cold\t\n"
)
WARM_LINE = "REPORT RequestId: r2\tDuration: 2.01 ms\tBilled Duration: 3 ms\tMemory Size: 512 MB\tMax Memory Used: 41 MB\tStart: warm\t"


def sample(duration: float, billed: int, memory: int = 1024, init: float | None = None) -> Sample:
    return Sample(duration_ms=duration, billed_ms=billed, memory_mb=memory, max_memory_used_mb=30, init_ms=init)


def test_parses_cold_and_warm_report_lines() -> None:
    assert parse_report_line(COLD_TAIL) == Sample(duration_ms=12.34, billed_ms=13, memory_mb=512, max_memory_used_mb=40, init_ms=101.5)
    assert parse_report_line(WARM_LINE).init_ms is None
    with pytest.raises(ValueError, match="no REPORT line"):
        parse_report_line("START RequestId: r1\n")


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 11)]  # 1..10
    assert percentile(values, 0.5) == 5.0
    assert percentile(values, 0.9) == 9.0
    assert percentile([7.0], 0.9) == 7.0
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_cost_is_gb_seconds_times_price_plus_requests() -> None:
    # 1,024 MB for a billed 100 ms is 0.1 GB-s per invocation.
    m = Measurement(memory_mb=1024, samples=(sample(300, 300, init=200), sample(99.2, 100), sample(99.9, 100)))
    (size,) = summarize([m]).sizes
    assert size.gb_seconds == pytest.approx(0.1)
    assert size.cost_per_million_usd == pytest.approx(1_000_000 * (0.1 * PRICE_PER_GB_SECOND_USD + PRICE_PER_REQUEST_USD))
    assert size.cost_per_million_usd == pytest.approx(1.866667, rel=1e-5)
    # The cold start is reported apart (init + duration) and left out of the warm distribution.
    assert (size.cold_ms, size.warm_count, size.max_ms) == (500.0, 2, 99.9)


def test_names_cheapest_and_fastest_for_a_cpu_bound_curve() -> None:
    # Duration halves as memory doubles up to 1,024 MB, then stops improving (one vCPU's worth).
    curve = {256: 400.0, 512: 200.0, 1024: 100.0, 2048: 95.0}
    measurements = [
        Measurement(memory_mb=mb, samples=tuple(sample(d, int(d) + 1, mb) for d in (d * 3, d, d)))
        for mb, d in curve.items()
    ]
    report = summarize(list(reversed(measurements)))
    assert [s.memory_mb for s in report.sizes] == [256, 512, 1024, 2048]
    assert report.fastest.memory_mb == 2048
    # 256..1024 cost the same GB-s (give or take the 1 ms rounding); 2,048 costs almost twice.
    assert report.cheapest.memory_mb in (256, 512, 1024)
    assert report.sizes[-1].cost_per_million_usd > 1.8 * report.cheapest.cost_per_million_usd


def test_a_size_needs_a_warm_invocation() -> None:
    with pytest.raises(ValueError, match="at least 2 invocations"):
        summarize([Measurement(memory_mb=128, samples=(sample(1, 1, 128),))])
