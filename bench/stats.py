"""Summaries of timing samples, and loops that are bounded in both count and time."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class Figure:
    """One measured figure. `value` is the headline: p50 for latencies, the rate for throughputs."""

    name: str
    label: str
    unit: str  # "ms", "/s" or "MB"
    n: int
    value: float
    p50: float
    p99: float
    mean: float
    min: float
    max: float
    extra: dict[str, Any] = field(default_factory=dict)
    # The raw latencies (ms) behind a latency figure, for the plot; kept out of to_json().
    samples: tuple[float, ...] = field(default=(), repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["samples"]
        data.update(data.pop("extra"))
        return data


def percentile(sorted_samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of already sorted samples."""
    if not sorted_samples:
        raise ValueError("no samples")
    rank = max(1, math.ceil(q / 100 * len(sorted_samples)))
    return sorted_samples[rank - 1]


def latency_figure(name: str, label: str, samples_ms: Sequence[float], **extra: Any) -> Figure:
    s = sorted(samples_ms)
    p50 = percentile(s, 50)
    return Figure(
        name=name,
        label=label,
        unit="ms",
        n=len(s),
        value=p50,
        p50=p50,
        p99=percentile(s, 99),
        mean=sum(s) / len(s),
        min=s[0],
        max=s[-1],
        extra=extra,
        samples=tuple(samples_ms),
    )


def value_figure(name: str, label: str, unit: str, value: float, n: int, **extra: Any) -> Figure:
    """A figure that is one number (a difference of p50s, a rate from a single window): every
    statistic is that number, so tables and ratios can read any field of it."""
    return Figure(name=name, label=label, unit=unit, n=n, value=value, p50=value, p99=value, mean=value,
                  min=value, max=value, extra=extra)  # fmt: skip


def size_figure(name: str, label: str, samples_mb: Sequence[float], **extra: Any) -> Figure:
    """Sizes in MB (e.g. PSS of several processes): the headline is their median."""
    fig = latency_figure(name, label, samples_mb, **extra)
    return Figure(name=name, label=label, unit="MB", n=fig.n, value=fig.p50, p50=fig.p50, p99=fig.p99, mean=fig.mean,
                  min=fig.min, max=fig.max, extra=extra, samples=fig.samples)  # fmt: skip


def rate_figure(name: str, label: str, completed: int, seconds: float, samples_ms: Sequence[float], **extra: Any) -> Figure:
    """A throughput: `completed` requests in `seconds`; the latencies seen under that load beside it."""
    lat = latency_figure(name, label, samples_ms)
    return Figure(
        name=name,
        label=label,
        unit="/s",
        n=completed,
        value=completed / seconds,
        p50=lat.p50,
        p99=lat.p99,
        mean=lat.mean,
        min=lat.min,
        max=lat.max,
        extra={"seconds": seconds, **extra},
    )


def bounded(count: int, seconds: float) -> Iterator[int]:
    """0, 1, … up to `count` iterations, stopping early once `seconds` have passed."""
    deadline = time.monotonic() + seconds
    for i in range(count):
        if time.monotonic() > deadline:
            return
        yield i
