"""The benchmark harness works: one `bench/run.py --quick` run (shared by the tests below) exits 0,
prints its tables, writes every figure of both isolation modes and every target to JSON, and
draws the PNG.

This checks the harness, not the performance targets: a missed target never fails it. Tools
the bench extra brings (`scripts/setup.sh bench`: wrk, python-lambda-local, matplotlib) may be
absent under `make test`; their figures must then be reported as not measured, with the reason.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "bench" / "run.py"
TIMEOUT_S = 150.0  # a quick run takes well under a minute on 2 cores; the margin is for a busy machine
MODES = ("sandbox", "process")
HAS_WRK = shutil.which("wrk") is not None
HAS_PLOT = importlib.util.find_spec("matplotlib") is not None
HAS_PEER = (Path(sys.executable).parent / "python-lambda-local").exists() or shutil.which("python-lambda-local")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

BASELINE_FIGURES = (
    "l_http",
    "l_py",
    "py_plain",
    "echo_throughput_1",
    "echo_throughput_8",
    "l_bwrap",  # sandbox mode runs, so bwrap is there
    "l_py_bwrap",
    "rt_start",  # the runtime client started alone (bootstrap.py, no Runtime API)
    "l_fork",
    "l_pss",
    "echo_1kb",
    "echo_1mb",
    "bwrap_rate_2",
)
DERIVED_BASELINES = ("l_1mb",)  # differences of two figures: one number, checked for finiteness
WRK_BASELINES = ("l_relay_wrk",)
PEER_BASELINES = ("peer_python_lambda_local",)
MODE_FIGURES = (
    "api_floor",
    "warm_invoke",
    "warm_report_duration",
    "warm_invoke_boto3",
    "throughput_1",
    "throughput_8",
    "cold_start",
    "init_duration",
    "cold_start_custom",
    "init_duration_custom",
    "invoke_1kb",
    "invoke_1mb",
    "env_creation_rate",
    "idle_env_pss",
)
DERIVED_MODE_FIGURES = ("event_1mb_extra",)
WRK_MODE_FIGURES = ("wrk_throughput",)
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
TARGET_GOALS = ("G1", "G3", "G4", "G5", "G6", "G7", "G9", "G10", "D")


@dataclass(frozen=True)
class QuickRun:
    result: subprocess.CompletedProcess[str]
    data: dict[str, Any]
    plot: Path | None


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> QuickRun:
    out = tmp_path_factory.mktemp("bench")
    argv = [sys.executable, str(RUN), "--quick", "--json", str(out / "bench.json")]
    if HAS_PLOT:
        argv += ["--plot", str(out / "bench.png")]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=ROOT)
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return QuickRun(result=result, data=json.loads((out / "bench.json").read_text()), plot=out / "bench.png" if HAS_PLOT else None)


def _check_figure(name: str, fig: dict[str, Any]) -> None:
    assert fig["n"] > 0, (name, fig)
    for key in NUMBERS:
        assert isinstance(fig[key], (int, float)) and fig[key] > 0, (name, key, fig)
    assert fig["min"] <= fig["p50"] <= fig["p99"] <= fig["max"], (name, fig)


def _check_optional(figures: dict[str, Any], skipped: dict[str, str], names: tuple[str, ...], present: bool, tool: str) -> None:
    for name in names:
        if present:
            _check_figure(name, figures[name])
        else:
            assert name not in figures and tool in skipped[name], (name, skipped)


@pytest.mark.timeout(TIMEOUT_S + 30)
def test_every_baseline_is_in_the_json(quick_run: QuickRun) -> None:
    data = quick_run.data
    assert data["meta"]["modes"] == list(MODES)
    assert data["meta"]["memory_size"] == 128
    assert data["failures"] == {}
    figures, skipped = data["figures"], data["skipped"]
    for name in BASELINE_FIGURES:
        _check_figure(name, figures[name])
    for name in DERIVED_BASELINES:
        assert figures[name]["n"] > 0 and math.isfinite(figures[name]["value"]), figures[name]
    _check_optional(figures, skipped, WRK_BASELINES, HAS_WRK, "wrk")
    _check_optional(figures, skipped, PEER_BASELINES, bool(HAS_PEER), "python-lambda-local")
    # The plot's distributions come from the raw samples, kept in the JSON too.
    assert len(data["samples_ms"]["baselines"]["l_http"]) == figures["l_http"]["n"]


@pytest.mark.timeout(TIMEOUT_S + 30)
def test_every_platform_figure_is_in_the_json_for_both_modes(quick_run: QuickRun) -> None:
    data = quick_run.data
    for mode in MODES:
        section = data["modes"][mode]
        assert section["isolation"] == mode
        assert section["interpreter"], section
        figures = section["figures"]
        for name in MODE_FIGURES:
            _check_figure(f"{mode}.{name}", figures[name])
        for name in DERIVED_MODE_FIGURES:
            assert math.isfinite(figures[name]["value"]), (mode, figures[name])
        _check_optional(figures, section["skipped"], WRK_MODE_FIGURES, HAS_WRK, "wrk")
        assert figures["throughput_8"]["environments"] >= 1
        assert figures["env_creation_rate"]["created"] >= 1
        assert figures["idle_env_pss"]["environments"] >= 1
        assert "density_warm_after" in section["skipped"]  # --quick leaves the density step out
        total = figures["cold_total"]
        assert total["n"] > 0 and total["p50"] > 0, total
        for name in BREAKDOWN_PHASES:
            fig = figures[name]
            assert fig["n"] == total["n"] and all(math.isfinite(fig[k]) for k in NUMBERS), (mode, name, fig)
        assert math.isclose(sum(figures[name]["mean"] for name in BREAKDOWN_PHASES), total["mean"], rel_tol=1e-6)
        ratios = {r["name"]: r for r in section["ratios"]}
        assert "warm_invoke.p50/l_http.p50" in ratios and "cold_start.p50/l_fork.p50" in ratios, sorted(ratios)
        assert all(r["value"] > 0 for r in ratios.values() if r["figure"] != "event_1mb_extra")
        assert len(data["samples_ms"][mode]["warm_invoke"]) == figures["warm_invoke"]["n"]
    # The sandbox's CPU cap is visible from outside (cgroup cpu.stat); process mode has none.
    assert "cpu_throttling" in data["modes"]["sandbox"]["figures"]["throughput_1"]
    assert "cpu_throttling" not in data["modes"]["process"]["figures"]["throughput_1"]

    mode_ratios = {r["name"]: r for r in data["mode_ratios"]}
    for name in MODE_RATIOS:
        r = mode_ratios[name]
        assert r["value"] > 0 and math.isclose(r["value"], r["sandbox"] / r["process"]), r
    assert "cold_start.p50 sandbox-process/l_bwrap.p50" in mode_ratios


@pytest.mark.timeout(TIMEOUT_S + 30)
def test_every_target_is_judged_or_says_why_not(quick_run: QuickRun) -> None:
    goals = quick_run.data["goals"]
    assert sorted({g["goal"] for g in goals}) == sorted(TARGET_GOALS)
    for g in goals:
        assert g["mode"] == "sandbox" and g["target"], g
        if g["status"] == "not measured":
            assert g["note"] and g["passed"] is None, g
        else:
            assert g["status"] in ("met", "missed") and isinstance(g["ratio"], float), g
            assert g["passed"] == (g["status"] == "met"), g
    by_goal = {g["goal"]: g for g in goals}
    assert by_goal["D"]["status"] == "not measured" and "--quick" in by_goal["D"]["note"]
    assert (by_goal["G7"]["status"] != "not measured") == HAS_WRK
    for goal in ("G1", "G3", "G4", "G5", "G6", "G9", "G10"):
        assert by_goal[goal]["status"] != "not measured", by_goal[goal]
    assert any(row["figure"] == "warm_invoke" for row in quick_run.data["comparison"])


@pytest.mark.timeout(TIMEOUT_S + 30)
def test_the_async_scenarios_ran(quick_run: QuickRun) -> None:
    section = quick_run.data["asynchronous"]
    assert section["isolation"] == MODES[0]
    for scenario in ("accept", "accept_and_run"):
        figures = section[scenario]
        assert figures["accepted"] > 0 and figures["accepted_per_s"] > 0, figures
        assert figures["commits"] > 0 and figures["writes_per_commit"] >= 1, figures
    assert section["accept_and_run"]["drain"]["left"] == 0
    kill = section["kill"]
    # Durability is a guarantee, not a target: every accepted event ran, each recorded done once.
    assert kill["accepted"] == kill["events"] and kill["accepted_before_kill"] > 0, kill
    assert kill["never_ran"] == 0 and kill["recorded_done_twice"] == 0 and kill["ok"], kill
    assert "Asynchronous invocation targets" in quick_run.result.stdout


@pytest.mark.timeout(TIMEOUT_S + 30)
def test_the_tables_are_printed(quick_run: QuickRun) -> None:
    out = quick_run.result.stdout
    for title in ("Lamina benchmark: targets", "figure", "baseline", "ratio", "target", "pass", "sandbox / process",
                  "Where a cold start goes", "Side by side"):  # fmt: skip
        assert title in out, title
    assert "G1 warm invoke p50" in out and "G10" in out


@pytest.mark.timeout(TIMEOUT_S + 30)
@pytest.mark.skipif(not HAS_PLOT, reason="matplotlib not installed (scripts/setup.sh bench installs it)")
def test_the_plot_is_a_png(quick_run: QuickRun) -> None:
    assert quick_run.plot is not None
    data = quick_run.plot.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 20_000  # four panels of curves, not an empty canvas
