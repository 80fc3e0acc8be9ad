"""Lamina's benchmark harness: `python bench/run.py [--quick] [--json PATH]`.

One run measures, on this machine and in this order:

1. Baselines (PERFORMANCE.md Part 2), so every goal is a ratio against limits of the same run:
   - L_http: p50/p99 round trip of an ~80-byte JSON POST over one persistent http.client
     connection to a minimal keep-alive uvloop + httptools echo server in its own process;
   - echo throughput with 1 and 8 closed-loop client processes (the same load generator the
     platform gets);
   - L_py: median wall time of a fresh `python3 -I -S -c pass` with the interpreter Lamina runs
     for python3.11 functions (realpath of sys._base_executable), and of plain `-c pass`.
2. The platform: `lamina up` (lamina.testing.running_server) on a temporary data directory, a
   no-op python3.11 function (`def handler(e, c): return e`) deployed with boto3, then:
   - API floor: GET /lamina/v1/health, one exchange through the server's HTTP stack;
   - warm invoke p50/p99, 1 client, raw http.client keep-alive POSTs of the same ~80-byte event
     to the Invoke path (unsigned; Lamina accepts that), plus one boto3 figure for reference;
   - warm REPORT Duration (X-Amz-Log-Type: Tail): the part of a warm invoke inside the runtime;
   - warm throughput, closed loop, 1 and 8 client processes, each with its own connection
     (8 clients bring up to 8 environments: every worker warms up before the window opens);
   - cold start: update_function_configuration (new environment variable) retires the
     environments; after the function_updated_v2 waiter the next invoke is timed, and its REPORT
     Init Duration is read from the log tail.
3. A table of figure / value / baseline / ratio / goal; goals (G1, G4, G7) are references only,
   a miss never fails the run. A second table splits one sequential request's time into the CPU
   the client, the server and the runtime spent on it (/proc schedstat), for the echo server, the
   API floor and a warm invoke. `--json PATH` writes every figure (n, p50, p99, mean, min, max,
   value, and extras such as the CPU split) and every ratio.

Every loop is bounded in count and in time; every process started is stopped on the way out;
all traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from rich.console import Console

import baselines
import platform_bench
import report
from stats import Figure

from lamina.testing import data_directory, running_server

T = TypeVar("T")
FUNCTION_NAME = "bench-noop"
STEPS = 14  # the steps.run calls below, for the [i/N] progress lines


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """How much of each measurement to take; every loop also stops after `max_seconds`."""

    echo_requests: int
    py_isolated_runs: int
    py_plain_runs: int
    warm_requests: int
    report_requests: int
    boto3_requests: int
    health_requests: int
    load_seconds: float
    cold_starts: int
    warmup: int
    max_seconds: float


FULL = Plan(
    echo_requests=5000,
    py_isolated_runs=100,
    py_plain_runs=40,
    warm_requests=2000,
    report_requests=300,
    boto3_requests=200,
    health_requests=1000,
    load_seconds=3.0,
    cold_starts=20,
    warmup=100,
    max_seconds=60.0,
)
QUICK = Plan(
    echo_requests=500,
    py_isolated_runs=20,
    py_plain_runs=10,
    warm_requests=300,
    report_requests=50,
    boto3_requests=30,
    health_requests=200,
    load_seconds=1.0,
    cold_starts=5,
    warmup=20,
    max_seconds=10.0,
)


class Steps:
    """Numbered progress lines on stderr: what runs now, then how long it took and its headline."""

    def __init__(self, console: Console, total: int) -> None:
        self._console = console
        self._total = total
        self._done = 0

    def run(self, title: str, fn: Callable[[], T], summary: Callable[[T], str] = lambda _: "") -> T:
        self._done += 1
        prefix = f"[{self._done}/{self._total}] {title}"
        t0 = time.monotonic()
        with self._console.status(prefix + " …"):
            result = fn()
        detail = summary(result)
        self._console.log(f"{prefix}: {detail + ' ' if detail else ''}[dim]({time.monotonic() - t0:.2f} s)[/]")
        return result


def _latency(fig: Figure) -> str:
    return f"p50 {fig.p50:.3f} ms, p99 {fig.p99:.3f} ms, n={fig.n}"


def _rate(fig: Figure) -> str:
    envs = f", {fig.extra['environments']} environments" if "environments" in fig.extra else ""
    return f"{fig.value:,.0f}/s (latency p50 {fig.p50:.3f} ms), n={fig.n}{envs}"


def measure_baselines(plan: Plan, steps: Steps, echo: baselines.EchoServer) -> list[Figure]:
    """L_http (first round), echo throughput with 1 and 8 clients, and both interpreter starts."""
    s = plan.max_seconds
    figs = [http_round(plan, steps, echo, "first")]
    for clients in (1, 8):
        figs.append(
            steps.run(
                f"echo throughput, {clients} client(s)",
                functools.partial(baselines.echo_throughput, echo, clients=clients, seconds=plan.load_seconds),
                _rate,
            )
        )
    python = str(baselines.lamina_python())
    figs.append(
        steps.run(
            f"L_py: {python} -I -S -c pass",
            lambda: baselines.python_start(
                "l_py", "L_py: python3 -I -S -c pass", [python, "-I", "-S", "-c", "pass"],
                count=plan.py_isolated_runs, warmup=5, seconds=s,
            ),
            _latency,
        )
    )  # fmt: skip
    figs.append(
        steps.run(
            f"{python} -c pass",
            lambda: baselines.python_start(
                "py_plain", "python3 -c pass", [python, "-c", "pass"], count=plan.py_plain_runs, warmup=3, seconds=s
            ),
            _latency,
        )
    )
    return figs


def http_round(plan: Plan, steps: Steps, echo: baselines.EchoServer, which: str) -> Figure:
    return steps.run(
        f"L_http: echo round trip ({which} round)",
        lambda: baselines.http_rtt(echo, count=plan.echo_requests, warmup=plan.warmup, seconds=plan.max_seconds),
        _latency,
    )


def measure_platform(plan: Plan, steps: Steps, data_dir: Path) -> list[Figure]:
    """Every platform figure, on a `lamina up` of its own that is stopped on the way out."""
    s = plan.max_seconds
    name = FUNCTION_NAME
    with running_server(data_dir) as server:
        port = urlsplit(server.endpoint).port
        assert port is not None
        pid = server.process.pid
        client = server.client()
        steps.run(f"deploy {name} (python3.11, no-op) on {server.endpoint}", lambda: platform_bench.deploy_noop(client, name))
        return [
            steps.run(
                "API floor: GET /lamina/v1/health",
                lambda: platform_bench.api_floor(
                    port, count=plan.health_requests, warmup=plan.warmup, seconds=s, server_pid=pid
                ),
                _latency,
            ),
            steps.run(
                "warm invoke, 1 client, raw HTTP",
                lambda: platform_bench.warm_invoke(
                    port, name, count=plan.warm_requests, warmup=plan.warmup, seconds=s, server_pid=pid
                ),
                _latency,
            ),
            steps.run(
                "warm REPORT Duration (log tail)",
                lambda: platform_bench.warm_report_duration(port, name, count=plan.report_requests, seconds=s),
                _latency,
            ),
            steps.run(
                "warm invoke, 1 client, boto3",
                lambda: platform_bench.warm_invoke_boto3(client, name, count=plan.boto3_requests, warmup=10, seconds=s),
                _latency,
            ),
            steps.run(
                "warm throughput, 1 client",
                lambda: platform_bench.throughput(port, name, clients=1, seconds=plan.load_seconds, server_pid=pid),
                _rate,
            ),
            steps.run(
                "warm throughput, 8 clients (up to 8 environments)",
                lambda: platform_bench.throughput(port, name, clients=8, seconds=plan.load_seconds, server_pid=pid),
                _rate,
            ),
            *steps.run(
                f"cold starts ×{plan.cold_starts} (update config → invoke)",
                lambda: platform_bench.cold_starts(client, port, name, count=plan.cold_starts, seconds=s),
                lambda figs: _latency(figs[0]) + f"; Init Duration p50 {figs[1].p50:.2f} ms",
            ),
        ]


def measure_all(plan: Plan, steps: Steps) -> dict[str, Figure]:
    """Baselines, platform, then L_http again: the echo server idles through the platform part."""
    with baselines.echo_server() as echo:
        figs = measure_baselines(plan, steps, echo)
        with data_directory(prefix="lamina-bench-") as data_dir:
            figs += measure_platform(plan, steps, data_dir)
        last = http_round(plan, steps, echo, "last")
    figures = {f.name: f for f in figs}
    figures["l_http"] = baselines.best_round([figures["l_http"], last])
    return figures


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    plan = QUICK if args.quick else FULL
    console = Console(stderr=True, log_path=False)
    if not console.is_terminal:
        console = Console(stderr=True, log_path=False, width=132)
    started = time.time()
    load_before = os.getloadavg()
    figures = measure_all(plan, Steps(console, total=STEPS))
    meta = _meta(plan, args.quick, started, load_before)
    out = Console()
    if not out.is_terminal:
        out = Console(width=132)  # piped: do not squeeze the table into 80 columns
    report.render(figures, out, caption=_caption(figures, meta))
    report.render_cpu(figures, out)
    if args.json is not None:
        report.write_json(args.json, figures, meta)
        console.log(f"wrote {args.json}")
    return 0


def _caption(figures: dict[str, Figure], meta: dict[str, object]) -> str:
    rounds = figures["l_http"].extra["rounds"]
    p50s = " / ".join(f"{r['p50'] * 1000:.0f} µs" for r in rounds)
    return (
        f"L_http = the lower of {len(rounds)} rounds (p50 {p50s}). Load average before/after: "
        f"{meta['loadavg_before']:.2f} / {meta['loadavg_after']:.2f} on {meta['cpus']} CPUs. "
        "Goals are references (PERFORMANCE.md Part 3), not pass/fail."
    )


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Measure Lamina against this machine's limits (PERFORMANCE.md).")
    parser.add_argument("--quick", action="store_true", help="fewer samples and 1 s load windows (a smoke run)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every figure and ratio as JSON")
    return parser.parse_args(argv)


def _meta(plan: Plan, quick: bool, started: float, load_before: tuple[float, float, float]) -> dict[str, object]:
    return {
        "quick": quick,
        "plan": asdict(plan),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "python": sys.version.split()[0],
        "lamina_python": str(baselines.lamina_python()),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        # Other work on the machine skews every figure; a high load average explains outliers.
        "loadavg_before": load_before[0],
        "loadavg_after": os.getloadavg()[0],
    }


if __name__ == "__main__":
    sys.exit(main())
