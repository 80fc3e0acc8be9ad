"""`lamina tune` against a real server: a CPU-bound function runs faster with more memory (sandbox
mode caps CPU at MemorySize/1,769 of a CPU, as Lambda does), and the function's configuration,
versions and aliases are as before afterwards, after success, a failing size, or Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import lamina
from lamina.testing import RunningServer, deploy, isolation_for_tests

CPU_BOUND = """\
def handler(event, context):
    total = 0
    for i in range(event["n"]):
        total += i * i
    if int(context.memory_limit_in_mb) < event.get("fail_below_mb", 0):  # a string, as on Lambda
        raise MemoryError("too small for this test")
    return {"memory": int(context.memory_limit_in_mb), "total": total}
"""
# About 40-100 ms of one full CPU: ~0.5-1.4 s at 128 MB (0.07 of a CPU), ~40-100 ms at 1,769 MB.
# More than one CFS period's quota at 128 MB (7 ms of each 100 ms): shorter work fits in the
# quota of a single period and is never throttled, so both sizes would look alike.
WORK = 1_500_000
CLI_TIMEOUT = 120.0
_ENV = {**os.environ, "PYTHONPATH": str(Path(lamina.__file__).resolve().parents[1])}
_ENV.pop("LAMINA_ENDPOINT", None)
# What a tuning run may change on $LATEST: the update bookkeeping, not the configuration.
_VOLATILE = {"LastModified", "RevisionId", "LastUpdateStatus", "LastUpdateStatusReason", "LastUpdateStatusReasonCode"}


def tune_argv(endpoint: str, name: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "lamina", "--endpoint", endpoint, "tune", name, *args]


def snapshot(client: Any, name: str) -> tuple[dict[str, Any], list[str], list[str]]:
    config = client.get_function_configuration(FunctionName=name)
    config = {k: v for k, v in config.items() if k not in _VOLATILE and k != "ResponseMetadata"}
    versions = [v["Version"] for v in client.list_versions_by_function(FunctionName=name)["Versions"]]
    aliases = [a["Name"] for a in client.list_aliases(FunctionName=name)["Aliases"]]
    return config, versions, aliases


@pytest.fixture
def cpu_function(lambda_client: Any, fname: str) -> str:
    deploy(lambda_client, fname, {"app.py": CPU_BOUND}, MemorySize=512, Timeout=30)
    # A published version and an alias of the user's own, which the run must leave alone.
    lambda_client.publish_version(FunctionName=fname)
    lambda_client.create_alias(FunctionName=fname, Name="live", FunctionVersion="1")
    return fname


def test_tune_reports_per_size_and_leaves_the_function_as_it_was(
    server: RunningServer, lambda_client: Any, cpu_function: str, tmp_path: Path
) -> None:
    before = snapshot(lambda_client, cpu_function)
    plot = tmp_path / "tune.png"
    result = subprocess.run(
        tune_argv(server.endpoint, cpu_function, "--memory", "128,1769", "--invocations", "5",
                  "--payload", json.dumps({"n": WORK}), "--plot", str(plot), "--json"),  # fmt: skip
        capture_output=True, text=True, timeout=CLI_TIMEOUT, env=_ENV,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    small, large = report["sizes"]
    assert (small["memory_mb"], large["memory_mb"]) == (128, 1769)
    assert small["warm_count"] == large["warm_count"] == 4
    for size in (small, large):
        assert 0 < size["p50_ms"] <= size["p90_ms"] <= size["max_ms"]
        assert size["cold_ms"] > 0 and size["gb_seconds"] > 0 and size["cost_per_million_usd"] > 0.2  # + requests
    assert report["fastest"]["memory_mb"] in (128, 1769) and report["cheapest"]["memory_mb"] in (128, 1769)
    if isolation_for_tests() == "sandbox":
        # CPU scales with memory: 13.8 times the CPU at 1,769 MB; "twice as fast" leaves room for
        # a busy host.
        assert small["p50_ms"] > 2 * large["p50_ms"], (small, large)
        assert report["fastest"]["memory_mb"] == 1769
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert snapshot(lambda_client, cpu_function) == before


def test_table_output_names_the_cheapest_and_the_fastest(server: RunningServer, cpu_function: str, tmp_path: Path) -> None:
    result = subprocess.run(
        tune_argv(server.endpoint, cpu_function, "--memory", "512,1024", "--invocations", "2",
                  "--payload", json.dumps({"n": 1000}), "--no-plot"),  # fmt: skip
        capture_output=True, text=True, timeout=CLI_TIMEOUT, env=_ENV, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "USD/1M" in result.stdout and "512 MB" in result.stdout and "1024 MB" in result.stdout
    assert "cheapest: " in result.stdout and "fastest: " in result.stdout
    assert list(tmp_path.iterdir()) == []  # --no-plot


def test_a_failing_size_stops_the_run_and_restores_the_function(
    server: RunningServer, lambda_client: Any, cpu_function: str
) -> None:
    before = snapshot(lambda_client, cpu_function)
    result = subprocess.run(
        tune_argv(server.endpoint, cpu_function, "--memory", "1024,256", "--invocations", "2", "--no-plot",
                  "--payload", json.dumps({"n": 10, "fail_below_mb": 512})),  # fmt: skip
        capture_output=True, text=True, timeout=CLI_TIMEOUT, env=_ENV,
    )  # fmt: skip
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert "failed at 256 MB (Unhandled)" in last and "too small for this test" in last, result.stderr
    assert snapshot(lambda_client, cpu_function) == before


def test_ctrl_c_restores_the_function(server: RunningServer, lambda_client: Any, cpu_function: str) -> None:
    before = snapshot(lambda_client, cpu_function)
    proc = subprocess.Popen(
        tune_argv(server.endpoint, cpu_function, "--memory", "256,512", "--invocations", "500", "--no-plot",
                  "--payload", json.dumps({"n": 10})),  # fmt: skip
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_ENV,
    )  # fmt: skip
    try:
        # The run's alias is the only outside sign that it is measuring: poll for it.
        deadline = time.monotonic() + 60
        while not any(a.startswith("lamina-tune-") for a in snapshot(lambda_client, cpu_function)[2]):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never created its alias"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=CLI_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert "interrupted; the function is restored" in stderr
    assert snapshot(lambda_client, cpu_function) == before


def test_unknown_function_and_bad_sizes_are_one_line_errors(server: RunningServer, fname: str) -> None:
    for args, needle in (
        ((fname,), "ResourceNotFoundException"),
        ((fname, "--memory", "64,128"), "64 MB is outside Lambda's 128-10240 MB"),
        ((fname, "--invocations", "1"), "at least 2"),
    ):
        result = subprocess.run(tune_argv(server.endpoint, *args), capture_output=True, text=True, timeout=CLI_TIMEOUT, env=_ENV)
        assert result.returncode == 1, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], result.stderr
