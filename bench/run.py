"""Lamina's benchmark harness: `python bench/run.py [--quick] [--modes sandbox,process] [--json [PATH]]
[--plot [PATH]]`; `make bench` runs it with both files under bench/results/.

One run measures, on this machine and in this order:

1. Baselines (PERFORMANCE.md Part 2), so every target is a ratio against limits of the same run:
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
   - L_fork and L_pss (fork_limits.py): fork → result from a ~25 MB Python parent; PSS of a child
     forked from a template that loaded the runtime client, under the environments' interpreter;
   - L_1MB: the echo server's round trip of a 1 MB event (echoed back) minus a 1 KB one;
   - the bwrap creation rate at 2 parallel (G6) and L_relay_wrk (G7, relay.py: wrk against a
     minimal relay with 2 runtime processes; skipped without wrk);
   - the peer: python-lambda-local, a fresh process per invoke, on the same handler (peer.py);
   - with sandbox mode: L_bwrap (`bwrap --ro-bind / / --unshare-all --die-with-parent true`
     minus `true`), that interpreter's `-I -S -c pass` and the runtime client's start under bwrap
     with a sandbox's namespaces, binds, uid (and seccomp filter), and a /tmp and a cgroup made as
     a sandbox makes them (sandbox_costs.py): references for the cold-start breakdown.
2. The platform, once per isolation mode (`--modes`, default sandbox then process), each on its
   own `lamina up --isolation <mode>` (lamina.testing.running_server) and data directory, with
   functions deployed with boto3: the no-op (`def handler(e, c): return e`, python3.11,
   `--memory-size`, default 128 MB), a cold-start probe, a provided.al2023 no-op with a Python
   bootstrap (custom_runtime.py), the no-op at 1,769 MB (one full vCPU per environment, as the
   relay's runtimes have) held to 2 environments by reserved concurrency, and a 200 ms sleeper for
   the burst. Then:
   - API floor: GET /lamina/v1/health, one exchange through the server's HTTP stack;
   - warm invoke p50/p99, 1 client, raw http.client keep-alive POSTs of the same ~80-byte event
     to the Invoke path (unsigned; Lamina accepts that), plus one boto3 figure for reference;
   - warm REPORT Duration (X-Amz-Log-Type: Tail): the part of a warm invoke inside the runtime;
   - warm throughput, closed loop, 1 and 8 client processes, each with its own connection
     (8 clients bring up to 8 environments: every worker warms up before the window opens);
     in sandbox mode with the CPU cap's throttling counters (cgroup cpu.stat) over the window;
   - cold start (G3; and G4 for the custom runtime): update_function_configuration (new
     environment variable) retires the environments; after the function_updated_v2 waiter the
     next invoke is timed, and its REPORT Init Duration is read from the log tail;
   - the cold-start breakdown: the same with the probe function, whose module and handler report
     CLOCK_MONOTONIC, split into before init / launch / module→ready / first invoke (see
     platform_bench.py). Nothing in Lamina is instrumented;
   - G7: wrk -c2 and -c8 against the 2-environment function; G10: 1 KB and 1 MB events on it;
   - G6: a burst of concurrent invokes of the sleeper, so each needs an environment of its own;
     G9: the PSS of the idle environments it leaves (scale_bench.py);
   - density (full run, the targets' mode only): 1,000 more functions and 300 more idle
     environments, then the warm invoke p50 again.
3. Asynchronous invocation (#5; `--no-async` skips it; async_bench.py, which also runs alone):
   Event invokes accepted per second from wrk (the queue alone, then with a no-op function
   running them), the backlog's drain rate, and the SIGKILL scenario: events sent, the server
   killed halfway and restarted on its data directory, every accepted event checked to have run.
4. Tables: the scorecard (every target: figure / value / baseline / ratio / target / pass), the
   peer side by side with Lamina, then the detail tables: figure / value / baseline / ratio /
   target per mode, "sandbox / process" ratios and the isolation cost on the cold path (G5); the
   cold-start breakdown; the sandbox CPU cap's throttling; the CPU each process spent per
   sequential request. Targets are references: a miss never fails the run; a measurement that
   fails is reported (its figures missing, with the reason) and makes the exit status 1.
   `--json` writes every figure (n, p50, p99, mean, min, max, value, extras), every ratio, the
   scorecard, the comparison and the latency samples; `--plot` draws the distributions (plot.py).

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
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console

import async_bench
import baselines
import custom_runtime
import fork_limits
import peer
import platform_bench
import plot
import procs
import relay
import report
import sandbox_costs
import scale_bench
import scorecard
import wrk
from plan import FULL, QUICK, Plan
from stats import Figure, value_figure
from steps import Steps

from lamina.runtimes.catalog import RuntimeCatalog
from lamina.sandbox.cgroups import MB_PER_VCPU
from lamina.testing import RunningServer, data_directory, running_server, stop_process

FUNCTION_NAME = "bench-noop"
PROBE_NAME = "bench-probe"
CUSTOM_NAME = "bench-custom"
WRK_NAME = "bench-1vcpu"
BURST_NAME = "bench-burst"
RUNTIME = platform_bench.RUNTIME
MODES = ("sandbox", "process")
RESULTS = Path(__file__).resolve().parent / "results"
# L_http first and last, 2 echo throughputs, plain python -c pass, L_fork, L_pss, 1 KB/1 MB echo,
# bwrap rate, L_relay_wrk, the peer (+ 2 per interpreter)
BASELINE_STEPS = 11
SANDBOX_BASELINE_STEPS = 5  # L_bwrap, L_py and the runtime client under bwrap, a /tmp, a cgroup
# deploy, API floor, 3 warm latencies, 2 throughputs, cold starts, breakdown, custom cold starts,
# wrk, 1 KB/1 MB events, burst, idle PSS
MODE_STEPS = 14
ASYNC_STEPS = 3  # #5's scenarios: the queue alone, with a function running, SIGKILL mid-load
ASYNC_CONNECTIONS = 64
EPHEMERAL_MB = 512  # Lambda's default EphemeralStorage, the /tmp image each sandbox makes
ONE_VCPU_MB = MB_PER_VCPU  # the MemorySize that buys one full vCPU (the sandbox's CPU cap follows it)
# The memory budget counts MemorySize, not use: the density step's 300 idle 128 MB environments
# (plus the burst's and the others') commit ~51 GB of it while using a small part of that. The
# default budget (80 % of the host's memory) would evict them before they could be counted.
MEMORY_BUDGET_MB = 65536
SERVER_STOP_S = 15.0  # SIGTERM → exit; then SIGKILL to its process group, as running_server does
WRK_MISSING = "wrk not installed (scripts/setup.sh bench installs it)"
PEER_MISSING = "python-lambda-local not installed (pip install -e '.[bench]')"


def _latency(fig: Figure) -> str:
    return f"p50 {fig.p50:.3f} ms, p99 {fig.p99:.3f} ms, n={fig.n}"


def _rate(fig: Figure) -> str:
    envs = f", {fig.extra['environments']} environments" if "environments" in fig.extra else ""
    return f"{fig.value:,.0f}/s (latency p50 {fig.p50:.3f} ms), n={fig.n}{envs}"


def _wrk(fig: Figure) -> str:
    runs = ", ".join(f"-c{r['connections']} {r['rate']:,.0f}/s ({r['non_2xx']} non-2xx)" for r in fig.extra["runs"])
    return f"{fig.value:,.0f}/s: {runs}"


def _size(fig: Figure) -> str:
    return f"p50 {fig.p50:.2f} MB, max {fig.max:.2f} MB, n={fig.n}"


def _sizes(figs: list[Figure]) -> str:
    """[1 KB, 1 MB, their difference], as payload_rtts and payload_invokes return them."""
    kb, mb, extra = figs
    return f"1 KB p50 {kb.p50:.3f} ms, 1 MB p50 {mb.p50:.3f} ms, difference {extra.value:.3f} ms"


def gather(
    steps: Steps,
    skipped: dict[str, str],
    names: Sequence[str],
    title: str,
    fn: Callable[[], Figure | Sequence[Figure] | None],
    summary: Callable[[Any], str],
    missing: str = "not measured",
) -> list[Figure]:
    """An optional step: its figures, or none with the reason (its error, or `missing` when it
    returned None: a tool absent here) recorded for each of `names`."""
    result = steps.attempt(title, fn, lambda r: summary(r) if r is not None else missing)
    if result is None:
        reason = f"failed: {steps.failures[title]}" if title in steps.failures else missing
        skipped.update({n: reason for n in names})
        return []
    return [result] if isinstance(result, Figure) else list(result)


def goal_interpreter(interpreters: dict[str, str]) -> str:
    """The interpreter of the mode the targets are held in: the template, relay and fork baselines use it."""
    return interpreters.get("sandbox") or next(iter(interpreters.values()))


def measure_baselines(
    plan: Plan,
    steps: Steps,
    echo: baselines.EchoServer,
    interpreters: dict[str, str],
    memory_size: int,
    skipped: dict[str, str],
) -> dict[str, Figure]:
    """L_http (first round), echo throughput, interpreter starts, the fork, event-size, creation-rate
    and relay limits, the peer, and (with sandbox) bwrap's costs."""
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
    interp = goal_interpreter(interpreters)
    figs += gather(steps, skipped, ["l_fork"], f"L_fork: fork → result, ~25 MB parent ({interp} -I -S)",
                   lambda: fork_limits.l_fork(interp, count=plan.fork_runs, warmup=5, seconds=s), _latency)
    figs += gather(steps, skipped, ["l_pss"], f"L_pss: {plan.pss_children} children of a runtime-client template",
                   lambda: fork_limits.l_pss(interp, children=plan.pss_children), _size)
    figs += gather(steps, skipped, ["echo_1kb", "echo_1mb", "l_1mb"], "L_1MB: echo round trips, 1 KB and 1 MB events",
                   lambda: baselines.payload_rtts(echo, small=plan.small_events, large=plan.large_events, warmup=5,
                                                  seconds=s), _sizes)
    figs += gather(steps, skipped, ["bwrap_rate_2"], "bwrap --unshare-all true, 2 parallel: creation rate",
                   lambda: baselines.bwrap_rate(parallel=2, count=plan.bwrap_rate_runs, seconds=s), _rate,
                   "bwrap not found")
    figs += gather(steps, skipped, ["l_relay_wrk"], "L_relay_wrk: wrk -c2/-c8 → minimal relay, 2 runtimes",
                   lambda: relay.l_relay_wrk(interp, seconds=plan.wrk_seconds) if wrk.binary() else None, _wrk,
                   WRK_MISSING)
    figs += gather(steps, skipped, ["peer_python_lambda_local"], f"peer: python-lambda-local ×{plan.peer_invokes}",
                   lambda: peer.python_lambda_local(count=plan.peer_invokes, warmup=1, seconds=s), _latency,
                   PEER_MISSING)  # fmt: skip
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
    plan: Plan,
    steps: Steps,
    data_dir: Path,
    mode: str,
    memory_size: int,
    l_py_names: dict[str, str],
    *,
    targets_mode: bool,
) -> report.ModeResult:
    """Every platform figure of one isolation mode, on a `lamina up` of its own stopped on the way
    out; the density figure only in the mode the targets are held in (`targets_mode`)."""
    s = plan.max_seconds
    name = FUNCTION_NAME
    skipped: dict[str, str] = {}
    notes: list[str] = []
    with platform_server(data_dir, mode, notes) as server:
        port = urlsplit(server.endpoint).port
        assert port is not None
        pid = server.process.pid
        client = server.client()

        def deploy() -> None:
            platform_bench.deploy_noop(client, name, memory_size)
            platform_bench.deploy_probe(client, PROBE_NAME, memory_size)
            custom_runtime.deploy_custom(client, CUSTOM_NAME, memory_size)
            platform_bench.deploy_wrk_target(client, WRK_NAME, ONE_VCPU_MB)
            scale_bench.deploy_burst(client, BURST_NAME, memory_size)

        steps.run(
            f"[{mode}] deploy {name}, {PROBE_NAME}, {BURST_NAME}, {CUSTOM_NAME} ({memory_size} MB) and {WRK_NAME} "
            f"({ONE_VCPU_MB} MB, reserved concurrency 2) on {server.endpoint}",
            deploy,
        )
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
        figs.append(
            steps.run(
                f"[{mode}] warm invoke, 1 client, raw HTTP, {ONE_VCPU_MB} MB (G1: the platform's path, not the CPU cap)",
                lambda: platform_bench.warm_invoke(
                    port, WRK_NAME, count=plan.warm_requests, warmup=plan.warmup, seconds=s, server_pid=pid,
                    figure="warm_invoke_1vcpu", label=f"warm invoke, 1 client (raw HTTP), {ONE_VCPU_MB} MB",
                ),
                _latency,
            )
        )
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
        figs += gather(
            steps, skipped, ["cold_start_custom", "init_duration_custom"],
            f"[{mode}] cold starts ×{plan.custom_cold_starts}, {custom_runtime.RUNTIME} (Python bootstrap)",
            lambda: platform_bench.cold_starts(client, port, CUSTOM_NAME, count=plan.custom_cold_starts, seconds=s,
                                               suffix="_custom", what=custom_runtime.RUNTIME),
            lambda figs: _latency(figs[0]) + f"; Init Duration p50 {figs[1].p50:.2f} ms",
        )
        figs += gather(
            steps, skipped, ["wrk_throughput"], f"[{mode}] warm throughput, wrk -c2/-c8 → {WRK_NAME} (2 environments)",
            lambda: platform_bench.wrk_throughput(port, WRK_NAME, seconds=plan.wrk_seconds) if wrk.binary() else None,
            _wrk, WRK_MISSING,
        )
        figs += gather(
            steps, skipped, ["invoke_1kb", "invoke_1mb", "event_1mb_extra"],
            f"[{mode}] warm invoke, 1 KB and 1 MB events → {WRK_NAME}",
            lambda: platform_bench.payload_invokes(port, WRK_NAME, small=plan.small_events, large=plan.large_events,
                                                   warmup=5, seconds=s),
            _sizes,
        )
        title = f"[{mode}] burst: {plan.burst} concurrent invokes of {BURST_NAME}, no environment yet"
        burst = steps.attempt(
            title,
            lambda: scale_bench.burst(port, pid, BURST_NAME, count=plan.burst, hold=0.2, seconds=s),
            lambda b: _burst(b.rate),
        )
        if burst is None:
            skipped["env_creation_rate"] = f"failed: {steps.failures[title]}"
        else:
            figs.append(burst.rate)
        figs += gather(
            steps, skipped, ["idle_env_pss"], f"[{mode}] idle environment PSS: the burst's environments",
            lambda: scale_bench.idle_pss(pid, burst.new_runtimes) if burst else None, _size,
            "no environments to measure (the burst failed, or its runtimes were not found in /proc)",
        )
        if targets_mode and plan.density_functions:
            figs += density_step(plan, steps, server, port, skipped)
        else:
            why = "skipped with --quick" if not plan.density_functions else "measured in the targets' mode only"
            skipped.update({"density_warm_before": why, "density_warm_after": why})
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
        skipped=skipped,
    )


@contextmanager
def platform_server(data_dir: Path, mode: str, notes: list[str]) -> Iterator[RunningServer]:
    """`lamina up` for one mode, stopped by the bench itself on the way out, which then ends any
    process of the server's tree that outlived it (seen: environments left running after SIGTERM;
    they hold the server's output pipe, which running_server would wait on forever), and says so."""
    extra_args = ("--memory-budget", str(MEMORY_BUDGET_MB))
    with running_server(data_dir, isolation=mode, extra_args=extra_args) as server:
        try:
            yield server
        finally:
            tree = procs.snapshot_tree(server.process.pid)
            t0 = time.monotonic()
            stop_process(server.process, grace=SERVER_STOP_S)
            stopped = f"exit status {server.process.returncode} after {time.monotonic() - t0:.1f} s"
            left = procs.end_leftovers(tree)
            if left:
                kinds = Counter(cmd.split(" ", 1)[0].rsplit("/", 1)[-1] or "?" for cmd in left.values())
                notes.append(f"{len(left)} of the {mode} server's {len(tree)} processes outlived it ({stopped}) and "
                             f"were ended by the bench: {', '.join(f'{n}× {k}' for k, n in kinds.items())}.")  # fmt: skip


def density_step(plan: Plan, steps: Steps, server: Any, port: int, skipped: dict[str, str]) -> list[Figure]:
    """1,000 more functions and 300 more idle environments, with progress bars; the warm p50 around them."""
    threads = 8  # deploying is the server's work; 8 clients keep it busy without a pile-up of waits
    clients = [server.client() for _ in range(threads)]
    deploy_bar = f"deploy {plan.density_functions:,} functions"
    warm_bar = f"warm {plan.density_warm} of them"

    def run(advance: dict[str, Callable[[int], None]]) -> list[Figure]:
        return scale_bench.density(
            clients, port, server.process.pid, FUNCTION_NAME, functions=plan.density_functions, warm=plan.density_warm,
            warm_requests=plan.warm_requests, seconds=plan.max_seconds, on_deploy=advance[deploy_bar],
            on_warm=advance[warm_bar],
        )  # fmt: skip

    title = f"[density] {plan.density_functions:,} functions, {plan.density_warm} idle environments, warm p50 around"
    figs = steps.with_progress(title, {deploy_bar: plan.density_functions, warm_bar: plan.density_warm}, run, _density)
    if figs is None:
        skipped.update({n: f"failed: {steps.failures[title]}" for n in ("density_warm_before", "density_warm_after")})
        return []
    return figs


def _burst(fig: Figure) -> str:
    e = fig.extra
    return (
        f"{fig.value:,.1f}/s: {e['created']} environments ready {e['ready_ms']:.0f} ms after the burst "
        f"(last response {e['wall_ms']:.0f} ms), {e['throttled_or_failed']} not 200"
    )


def _density(figs: list[Figure]) -> str:
    before, after = figs
    e = after.extra
    return (
        f"warm p50 {before.p50:.3f} → {after.p50:.3f} ms ({after.p50 / before.p50:.2f}×); "
        f"{e['environments_on_server']} environments on the server, {e['density_idle_environments']} idle density ones, "
        f"their PSS {e['environments_pss_mb']:.0f} MB in all; deploy {e['deploy_seconds']:.1f} s, warm {e['warm_seconds']:.1f} s"
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
) -> tuple[dict[str, Figure], dict[str, report.ModeResult], dict[str, str]]:
    """Baselines, each mode's platform, then L_http again: the echo server idles through the platform
    part. Returns the baselines, each mode's result and why any baseline is missing."""
    interpreters = expected_interpreters(modes)
    l_py_names = l_py_figures(interpreters)
    results: dict[str, report.ModeResult] = {}
    skipped: dict[str, str] = {}
    targets_mode = "sandbox" if "sandbox" in modes else modes[0]
    with baselines.echo_server() as echo:
        figures = measure_baselines(plan, steps, echo, interpreters, memory_size, skipped)
        for mode in modes:
            with data_directory(prefix=f"lamina-bench-{mode}-") as data_dir:
                results[mode] = measure_platform(
                    plan, steps, data_dir, mode, memory_size, l_py_names, targets_mode=mode == targets_mode
                )
        last = http_round(plan, steps, echo, "last")
    figures["l_http"] = baselines.best_round([figures["l_http"], last])
    if "sandbox" not in modes:
        skipped["l_bwrap"] = "measured only when sandbox mode runs"
    if "sandbox" not in modes or "process" not in modes:
        skipped["isolation_cost"] = "needs cold starts in both modes (--modes sandbox,process)"
    add_isolation_cost(results)
    return figures, results, skipped


def add_isolation_cost(modes: dict[str, report.ModeResult]) -> None:
    """G5's figure, into the sandbox's: cold start p50 sandbox − process (report.isolation_cost
    details it, with the interpreters' difference taken out as well)."""
    sandbox, process = modes.get("sandbox"), modes.get("process")
    if sandbox is None:
        return
    s, p = sandbox.figures.get("cold_start"), (process.figures.get("cold_start") if process else None)
    if s is None or p is None:
        sandbox.skipped["isolation_cost"] = "needs cold starts in both modes (--modes sandbox,process)"
        return
    sandbox.figures["isolation_cost"] = value_figure(
        "isolation_cost", "isolation cost: cold start p50, sandbox − process", "ms", s.p50 - p.p50, min(s.n, p.n),
        sandbox_p50=s.p50, process_p50=p.p50,
    )  # fmt: skip


def step_count(plan: Plan, modes: Sequence[str], interpreters: int, with_async: bool) -> int:
    extra = SANDBOX_BASELINE_STEPS if "sandbox" in modes else 0
    density = 1 if plan.density_functions else 0
    return BASELINE_STEPS + 2 * interpreters + extra + MODE_STEPS * len(modes) + density + ASYNC_STEPS * with_async


def measure_async(plan: Plan, steps: Steps, isolation: str) -> dict[str, Any]:
    """Issue #5's figures (bench/async_bench.py), each scenario on a server of its own."""
    results: dict[str, Any] = {"isolation": isolation}
    seconds = plan.async_seconds
    accept = steps.attempt(
        "async: Event invokes accepted, queue alone",
        lambda: async_bench.scenario_accept(isolation, seconds, ASYNC_CONNECTIONS),
        lambda r: f"{r['accepted_per_s']:,.0f}/s ({r['client']}), {r['writes_per_commit']:.0f} events per commit",
    )
    both = steps.attempt(
        "async: Event invokes accepted while a no-op runs them, then the backlog drained",
        lambda: async_bench.scenario_accept_and_run(isolation, seconds, ASYNC_CONNECTIONS),
        lambda r: f"{r['accepted_per_s']:,.0f}/s accepted, {r['drain']['ran_per_s']:,.0f}/s run",
    )
    kill = steps.attempt(
        f"async: {plan.async_kill_events:,} events, SIGKILL halfway, restart (process mode)",
        lambda: async_bench.scenario_kill(plan.async_kill_events),
        lambda r: f"{r['never_ran']} lost, {r['recorded_done_twice']} recorded done twice",
    )
    for key, value in (("accept", accept), ("accept_and_run", both), ("kill", kill)):
        if value is not None:
            results[key] = value
    return results


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    plan = QUICK if args.quick else FULL
    console = Console(stderr=True, log_path=False)
    if not console.is_terminal:
        console = Console(stderr=True, log_path=False, width=132)
    started = time.time()
    load_before = os.getloadavg()
    interpreters = len(l_py_figures(expected_interpreters(args.modes)))
    steps = Steps(console, total=step_count(plan, args.modes, interpreters, args.with_async))
    figures, modes, skipped = measure_all(plan, steps, args.modes, args.memory_size)
    async_results = measure_async(plan, steps, args.modes[0]) if args.with_async else None
    meta = _meta(plan, args, started, load_before, modes)
    out = Console()
    if not out.is_terminal:
        out = Console(width=140)  # piped: do not squeeze the tables into 80 columns
    report.render(figures, modes, out, caption=_caption(figures, modes, meta))
    report.render_breakdown(figures, modes, out)
    report.render_throttling(modes, out, cpu_share=_cpu_share(args.memory_size))
    report.render_cpu(figures, modes, out)
    comparison = scorecard.comparison(figures, modes)
    scorecard.render_comparison(comparison, out)
    outcomes = scorecard.evaluate(figures, modes, skipped)
    if async_results is not None:
        async_bench.render(async_results, out)
    scorecard.render(outcomes, out)  # last: the summary is what a terminal shows at the end
    if args.json is not None:
        document = report.to_json(
            figures, modes, meta, goals=[o.to_json() for o in outcomes], comparison=comparison, skipped=skipped,
            failures=steps.failures, asynchronous=async_results,
        )  # fmt: skip
        report.write_json(args.json, document)
        console.log(f"wrote {args.json}")
    if args.plot is not None:
        try:
            plot.write(args.plot, figures, modes, outcomes, plot.describe(meta))
            console.log(f"wrote {args.plot}")
        except ImportError:
            console.log("[red]--plot needs matplotlib[/]: pip install -e '.[bench]' (or scripts/setup.sh bench)")
            return 1
    if steps.failures:
        console.log(f"[red]{len(steps.failures)} measurement(s) failed[/]: " + "; ".join(steps.failures))
        return 1
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
        f"{runs}. Init Duration is compared with L_py of that interpreter. {WRK_NAME} (wrk, 1 KB/1 MB events) has "
        f"{ONE_VCPU_MB} MB: a full vCPU per environment, as the relay's runtimes have. Servers run with "
        f"--memory-budget {MEMORY_BUDGET_MB} (see run.py). "
        f"Load average before/after: {meta['loadavg_before']:.2f} / {meta['loadavg_after']:.2f} on {meta['cpus']} "
        f"CPUs. Targets are references (PERFORMANCE.md Part 3), not pass/fail.{' ' + notes if notes else ''}"
    )


def _modes(text: str) -> tuple[str, ...]:
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in modes if m not in MODES]
    if not modes or bad or len(set(modes)) != len(modes):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(MODES)}, got {text!r}")
    return modes


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Measure Lamina against this machine's limits (PERFORMANCE.md).")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer samples, 1 s load windows, a burst of 16 and no density step (a smoke run, under a minute)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        nargs="?",
        const=RESULTS / "bench.json",
        metavar="PATH",
        help="also write every figure, ratio, target and latency sample as JSON (default PATH: bench/results/bench.json)",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        nargs="?",
        const=RESULTS / "bench.png",
        metavar="PATH",
        help="also draw the latency distributions and targets as a PNG (default PATH: bench/results/bench.png)",
    )
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
    parser.add_argument(
        "--no-async",
        dest="with_async",
        action="store_false",
        help="skip the asynchronous-invocation scenarios (accepted Event invokes/s, SIGKILL durability)",
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
