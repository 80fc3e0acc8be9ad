"""The result table (rich) and JSON file: figures, their ratios to baselines, and the goals.

A ratio divides a platform figure by a baseline measured in the same run. Goals (PERFORMANCE.md
Part 3) are shown for reference only: a miss is reported, never an error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

from stats import Figure


@dataclass(frozen=True, slots=True, kw_only=True)
class Goal:
    id: str
    bound: Literal["max", "min"]
    ratio: float | None  # None: no baseline here to hold it to (shown as text only)
    text: str

    def met(self, ratio: float | None) -> bool | None:
        if self.ratio is None or ratio is None:
            return None
        return ratio <= self.ratio if self.bound == "max" else ratio >= self.ratio


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One table row: `figure.field`, compared with `baseline.baseline_field` when given."""

    figure: str
    field: str = "value"
    label: str | None = None
    baseline: str | None = None
    baseline_field: str = "p50"
    goal: Goal | None = None


G1_P50 = Goal(id="G1", bound="max", ratio=4.0, text="G1 p50 ≤ 4 × L_http")
G1_P99 = Goal(id="G1", bound="max", ratio=10.0, text="G1 p99 ≤ 10 × L_http")
G4 = Goal(id="G4", bound="max", ratio=5.0, text="G4 p50 ≤ 5 × L_py (sandboxed)")
G7 = Goal(id="G7", bound="min", ratio=None, text="G7 ≥ 0.7 × L_relay_wrk (not measured here)")

BASELINE_ROWS: tuple[Row, ...] = (
    Row(figure="l_http", field="p50", label="L_http p50: echo RTT"),
    Row(figure="l_http", field="p99", label="L_http p99: echo RTT"),
    Row(figure="l_py", field="p50", label="L_py: python3 -I -S -c pass"),
    Row(figure="py_plain", field="p50", label="python3 -c pass (site, .pth)"),
    Row(figure="echo_throughput_1", label="echo throughput, 1 client"),
    Row(figure="echo_throughput_8", label="echo throughput, 8 clients"),
)

PLATFORM_ROWS: tuple[Row, ...] = (
    Row(figure="api_floor", field="p50", label="API floor p50: GET health", baseline="l_http"),
    Row(figure="warm_invoke", field="p50", label="warm invoke p50", baseline="l_http", goal=G1_P50),
    Row(figure="warm_invoke", field="p99", label="warm invoke p99", baseline="l_http", goal=G1_P99),
    Row(figure="warm_invoke_boto3", field="p50", label="warm invoke p50 via boto3", baseline="l_http"),
    Row(figure="warm_report_duration", field="p50", label="warm REPORT Duration p50"),
    Row(figure="throughput_1", label="warm throughput, 1 client", baseline="echo_throughput_1", baseline_field="value"),
    Row(
        figure="throughput_8",
        label="warm throughput, 8 clients",
        baseline="echo_throughput_8",
        baseline_field="value",
        goal=G7,
    ),
    Row(figure="cold_start", field="p50", label="cold start p50", baseline="l_py", goal=G4),
    Row(figure="cold_start", field="p99", label="cold start p99", baseline="l_py"),
    Row(figure="init_duration", field="p50", label="Init Duration p50 (REPORT)", baseline="l_py"),
)


def ratio_of(row: Row, figures: Mapping[str, Figure]) -> float | None:
    if row.baseline is None or row.figure not in figures or row.baseline not in figures:
        return None
    return getattr(figures[row.figure], row.field) / getattr(figures[row.baseline], row.baseline_field)


def ratios(figures: Mapping[str, Figure]) -> list[dict[str, Any]]:
    out = []
    for row in PLATFORM_ROWS:
        value = ratio_of(row, figures)
        if value is None:
            continue
        out.append(
            {
                "name": f"{row.figure}.{row.field}/{row.baseline}.{row.baseline_field}",
                "figure": row.figure,
                "field": row.field,
                "baseline": row.baseline,
                "baseline_field": row.baseline_field,
                "value": value,
                "goal": row.goal.text if row.goal else None,
                "goal_ratio": row.goal.ratio if row.goal else None,
                "goal_met": row.goal.met(value) if row.goal else None,
            }
        )
    return out


def render(figures: Mapping[str, Figure], console: Console, caption: str = "") -> None:
    table = Table(title="Lamina benchmark", title_justify="left", caption=caption, caption_justify="left")
    for column in ("figure", "value", "baseline", "ratio", "goal (reference)", "n"):
        table.add_column(column, justify="left" if column in ("figure", "goal (reference)") else "right")
    _add_rows(table, BASELINE_ROWS, figures)
    table.add_section()
    _add_rows(table, PLATFORM_ROWS, figures)
    console.print(table)


CPU_ROWS: tuple[tuple[str, str], ...] = (
    ("l_http", "echo round trip (L_http)"),
    ("api_floor", "GET /lamina/v1/health"),
    ("warm_invoke", "warm invoke"),
)


def render_cpu(figures: Mapping[str, Figure], console: Console) -> None:
    """Where the time of one sequential request goes: CPU per request of each process."""
    table = Table(
        title="CPU per request (sequential, 1 client): where the wall time goes",
        title_justify="left",
        caption=(
            "CPU time per request of each process (/proc schedstat). On a 1-client round trip they mostly run "
            "one after another; work done after a reply is sent overlaps the next request, so the sum can exceed "
            "the wall time."
        ),
        caption_justify="left",
    )
    for column in ("request", "wall mean", "client", "server", "runtime", "sum of CPU"):
        table.add_column(column, justify="left" if column == "request" else "right")
    for name, label in CPU_ROWS:
        fig = figures.get(name)
        if fig is None or "cpu_ms_per_request" not in fig.extra:
            continue
        cpu: dict[str, float] = fig.extra["cpu_ms_per_request"]
        cells = [cpu.get(k) for k in ("client", "server", "runtimes")]
        table.add_row(
            label,
            _fmt(fig.mean, "ms"),
            *(_fmt(c, "ms") if c is not None else "" for c in cells),
            _fmt(sum(c for c in cells if c is not None), "ms"),
        )
    console.print(table)


def _add_rows(table: Table, rows: Sequence[Row], figures: Mapping[str, Figure]) -> None:
    for row in rows:
        fig = figures.get(row.figure)
        if fig is None:
            continue
        base = figures.get(row.baseline) if row.baseline else None
        ratio = ratio_of(row, figures)
        table.add_row(
            row.label or fig.label,
            _fmt(getattr(fig, row.field), fig.unit),
            _fmt(getattr(base, row.baseline_field), base.unit) if base else "",
            f"{ratio:.2f}×" if ratio is not None else "",
            _goal_cell(row.goal, ratio),
            str(fig.n),
        )


def _goal_cell(goal: Goal | None, ratio: float | None) -> str:
    if goal is None:
        return ""
    met = goal.met(ratio)
    if met is None:
        return f"[dim]{goal.text}[/]"
    return f"{goal.text} [green]met[/]" if met else f"{goal.text} [yellow]missed[/]"


def _fmt(value: float, unit: str) -> str:
    if unit == "/s":
        return f"{value:,.0f} /s"
    if abs(value) < 1:
        return f"{value * 1000:.0f} µs"
    return f"{value:.2f} ms"


def write_json(path: Path, figures: Mapping[str, Figure], meta: Mapping[str, Any]) -> None:
    data = {
        "meta": dict(meta),
        "figures": {name: fig.to_json() for name, fig in figures.items()},
        "ratios": ratios(figures),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
