"""How much of each measurement a run takes: the full run, and `--quick` (the smoke test's run)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """Sample counts and windows; every loop also stops after `max_seconds`."""

    echo_requests: int
    py_isolated_runs: int
    py_plain_runs: int
    warm_requests: int
    report_requests: int
    boto3_requests: int
    health_requests: int
    load_seconds: float
    cold_starts: int  # G3: python3.11 cold starts
    custom_cold_starts: int  # G4: provided.al2023 cold starts
    cold_breakdowns: int
    bwrap_runs: int
    bwrap_rate_runs: int  # G6's baseline: bwrap runs at 2 parallel (PERFORMANCE 2d ran 600)
    sandbox_parts: int
    fork_runs: int  # L_fork
    pss_children: int  # L_pss: children alive at once (PERFORMANCE 2b measured 8)
    small_events: int  # G10: 1 KB round trips (echo and platform)
    large_events: int  # G10: 1 MB round trips
    wrk_seconds: int  # G7: each wrk run (wrk takes whole seconds)
    peer_invokes: int  # python-lambda-local invokes
    burst: int  # G6: concurrent invokes of a function with no environment
    density_functions: int  # 0: the density figure is skipped
    density_warm: int
    warmup: int
    async_seconds: int  # #5: each Event-invoke load window (wrk takes whole seconds)
    async_kill_events: int  # #5: events of the SIGKILL scenario
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
    cold_starts=30,
    custom_cold_starts=30,
    cold_breakdowns=20,
    bwrap_runs=50,
    bwrap_rate_runs=600,
    sandbox_parts=10,
    fork_runs=200,
    pss_children=8,
    small_events=500,
    large_events=100,
    wrk_seconds=3,
    peer_invokes=20,
    burst=64,
    density_functions=1000,
    density_warm=300,
    warmup=100,
    async_seconds=5,
    async_kill_events=2000,
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
    custom_cold_starts=5,
    cold_breakdowns=3,
    bwrap_runs=10,
    bwrap_rate_runs=100,
    sandbox_parts=3,
    fork_runs=30,
    pss_children=8,
    small_events=100,
    large_events=15,
    wrk_seconds=1,
    peer_invokes=3,
    burst=16,
    density_functions=0,
    density_warm=0,
    warmup=20,
    async_seconds=1,
    async_kill_events=200,
    max_seconds=10.0,
)
