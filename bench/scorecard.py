"""The issue's targets in one table: figure / value / baseline / ratio / target / pass, and the
peer comparison (python-lambda-local next to Lamina's warm and cold invokes).

Each target is a ratio of a platform figure to a limit re-measured in the same run (PERFORMANCE.md
Part 3), held in `sandbox` mode, the mode the targets are stated for (the first mode run when
sandbox is not among them, said in the title). A missed target is reported, never an error; a
figure that could not be measured (no wrk, a step `--quick` skips) shows why instead of a pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from goals import TARGETS, Target
from report import SANDBOX, ModeResult, fmt, lookup
from stats import Figure


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    target: Target
    mode: str
    value: Figure | None
    baseline: Figure | None
    ratio: float | None
    passed: bool | None  # None: not measured
    note: str

    def to_json(self) -> dict[str, Any]:
        t = self.target
        return {
            "goal": t.goal,
            "figure": t.label,
            "mode": self.mode,
            "name": f"{t.figure}.{t.field}/{t.baseline}.{t.baseline_field}",
            "value": getattr(self.value, t.field) if self.value else None,
            "unit": self.value.unit if self.value else None,
            "baseline": getattr(self.baseline, t.baseline_field) if self.baseline else None,
            "ratio": self.ratio,
            "target": t.text,
            "target_ratio": t.ratio,
            "bound": t.bound,
            "status": "not measured" if self.passed is None else "met" if self.passed else "missed",
            "passed": self.passed,
            "note": self.note,
        }


def goal_mode(modes: Mapping[str, ModeResult]) -> ModeResult | None:
    """The mode the targets are held in: sandbox, else the first one run."""
    if SANDBOX in modes:
        return modes[SANDBOX]
    return next(iter(modes.values()), None)


def evaluate(baselines: Mapping[str, Figure], modes: Mapping[str, ModeResult], skipped: Mapping[str, str]) -> list[Outcome]:
    """Every target against the goal mode's figures; `skipped`: figure name → why it is missing."""
    mode = goal_mode(modes)
    figures = lookup(mode, baselines) if mode else dict(baselines)
    mode_skips = mode.skipped if mode else {}
    out = []
    for t in TARGETS:
        value, base = figures.get(t.figure), figures.get(t.baseline)
        ratio = None
        if value is not None and base is not None and getattr(base, t.baseline_field) > 0:
            ratio = float(getattr(value, t.field)) / float(getattr(base, t.baseline_field))
        missing = [n for n, f in ((t.figure, value), (t.baseline, base)) if f is None]
        reasons = [mode_skips.get(n) or skipped.get(n) or f"{n} not measured" for n in missing]
        note = "; ".join(dict.fromkeys(reasons))  # once each, in order
        out.append(
            Outcome(target=t, mode=mode.mode if mode else "", value=value, baseline=base, ratio=ratio,
                    passed=None if ratio is None else t.met(ratio), note=note)  # fmt: skip
        )
    return out


def render(outcomes: Sequence[Outcome], console: Console) -> None:
    mode = next((o.mode for o in outcomes if o.mode), "")
    where = "sandbox mode" if mode == SANDBOX else f"{mode} mode (targets are stated for sandbox mode)"
    met = sum(1 for o in outcomes if o.passed)
    measured = sum(1 for o in outcomes if o.passed is not None)
    table = Table(
        title=f"Lamina benchmark: targets (issue #4, PERFORMANCE.md Part 3), {where}: {met} of {measured} measured met",
        title_justify="left",
        caption="Each ratio divides a Lamina figure by a limit measured in this run on this machine. A miss is "
        "reported, not an error.",
        caption_justify="left",
    )
    for column in ("figure", "value", "baseline", "ratio", "target", "pass"):
        table.add_column(column, justify="left" if column in ("figure", "target", "pass") else "right")
    for o in outcomes:
        t = o.target
        value = fmt(getattr(o.value, t.field), o.value.unit) if o.value else "[dim]not measured[/]"
        base = f"{fmt(getattr(o.baseline, t.baseline_field), o.baseline.unit)}" if o.baseline else ""
        if o.passed is None:
            verdict = f"[dim]– {escape(o.note)}[/]"
        else:
            verdict = "[green]✓[/]" if o.passed else "[red]✗[/]"
        table.add_row(
            f"{t.goal} {t.label}",
            value,
            base,
            f"{o.ratio:.2f}×" if o.ratio is not None else "",
            t.text,
            verdict,
        )
    console.print(table)


# --- the peer, side by side -----------------------------------------------------------------

PEER = "peer_python_lambda_local"
COMPARISON: tuple[tuple[str, str, str], ...] = (
    # (mode or "" for a baseline, figure, label)
    ("", PEER, "python-lambda-local: one invoke (fresh process, no isolation)"),
    (SANDBOX, "warm_invoke", "Lamina sandbox: warm invoke"),
    ("process", "warm_invoke", "Lamina process: warm invoke"),
    (SANDBOX, "cold_start", "Lamina sandbox: cold start, python3.11"),
    (SANDBOX, "cold_start_custom", "Lamina sandbox: cold start, provided.al2023"),
    ("process", "cold_start", "Lamina process: cold start, python3.11"),
)


def comparison(baselines: Mapping[str, Figure], modes: Mapping[str, ModeResult]) -> list[dict[str, Any]]:
    peer = baselines.get(PEER)
    rows = []
    for mode, name, label in COMPARISON:
        source = baselines if not mode else modes[mode].figures if mode in modes else {}
        fig = source.get(name)
        if fig is None:
            continue
        rows.append(
            {
                "label": label,
                "mode": mode or None,
                "figure": name,
                "n": fig.n,
                "p50": fig.p50,
                "p99": fig.p99,
                "peer_p50_over_this": peer.p50 / fig.p50 if peer else None,
            }
        )
    return rows


def render_comparison(rows: Sequence[dict[str, Any]], console: Console) -> None:
    if not rows:
        return
    table = Table(
        title="Side by side: the same no-op handler and event, python-lambda-local and Lamina",
        title_justify="left",
        caption="python-lambda-local starts a new process for every invoke; Lamina keeps environments warm "
        "and starts new ones only when none is idle (cold start).",
        caption_justify="left",
    )
    for column in ("invoke", "p50", "p99", "n", "python-lambda-local p50 ÷ this"):
        table.add_column(column, justify="left" if column == "invoke" else "right")
    for r in rows:
        speed = r["peer_p50_over_this"]
        table.add_row(r["label"], fmt(r["p50"], "ms"), fmt(r["p99"], "ms"), str(r["n"]), f"{speed:,.1f}×" if speed else "")
    console.print(table)
