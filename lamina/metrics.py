"""Prometheus metrics of the data plane, served at GET /lamina/v1/metrics.

One `Metrics` per server, with a registry of its own (never prometheus-client's global one), so
two servers in one process, as in tests, count apart. Imports only `lamina.model`: the invoker
records into it and the admin API renders it, so it sits below both.

What it counts (names follow Lambda's CloudWatch metrics where one exists):
- `lamina_invocations_total{function, start, outcome}`: every invoke that reached a function.
  `start` is how it found its environment (cold, warm, provisioned; spec 6 REPORT "Start:"),
  `outcome` an `InvokeOutcome` value. A throttled invoke counts here with start="none" and
  outcome="throttled", and in `lamina_throttles_total{function, reason}` with Lambda's Reason.
- `lamina_invocation_duration_seconds{start}`: the REPORT line's Duration (the function's run).
- `lamina_init_duration_seconds`: the REPORT line's Init Duration (cold starts only).
- `lamina_concurrent_executions`: invocations holding concurrency now, read when scraped.

Cost on the invoke path: one dict lookup, one counter increment and one histogram observation
(about 2 µs); label children are cached so `labels()` (a lock and a tuple hash) runs once per
combination. Gauges are callbacks, read only when scraped (ARCHITECTURE rule 13).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from lamina.model.invocation import InvokeResult

CONTENT_TYPE = CONTENT_TYPE_LATEST
THROTTLED = "throttled"
NO_START = "none"  # the start kind of an invoke that never reached an environment
# From a warm no-op (~0.3 ms) to the longest timeout Lambda allows (900 s).
_DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
# From a fork-served start (a few ms) to the 10 s init limit (spec 4.4) and a bit past it.
_INIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15)

_Increment = Callable[[], None]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._invocations = Counter(
            "lamina_invocations",
            "Invocations by function, start kind (cold, warm, provisioned; none if throttled) and outcome.",
            ["function", "start", "outcome"],
            registry=self.registry,
        )
        self._throttles = Counter(
            "lamina_throttles",
            "Invocations refused with TooManyRequestsException (429), by function and Reason.",
            ["function", "reason"],
            registry=self.registry,
        )
        self._duration = Histogram(
            "lamina_invocation_duration_seconds",
            "The REPORT line's Duration: the function's run, without init.",
            ["start"],
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self._init = Histogram(
            "lamina_init_duration_seconds",
            "The REPORT line's Init Duration of cold starts.",
            buckets=_INIT_BUCKETS,
            registry=self.registry,
        )
        self._concurrent = Gauge(
            "lamina_concurrent_executions",
            "Invocations holding concurrency now (running, or starting their environment).",
            registry=self.registry,
        )
        # Bound `inc` of each label combination seen, so the invoke path skips `labels()`.
        self._counted: dict[tuple[str, str, str], _Increment] = {}
        self._observe = {kind: self._duration.labels(kind).observe for kind in ("cold", "warm", "provisioned")}

    def watch_concurrency(self, in_use: Callable[[], int]) -> None:
        """Read the concurrent-executions gauge from `in_use` whenever metrics are scraped."""
        self._concurrent.set_function(in_use)

    def record(self, function: str, result: InvokeResult) -> None:
        """One invocation that ran (whatever its outcome)."""
        timings = result.timings
        start = timings.start if timings is not None else NO_START
        self._count(function, start, result.outcome.value)
        if timings is not None:
            observe = self._observe.get(start) or self._duration.labels(start).observe
            observe(timings.duration_ms / 1000)
            if timings.init_ms is not None:
                self._init.observe(timings.init_ms / 1000)

    def record_throttle(self, function: str, reason: str | None) -> None:
        """One invocation refused with 429 before it reached an environment."""
        self._count(function, NO_START, THROTTLED)
        self._throttles.labels(function, reason or "").inc()

    def _count(self, function: str, start: str, outcome: str) -> None:
        key = (function, start, outcome)
        inc = self._counted.get(key)
        if inc is None:
            inc = self._counted[key] = self._invocations.labels(*key).inc
        inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric (content type `CONTENT_TYPE`)."""
        return generate_latest(self.registry)
