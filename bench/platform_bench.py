"""The platform's figures: a no-op Python function on a real `lamina up`, driven over raw HTTP.

The function (`def handler(e, c): return e`, python3.11) is deployed with boto3. Invokes are
unsigned POSTs to the Lambda Invoke path over a persistent http.client connection, so the
figures are the platform's, not boto3's; one boto3 figure is kept for reference.

Cold starts: update_function_configuration with a new environment variable retires every
environment of the function; after the function_updated_v2 waiter, the next invoke finds no idle
environment and must start one. Its REPORT line (X-Amz-Log-Type: Tail) must carry an Init
Duration, which proves the invoke was cold.

Where a cold start goes is read from outside Lamina, with a probe function instead of the no-op:
its module records CLOCK_MONOTONIC (time.perf_counter, one clock for the host and every sandbox:
bwrap makes no time namespace) and the CPU its process has used when its code first runs, and
its handler returns both. With the client's send and receive instants (t0, t1) and the REPORT
line's Init Duration (I) and Duration (D), one cold invoke splits into:

    before init    t1 - D - I - t0           the request, routing, the environment's creation
                                             (sandbox: uid, cgroup, /tmp image), the reply
    launch         t_import - (t1 - D - I)   sandbox start, interpreter start, the runtime
                                             client's imports, until the function's module runs
    module→ready   I - launch                importing the handler module, the first /next
    invoke         D                         the REPORT Duration of that first invoke

t1 - D - I, the moment init began, is an estimate: the gap between init's end and the invoke's
start and the reply after Duration both fall into "before init", and are well under 1 ms warm.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import time
from typing import Any

import loadgen
import procs
import wrk
from stats import Figure, bounded, latency_figure, rate_figure, value_figure

from lamina.testing import deploy

HANDLER_SOURCE = "def handler(e, c):\n    return e\n"
PROBE_SOURCE = """import time
T_IMPORT = time.perf_counter()
CPU_IMPORT = time.process_time()


def handler(e, c):
    return {"import": T_IMPORT, "cpu_import": CPU_IMPORT, "handler": time.perf_counter()}
"""
RUNTIME = "python3.11"
DEFAULT_MEMORY_MB = 128
TAIL_HEADERS = {**loadgen.JSON_HEADERS, "X-Amz-Log-Type": "Tail"}
WAITER_CONFIG = {"Delay": 0.05, "MaxAttempts": 400}
_DURATION = re.compile(r"REPORT RequestId: \S+\tDuration: ([\d.]+) ms")
_INIT = re.compile(r"Init Duration: ([\d.]+) ms")


def invoke_path(name: str) -> str:
    return f"/2015-03-31/functions/{name}/invocations"


def deploy_noop(client: Any, name: str, memory_size: int = DEFAULT_MEMORY_MB) -> None:
    """create_function, then wait for the function_active_v2 waiter."""
    deploy(client, name, {"app.py": HANDLER_SOURCE}, runtime=RUNTIME, handler="app.handler", MemorySize=memory_size, Timeout=30)


def deploy_wrk_target(client: Any, name: str, memory_size: int, reserved: int = 2) -> None:
    """The no-op again, capped at `reserved` environments (PutFunctionConcurrency): G7's and G10's."""
    deploy_noop(client, name, memory_size)
    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=reserved)


def deploy_probe(client: Any, name: str, memory_size: int = DEFAULT_MEMORY_MB) -> None:
    """The cold-start probe: returns when its module ran and its handler was called."""
    deploy(client, name, {"app.py": PROBE_SOURCE}, runtime=RUNTIME, handler="app.handler", MemorySize=memory_size, Timeout=30)


def runtime_interpreter(server_pid: int) -> str | None:
    """The binary the server's runtimes run (after a warm-up, at least one exists)."""
    for pid in procs.runtime_pids(server_pid):
        exe = procs.executable(pid)
        if exe is not None:
            return exe
    return None


def api_floor(port: int, *, count: int, warmup: int, seconds: float, server_pid: int) -> Figure:
    """GET /lamina/v1/health: one exchange through the same HTTP stack, without an invoke."""
    conn = loadgen.connect(port)
    try:
        loadgen.timed_gets(conn, "/lamina/v1/health", warmup, seconds)
        before = procs.CpuSnapshot.take(server_pid)
        samples = loadgen.timed_gets(conn, "/lamina/v1/health", count, seconds)
        cpu = before.per_request_ms(procs.CpuSnapshot.take(server_pid), len(samples))
    finally:
        conn.close()
    return latency_figure("api_floor", "API floor: GET /lamina/v1/health", samples, cpu_ms_per_request=cpu)


def warm_invoke(port: int, name: str, *, count: int, warmup: int, seconds: float, server_pid: int,
                figure: str = "warm_invoke", label: str = "warm invoke, 1 client (raw HTTP)") -> Figure:  # fmt: skip
    """Sequential warm invokes on one connection, and the CPU each party spent per invoke."""
    conn = loadgen.connect(port)
    try:
        loadgen.timed_posts(conn, invoke_path(name), warmup, seconds)
        before = procs.CpuSnapshot.take(server_pid)
        capped = procs.throttling(server_pid)
        t0 = time.monotonic()
        samples = loadgen.timed_posts(conn, invoke_path(name), count, seconds)
        elapsed = time.monotonic() - t0
        throttled = procs.throttled_between(capped, procs.throttling(server_pid))
        cpu = before.per_request_ms(procs.CpuSnapshot.take(server_pid), len(samples))
    finally:
        conn.close()
    extra: dict[str, Any] = {"event_bytes": len(loadgen.BODY), "cpu_ms_per_request": cpu}
    if throttled is not None:
        extra["cpu_throttling"] = {**throttled.as_dict(), "window_ms": elapsed * 1000}
    return latency_figure(figure, label, samples, **extra)


def warm_report_duration(port: int, name: str, *, count: int, seconds: float) -> Figure:
    """The REPORT line's Duration of warm invokes: the part of a warm invoke spent in the runtime."""
    conn = loadgen.connect(port)
    samples: list[float] = []
    try:
        for _ in bounded(count, seconds):
            log = _tail_invoke(conn, name)[1]
            samples.append(_report_value(_DURATION, log, "Duration"))
    finally:
        conn.close()
    return latency_figure("warm_report_duration", "warm REPORT Duration (runtime side)", samples)


def warm_invoke_boto3(client: Any, name: str, *, count: int, warmup: int, seconds: float) -> Figure:
    payload = loadgen.BODY
    for _ in bounded(warmup, seconds):
        client.invoke(FunctionName=name, Payload=payload)["Payload"].read()
    samples: list[float] = []
    for _ in bounded(count, seconds):
        t0 = time.perf_counter()
        resp = client.invoke(FunctionName=name, Payload=payload)
        resp["Payload"].read()
        samples.append((time.perf_counter() - t0) * 1000)
        if resp["StatusCode"] != 200 or "FunctionError" in resp:
            raise loadgen.BenchHTTPError(f"boto3 invoke failed: {resp.get('FunctionError')}")
    return latency_figure("warm_invoke_boto3", "warm invoke, 1 client (boto3)", samples)


def throughput(port: int, name: str, *, clients: int, seconds: float, server_pid: int) -> Figure:
    """Closed-loop load; in sandbox mode also how often the CPU cap throttled the runtimes meanwhile."""
    counters: dict[str, dict[int, procs.Throttling]] = {}
    res = loadgen.closed_loop(
        port,
        invoke_path(name),
        clients=clients,
        seconds=seconds,
        warmup=20,
        on_start=lambda: counters.__setitem__("before", procs.throttling(server_pid)),
        on_end=lambda: counters.__setitem__("after", procs.throttling(server_pid)),
    )
    environments = len(procs.runtime_pids(server_pid))
    if res.errors:
        raise loadgen.BenchHTTPError(f"{res.errors} invokes failed under {clients}-client load")
    extra: dict[str, Any] = {"clients": clients, "environments": environments}
    throttled = procs.throttled_between(counters.get("before", {}), counters.get("after", {}))
    if throttled is not None:
        extra["cpu_throttling"] = {**throttled.as_dict(), "window_ms": seconds * 1000}
    return rate_figure(
        f"throughput_{clients}",
        f"warm throughput, {clients} client{'s' if clients > 1 else ''}",
        res.completed,
        res.seconds,
        res.latencies_ms,
        **extra,
    )


def cold_starts(
    client: Any, port: int, name: str, *, count: int, seconds: float, suffix: str = "", what: str = ""
) -> tuple[Figure, Figure]:
    """(invoke latency, REPORT Init Duration) of invokes that each find no idle environment;
    the figures are `cold_start<suffix>` and `init_duration<suffix>`."""
    conn = loadgen.connect(port)
    latencies: list[float] = []
    inits: list[float] = []
    try:
        for i in bounded(count, seconds):
            client.update_function_configuration(FunctionName=name, Environment={"Variables": {"BENCH_COLD": str(i)}})
            client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=WAITER_CONFIG)
            t0 = time.perf_counter()
            _, log = _tail_invoke(conn, name)
            latencies.append((time.perf_counter() - t0) * 1000)
            inits.append(_report_value(_INIT, log, "Init Duration"))
    finally:
        conn.close()
    label = f" ({what})" if what else ""
    return (
        latency_figure(f"cold_start{suffix}", f"cold start{label}: invoke with no idle env", latencies),
        latency_figure(f"init_duration{suffix}", f"cold start{label}: REPORT Init Duration", inits),
    )


def payload_invokes(port: int, name: str, *, small: int, large: int, warmup: int, seconds: float) -> list[Figure]:
    """Warm invokes with a 1 KB and a 1 MB event (the no-op returns it: 1 MB each way), and G10's
    figure: the 1 MB p50 less the 1 KB p50, what the platform's path adds per MB."""
    conn = loadgen.connect(port)
    path = invoke_path(name)
    try:
        loadgen.timed_posts(conn, path, warmup, seconds, body=loadgen.EVENT_1MB)
        loadgen.timed_posts(conn, path, warmup, seconds, body=loadgen.EVENT_1KB)
        kb = loadgen.timed_posts(conn, path, small, seconds, body=loadgen.EVENT_1KB)
        mb = loadgen.timed_posts(conn, path, large, seconds, body=loadgen.EVENT_1MB)
    finally:
        conn.close()
    fig_kb = latency_figure("invoke_1kb", "warm invoke, 1 KB event", kb, event_bytes=len(loadgen.EVENT_1KB))
    fig_mb = latency_figure("invoke_1mb", "warm invoke, 1 MB event", mb, event_bytes=len(loadgen.EVENT_1MB))
    extra = value_figure("event_1mb_extra", "1 MB event: warm p50 − 1 KB p50", "ms", fig_mb.p50 - fig_kb.p50,
                         min(fig_kb.n, fig_mb.n), invoke_1kb_p50=fig_kb.p50, invoke_1mb_p50=fig_mb.p50)  # fmt: skip
    return [fig_kb, fig_mb, extra]


def environment_stats(port: int) -> dict[str, Any]:
    """GET /lamina/v1/environments: counts (environments, idle, busy, coldStarts, ...) and details."""
    conn = loadgen.connect(port)
    try:
        status, data = loadgen.get(conn, "/lamina/v1/environments")
    finally:
        conn.close()
    if status != 200:
        raise loadgen.BenchHTTPError(f"GET /lamina/v1/environments answered {status}: {data[:200]!r}")
    doc: dict[str, Any] = json.loads(data)
    return doc


def environments_of(port: int, name: str) -> int:
    return sum(1 for d in environment_stats(port)["details"] if d["function"] == name)


WRK_CONNECTIONS = (2, 8)


def wrk_throughput(port: int, name: str, *, seconds: int) -> Figure:
    """G7: wrk POSTing the small event to the Invoke path of `name`, whose reserved concurrency
    holds it to 2 environments: -c2 and -c8 after a warm-up run, the better 2xx rate kept. With
    -c8, 6 connections beyond the 2 environments are throttled (429): counted as non-2xx."""
    url = f"http://127.0.0.1:{port}{invoke_path(name)}"
    wrk.run(url, connections=2, seconds=1)  # both environments started and warm, untimed
    runs = [wrk.run(url, connections=c, seconds=seconds) for c in WRK_CONNECTIONS]
    return wrk.best_figure(
        "wrk_throughput", "warm throughput, wrk, 2 environments", runs, environments=environments_of(port, name)
    )


BREAKDOWN_PHASES: tuple[tuple[str, str], ...] = (
    ("cold_total", "probe cold start: invoke → response (client)"),
    ("cold_before_init", "before init: request, env creation (uid, cgroup, /tmp), reply"),
    ("cold_launch", "launch → function module runs (sandbox, interpreter, runtime client)"),
    ("cold_module_ready", "function module → runtime ready (handler import, first /next)"),
    ("cold_invoke", "first invoke (REPORT Duration)"),
    ("cold_launch_cpu", "runtime process CPU before the function module ran"),
)


def cold_breakdown(client: Any, port: int, name: str, *, count: int, seconds: float) -> list[Figure]:
    """Cold starts of the probe function, each split into the phases of BREAKDOWN_PHASES."""
    conn = loadgen.connect(port)
    phases: dict[str, list[float]] = {key: [] for key, _ in BREAKDOWN_PHASES}
    handler_lag: list[float] = []
    try:
        for i in bounded(count, seconds):
            client.update_function_configuration(FunctionName=name, Environment={"Variables": {"BENCH_COLD": str(i)}})
            client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=WAITER_CONFIG)
            t0 = time.perf_counter()
            data, log = _tail_invoke(conn, name)
            t1 = time.perf_counter()
            probe = json.loads(data)
            init = _report_value(_INIT, log, "Init Duration")
            duration = _report_value(_DURATION, log, "Duration")
            total = (t1 - t0) * 1000
            init_began = t1 * 1000 - duration - init
            launch = probe["import"] * 1000 - init_began
            phases["cold_total"].append(total)
            phases["cold_before_init"].append(init_began - t0 * 1000)
            phases["cold_launch"].append(launch)
            phases["cold_module_ready"].append(init - launch)
            phases["cold_invoke"].append(duration)
            phases["cold_launch_cpu"].append(probe["cpu_import"] * 1000)
            # The handler runs inside Duration: a check that both clocks are one.
            handler_lag.append((t1 - probe["handler"]) * 1000)
    finally:
        conn.close()
    figures = [latency_figure(key, label, phases[key]) for key, label in BREAKDOWN_PHASES]
    lag = latency_figure("cold_handler_to_client", "handler called → response at the client", handler_lag)
    return [*figures, lag]


def _tail_invoke(conn: http.client.HTTPConnection, name: str) -> tuple[bytes, str]:
    """One invoke asking for the log tail; returns (payload, decoded log tail)."""
    status, headers, data = loadgen.post(conn, invoke_path(name), loadgen.BODY, TAIL_HEADERS)
    if status != 200 or headers.get("X-Amz-Function-Error"):
        raise loadgen.BenchHTTPError(f"invoke answered {status} {headers.get('X-Amz-Function-Error')}: {data[:200]!r}")
    tail = headers.get("X-Amz-Log-Result")
    if not tail:
        raise loadgen.BenchHTTPError("invoke with X-Amz-Log-Type: Tail returned no X-Amz-Log-Result")
    return data, base64.b64decode(tail).decode(errors="replace")


def _report_value(pattern: re.Pattern[str], log: str, what: str) -> float:
    match = pattern.search(log)
    if match is None:
        raise loadgen.BenchHTTPError(f"no {what} in the REPORT line of the log tail:\n{log}")
    return float(match.group(1))
