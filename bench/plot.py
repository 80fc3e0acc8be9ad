"""`bench/run.py --plot PATH.png`: the run's latency distributions and targets in one picture.

Four panels, each a question a reader brings:
- warm invoke: how far Lamina's warm path (sandbox, process) is from one HTTP exchange (L_http);
- cold start: Lamina's cold starts (python3.11 and a custom runtime, sandboxed; python3.11 in
  process mode) next to their limits (L_fork, L_py) and the peer, python-lambda-local, which starts
  a process per invoke;
- event size: 1 KB and 1 MB events through Lamina and through the echo server;
- targets: how much of each target's allowance the run used (1 = exactly on target).
Latencies are empirical CDFs on a log time axis (every sample drawn), so distributions with very
different n and spread compare at a glance; each legend entry gives n and p50. matplotlib runs
with its Agg backend (no display) and is imported only when a plot is asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from goals import TARGETS
from report import PROCESS, SANDBOX, ModeResult
from scorecard import Outcome
from stats import Figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# (where: "" = baselines, else a mode; figure name; legend label; colour; dashed = a limit)
Series = tuple[str, str, str, str, bool]
WARM: tuple[Series, ...] = (
    ("", "l_http", "L_http: echo round trip", "#7f7f7f", True),
    (SANDBOX, "warm_invoke", "Lamina sandbox: warm invoke, 128 MB", "#1f77b4", False),
    (SANDBOX, "warm_invoke_1vcpu", "Lamina sandbox: warm invoke, 1,769 MB", "#17becf", False),
    (PROCESS, "warm_invoke", "Lamina process: warm invoke", "#ff7f0e", False),
)
COLD: tuple[Series, ...] = (
    ("", "l_fork", "L_fork: fork → result", "#7f7f7f", True),
    ("", "l_py", "L_py: python -I -S -c pass", "#bcbd22", True),
    (SANDBOX, "cold_start", "Lamina sandbox: python3.11", "#1f77b4", False),
    (SANDBOX, "cold_start_custom", "Lamina sandbox: provided.al2023", "#17becf", False),
    (PROCESS, "cold_start", "Lamina process: python3.11", "#ff7f0e", False),
    ("", "peer_python_lambda_local", "python-lambda-local (per invoke)", "#d62728", False),
)
SIZE: tuple[Series, ...] = (
    ("", "echo_1kb", "echo, 1 KB", "#7f7f7f", True),
    ("", "echo_1mb", "echo, 1 MB", "#2f2f2f", True),
    (SANDBOX, "invoke_1kb", "Lamina sandbox, 1 KB", "#1f77b4", False),
    (SANDBOX, "invoke_1mb", "Lamina sandbox, 1 MB", "#9467bd", False),
    (PROCESS, "invoke_1kb", "Lamina process, 1 KB", "#ff7f0e", False),
    (PROCESS, "invoke_1mb", "Lamina process, 1 MB", "#8c564b", False),
)


def write(
    path: Path,
    baselines: Mapping[str, Figure],
    modes: Mapping[str, ModeResult],
    outcomes: Sequence[Outcome],
    title: str,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(16, 12.5), dpi=110)
    _cdf(axes[0][0], "Warm invoke, 1 client, ~80 B event", WARM, baselines, modes)
    _cdf(axes[0][1], "Cold start: invoke with no idle environment → response", COLD, baselines, modes)
    _cdf(axes[1][0], "Warm invoke by event size (the no-op returns the event)", SIZE, baselines, modes)
    _targets(axes[1][1], outcomes)
    fig.suptitle(title, fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)


def _cdf(ax: Axes, title: str, series: Sequence[Series], baselines: Mapping[str, Figure], modes: Mapping[str, ModeResult]) -> None:
    drawn = 0
    for where, name, label, colour, limit in series:
        figures = baselines if not where else modes[where].figures if where in modes else {}
        fig = figures.get(name)
        if fig is None or not fig.samples:
            continue
        xs = sorted(fig.samples)
        ys = [(i + 1) / len(xs) for i in range(len(xs))]
        ax.step(xs, ys, where="post", color=colour, linestyle="--" if limit else "-", linewidth=1.6,
                label=f"{label} (n={fig.n}, p50 {_ms(fig.p50)})")  # fmt: skip
        drawn += 1
    ax.set_title(title, fontsize=11)
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("share of requests ≤ x")
    ax.set_ylim(0, 1.02)
    ax.axhline(0.5, color="#cccccc", linewidth=0.8, zorder=0)
    ax.axhline(0.99, color="#cccccc", linewidth=0.8, zorder=0)
    ax.grid(True, which="both", axis="x", color="#eeeeee")
    if drawn:  # below the panel: inside it would cover the curves whatever corner it took
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8, frameon=False)
    else:
        ax.text(0.5, 0.5, "not measured in this run", ha="center", va="center", transform=ax.transAxes)


def _targets(ax: Axes, outcomes: Sequence[Outcome]) -> None:
    """One bar per target: the share of its allowance used (ratio ÷ target for a ceiling, target ÷
    ratio for a floor), so 1 is on target and left of it is met, whichever way the target points."""
    labels: list[str] = []
    values: list[float] = []
    colours: list[str] = []
    notes: list[tuple[int, str]] = []
    for i, o in enumerate(outcomes):
        t = o.target
        labels.append(f"{t.goal} {t.label}")
        if o.ratio is None:
            values.append(0.0)
            colours.append("#cccccc")
            notes.append((i, o.note or "not measured"))
            continue
        if o.ratio <= 0:  # a ceiling on a difference that came out negative: met, nothing to draw
            values.append(0.0)
            colours.append("#2ca02c")
            notes.append((i, f"{o.ratio:.2f}× ({t.text}): below zero"))
            continue
        used = o.ratio / t.ratio if t.bound == "max" else t.ratio / o.ratio
        values.append(used)
        colours.append("#2ca02c" if o.passed else "#d62728")
        notes.append((i, f"{o.ratio:.2f}× ({t.text})"))
    ys = list(range(len(labels)))
    ax.barh(ys, values, color=colours)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(ys, labels, fontsize=8)
    ax.invert_yaxis()
    positive = [v for v in values if v > 0]
    if positive:
        ax.set_xscale("log")
        lo, hi = min(positive + [1.0]), max(positive + [1.0])
        ax.set_xlim(lo / 2, hi * 6)
    for i, text in notes:  # right of the bar and of the line, so neither covers it
        ax.text(max(values[i], 1.0) * 1.08, i, text, va="center", fontsize=7)
    ax.set_title(f"Targets ({len(TARGETS)}): share of the allowance used; ≤ 1 (left of the line) is met", fontsize=11)
    ax.set_xlabel("ratio ÷ target (ceilings) or target ÷ ratio (floors), log scale")


def _ms(value: float) -> str:
    return f"{value * 1000:.0f} µs" if value < 1 else f"{value:.1f} ms"


def describe(meta: Mapping[str, Any]) -> str:
    """The plot's title: what ran, where, when."""
    run = "--quick" if meta.get("quick") else "full run"
    return (
        f"Lamina benchmark ({run}), {meta.get('started', '')}: {meta.get('cpus')} CPUs, kernel {meta.get('kernel')}, "
        f"Python {meta.get('python')}; functions python3.11, {meta.get('memory_size')} MB"
    )
