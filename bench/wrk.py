"""`wrk` (the Debian package) as the load generator of G7, driven with a Lua script.

The script makes every request a POST of the bench's small JSON event, and its `done` hook prints
one JSON line with wrk's own counters (requests, non-2xx/3xx answers, socket errors, latency
percentiles), so nothing depends on wrk's human-readable output. One wrk thread (`-t1`, as
PERFORMANCE 2c ran it): on 2 vCPUs the system under test needs the other core.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import loadgen
from stats import Figure

RESULT_PREFIX = "WRK_JSON "
_SCRIPT = """wrk.method = "POST"
wrk.body = [==[%(body)s]==]
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%(prefix)s{"requests":%%d,"duration_us":%%d,"non_2xx":%%d,"connect":%%d,"read":%%d,"write":%%d,' ..
    '"timeout":%%d,"min_us":%%d,"mean_us":%%d,"p50_us":%%d,"p99_us":%%d,"max_us":%%d}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency.min, math.floor(latency.mean), latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class WrkRun:
    """One wrk run: `ok` requests answered 2xx/3xx in `seconds`, and what went wrong."""

    connections: int
    seconds: float
    requests: int
    non_2xx: int  # answered, but with a status ≥ 400 (a 429 throttle, say)
    socket_errors: int  # connect, read, write errors and timeouts
    min_ms: float
    mean_ms: float
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def ok(self) -> int:
        return self.requests - self.non_2xx

    @property
    def rate(self) -> float:
        """Successful answers per second: a throttled request is not throughput."""
        return self.ok / self.seconds

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok, "rate": self.rate}


def binary() -> str | None:
    return shutil.which("wrk")


def run(url: str, *, connections: int, seconds: int, body: bytes = loadgen.BODY) -> WrkRun:
    """`wrk -t1 -c<connections> -d<seconds>s` POSTing `body` to `url` (a 127.0.0.1 address)."""
    exe = binary()
    if exe is None:
        raise FileNotFoundError("wrk is not installed (scripts/setup.sh bench installs it)")
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"wrk only ever targets 127.0.0.1, not {url}")
    with tempfile.TemporaryDirectory(prefix="lamina-bench-wrk-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(_SCRIPT % {"body": body.decode(), "prefix": RESULT_PREFIX})
        argv = [exe, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), url]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    line = next((x for x in result.stdout.splitlines() if x.startswith(RESULT_PREFIX)), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"wrk exited {result.returncode}: {result.stdout[-400:]} {result.stderr[-400:]}")
    data = json.loads(line.removeprefix(RESULT_PREFIX))
    return WrkRun(
        connections=connections,
        seconds=data["duration_us"] / 1e6,
        requests=data["requests"],
        non_2xx=data["non_2xx"],
        socket_errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
        min_ms=data["min_us"] / 1000,
        mean_ms=data["mean_us"] / 1000,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
    )


def best_figure(name: str, label: str, runs: list[WrkRun], **extra: Any) -> Figure:
    """The run with the most 2xx answers per second (L_relay_wrk's rule: better of -c2 and -c8),
    its latencies beside it, and every run in `extra`."""
    best = max(runs, key=lambda r: r.rate)
    return Figure(
        name=name,
        label=label,
        unit="/s",
        n=best.ok,
        value=best.rate,
        p50=best.p50_ms,
        p99=best.p99_ms,
        mean=best.mean_ms,
        min=best.min_ms,
        max=best.max_ms,
        extra={
            "connections": best.connections,
            "non_2xx": sum(r.non_2xx for r in runs),
            "socket_errors": sum(r.socket_errors for r in runs),
            "runs": [r.to_json() for r in runs],
            **extra,
        },
    )
