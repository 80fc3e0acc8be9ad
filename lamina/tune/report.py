"""From measured invocations to a tuning report: duration distribution and cost per memory size.

Pure functions over typed values, so the arithmetic is tested without a server.

Prices are Lambda's published on-demand x86 prices in us-east-1 (first pricing tier),
https://aws.amazon.com/lambda/pricing/ : $0.0000166667 per GB-second and $0.20 per million
requests. The cost here is an estimate of what the same durations would cost on Lambda: real
durations there differ (other CPUs, other I/O), and arm64 is about 20 % cheaper per GB-second.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

PRICE_PER_GB_SECOND_USD = 0.0000166667
PRICE_PER_REQUEST_USD = 0.20 / 1_000_000
MB_PER_GB = 1024  # Lambda's GB-seconds count memory in GiB: 1,024 MB = 1 GB

_REPORT = re.compile(
    r"REPORT RequestId: \S+\s+Duration: (?P<duration>[\d.]+) ms\s+Billed Duration: (?P<billed>\d+) ms"
    r"\s+Memory Size: (?P<memory>\d+) MB\s+Max Memory Used: (?P<used>\d+) MB"
    r"(?:\s+Init Duration: (?P<init>[\d.]+) ms)?"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """One invocation, as its REPORT line tells it."""

    duration_ms: float
    billed_ms: int
    memory_mb: int
    max_memory_used_mb: int
    init_ms: float | None = None  # present on a cold start


@dataclass(frozen=True, slots=True, kw_only=True)
class Measurement:
    """The invocations at one memory size, in order: the first is the cold start."""

    memory_mb: int
    samples: tuple[Sample, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class SizeResult:
    memory_mb: int
    cold_ms: float  # the first invocation: init plus duration
    warm_count: int
    p50_ms: float
    p90_ms: float
    max_ms: float
    mean_billed_ms: float
    gb_seconds: float  # per warm invocation, on average
    cost_per_million_usd: float  # a million warm invocations: compute plus requests


@dataclass(frozen=True, slots=True, kw_only=True)
class TuneReport:
    sizes: tuple[SizeResult, ...]  # by memory, ascending
    cheapest: SizeResult
    fastest: SizeResult


def parse_report_line(log_tail: str) -> Sample:
    """The last REPORT line in an invocation's log tail (LogType=Tail); ValueError if none."""
    matches = list(_REPORT.finditer(log_tail))
    if not matches:
        raise ValueError("no REPORT line in the invocation's log tail")
    m = matches[-1]
    return Sample(
        duration_ms=float(m["duration"]),
        billed_ms=int(m["billed"]),
        memory_mb=int(m["memory"]),
        max_memory_used_mb=int(m["used"]),
        init_ms=float(m["init"]) if m["init"] else None,
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (the smallest value with `fraction` of them at or below it)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def cost_per_invocation_usd(memory_mb: int, billed_ms: float) -> float:
    return memory_mb / MB_PER_GB * billed_ms / 1000 * PRICE_PER_GB_SECOND_USD + PRICE_PER_REQUEST_USD


def summarize_size(m: Measurement) -> SizeResult:
    """Needs two samples at least: the cold one is reported apart, the rest make the distribution."""
    if len(m.samples) < 2:
        raise ValueError(f"{m.memory_mb} MB: need at least 2 invocations (the first is a cold start)")
    cold, warm = m.samples[0], m.samples[1:]
    durations = [s.duration_ms for s in warm]
    mean_billed = sum(s.billed_ms for s in warm) / len(warm)
    return SizeResult(
        memory_mb=m.memory_mb,
        cold_ms=cold.duration_ms + (cold.init_ms or 0.0),
        warm_count=len(warm),
        p50_ms=percentile(durations, 0.5),
        p90_ms=percentile(durations, 0.9),
        max_ms=max(durations),
        mean_billed_ms=mean_billed,
        gb_seconds=m.memory_mb / MB_PER_GB * mean_billed / 1000,
        cost_per_million_usd=cost_per_invocation_usd(m.memory_mb, mean_billed) * 1_000_000,
    )


def summarize(measurements: Sequence[Measurement]) -> TuneReport:
    """The report; ties go to the faster size for "cheapest", to the cheaper one for "fastest"."""
    if not measurements:
        raise ValueError("no measurements")
    sizes = tuple(sorted((summarize_size(m) for m in measurements), key=lambda s: s.memory_mb))
    cheapest = min(sizes, key=lambda s: (s.cost_per_million_usd, s.p50_ms, s.memory_mb))
    fastest = min(sizes, key=lambda s: (s.p50_ms, s.cost_per_million_usd, s.memory_mb))
    return TuneReport(sizes=sizes, cheapest=cheapest, fastest=fastest)
