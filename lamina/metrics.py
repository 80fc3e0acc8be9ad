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
- Asynchronous invocation, after Lambda's AsyncEventsReceived / AsyncEventAge / AsyncEventsDropped:
  `lamina_async_events_received_total{function}` (202s), `lamina_async_event_age_seconds` (from
  acceptance to each attempt's start), `lamina_async_events_dropped_total{function, condition}`
  (ended without success: sent to a destination, a dead letter or the failed-events store), and
  `lamina_async_events_queued{function}` (events in the durable queue, read when scraped).

Cost on the invoke path: one dict lookup, one counter increment and one histogram observation
(about 2 µs); label children are cached so `labels()` (a lock and a tuple hash) runs once per
combination. Gauges are callbacks, read only when scraped (ARCHITECTURE rule 13).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from lamina.model.invocation import InvokeResult

CONTENT_TYPE = CONTENT_TYPE_LATEST
THROTTLED = "throttled"
NO_START = "none"  # the start kind of an invoke that never reached an environment
# From a warm no-op (~0.3 ms) to the longest timeout Lambda allows (900 s).
_DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
# From a fork-served start (a few ms) to the 10 s init limit (spec 4.4) and a bit past it.
_INIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15)
# From a dispatch straight after acceptance to Lambda's longest event age (6 h).
_AGE_BUCKETS = (0.001, 0.01, 0.1, 0.5, 1, 5, 30, 60, 300, 900, 3600, 21600)

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
        self._async_received = Counter(
            "lamina_async_events_received",
            "Event invocations accepted into the durable queue (answered 202), by function.",
            ["function"],
            registry=self.registry,
        )
        self._async_age = Histogram(
            "lamina_async_event_age_seconds",
            "Time from an event's acceptance to the start of each attempt to run it.",
            buckets=_AGE_BUCKETS,
            registry=self.registry,
        )
        self._async_dropped = Counter(
            "lamina_async_events_dropped",
            "Events that ended without success, by function and condition (RetriesExhausted, ...).",
            ["function", "condition"],
            registry=self.registry,
        )
        self._queue_depth = _QueueDepth()
        self.registry.register(self._queue_depth)
        # Bound `inc` of each label combination seen, so the invoke path skips `labels()`.
        self._counted: dict[tuple[str, str, str], _Increment] = {}
        self._received: dict[str, _Increment] = {}
        self._observe = {kind: self._duration.labels(kind).observe for kind in ("cold", "warm", "provisioned")}

    def watch_concurrency(self, in_use: Callable[[], int]) -> None:
        """Read the concurrent-executions gauge from `in_use` whenever metrics are scraped."""
        self._concurrent.set_function(in_use)

    def watch_queue(self, queued: Callable[[], Mapping[str, int]]) -> None:
        """Read the queued-events gauge (events per function) from `queued` when scraped."""
        self._queue_depth.source = queued

    def record_event_received(self, function: str) -> None:
        inc = self._received.get(function)
        if inc is None:  # bound once per function, as `_count` does (the 202 path)
            inc = self._received[function] = self._async_received.labels(function).inc
        inc()

    def record_event_attempt(self, age_s: float) -> None:
        self._async_age.observe(max(0.0, age_s))

    def record_event_dropped(self, function: str, condition: str) -> None:
        self._async_dropped.labels(function, condition).inc()

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


class _QueueDepth(Collector):
    """`lamina_async_events_queued{function}`, from the queue's own counts at scrape time."""

    def __init__(self) -> None:
        self.source: Callable[[], Mapping[str, int]] = dict

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "lamina_async_events_queued", "Events in the durable queue (waiting, retrying or running), by function.",
            labels=["function"],
        )  # fmt: skip
        for function, count in sorted(self.source().items()):
            family.add_metric([function], count)
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())
