"""ConcurrencyWindow: grows while concurrency helps, shrinks when invocations only queue."""

from __future__ import annotations

from lamina.asyncq.window import INITIAL, ConcurrencyWindow


def test_grows_to_the_ceiling_when_latency_stays_flat() -> None:
    w = ConcurrencyWindow()
    for _ in range(500):
        w.record(0.5, in_flight=w.size(100), ceiling=100)  # a sleeping function: more runs as fast
    assert w.size(100) == 100


def test_stays_small_when_latency_grows_with_concurrency() -> None:
    w = ConcurrencyWindow()
    for _ in range(500):
        n = w.size(100)
        w.record(0.001 * n, in_flight=n, ceiling=100)  # CPU-bound: each more in flight is slower
    assert w.size(100) <= 8


def test_learns_nothing_while_the_window_is_not_what_limits() -> None:
    w = ConcurrencyWindow()
    for _ in range(100):
        w.record(0.5, in_flight=1, ceiling=100)
    assert w.size(100) == int(INITIAL)


def test_never_passes_the_functions_concurrency() -> None:
    w = ConcurrencyWindow()
    for _ in range(100):
        w.record(0.5, in_flight=w.size(3), ceiling=3)
    assert w.size(3) == 3 and w.size(1) == 1
