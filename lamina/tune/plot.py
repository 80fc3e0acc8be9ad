"""The tuning report as a PNG: duration (p50, with the p50-p90 band) and cost against memory.

matplotlib is optional (the `bench` extra); without it `PlotUnavailable` says how to get it.
"""

from __future__ import annotations

from pathlib import Path

from lamina.tune.report import TuneReport


class PlotUnavailable(Exception):
    pass


def write_png(report: TuneReport, path: Path, *, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotUnavailable(
            "matplotlib is not installed, so no plot: pip install 'matplotlib==3.11.2' "
            "(or install Lamina with its bench extra)"
        ) from exc

    memory = [s.memory_mb for s in report.sizes]
    fig, duration_ax = plt.subplots(figsize=(8, 4.5))
    try:
        duration_ax.fill_between(memory, [s.p50_ms for s in report.sizes], [s.p90_ms for s in report.sizes],
                                 color="tab:blue", alpha=0.2, label="p50-p90")  # fmt: skip
        duration_ax.plot(memory, [s.p50_ms for s in report.sizes], "o-", color="tab:blue", label="p50 duration")
        duration_ax.set_xscale("log", base=2)
        duration_ax.set_xticks(memory, [str(m) for m in memory])
        duration_ax.minorticks_off()
        duration_ax.set_xlabel("memory (MB)")
        duration_ax.set_ylabel("warm duration (ms)", color="tab:blue")
        cost_ax = duration_ax.twinx()
        cost_ax.plot(memory, [s.cost_per_million_usd for s in report.sizes], "s--", color="tab:orange",
                     label="cost per 1M invocations")  # fmt: skip
        cost_ax.set_ylabel("USD per 1M invocations (estimate)", color="tab:orange")
        for size, label, ax, value in (
            (report.cheapest, "cheapest", cost_ax, report.cheapest.cost_per_million_usd),
            (report.fastest, "fastest", duration_ax, report.fastest.p50_ms),
        ):
            ax.annotate(label, (size.memory_mb, value), textcoords="offset points", xytext=(0, 10), ha="center")
        lines = duration_ax.get_legend_handles_labels()
        more = cost_ax.get_legend_handles_labels()
        duration_ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper center")
        duration_ax.set_title(title)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
