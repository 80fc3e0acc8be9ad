"""The platform's figures: a no-op Python function on a real `lamina up`, driven over raw HTTP.

The function (`def handler(e, c): return e`, python3.11) is deployed with boto3. Invokes are
unsigned POSTs to the Lambda Invoke path over a persistent http.client connection, so the
figures are the platform's, not boto3's; one boto3 figure is kept for reference.

Cold starts: update_function_configuration with a new environment variable retires every
environment of the function; after the function_updated_v2 waiter, the next invoke finds no idle
environment and must start one. Its REPORT line (X-Amz-Log-Type: Tail) must carry an Init
Duration, which proves the invoke was cold.
"""

from __future__ import annotations

import base64
import http.client
import re
import time
from typing import Any

import loadgen
import procs
from stats import Figure, bounded, latency_figure, rate_figure

from lamina.testing import deploy

HANDLER_SOURCE = "def handler(e, c):\n    return e\n"
RUNTIME = "python3.11"
TAIL_HEADERS = {**loadgen.JSON_HEADERS, "X-Amz-Log-Type": "Tail"}
WAITER_CONFIG = {"Delay": 0.05, "MaxAttempts": 400}
_DURATION = re.compile(r"REPORT RequestId: \S+\tDuration: ([\d.]+) ms")
_INIT = re.compile(r"Init Duration: ([\d.]+) ms")


def invoke_path(name: str) -> str:
    return f"/2015-03-31/functions/{name}/invocations"


def deploy_noop(client: Any, name: str) -> None:
    """create_function, then wait for the function_active_v2 waiter."""
    deploy(client, name, {"app.py": HANDLER_SOURCE}, runtime=RUNTIME, handler="app.handler", MemorySize=128, Timeout=30)


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


def warm_invoke(port: int, name: str, *, count: int, warmup: int, seconds: float, server_pid: int) -> Figure:
    """Sequential warm invokes on one connection, and the CPU each party spent per invoke."""
    conn = loadgen.connect(port)
    try:
        loadgen.timed_posts(conn, invoke_path(name), warmup, seconds)
        before = procs.CpuSnapshot.take(server_pid)
        samples = loadgen.timed_posts(conn, invoke_path(name), count, seconds)
        cpu = before.per_request_ms(procs.CpuSnapshot.take(server_pid), len(samples))
    finally:
        conn.close()
    return latency_figure(
        "warm_invoke", "warm invoke, 1 client (raw HTTP)", samples, event_bytes=len(loadgen.BODY), cpu_ms_per_request=cpu
    )


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
    res = loadgen.closed_loop(port, invoke_path(name), clients=clients, seconds=seconds, warmup=20)
    environments = len(procs.runtime_pids(server_pid))
    if res.errors:
        raise loadgen.BenchHTTPError(f"{res.errors} invokes failed under {clients}-client load")
    return rate_figure(
        f"throughput_{clients}",
        f"warm throughput, {clients} client{'s' if clients > 1 else ''}",
        res.completed,
        res.seconds,
        res.latencies_ms,
        clients=clients,
        environments=environments,
    )


def cold_starts(client: Any, port: int, name: str, *, count: int, seconds: float) -> tuple[Figure, Figure]:
    """(invoke latency, REPORT Init Duration) of invokes that each find no idle environment."""
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
    return (
        latency_figure("cold_start", "cold start: invoke with no idle env", latencies),
        latency_figure("init_duration", "cold start: REPORT Init Duration", inits),
    )


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
