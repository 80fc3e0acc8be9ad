"""The benchmark harness works: `bench/run.py --quick` exits 0 and writes every figure, for both
isolation modes, and the sandbox / process ratios.

This checks the harness, not the performance goals: a missed goal never fails it.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "bench" / "run.py"
TIMEOUT_S = 110.0
MODES = ("sandbox", "process")
BASELINE_FIGURES = (
    "l_http",
    "l_py",
    "py_plain",
    "echo_throughput_1",
    "echo_throughput_8",
    "l_bwrap",  # sandbox mode runs, so bwrap is there
    "l_py_bwrap",
    "rt_start",  # the runtime client started alone (bootstrap.py, no Runtime API)
)
MODE_FIGURES = (
    "api_floor",
    "warm_invoke",
    "warm_report_duration",
    "warm_invoke_boto3",
    "throughput_1",
    "throughput_8",
    "cold_start",
    "init_duration",
)
# The cold-start breakdown: phases are differences of clocks, so only their count and finiteness
# are checked, and that the means add up to the total.
BREAKDOWN_PHASES = ("cold_before_init", "cold_launch", "cold_module_ready", "cold_invoke")
NUMBERS = ("value", "p50", "p99", "mean", "min", "max")
MODE_RATIOS = (
    "warm_invoke.p50 sandbox/process",
    "warm_invoke.p99 sandbox/process",
    "throughput_1.value sandbox/process",
    "throughput_8.value sandbox/process",
    "cold_start.p50 sandbox/process",
    "init_duration.p50 sandbox/process",
)


def _check_figure(name: str, fig: dict[str, Any]) -> None:
    assert fig["n"] > 0, (name, fig)
    for key in NUMBERS:
        assert isinstance(fig[key], (int, float)) and fig[key] > 0, (name, key, fig)
    assert fig["min"] <= fig["p50"] <= fig["p99"] <= fig["max"], (name, fig)


@pytest.mark.timeout(TIMEOUT_S + 10)
def test_quick_run_writes_every_figure_for_both_modes(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        cwd=ROOT,
    )
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    data = json.loads(out.read_text())
    assert data["meta"]["modes"] == list(MODES)
    assert data["meta"]["memory_size"] == 128
    for name in BASELINE_FIGURES:
        _check_figure(name, data["figures"][name])

    for mode in MODES:
        section = data["modes"][mode]
        assert section["isolation"] == mode
        assert section["interpreter"], section
        figures = section["figures"]
        for name in MODE_FIGURES:
            _check_figure(f"{mode}.{name}", figures[name])
        assert figures["throughput_8"]["environments"] >= 1
        total = figures["cold_total"]
        assert total["n"] > 0 and total["p50"] > 0, total
        for name in BREAKDOWN_PHASES:
            fig = figures[name]
            assert fig["n"] == total["n"] and all(math.isfinite(fig[k]) for k in NUMBERS), (mode, name, fig)
        assert math.isclose(sum(figures[name]["mean"] for name in BREAKDOWN_PHASES), total["mean"], rel_tol=1e-6)
        ratios = {r["name"]: r for r in section["ratios"]}
        assert "warm_invoke.p50/l_http.p50" in ratios and "cold_start.p50/l_py.p50" in ratios, sorted(ratios)
        assert all(r["value"] > 0 for r in ratios.values())
    # The sandbox's CPU cap is visible from outside (cgroup cpu.stat); process mode has none.
    assert "cpu_throttling" in data["modes"]["sandbox"]["figures"]["throughput_1"]
    assert "cpu_throttling" not in data["modes"]["process"]["figures"]["throughput_1"]

    mode_ratios = {r["name"]: r for r in data["mode_ratios"]}
    for name in MODE_RATIOS:
        r = mode_ratios[name]
        assert r["value"] > 0 and math.isclose(r["value"], r["sandbox"] / r["process"]), r
    assert "cold_start.p50 sandbox-process/l_bwrap.p50" in mode_ratios
    assert "Lamina benchmark" in result.stdout and "sandbox / process" in result.stdout
