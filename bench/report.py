"""The detail tables (rich) and the JSON file: figures, their ratios to baselines, and the targets.

A ratio divides a platform figure by a baseline measured in the same run. Each isolation mode
(`sandbox`, `process`) has its own platform figures and ratios; a third group divides the
sandbox's figures by the process mode's ("sandbox / process"), the cost of isolation. Goals
(PERFORMANCE.md Part 3, goals.py) are shown beside the sandbox's rows and summed up in the
scorecard (scorecard.py): a miss is reported, never an error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from goals import TARGETS, Target, target_for
from stats import Figure

SANDBOX, PROCESS = "sandbox", "process"


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One table row: `figure.field`, compared with `baseline.baseline_field` when given."""

    figure: str
    field: str = "value"
    label: str | None = None
    baseline: str | None = None
    baseline_field: str = "p50"

    @property
    def goal(self) -> Target | None:
        """The issue's target for this comparison (goals.py), if it has one."""
        return target_for(self.figure, self.field, self.baseline)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModeResult:
    """The platform figures of one `lamina up --isolation <mode>`, and what that server ran."""

    mode: str
    figures: dict[str, Figure]
    interpreter: str | None  # the runtimes' binary, read from /proc/<pid>/exe
    runtime_l_py: str  # the baseline figure holding L_py of that interpreter
    memory_size: int
    endpoint: str
    notes: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # figure → why this run has none


G5 = next(t for t in TARGETS if t.goal == "G5")

BASELINE_ROWS: tuple[Row, ...] = (
    Row(figure="l_http", field="p50", label="L_http p50: echo RTT"),
    Row(figure="l_http", field="p99", label="L_http p99: echo RTT"),
    Row(figure="l_py", field="p50"),
    Row(figure="l_py_system", field="p50"),
    Row(figure="py_plain", field="p50", label="python3 -c pass (site, .pth)"),
    Row(figure="rt_start", field="p50"),
    Row(figure="rt_start_system", field="p50"),
    Row(figure="l_fork", field="p50"),
    Row(figure="l_pss"),
    Row(figure="l_py_bwrap", field="p50"),
    Row(figure="rt_start_bwrap", field="p50"),
    Row(figure="l_bwrap", field="p50"),
    Row(figure="bwrap_rate_2"),
    Row(figure="tmp_image", field="p50"),
    Row(figure="cgroup_create", field="p50"),
    Row(figure="cgroup_attach", field="p50"),
    Row(figure="echo_throughput_1", label="echo throughput, 1 client"),
    Row(figure="echo_throughput_8", label="echo throughput, 8 clients"),
    Row(figure="l_relay_wrk"),
    Row(figure="echo_1kb", field="p50"),
    Row(figure="echo_1mb", field="p50"),
    Row(figure="l_1mb"),
    Row(figure="peer_python_lambda_local", field="p50"),
)

PLATFORM_ROWS: tuple[Row, ...] = (
    Row(figure="api_floor", field="p50", label="API floor p50: GET health", baseline="l_http"),
    Row(figure="warm_invoke", field="p50", label="warm invoke p50", baseline="l_http"),
    Row(figure="warm_invoke", field="p99", label="warm invoke p99", baseline="l_http"),
    Row(figure="warm_invoke_1vcpu", field="p50", label="warm invoke p50, 1,769 MB", baseline="l_http"),
    Row(figure="warm_invoke_1vcpu", field="p99", label="warm invoke p99, 1,769 MB", baseline="l_http"),
    Row(figure="warm_invoke_boto3", field="p50", label="warm invoke p50 via boto3", baseline="l_http"),
    Row(figure="warm_report_duration", field="p50", label="warm REPORT Duration p50"),
    Row(figure="throughput_1", label="warm throughput, 1 client", baseline="echo_throughput_1", baseline_field="value"),
    Row(figure="throughput_8", label="warm throughput, 8 clients", baseline="echo_throughput_8", baseline_field="value"),
    Row(figure="wrk_throughput", label="warm throughput, wrk, 2 envs", baseline="l_relay_wrk", baseline_field="value"),
    Row(figure="cold_start", field="p50", label="cold start p50", baseline="l_fork"),
    Row(figure="cold_start", field="p99", label="cold start p99", baseline="l_fork"),
    Row(figure="cold_start", field="p50", label="cold start p50 vs L_py", baseline="l_py"),
    # Init is mostly an interpreter start: compared with the interpreter this mode runs.
    Row(figure="init_duration", field="p50", label="Init Duration p50 (REPORT)", baseline="runtime_l_py"),
    Row(figure="cold_start_custom", field="p50", label="cold start p50, provided.al2023", baseline="l_py"),
    Row(figure="init_duration_custom", field="p50", label="Init Duration p50, provided.al2023", baseline="l_py"),
    Row(figure="invoke_1kb", field="p50", label="warm invoke p50, 1 KB event", baseline="echo_1kb"),
    Row(figure="invoke_1mb", field="p50", label="warm invoke p50, 1 MB event", baseline="echo_1mb"),
    Row(figure="event_1mb_extra", label="1 MB event: p50 − 1 KB p50", baseline="l_1mb", baseline_field="value"),
    Row(figure="env_creation_rate", label="environments created /s (burst)", baseline="bwrap_rate_2",
        baseline_field="value"),
    Row(figure="idle_env_pss", label="idle environment PSS (p50)", baseline="l_pss", baseline_field="value"),
    Row(figure="density_warm_before", field="p50", label="warm p50 before density", baseline="l_http"),
    Row(figure="density_warm_after", field="p50", label="warm p50, +1,000 fns +300 envs",
        baseline="density_warm_before"),
)  # fmt: skip

# sandbox / process: the same figure in both modes (the process mode's value is the baseline).
MODE_ROWS: tuple[Row, ...] = (
    Row(figure="api_floor", field="p50", label="API floor p50"),
    Row(figure="warm_invoke", field="p50", label="warm invoke p50"),
    Row(figure="warm_invoke", field="p99", label="warm invoke p99"),
    Row(figure="warm_report_duration", field="p50", label="warm REPORT Duration p50"),
    Row(figure="throughput_1", label="warm throughput, 1 client"),
    Row(figure="throughput_8", label="warm throughput, 8 clients"),
    Row(figure="wrk_throughput", label="warm throughput, wrk, 2 envs"),
    Row(figure="cold_start", field="p50", label="cold start p50"),
    Row(figure="cold_start", field="p99", label="cold start p99"),
    Row(figure="init_duration", field="p50", label="Init Duration p50"),
    Row(figure="cold_start_custom", field="p50", label="cold start p50, provided.al2023"),
    Row(figure="invoke_1mb", field="p50", label="warm invoke p50, 1 MB event"),
    Row(figure="env_creation_rate", label="environments created /s (burst)"),
    Row(figure="idle_env_pss", label="idle environment PSS (p50)"),
)


def lookup(mode: ModeResult, baselines: Mapping[str, Figure]) -> dict[str, Figure]:
    """The figures a mode's rows may name: the baselines, `runtime_l_py`, and the mode's own."""
    figures = dict(baselines)
    if mode.runtime_l_py in baselines:
        figures["runtime_l_py"] = baselines[mode.runtime_l_py]
    figures.update(mode.figures)
    return figures


def ratio_of(row: Row, figures: Mapping[str, Figure]) -> float | None:
    if row.baseline is None or row.figure not in figures or row.baseline not in figures:
        return None
    base = float(getattr(figures[row.baseline], row.baseline_field))
    return float(getattr(figures[row.figure], row.field)) / base if base else None


def _goal_for(row: Row, mode: str) -> Target | None:
    """Targets are stated for sandboxed environments: the process mode's rows show none."""
    return row.goal if mode == SANDBOX else None


def ratios(mode: ModeResult, baselines: Mapping[str, Figure]) -> list[dict[str, Any]]:
    figures = lookup(mode, baselines)
    out = []
    for row in PLATFORM_ROWS:
        value = ratio_of(row, figures)
        if value is None:
            continue
        goal = _goal_for(row, mode.mode)
        out.append(
            {
                "name": f"{row.figure}.{row.field}/{row.baseline}.{row.baseline_field}",
                "mode": mode.mode,
                "figure": row.figure,
                "field": row.field,
                "baseline": mode.runtime_l_py if row.baseline == "runtime_l_py" else row.baseline,
                "baseline_field": row.baseline_field,
                "value": value,
                "goal": goal.text if goal else None,
                "goal_ratio": goal.ratio if goal else None,
                "goal_met": goal.met(value) if goal else None,
            }
        )
    return out


def mode_ratios(modes: Mapping[str, ModeResult], baselines: Mapping[str, Figure]) -> list[dict[str, Any]]:
    """sandbox / process for every MODE_ROWS figure, and the isolation cost on the cold path (G5)."""
    if SANDBOX not in modes or PROCESS not in modes:
        return []
    s, p = modes[SANDBOX].figures, modes[PROCESS].figures
    out: list[dict[str, Any]] = []
    for row in MODE_ROWS:
        if row.figure in s and row.figure in p:
            sv, pv = getattr(s[row.figure], row.field), getattr(p[row.figure], row.field)
            out.append(
                {
                    "name": f"{row.figure}.{row.field} sandbox/process",
                    "figure": row.figure,
                    "field": row.field,
                    "sandbox": sv,
                    "process": pv,
                    "value": sv / pv,
                    "difference": sv - pv,
                }
            )
    return out + isolation_cost(modes, baselines)


def isolation_cost(modes: Mapping[str, ModeResult], baselines: Mapping[str, Figure]) -> list[dict[str, Any]]:
    """G5: cold start p50 sandbox − process, over L_bwrap; and, when the modes run different
    interpreters, the same less their difference in runtime client start (rt_start p50s)."""
    s, p = modes[SANDBOX].figures.get("cold_start"), modes[PROCESS].figures.get("cold_start")
    bwrap = baselines.get("l_bwrap")
    if s is None or p is None or bwrap is None:
        return []
    interpreters = {m: modes[m].interpreter for m in (SANDBOX, PROCESS)}

    def entry(name: str, diff: float, **extra: Any) -> dict[str, Any]:
        value = diff / bwrap.p50
        return {
            "name": name,
            "figure": "cold_start",
            "field": "p50",
            "sandbox": s.p50,
            "process": p.p50,
            "difference": diff,
            "baseline": "l_bwrap",
            "baseline_value": bwrap.p50,
            "value": value,
            "interpreters": interpreters,
            "goal": G5.text,
            "goal_ratio": G5.ratio,
            "goal_met": G5.met(value),
            **extra,
        }

    out = [entry("cold_start.p50 sandbox-process/l_bwrap.p50", s.p50 - p.p50)]
    rt_s = baselines.get(_rt_start(modes[SANDBOX]))
    rt_p = baselines.get(_rt_start(modes[PROCESS]))
    if interpreters[SANDBOX] != interpreters[PROCESS] and rt_s is not None and rt_p is not None:
        interp = rt_s.p50 - rt_p.p50
        out.append(
            entry("cold_start.p50 sandbox-process-interpreters/l_bwrap.p50", s.p50 - p.p50 - interp, interpreter_difference=interp)
        )
    return out


def _rt_start(mode: ModeResult) -> str:
    return mode.runtime_l_py.replace("l_py", "rt_start", 1)


# --- tables ------------------------------------------------------------------------------------


MODE_TITLES = {
    SANDBOX: "sandbox: lamina up --isolation sandbox (namespaces, cgroups, seccomp)",
    PROCESS: "process: lamina up --isolation process (plain processes)",
}


def render(baselines: Mapping[str, Figure], modes: Mapping[str, ModeResult], console: Console, caption: str = "") -> None:
    """One table per group: the baselines, each mode, and sandbox / process."""
    table = _figure_table("Lamina benchmark: baselines (this run, this machine)")
    _add_rows(table, BASELINE_ROWS, baselines, None)
    console.print(table)
    for mode in modes.values():
        table = _figure_table(f"Lamina benchmark: {MODE_TITLES.get(mode.mode, mode.mode)}")
        _add_rows(table, PLATFORM_ROWS, lookup(mode, baselines), mode.mode)
        console.print(table)
    comparison = mode_ratios(modes, baselines)
    if comparison:
        table = _figure_table("Lamina benchmark: sandbox / process (value = sandbox, baseline = process)")
        for r in comparison:
            if r.get("baseline") == "l_bwrap":
                less = "interpreter_difference" in r
                table.add_row(
                    "  less the interpreters' difference" if less else "isolation cost: cold start p50, sandbox − process",
                    fmt(r["difference"], "ms", signed=True),
                    fmt(r["baseline_value"], "ms") + " L_bwrap",
                    f"{r['value']:.2f}×",
                    _goal_cell(G5, r["value"]),
                    f"{modes[SANDBOX].figures['cold_start'].n}/{modes[PROCESS].figures['cold_start'].n}",
                )
                continue
            s_fig, p_fig = modes[SANDBOX].figures[r["figure"]], modes[PROCESS].figures[r["figure"]]
            label = next(row.label for row in MODE_ROWS if row.figure == r["figure"] and row.field == r["field"])
            table.add_row(
                label, fmt(r["sandbox"], s_fig.unit), fmt(r["process"], p_fig.unit), f"{r['value']:.2f}×", "",
                f"{s_fig.n}/{p_fig.n}",
            )  # fmt: skip
        console.print(table)
    if caption:
        console.print(caption, highlight=False)


def _figure_table(title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("figure", "value", "baseline", "ratio", "target", "n"):
        table.add_column(column, justify="left" if column in ("figure", "target") else "right")
    return table


CPU_ROWS: tuple[tuple[str, str], ...] = (
    ("api_floor", "GET /lamina/v1/health"),
    ("warm_invoke", "warm invoke"),
)


def render_cpu(baselines: Mapping[str, Figure], modes: Mapping[str, ModeResult], console: Console) -> None:
    """Where the time of one sequential request goes: CPU per request of each process."""
    table = Table(
        title="CPU per request (sequential, 1 client): where the wall time goes",
        title_justify="left",
        caption=(
            "CPU time per request of each process (/proc schedstat). On a 1-client round trip they mostly run "
            "one after another; work done after a reply is sent overlaps the next request, so the sum can exceed "
            "the wall time. In sandbox mode the wall time also holds the periods the CPU cap stops the runtime."
        ),
        caption_justify="left",
    )
    for column in ("mode", "request", "wall mean", "client", "server", "runtime", "sum of CPU"):
        table.add_column(column, justify="left" if column in ("mode", "request") else "right")
    rows: list[tuple[str, Figure | None, str]] = [("baseline", baselines.get("l_http"), "echo round trip (L_http)")]
    for mode in modes.values():
        rows += [(mode.mode, mode.figures.get(name), label) for name, label in CPU_ROWS]
    for mode_name, fig, label in rows:
        if fig is None or "cpu_ms_per_request" not in fig.extra:
            continue
        cpu: dict[str, float] = fig.extra["cpu_ms_per_request"]
        cells = [cpu.get(k) for k in ("client", "server", "runtimes")]
        table.add_row(
            mode_name,
            label,
            fmt(fig.mean, "ms"),
            *(fmt(c, "ms") if c is not None else "" for c in cells),
            fmt(sum(c for c in cells if c is not None), "ms"),
        )
    console.print(table)


BREAKDOWN_ROWS: tuple[tuple[str, str], ...] = (
    ("cold_before_init", "1 before init: request, env creation, reply"),
    ("cold_launch", "2 init: launch → function module runs"),
    ("cold_module_ready", "3 init: function module → runtime ready"),
    ("cold_invoke", "4 first invoke (REPORT Duration)"),
    ("cold_total", "total: invoke → response (client)"),
)


def render_breakdown(baselines: Mapping[str, Figure], modes: Mapping[str, ModeResult], console: Console) -> None:
    """Where a cold start goes, per mode, from the probe function's clock and the REPORT line."""
    present = [m for m in modes.values() if "cold_total" in m.figures]
    if not present:
        return
    n = " / ".join(f"{m.mode} n={m.figures['cold_total'].n}" for m in present)
    table = Table(
        title=f"Where a cold start goes (probe function; {n})",
        title_justify="left",
        caption=(
            "p50 and mean per phase over the probe's cold starts (the means add up to the total, the p50s need "
            "not), bounded by the client's clock, the function module's CLOCK_MONOTONIC and the REPORT line "
            "(bench/platform_bench.py). 1: the request, routing, the environment's creation (sandbox: uid, "
            "cgroup, /tmp image) and the reply after Duration; 2 + 3 = Init Duration; 2: sandbox launch (bwrap or "
            "a zygote fork, cgroup attach, netns listener), interpreter start and the runtime client's imports; 3: importing the "
            "handler module and the first /next. References are measured outside any server in this run."
        ),
        caption_justify="left",
    )
    table.add_column("phase", justify="left")
    for m in present:
        table.add_column(f"{m.mode} p50", justify="right")
        table.add_column(f"{m.mode} mean", justify="right")
    both = len(present) == 2
    if both:
        table.add_column("Δ mean", justify="right")
    for name, label in BREAKDOWN_ROWS:
        cells: list[str] = []
        means: list[float] = []
        for m in present:
            fig = m.figures[name]
            cells += [fmt(fig.p50, "ms"), fmt(fig.mean, "ms")]
            means.append(fig.mean)
        if both:
            cells.append(fmt(means[0] - means[1], "ms", signed=True))
        table.add_row(label, *cells)
    table.add_section()
    cpu_cells: list[str] = []
    for m in present:
        cpu = m.figures.get("cold_launch_cpu")
        cpu_cells += [fmt(cpu.p50, "ms"), fmt(cpu.mean, "ms")] if cpu else ["", ""]
    table.add_row("in 2: runtime CPU until the module ran", *cpu_cells, *([""] if both else []))
    references: list[tuple[str, dict[str, str | None]]] = [
        ("ref: L_py of the mode's interpreter", {m.mode: m.runtime_l_py for m in present}),
        ("ref: runtime client start, same interp.", {m.mode: _rt_start(m) for m in present}),
        ("ref: L_py under bwrap (ns, binds, uid)", {SANDBOX: "l_py_bwrap"}),
        ("ref: runtime client start under bwrap", {SANDBOX: "rt_start_bwrap"}),
        ("ref: L_bwrap", {SANDBOX: "l_bwrap"}),
        ("ref: /tmp image: make_tmp", {SANDBOX: "tmp_image"}),
        ("ref: cgroup create with limits", {SANDBOX: "cgroup_create"}),
        ("ref: cgroup attach, 1 process (of 2)", {SANDBOX: "cgroup_attach"}),
    ]
    for label, names in references:
        cells = []
        for m in present:
            ref = baselines.get(names.get(m.mode) or "")
            cells += [fmt(ref.p50, "ms"), fmt(ref.mean, "ms")] if ref else ["", ""]
        if any(cells):
            table.add_row(label, *cells, *([""] if both else []))
    console.print(table)


THROTTLE_ROWS: tuple[tuple[str, str], ...] = (
    ("warm_invoke", "warm invoke, 1 client (sequential)"),
    ("throughput_1", "warm throughput, 1 client"),
    ("throughput_8", "warm throughput, 8 clients"),
)


def render_throttling(modes: Mapping[str, ModeResult], console: Console, cpu_share: float) -> None:
    """How often the sandbox's CPU cap (MemorySize / 1,769 MB of a CPU, after init) held runtimes back."""
    mode = modes.get(SANDBOX)
    if mode is None or not any("cpu_throttling" in f.extra for f in mode.figures.values()):
        return
    table = Table(
        title=(
            f"Sandbox CPU cap: MemorySize {mode.memory_size} MB → {cpu_share * 100:.1f}% of a CPU per environment "
            "after init (cgroup cpu.stat, summed over the environments)"
        ),
        title_justify="left",
        caption="A throttled period is a 100 ms period in which an environment used up its quota and was stopped.",
        caption_justify="left",
    )
    for column in ("window", "length", "environments", "periods", "throttled", "held back", "throughput/latency"):
        table.add_column(column, justify="left" if column == "window" else "right")
    for name, label in THROTTLE_ROWS:
        fig = mode.figures.get(name)
        if fig is None or "cpu_throttling" not in fig.extra:
            continue
        t = fig.extra["cpu_throttling"]
        periods = t["periods"]
        share = f" ({t['throttled_periods'] / periods * 100:.0f}%)" if periods else ""
        headline = f"{fmt(fig.value, fig.unit)}, p99 {fmt(fig.p99, 'ms')}"
        table.add_row(
            label,
            fmt(t["window_ms"], "ms"),
            str(fig.extra.get("environments", 1)),
            str(periods),
            f"{t['throttled_periods']}{share}",
            fmt(t["throttled_ms"], "ms"),
            headline,
        )
    console.print(table)


def _add_rows(table: Table, rows: Sequence[Row], figures: Mapping[str, Figure], mode: str | None) -> None:
    for row in rows:
        fig = figures.get(row.figure)
        if fig is None:
            continue
        base = figures.get(row.baseline) if row.baseline else None
        ratio = ratio_of(row, figures)
        goal = _goal_for(row, mode) if mode is not None else None
        table.add_row(
            row.label or fig.label,
            fmt(getattr(fig, row.field), fig.unit),
            fmt(getattr(base, row.baseline_field), base.unit) if base else "",
            f"{ratio:.2f}×" if ratio is not None else "",
            _goal_cell(goal, ratio),
            str(fig.n),
        )


def _goal_cell(goal: Target | None, ratio: float | None) -> str:
    if goal is None:
        return ""
    text = f"{goal.goal} {goal.text}"
    if ratio is None:
        return f"[dim]{text}[/]"
    return f"{text} [green]met[/]" if goal.met(ratio) else f"{text} [yellow]missed[/]"


def fmt(value: float, unit: str, *, signed: bool = False) -> str:
    """A table cell: rates as /s, sizes in MB, times in ms (µs under 1 ms)."""
    sign = "+" if signed and value > 0 else ""
    if unit == "/s":
        return f"{value:,.0f} /s"
    if unit == "MB":
        return f"{sign}{value:.2f} MB"
    if abs(value) < 1:
        return f"{sign}{value * 1000:.0f} µs"
    return f"{sign}{value:.2f} ms"


# --- JSON --------------------------------------------------------------------------------------


def to_json(
    baselines: Mapping[str, Figure], modes: Mapping[str, ModeResult], meta: Mapping[str, Any], **sections: Any
) -> dict[str, Any]:
    """Every figure and ratio, per mode, the mode ratios, plus `sections` (the scorecard, the peer
    comparison, what was skipped) and the raw latency samples behind each latency figure."""
    return {
        "meta": dict(meta),
        **sections,
        "figures": {name: fig.to_json() for name, fig in baselines.items()},
        "modes": {
            name: {
                "isolation": mode.mode,
                "endpoint": mode.endpoint,
                "interpreter": mode.interpreter,
                "runtime_l_py": mode.runtime_l_py,
                "memory_size": mode.memory_size,
                "notes": mode.notes,
                "skipped": mode.skipped,
                "figures": {n: fig.to_json() for n, fig in mode.figures.items()},
                "ratios": ratios(mode, baselines),
            }
            for name, mode in modes.items()
        },
        "mode_ratios": mode_ratios(modes, baselines),
        "samples_ms": {
            "baselines": _samples(baselines),
            **{name: _samples(mode.figures) for name, mode in modes.items()},
        },
    }


def _samples(figures: Mapping[str, Figure]) -> dict[str, list[float]]:
    return {name: [round(x, 4) for x in fig.samples] for name, fig in figures.items() if fig.samples and fig.unit == "ms"}


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
