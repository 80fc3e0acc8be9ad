"""Lamina's benchmark harness: `python bench/run.py [--quick] [--modes sandbox,process] [--json PATH]`.

One run measures, on this machine and in this order:

1. Baselines (PERFORMANCE.md Part 2), so every goal is a ratio against limits of the same run:
   - L_http: p50/p99 round trip of an ~80-byte JSON POST over one persistent http.client
     connection to a minimal keep-alive uvloop + httptools echo server in its own process;
   - echo throughput with 1 and 8 closed-loop client processes (the same load generator the
     platform gets);
   - L_py: median wall time of a fresh `python3 -I -S -c pass` with the interpreter Lamina runs
     for python3.11 functions in process mode (realpath of sys._base_executable), and of plain
     `-c pass`; and `-I -S -c pass` of the interpreter sandbox mode runs if it is another one (a
     sandbox's uid must reach it: /usr/bin/python3.11 when the venv's base lives under /root);
   - runtime client start, per interpreter: Lamina's bootstrap.py run with `-I -S` and no Runtime
     API address, so it makes its imports and exits (a cold start's launch without a platform);
   - with sandbox mode: L_bwrap (`bwrap --ro-bind / / --unshare-all --die-with-parent true`
     minus `true`), that interpreter's `-I -S -c pass` and the runtime client's start under bwrap
     with a sandbox's namespaces, binds, uid (and seccomp filter), and a /tmp and a cgroup made as
     a sandbox makes them (sandbox_costs.py): references for the cold-start breakdown.
2. The platform, once per isolation mode (`--modes`, default sandbox then process), each on its
   own `lamina up --isolation <mode>` (lamina.testing.running_server) and data directory: a no-op
   python3.11 function (`def handler(e, c): return e`, MemorySize `--memory-size`, default 128)
   and a probe function deployed with boto3, then:
   - API floor: GET /lamina/v1/health, one exchange through the server's HTTP stack;
   - warm invoke p50/p99, 1 client, raw http.client keep-alive POSTs of the same ~80-byte event
     to the Invoke path (unsigned; Lamina accepts that), plus one boto3 figure for reference;
   - warm REPORT Duration (X-Amz-Log-Type: Tail): the part of a warm invoke inside the runtime;
   - warm throughput, closed loop, 1 and 8 client processes, each with its own connection
     (8 clients bring up to 8 environments: every worker warms up before the window opens);
     in sandbox mode with the CPU cap's throttling counters (cgroup cpu.stat) over the window;
   - cold start: update_function_configuration (new environment variable) retires the
     environments; after the function_updated_v2 waiter the next invoke is timed, and its REPORT
     Init Duration is read from the log tail;
   - the cold-start breakdown: the same with the probe function, whose module and handler report
     CLOCK_MONOTONIC, split into before init / launch / module→ready / first invoke (see
     platform_bench.py). Nothing in Lamina is instrumented.
3. Tables: figure / value / baseline / ratio / goal per mode, then "sandbox / process" ratios of
   the same figures and the isolation cost on the cold path (G5); the cold-start breakdown; the
   sandbox CPU cap's throttling; the CPU each process spent per sequential request. Goals (G1,
   G4, G5, G7) are references only, a miss never fails the run. `--json PATH` writes every figure
   (n, p50, p99, mean, min, max, value, extras) and every ratio, per mode, and the mode ratios.

Every loop is bounded in count and in time; every process started is stopped on the way out;
all traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from rich.console import Console
from rich.markup import escape

import baselines
import platform_bench
import report
import sandbox_costs
from stats import Figure

from lamina.runtimes.catalog import RuntimeCatalog
from lamina.sandbox.cgroups import MB_PER_VCPU
from lamina.testing import data_directory, running_server

T = TypeVar("T")
FUNCTION_NAME = "bench-noop"
PROBE_NAME = "bench-probe"
RUNTIME = platform_bench.RUNTIME
MODES = ("sandbox", "process")
BASELINE_STEPS = 5  # L_http first and last, 2 echo throughputs, plain python -c pass (+ 2 per interpreter)
SANDBOX_BASELINE_STEPS = 5  # L_bwrap, L_py and the runtime client under bwrap, a /tmp, a cgroup
MODE_STEPS = 9  # deploy, API floor, 3 warm latencies, 2 throughputs, cold starts, breakdown
EPHEMERAL_MB = 512  # Lambda's default EphemeralStorage, the /tmp image each sandbox makes


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
    cold_breakdowns: int
    bwrap_runs: int
    sandbox_parts: int
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
    cold_breakdowns=20,
    bwrap_runs=50,
    sandbox_parts=10,
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
    cold_breakdowns=3,
    bwrap_runs=10,
    sandbox_parts=3,
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
        prefix = escape(f"[{self._done}/{self._total}] {title}")
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


def measure_baselines(
    plan: Plan, steps: Steps, echo: baselines.EchoServer, interpreters: dict[str, str], memory_size: int
) -> dict[str, Figure]:
    """L_http (first round), echo throughput, interpreter starts, and (with sandbox) bwrap's costs."""
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
    for name, interp in l_py_figures(interpreters).items():
        figs.append(
            steps.run(
                f"L_py: {interp} -I -S -c pass",
                functools.partial(
                    baselines.python_start, name, f"L_py: {baselines.short_path(interp)} -I -S -c pass",
                    [interp, "-I", "-S", "-c", "pass"], count=plan.py_isolated_runs, warmup=5, seconds=s,
                ),
                _latency,
            )
        )  # fmt: skip
    for name, interp in l_py_figures(interpreters).items():
        figs.append(
            steps.run(
                f"runtime client start: {interp} -I -S bootstrap.py (no Runtime API)",
                functools.partial(
                    baselines.runtime_client_start, rt_start_name(name), interp,
                    count=plan.py_plain_runs, warmup=3, seconds=s,
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
    if "sandbox" in interpreters:
        figs += sandbox_baselines(plan, steps, interpreters["sandbox"], memory_size)
    return {f.name: f for f in figs}


def sandbox_baselines(plan: Plan, steps: Steps, interp: str, memory_size: int) -> list[Figure]:
    """L_bwrap, the sandbox's interpreter under bwrap, a /tmp and a cgroup as a sandbox makes them."""
    s, n = plan.max_seconds, plan.bwrap_runs
    figs: list[Figure | None] = [
        steps.run("L_bwrap: bwrap --unshare-all true − true", lambda: baselines.l_bwrap(count=n, warmup=3, seconds=s),
                  lambda f: _latency(f) if f else "bwrap not found"),
    ]  # fmt: skip
    argv = baselines.sandboxed_argv([interp, "-I", "-S", "-c", "pass"])
    figs.append(
        steps.run(
            f"L_py under bwrap: {interp} -I -S -c pass",
            lambda: baselines.python_start("l_py_bwrap", f"L_py under bwrap: {baselines.short_path(interp)}", argv,
                                           count=n, warmup=3, seconds=s) if argv else None,
            lambda f: _latency(f) if f else "bwrap not found",
        )
    )  # fmt: skip
    figs.append(
        steps.run(
            f"/tmp of {EPHEMERAL_MB} MB as a sandbox makes it (rootfs.make_tmp)",
            lambda: sandbox_costs.tmp_image(size_mb=EPHEMERAL_MB, count=plan.sandbox_parts, seconds=s),
            lambda f: _latency(f) if f else "skipped: not root",
        )
    )
    figs.append(
        steps.run(
            f"runtime client start under bwrap + seccomp: {interp}",
            lambda: sandbox_costs.runtime_client_in_bwrap(interp, count=plan.py_plain_runs, warmup=3, seconds=s),
            lambda f: _latency(f) if f else "skipped: bwrap could not run it",
        )
    )
    cg = steps.run(
        "cgroup create + attach as a sandbox does (host's cgroup driver)",
        lambda: sandbox_costs.cgroup_costs(memory_mb=memory_size, count=plan.sandbox_parts, seconds=s),
        lambda f: f"create {_latency(f[0])}; attach {_latency(f[1])}" if f else "skipped: not root, or not cgroup v1",
    )
    figs += list(cg) if cg else []
    return [f for f in figs if f is not None]


def l_py_figures(interpreters: dict[str, str]) -> dict[str, str]:
    """Baseline name → interpreter: `l_py` (Lamina's Python), `l_py_system` for another one a mode runs."""
    python = str(baselines.lamina_python())
    names = {"l_py": python}
    others = sorted({i for i in interpreters.values() if i != python})
    for i, interp in enumerate(others):
        names["l_py_system" if i == 0 else f"l_py_system{i + 1}"] = interp
    return names


def rt_start_name(l_py_name: str) -> str:
    """The runtime-client-start baseline of the interpreter whose L_py baseline is `l_py_name`."""
    return l_py_name.replace("l_py", "rt_start", 1)


def expected_interpreters(modes: Sequence[str]) -> dict[str, str]:
    """The interpreter each mode will run for python3.11, as Lamina's runtime catalog picks it."""
    out = {}
    for mode in modes:
        info = RuntimeCatalog.discover(shared_paths_only=mode == "sandbox").get(RUNTIME)
        if info is None or info.interpreter is None:
            raise SystemExit(f"bench: no {RUNTIME} interpreter for {mode} mode on this host")
        out[mode] = str(info.interpreter)
    return out


def http_round(plan: Plan, steps: Steps, echo: baselines.EchoServer, which: str) -> Figure:
    return steps.run(
        f"L_http: echo round trip ({which} round)",
        lambda: baselines.http_rtt(echo, count=plan.echo_requests, warmup=plan.warmup, seconds=plan.max_seconds),
        _latency,
    )


def measure_platform(
    plan: Plan, steps: Steps, data_dir: Path, mode: str, memory_size: int, l_py_names: dict[str, str]
) -> report.ModeResult:
    """Every platform figure of one isolation mode, on a `lamina up` of its own stopped on the way out."""
    s = plan.max_seconds
    name = FUNCTION_NAME
    with running_server(data_dir, isolation=mode) as server:
        port = urlsplit(server.endpoint).port
        assert port is not None
        pid = server.process.pid
        client = server.client()

        def deploy() -> None:
            platform_bench.deploy_noop(client, name, memory_size)
            platform_bench.deploy_probe(client, PROBE_NAME, memory_size)

        steps.run(f"[{mode}] deploy {name} and {PROBE_NAME} ({RUNTIME}, {memory_size} MB) on {server.endpoint}", deploy)
        figs = [
            steps.run(
                f"[{mode}] API floor: GET /lamina/v1/health",
                lambda: platform_bench.api_floor(
                    port, count=plan.health_requests, warmup=plan.warmup, seconds=s, server_pid=pid
                ),
                _latency,
            ),
            steps.run(
                f"[{mode}] warm invoke, 1 client, raw HTTP",
                lambda: platform_bench.warm_invoke(
                    port, name, count=plan.warm_requests, warmup=plan.warmup, seconds=s, server_pid=pid
                ),
                _latency,
            ),
        ]
        interpreter = platform_bench.runtime_interpreter(pid)
        figs += [
            steps.run(
                f"[{mode}] warm REPORT Duration (log tail)",
                lambda: platform_bench.warm_report_duration(port, name, count=plan.report_requests, seconds=s),
                _latency,
            ),
            steps.run(
                f"[{mode}] warm invoke, 1 client, boto3",
                lambda: platform_bench.warm_invoke_boto3(client, name, count=plan.boto3_requests, warmup=10, seconds=s),
                _latency,
            ),
            steps.run(
                f"[{mode}] warm throughput, 1 client",
                lambda: platform_bench.throughput(port, name, clients=1, seconds=plan.load_seconds, server_pid=pid),
                _rate,
            ),
            steps.run(
                f"[{mode}] warm throughput, 8 clients (up to 8 environments)",
                lambda: platform_bench.throughput(port, name, clients=8, seconds=plan.load_seconds, server_pid=pid),
                _rate,
            ),
            *steps.run(
                f"[{mode}] cold starts ×{plan.cold_starts} (update config → invoke)",
                lambda: platform_bench.cold_starts(client, port, name, count=plan.cold_starts, seconds=s),
                lambda figs: _latency(figs[0]) + f"; Init Duration p50 {figs[1].p50:.2f} ms",
            ),
            *steps.run(
                f"[{mode}] cold-start breakdown ×{plan.cold_breakdowns} (probe function)",
                lambda: platform_bench.cold_breakdown(client, port, PROBE_NAME, count=plan.cold_breakdowns, seconds=s),
                _breakdown,
            ),
        ]
    notes = []
    runtime_l_py = next((n for n, i in l_py_names.items() if i == interpreter), "l_py")
    if interpreter not in l_py_names.values():
        notes.append(f"runtimes ran {interpreter}, not an interpreter measured as a baseline; compared with l_py")
    return report.ModeResult(
        mode=mode,
        figures={f.name: f for f in figs},
        interpreter=interpreter,
        runtime_l_py=runtime_l_py,
        memory_size=memory_size,
        endpoint=server.endpoint,
        notes=notes,
    )


def _breakdown(figs: list[Figure]) -> str:
    f = {x.name: x for x in figs}
    return (
        f"p50 total {f['cold_total'].p50:.1f} ms = before init {f['cold_before_init'].p50:.1f} + launch "
        f"{f['cold_launch'].p50:.1f} + module→ready {f['cold_module_ready'].p50:.1f} + invoke "
        f"{f['cold_invoke'].p50:.1f} ms, n={f['cold_total'].n}"
    )


def measure_all(
    plan: Plan, steps: Steps, modes: Sequence[str], memory_size: int
) -> tuple[dict[str, Figure], dict[str, report.ModeResult]]:
    """Baselines, each mode's platform, then L_http again: the echo server idles through the platform part."""
    interpreters = expected_interpreters(modes)
    l_py_names = l_py_figures(interpreters)
    results: dict[str, report.ModeResult] = {}
    with baselines.echo_server() as echo:
        figures = measure_baselines(plan, steps, echo, interpreters, memory_size)
        for mode in modes:
            with data_directory(prefix=f"lamina-bench-{mode}-") as data_dir:
                results[mode] = measure_platform(plan, steps, data_dir, mode, memory_size, l_py_names)
        last = http_round(plan, steps, echo, "last")
    figures["l_http"] = baselines.best_round([figures["l_http"], last])
    return figures, results


def step_count(modes: Sequence[str], interpreters: int) -> int:
    extra = SANDBOX_BASELINE_STEPS if "sandbox" in modes else 0
    return BASELINE_STEPS + 2 * interpreters + extra + MODE_STEPS * len(modes)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    plan = QUICK if args.quick else FULL
    console = Console(stderr=True, log_path=False)
    if not console.is_terminal:
        console = Console(stderr=True, log_path=False, width=132)
    started = time.time()
    load_before = os.getloadavg()
    steps = Steps(console, total=step_count(args.modes, len(l_py_figures(expected_interpreters(args.modes)))))
    figures, modes = measure_all(plan, steps, args.modes, args.memory_size)
    meta = _meta(plan, args, started, load_before, modes)
    out = Console()
    if not out.is_terminal:
        out = Console(width=132)  # piped: do not squeeze the table into 80 columns
    report.render(figures, modes, out, caption=_caption(figures, modes, meta))
    report.render_breakdown(figures, modes, out)
    report.render_throttling(modes, out, cpu_share=_cpu_share(args.memory_size))
    report.render_cpu(figures, modes, out)
    if args.json is not None:
        report.write_json(args.json, figures, modes, meta)
        console.log(f"wrote {args.json}")
    return 0


def _cpu_share(memory_size: int) -> float:
    """The sandbox's CPU cap after init: MemorySize / 1,769 MB of one CPU (Lamina's cgroups, as Lambda)."""
    return memory_size / MB_PER_VCPU


def _caption(figures: dict[str, Figure], modes: dict[str, report.ModeResult], meta: dict[str, Any]) -> str:
    rounds = figures["l_http"].extra["rounds"]
    p50s = " / ".join(f"{r['p50'] * 1000:.0f} µs" for r in rounds)
    runs = "; ".join(f"{m.mode}: runtimes run {m.interpreter}" for m in modes.values())
    notes = " ".join(n for m in modes.values() for n in m.notes)
    return (
        f"L_http = the lower of {len(rounds)} rounds (p50 {p50s}). Functions: {RUNTIME}, MemorySize "
        f"{meta['memory_size']} MB (sandbox CPU cap after init: {meta['sandbox_cpu_share'] * 100:.1f}% of a CPU). "
        f"{runs}. Init Duration is compared with L_py of that interpreter, cold start with L_py. "
        f"Load average before/after: {meta['loadavg_before']:.2f} / {meta['loadavg_after']:.2f} on {meta['cpus']} "
        f"CPUs. Goals are references (PERFORMANCE.md Part 3), not pass/fail.{' ' + notes if notes else ''}"
    )


def _modes(text: str) -> tuple[str, ...]:
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in modes if m not in MODES]
    if not modes or bad or len(set(modes)) != len(modes):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(MODES)}, got {text!r}")
    return modes


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Measure Lamina against this machine's limits (PERFORMANCE.md).")
    parser.add_argument("--quick", action="store_true", help="fewer samples and 1 s load windows (a smoke run)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every figure and ratio as JSON")
    parser.add_argument(
        "--modes",
        type=_modes,
        default=MODES,
        metavar="MODES",
        help="isolation modes to measure, in order (default: sandbox,process)",
    )
    parser.add_argument(
        "--memory-size",
        type=int,
        default=platform_bench.DEFAULT_MEMORY_MB,
        metavar="MB",
        help="the functions' MemorySize (default 128; in sandbox mode it sets the CPU cap: MB / 1,769 of a CPU)",
    )
    args = parser.parse_args(argv)
    if not 128 <= args.memory_size <= 10240:
        parser.error("--memory-size must be 128 to 10240 (Lambda's range)")
    return args


def _meta(
    plan: Plan,
    args: argparse.Namespace,
    started: float,
    load_before: tuple[float, float, float],
    modes: dict[str, report.ModeResult],
) -> dict[str, Any]:
    return {
        "quick": args.quick,
        "plan": asdict(plan),
        "modes": list(modes),
        "memory_size": args.memory_size,
        "sandbox_cpu_share": _cpu_share(args.memory_size),
        "interpreters": {m.mode: m.interpreter for m in modes.values()},
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
