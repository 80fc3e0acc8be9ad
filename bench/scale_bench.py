"""Scale figures: environments created per second (G6), idle environment memory (G9), and the
warm invoke with 1,000 functions and 300 idle environments on the server (density).

Burst (G6): a function with no environment gets `count` invokes at once (one thread and one
keep-alive connection each, released together by a barrier). Its handler notes when it starts,
then sleeps `hold` seconds, so no environment is free before every request has its own. The
rate is the environments created (the server's coldStarts counter, GET /lamina/v1/environments)
over the time from the burst's release to the last handler starting, i.e. to the last of them
being ready; the wall time to the last response is kept beside it.

Idle memory (G9): the burst leaves `count` idle warm environments. Each one's PSS is the sum over
the processes that belong to it alone (procs.environment_trees: the runtime, and in sandbox mode
the bwrap processes above it), read from /proc/<pid>/smaps_rollup; the figure is their median.

Density: deploy `functions` functions from one zip (threads, each with its own boto3 client), warm
`warm` of them with one invoke each, and compare the bench's warm-invoke p50 after with before.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import loadgen
import platform_bench
import procs
from stats import Figure, latency_figure, percentile, size_figure, value_figure

from lamina.testing import DEFAULT_ROLE, zip_files

BURST_SOURCE = """import time


def handler(e, c):
    started = time.perf_counter()
    time.sleep(float(e.get("hold", 0.2)))  # holds the environment: every request needs its own
    return {"started": started}
"""
DENSITY_PREFIX = "bench-density-"
Advance = Callable[[int], None]


def deploy_burst(client: Any, name: str, memory_size: int) -> None:
    from lamina.testing import deploy

    deploy(client, name, {"app.py": BURST_SOURCE}, runtime=platform_bench.RUNTIME, handler="app.handler",
           MemorySize=memory_size, Timeout=60)  # fmt: skip


@dataclass(frozen=True, slots=True)
class BurstResult:
    rate: Figure
    new_runtimes: list[int]  # the runtimes the burst started: its environments, idle afterwards


def burst(port: int, server_pid: int, name: str, *, count: int, hold: float, seconds: float) -> BurstResult:
    body = b'{"hold": %.3f}' % hold
    path = platform_bench.invoke_path(name)
    before_runtimes = set(procs.runtime_pids(server_pid))
    cold_before = int(platform_bench.environment_stats(port)["coldStarts"])
    conns = [loadgen.connect(port) for _ in range(count)]
    barrier = threading.Barrier(count + 1, timeout=30)
    results: list[tuple[int, float, float] | BaseException | None] = [None] * count

    def invoke(i: int) -> None:
        try:
            barrier.wait()
            status, _, data = loadgen.post(conns[i], path, body)
            done = time.perf_counter()
            started = float(json.loads(data)["started"]) if status == 200 else float("nan")
            results[i] = (status, started, done)
        except BaseException as exc:  # reported below, after every thread is joined
            results[i] = exc

    threads = [threading.Thread(target=invoke, args=(i,), daemon=True) for i in range(count)]
    try:
        for t in threads:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        deadline = time.monotonic() + seconds + hold + 60  # an init may take the server's init timeout
        for t in threads:
            t.join(max(0.1, deadline - time.monotonic()))
    finally:
        for c in conns:
            c.close()
    failures = [r for r in results if not isinstance(r, tuple)]
    answered = [r for r in results if isinstance(r, tuple)]
    ok = [r for r in answered if r[0] == 200]
    if failures or not ok:
        raise loadgen.BenchHTTPError(f"burst: {len(failures)} of {count} invokes failed ({failures[:1]!r})")
    created = int(platform_bench.environment_stats(port)["coldStarts"]) - cold_before
    ready_s = max(r[1] for r in ok) - t0
    wall_s = max(r[2] for r in ok) - t0
    rate = value_figure(
        "env_creation_rate",
        f"environments created per second, burst of {count}",
        "/s",
        created / ready_s,
        created,
        burst=count,
        created=created,
        answered_200=len(ok),
        throttled_or_failed=count - len(ok),
        ready_ms=ready_s * 1000,
        wall_ms=wall_s * 1000,
        hold_ms=hold * 1000,
        ready_p50_ms=percentile(sorted((r[1] - t0) * 1000 for r in ok), 50),
    )
    new = sorted(set(procs.runtime_pids(server_pid)) - before_runtimes)
    return BurstResult(rate=rate, new_runtimes=new)


def idle_pss(server_pid: int, runtimes: Sequence[int]) -> Figure | None:
    """PSS of each given environment (its own process tree), in MB; None if none could be read."""
    trees = procs.environment_trees(server_pid, list(procs.runtime_pids(server_pid)))
    totals: list[float] = []
    sizes: list[int] = []
    by_process: dict[str, list[float]] = {}  # "runtime", or the comm of a process above or below it
    for runtime in runtimes:
        tree = trees.get(runtime)
        if not tree:
            continue
        pss = [procs.pss_kb(pid) for pid in tree]
        if any(p is None for p in pss):
            continue  # a process went away meanwhile: this environment is not idle
        totals.append(sum(p or 0 for p in pss) / 1024)
        sizes.append(len(tree))
        for i, (pid, kb) in enumerate(zip(tree, pss)):
            by_process.setdefault("runtime" if i == 0 else procs.comm(pid), []).append((kb or 0) / 1024)
    if not totals:
        return None
    return size_figure(
        "idle_env_pss",
        "idle warm environment: PSS of its processes",
        totals,
        environments=len(totals),
        processes_per_environment=max(sizes),
        # Where an environment's memory goes: p50 PSS per kind of process (summed if one has several).
        pss_p50_mb_by_process={k: percentile(sorted(v), 50) * len(v) / len(totals) for k, v in by_process.items()},
    )


def density(
    clients: Sequence[Any],
    port: int,
    server_pid: int,
    noop: str,
    *,
    functions: int,
    warm: int,
    warm_requests: int,
    seconds: float,
    on_deploy: Advance,
    on_warm: Advance,
) -> list[Figure]:
    """Warm p50 of `noop` before, then with `functions` more functions and `warm` more idle
    environments on the server. `clients`: one boto3 client per deploying thread."""
    before = _warm_p50(port, noop, warm_requests, seconds, "density_warm_before", "warm invoke p50, before")
    code = zip_files({"app.py": platform_bench.HANDLER_SOURCE})
    names = [f"{DENSITY_PREFIX}{i:04d}" for i in range(functions)]
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        chunks = [names[i :: len(clients)] for i in range(len(clients))]
        list(pool.map(lambda args: _deploy_all(*args, code=code, advance=on_deploy), zip(clients, chunks)))
    deploy_s = time.monotonic() - t0
    t0 = time.monotonic()
    threads = 2  # one cold start per core at a time; more only queues on 2 vCPUs
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda chunk: _warm_all(port, chunk, on_warm), [names[:warm][i::threads] for i in range(threads)]))
    warm_s = time.monotonic() - t0
    stats = platform_bench.environment_stats(port)
    idle = sum(1 for d in stats["details"] if d["function"].startswith(DENSITY_PREFIX) and d["state"] == "idle")
    runtimes = procs.runtime_pids(server_pid)
    total_pss = sum(procs.pss_kb(p) or 0 for tree in procs.environment_trees(server_pid, runtimes).values() for p in tree)
    after = _warm_p50(port, noop, warm_requests, seconds, "density_warm_after", "warm invoke p50, with them")
    info = {
        "functions_deployed": functions,
        "environments_warmed": warm,
        "density_idle_environments": idle,
        "environments_on_server": stats["environments"],
        "environments_pss_mb": total_pss / 1024,
        "deploy_seconds": deploy_s,
        "warm_seconds": warm_s,
    }
    return [before, replace(after, extra={**after.extra, **info})]


def _warm_p50(port: int, name: str, count: int, seconds: float, figure: str, label: str) -> Figure:
    conn = loadgen.connect(port)
    try:
        loadgen.timed_posts(conn, platform_bench.invoke_path(name), 20, seconds)
        samples = loadgen.timed_posts(conn, platform_bench.invoke_path(name), count, seconds)
    finally:
        conn.close()
    return latency_figure(figure, label, samples)


def _deploy_all(client: Any, names: Sequence[str], *, code: bytes, advance: Advance) -> None:
    for name in names:
        client.create_function(FunctionName=name, Runtime=platform_bench.RUNTIME, Role=DEFAULT_ROLE,
                               Handler="app.handler", Code={"ZipFile": code}, MemorySize=128, Timeout=30)  # fmt: skip
        client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=platform_bench.WAITER_CONFIG)
        advance(1)


def _warm_all(port: int, names: Sequence[str], advance: Advance) -> None:
    conn = loadgen.connect(port)
    try:
        for name in names:
            status, _, data = loadgen.post(conn, platform_bench.invoke_path(name))
            if status != 200:
                raise loadgen.BenchHTTPError(f"warming {name} answered {status}: {data[:200]!r}")
            advance(1)
    finally:
        conn.close()
