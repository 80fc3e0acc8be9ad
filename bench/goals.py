"""The targets of issue #4 (PERFORMANCE.md Part 3), each a ratio of a Lamina figure to a limit
re-measured in the same run: the one list the scorecard and the per-mode tables both read.

Figure names are those of the run's JSON: baselines (`l_http`, `l_fork`, ...) and each mode's
platform figures (`warm_invoke`, `cold_start`, ...). G2, G8 and G11 are not measured by the bench.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    goal: str  # PERFORMANCE.md Part 3's number, or "D" for the issue's density line
    label: str
    figure: str
    field: str
    baseline: str
    baseline_field: str
    baseline_label: str
    bound: Literal["max", "min"]
    ratio: float

    @property
    def text(self) -> str:
        return f"{'≤' if self.bound == 'max' else '≥'} {self.ratio:g} × {self.baseline_label}"

    def met(self, ratio: float) -> bool:
        return ratio <= self.ratio if self.bound == "max" else ratio >= self.ratio


def _t(goal: str, label: str, figure: str, field: str, baseline: str, baseline_label: str, bound: Literal["max", "min"],
       ratio: float, baseline_field: str = "p50") -> Target:  # fmt: skip
    return Target(goal=goal, label=label, figure=figure, field=field, baseline=baseline, baseline_field=baseline_field,
                  baseline_label=baseline_label, bound=bound, ratio=ratio)  # fmt: skip


TARGETS: tuple[Target, ...] = (
    # G1 holds the platform's path to its bound: on a function with a full vCPU, so a 128 MB
    # function's CPU cap (7 % of a CPU, as Lambda gives it) is not what is measured.
    _t("G1", "warm invoke p50 (1,769 MB)", "warm_invoke_1vcpu", "p50", "l_http", "L_http", "max", 4),
    _t("G1", "warm invoke p99 (1,769 MB)", "warm_invoke_1vcpu", "p99", "l_http", "L_http", "max", 10),
    _t("G3", "cold start p50 (python3.11)", "cold_start", "p50", "l_fork", "L_fork", "max", 8),
    _t("G3", "cold start p99 (python3.11)", "cold_start", "p99", "l_fork", "L_fork", "max", 20),
    _t("G4", "cold start p50 (provided.al2023)", "cold_start_custom", "p50", "l_py", "L_py", "max", 5),
    _t("G5", "isolation cost, cold start p50", "isolation_cost", "value", "l_bwrap", "L_bwrap", "max", 0.5),
    _t("G6", "environments created /s", "env_creation_rate", "value", "bwrap_rate_2", "bwrap rate ×2", "min", 0.5,
       baseline_field="value"),
    _t("G7", "warm throughput, wrk, 2 envs", "wrk_throughput", "value", "l_relay_wrk", "L_relay_wrk", "min", 0.7,
       baseline_field="value"),
    _t("G9", "idle environment PSS", "idle_env_pss", "value", "l_pss", "L_pss", "max", 2, baseline_field="value"),
    _t("G10", "1 MB event: p50 − 1 KB p50", "event_1mb_extra", "value", "l_1mb", "L_1MB", "max", 3,
       baseline_field="value"),
    _t("D", "warm p50, +1,000 fns, +300 idle envs", "density_warm_after", "p50", "density_warm_before",
       "warm p50 before", "max", 1.2),
)  # fmt: skip


def target_for(figure: str, field: str, baseline: str | None) -> Target | None:
    """The target a table row (figure.field over baseline) is held to, if any."""
    return next((t for t in TARGETS if (t.figure, t.field, t.baseline) == (figure, field, baseline)), None)
