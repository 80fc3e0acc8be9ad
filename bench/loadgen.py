"""Raw keep-alive HTTP clients: a timed request loop, and closed-loop load from N processes.

Every client is an `http.client.HTTPConnection` kept open for all its requests, POSTing a small
JSON body to 127.0.0.1, so what is measured is the server, not connection set-up or an SDK.

Closed-loop load runs N worker processes (this file run as a script), each with its own
connection. The parent steps them through three phases over stdin/stdout lines, so the
measurement window starts at the same instant for all and only after every one has warmed up:

    worker → "spawned"            (connected)
    parent → "warm"               (all workers at once: concurrent first requests)
    worker → "ready"
    parent → "go <start> <secs>"  (start is a CLOCK_MONOTONIC instant, shared by all processes)
    worker → {"completed", "errors", "latencies_us"}   (JSON, then exit)
"""

from __future__ import annotations

import http.client
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

HOST = "127.0.0.1"
# ~80 bytes, as in PERFORMANCE 2c.
BODY = b'{"id":12345,"name":"lamina-bench","payload":"abcdefghijklmnopqrstuvwxyz0123456789"}'
JSON_HEADERS = {"Content-Type": "application/json"}


def event_of_size(size: int) -> bytes:
    """A JSON event of exactly `size` bytes: one string field, as an API Gateway body carries it."""
    frame = b'{"body":""}'
    return b'{"body":"' + b"x" * (size - len(frame)) + b'"}'


EVENT_1KB = event_of_size(1024)
EVENT_1MB = event_of_size(1024 * 1024)
REQUEST_TIMEOUT_S = 30.0
PHASE_TIMEOUT_S = 60.0


class BenchHTTPError(RuntimeError):
    pass


def connect(port: int) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_S)
    conn.connect()
    return conn


def post(
    conn: http.client.HTTPConnection, path: str, body: bytes = BODY, headers: Mapping[str, str] = JSON_HEADERS
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One POST on a persistent connection; the whole response is read so the connection stays usable."""
    conn.request("POST", path, body=body, headers=dict(headers))
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, resp.headers, data


def get(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    conn.request("GET", path)
    resp = conn.getresponse()
    return resp.status, resp.read()


def timed_posts(conn: http.client.HTTPConnection, path: str, count: int, seconds: float, body: bytes = BODY) -> list[float]:
    """Latency in ms of up to `count` sequential POSTs (stopping after `seconds`); non-200 raises."""
    samples: list[float] = []
    deadline = time.monotonic() + seconds
    clock = time.perf_counter
    while len(samples) < count and time.monotonic() < deadline:
        t0 = clock()
        status, _, data = post(conn, path, body)
        samples.append((clock() - t0) * 1000)
        if status != 200:
            raise BenchHTTPError(f"POST {path} answered {status}: {data[:200]!r}")
    return samples


def timed_gets(conn: http.client.HTTPConnection, path: str, count: int, seconds: float) -> list[float]:
    samples: list[float] = []
    deadline = time.monotonic() + seconds
    clock = time.perf_counter
    while len(samples) < count and time.monotonic() < deadline:
        t0 = clock()
        status, data = get(conn, path)
        samples.append((clock() - t0) * 1000)
        if status != 200:
            raise BenchHTTPError(f"GET {path} answered {status}: {data[:200]!r}")
    return samples


# --- closed-loop load: the parent side ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadResult:
    clients: int
    seconds: float
    completed: int
    errors: int
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.completed / self.seconds


def closed_loop(
    port: int,
    path: str,
    *,
    clients: int,
    seconds: float,
    warmup: int,
    on_start: Callable[[], None] | None = None,
    on_end: Callable[[], None] | None = None,
) -> LoadResult:
    """`clients` worker processes POSTing back to back for `seconds`, after `warmup` requests each.

    `on_start` runs once every worker has warmed up, just before the window opens; `on_end` once
    every worker has reported (for counters read around the window itself).
    """
    workers: list[subprocess.Popen[str]] = []
    try:
        for _ in range(clients):
            workers.append(_spawn_worker(port, path, warmup))
        _expect_all(workers, "spawned")
        _send_all(workers, "warm")
        _expect_all(workers, "ready")
        if on_start is not None:
            on_start()
        start = time.monotonic() + 0.2
        _send_all(workers, f"go {start!r} {seconds!r}")
        results = [json.loads(_read_line(w, seconds + PHASE_TIMEOUT_S)) for w in workers]
        if on_end is not None:
            on_end()
    finally:
        for w in workers:
            _stop_worker(w)
    latencies = [us / 1000 for r in results for us in r["latencies_us"]]
    return LoadResult(
        clients=clients,
        seconds=seconds,
        completed=sum(r["completed"] for r in results),
        errors=sum(r["errors"] for r in results),
        latencies_ms=latencies,
    )


def _spawn_worker(port: int, path: str, warmup: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), str(port), path, str(warmup)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The worker's next line. It writes one line per command, so nothing waits in the pipe buffer."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if not line:
        raise BenchHTTPError(f"load worker {proc.pid} gave no answer (exit code {proc.poll()})")
    return line.strip()


def _expect_all(workers: Sequence[subprocess.Popen[str]], word: str) -> None:
    for w in workers:
        line = _read_line(w, PHASE_TIMEOUT_S)
        if line != word:
            raise BenchHTTPError(f"load worker {w.pid} said {line[:300]!r}, expected {word!r}")


def _send_all(workers: Sequence[subprocess.Popen[str]], line: str) -> None:
    for w in workers:
        assert w.stdin is not None
        w.stdin.write(line + "\n")
        w.stdin.flush()


def _stop_worker(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()


# --- closed-loop load: the worker side ---------------------------------------------------------


def _worker(port: int, path: str, warmup: int) -> None:
    conn = connect(port)
    _say("spawned")
    _expect("warm")
    for _ in range(warmup):
        status, _, data = post(conn, path)
        if status != 200:
            _say(f"warm-up POST answered {status}: {data[:200]!r}")
            return
    _say("ready")
    _, start, seconds = sys.stdin.readline().split()
    start_at, end_at = float(start), float(start) + float(seconds)
    time.sleep(max(0.0, start_at - time.monotonic()))
    latencies_us: list[int] = []
    errors = 0
    clock = time.perf_counter
    while time.monotonic() < end_at:
        t0 = clock()
        status, _, _ = post(conn, path)
        elapsed = clock() - t0
        if time.monotonic() > end_at:
            break  # finished after the window closed: not counted
        if status == 200:
            latencies_us.append(round(elapsed * 1e6))
        else:
            errors += 1
    conn.close()
    _say(json.dumps({"completed": len(latencies_us), "errors": errors, "latencies_us": latencies_us}))


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _expect(word: str) -> None:
    line = sys.stdin.readline().strip()
    if line != word:
        raise SystemExit(f"expected {word!r}, got {line!r}")


if __name__ == "__main__":
    _worker(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
