"""ConcurrencyWindow: how many of one function's queued events run at once (TCP Vegas' rule).

A synchronous caller brings its own concurrency; a queue has to choose one. Running a backlog
at the function's whole concurrency limit would start that many environments at once: on a
small host, a burst of events to a function that takes a millisecond would cold-start hundreds
of sandboxes to do what two can, and starve everything else (the Lambda API included) while
they start. So each function's events run within a window that grows while more concurrency
makes invocations finish sooner per unit of work, and shrinks when it only makes them queue.

Vegas (as Netflix's concurrency-limits applies it to services): with `min_rtt` the quickest warm
invocation seen and `rtt` the one just measured, `limit × (1 − min_rtt / rtt)` estimates how
many invocations are queueing (for CPU, say) rather than running. Below `alpha` the window
grows, above `beta` it shrinks. A function that waits (on I/O, or sleeps) keeps `rtt` near
`min_rtt` and grows to its concurrency limit; a CPU-bound one stops near the host's cores.
Only warm samples count (a cold start's init says nothing about contention), and `min_rtt` is
forgotten now and then, so a function that got slower is not held to its old speed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

INITIAL = 4.0
# Samples between forgetting min_rtt (it is then re-learnt from the next samples).
RTT_MEMORY = 1000


@dataclass(slots=True)
class ConcurrencyWindow:
    limit: float = INITIAL
    min_rtt: float = math.inf
    samples: int = 0

    def size(self, ceiling: int) -> int:
        """The window in whole invocations, never above `ceiling` (the function's concurrency)."""
        return max(1, min(int(self.limit), ceiling))

    def record(self, rtt: float, *, in_flight: int, ceiling: int) -> None:
        """One warm invocation took `rtt` seconds while `in_flight` ran (it included)."""
        if rtt <= 0:
            return
        self.samples += 1
        if self.samples % RTT_MEMORY == 0:
            self.min_rtt = math.inf
        self.min_rtt = min(self.min_rtt, rtt)
        if in_flight * 2 < self.limit:
            return  # the window is not what limits: nothing learnt about a larger one
        log_limit = math.log10(max(self.limit, 1.0))
        alpha, beta = max(2.0, 3 * log_limit), max(4.0, 6 * log_limit)
        queueing = self.limit * (1 - self.min_rtt / rtt)
        if queueing < alpha:
            self.limit += max(1.0, log_limit)
        elif queueing > beta:
            self.limit -= max(1.0, log_limit)
        self.limit = min(max(self.limit, 1.0), float(max(ceiling, 1)))
