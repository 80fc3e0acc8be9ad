"""The benchmark harness works: `bench/run.py --quick` exits 0 and writes every figure.

This checks the harness, not the performance goals: a missed goal never fails it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "bench" / "run.py"
TIMEOUT_S = 110.0
FIGURES = (
    "l_http",
    "l_py",
    "py_plain",
    "echo_throughput_1",
    "echo_throughput_8",
    "api_floor",
    "warm_invoke",
    "warm_report_duration",
    "warm_invoke_boto3",
    "throughput_1",
    "throughput_8",
    "cold_start",
    "init_duration",
)
NUMBERS = ("value", "p50", "p99", "mean", "min", "max")


@pytest.mark.timeout(TIMEOUT_S + 10)
def test_quick_run_writes_every_figure(tmp_path: Path) -> None:
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
    figures = data["figures"]
    for name in FIGURES:
        fig = figures[name]
        assert fig["n"] > 0, (name, fig)
        for key in NUMBERS:
            assert isinstance(fig[key], (int, float)) and fig[key] > 0, (name, key, fig)
        assert fig["min"] <= fig["p50"] <= fig["p99"] <= fig["max"], (name, fig)
    assert figures["throughput_8"]["environments"] >= 1
    ratios = {r["name"]: r for r in data["ratios"]}
    assert "warm_invoke.p50/l_http.p50" in ratios and "cold_start.p50/l_py.p50" in ratios
    assert all(r["value"] > 0 for r in ratios.values())
    assert "Lamina benchmark" in result.stdout
