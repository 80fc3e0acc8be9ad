"""How CLI output looks: rich tables and single lines built from the client's typed values.

Everything here returns a renderable and prints nothing, so commands choose the stream. Text taken
from the server (log messages, names) is wrapped in `Text`, never parsed as rich markup.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime

from rich.table import Table
from rich.text import Text

from lamina.build import BuildResult
from lamina.cli.client import (
    FailedEvent, FunctionSummary, LayerSummary, LogEvent, RuntimeCatalogView, RuntimeRow, ScheduleSummary,
)  # fmt: skip
from lamina.tune.report import TuneReport


def size(n: int) -> str:
    """Bytes as a short human size: 812 B, 4.2 KiB, 12.0 MiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024 or unit == "MiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


_PHASE_STYLE = {"supported": "green", "deprecated": "yellow", "create-blocked": "red", "update-blocked": "red"}


def functions_table(functions: Iterable[FunctionSummary], runtimes: dict[str, RuntimeRow] | None = None) -> Table:
    """Functions; one on a deprecated runtime has it marked with its phase (from `runtimes`)."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("NAME", no_wrap=True)
    table.add_column("RUNTIME", no_wrap=True)
    table.add_column("MEMORY", justify="right", no_wrap=True)
    table.add_column("TIMEOUT", justify="right", no_wrap=True)
    table.add_column("LAST MODIFIED", no_wrap=True)
    table.add_column("CODE SIZE", justify="right", no_wrap=True)
    for fn in sorted(functions, key=lambda f: f.name):
        table.add_row(
            Text(fn.name, style="cyan"),
            _runtime_cell(fn.runtime, (runtimes or {}).get(fn.runtime)),
            f"{fn.memory_mb} MB",
            f"{fn.timeout_s} s",
            Text(fn.last_modified),
            size(fn.code_size),
        )
    return table


def _runtime_cell(runtime: str, row: RuntimeRow | None) -> Text:
    if row is None or not row.deprecated:
        return Text(runtime)
    return Text.assemble(runtime, " ", (f"({row.phase})", _PHASE_STYLE.get(row.phase, "yellow")))


def runtimes_table(view: RuntimeCatalogView) -> Table:
    """The catalog: lifecycle phase on the server's today, dates, and what runs here."""
    table = Table(box=None, header_style="bold", pad_edge=False, title=f"runtimes on {view.today}", title_justify="left")
    table.add_column("RUNTIME", no_wrap=True)
    table.add_column("STATUS", no_wrap=True)
    table.add_column("DEPRECATION", no_wrap=True)
    table.add_column("BLOCK CREATE", no_wrap=True)
    table.add_column("BLOCK UPDATE", no_wrap=True)
    table.add_column("HERE")
    for r in view.runtimes:
        if r.versions:
            current = r.versions[0]
            here = Text.assemble((current.interpreter or "own bootstrap", "cyan"), f"  {current.name}  {current.arn}")
            if len(r.versions) > 1:
                here.append(f"  (+{len(r.versions) - 1} older installed)", style="dim")
        else:
            here = Text("-", style="dim")
        table.add_row(
            Text(r.identifier, style="bold" if r.versions else ""),
            Text(r.phase, style=_PHASE_STYLE.get(r.phase, "")),
            r.deprecation or "-",
            r.block_create or "-",
            r.block_update or "-",
            here,
        )
    return table


def deploy_summary(fn: FunctionSummary, *, created: bool) -> Text:
    """One line: what was deployed, where it stands now."""
    state_style = "green" if fn.state == "Active" else "yellow"
    return Text.assemble(
        ("created " if created else "updated ", "bold"),
        (fn.name, "cyan"),
        f"  version {fn.version}  sha256 {fn.code_sha256[:12]}  {size(fn.code_size)}  ",
        (fn.state or "?", state_style),
    )


def layers_table(layers: Iterable[LayerSummary]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("NAME", no_wrap=True)
    table.add_column("VERSION", justify="right", no_wrap=True)
    table.add_column("RUNTIMES", no_wrap=True)
    table.add_column("CREATED", no_wrap=True)
    table.add_column("ARN", no_wrap=True)
    for layer in sorted(layers, key=lambda x: x.name):
        table.add_row(
            Text(layer.name, style="cyan"),
            str(layer.version),
            Text(", ".join(layer.runtimes) or "-"),
            Text(layer.created),
            Text(layer.arn),
        )
    return table


def layer_summary(layer: LayerSummary) -> Text:
    """One line: the version just published."""
    return Text.assemble(
        ("published ", "bold"),
        (layer.arn, "cyan"),
        f"  sha256 {layer.code_sha256[:12]}  {size(layer.code_size or 0)}",
    )


def log_line(event: LogEvent) -> Text:
    """`<ISO time> <message>`, the time dim and in UTC, the message's trailing newline dropped."""
    when = datetime.fromtimestamp(event.timestamp_ms / 1000, tz=UTC)
    return Text.assemble((when.isoformat(timespec="milliseconds"), "dim"), " ", event.message.rstrip("\n"))


def payload(raw: bytes) -> str:
    """An invoke's response body for the terminal: indented if it is JSON, else decoded as is."""
    text = raw.decode("utf-8", "replace")
    try:
        decoded = json.loads(raw)
    except ValueError:
        return text
    return json.dumps(decoded, indent=2, ensure_ascii=False)


def failed_events_table(events: Iterable[FailedEvent]) -> Table:
    """Failed events: when, why, how often it ran, its last error and the start of its payload."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("REQUEST ID", no_wrap=True)
    table.add_column("FAILED (UTC)", no_wrap=True)
    table.add_column("CONDITION", no_wrap=True)
    table.add_column("ATTEMPTS", justify="right", no_wrap=True)
    table.add_column("ERROR")
    table.add_column("PAYLOAD")
    for e in events:
        when = datetime.fromtimestamp(e.failed_at, tz=UTC).isoformat(timespec="seconds")
        table.add_row(Text(e.request_id, style="cyan"), Text(when), Text(e.condition, style="red"), str(e.attempts),
                      Text(_shorten(e.error, 80)), Text(_shorten(e.payload, 60), style="dim"))  # fmt: skip
    return table


def schedules_table(schedules: Iterable[ScheduleSummary], *, now: float) -> Table:
    """Schedules: what runs when; times in UTC, the next fire also as "in 4m 10s"."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("NAME", no_wrap=True)
    table.add_column("FUNCTION", no_wrap=True)
    table.add_column("EXPRESSION", no_wrap=True)
    table.add_column("STATE", no_wrap=True)
    table.add_column("NEXT FIRE (UTC)", no_wrap=True)
    table.add_column("LAST FIRE (UTC)", no_wrap=True)
    for x in schedules:
        function = x.function_arn.split(":function:", 1)[-1]
        if x.next_fire_at is None:
            nxt = Text("never" if x.state == "ENABLED" else "-", style="dim")
        else:
            nxt = Text.assemble(_utc(x.next_fire_at), (f"  ({_until(x.next_fire_at - now)})", "dim"))
        last = Text(_utc(x.last_fire_at)) if x.last_fire_at is not None else Text("-", style="dim")
        state = Text(x.state, style="green" if x.state == "ENABLED" else "yellow")
        table.add_row(Text(x.name, style="cyan"), Text(function), Text(x.expression), state, nxt, last)
    return table


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _until(seconds: float) -> str:
    """A delay as "in 4m 10s" (or "due" when it has come)."""
    if seconds <= 0:
        return "due"
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m"), (s, "s")) if v][:2]
    return "in " + (" ".join(parts) or "<1s")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def build_summary(result: BuildResult) -> Text:
    """One line: where the build is, and whether the installer ran or the cache answered."""
    how = ("dependencies from cache", "green") if result.cached else (f"dependencies installed with {result.ecosystem.installer}", "yellow")
    return Text.assemble(("built ", "bold"), (str(result.output), "cyan"), "  ", how,
                         f" (key {result.cache_key[:12]})  {result.seconds:.2f} s")  # fmt: skip


def tune_table(report: TuneReport) -> Table:
    """Per memory size: the cold start, the warm distribution, GB-s and cost per million."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for title in ("MEMORY", "COLD", "WARM N", "P50", "P90", "MAX", "GB-S/INVOKE", "USD/1M (EST.)"):
        table.add_column(title, justify="right", no_wrap=True)
    for s in report.sizes:
        marks = [m for m, chosen in (("cheapest", report.cheapest), ("fastest", report.fastest)) if chosen is s]
        table.add_row(
            Text(f"{s.memory_mb} MB", style="cyan" if marks else ""),
            f"{s.cold_ms:.1f} ms",
            str(s.warm_count),
            f"{s.p50_ms:.1f} ms",
            f"{s.p90_ms:.1f} ms",
            f"{s.max_ms:.1f} ms",
            f"{s.gb_seconds:.6f}",
            f"{s.cost_per_million_usd:.4f}",
        )
    return table


def tune_verdict(report: TuneReport) -> Text:
    c, f = report.cheapest, report.fastest
    return Text.assemble(
        ("cheapest: ", "bold"), (f"{c.memory_mb} MB", "cyan"), f" (${c.cost_per_million_usd:.4f} per 1M, p50 {c.p50_ms:.1f} ms)   ",
        ("fastest: ", "bold"), (f"{f.memory_mb} MB", "cyan"), f" (p50 {f.p50_ms:.1f} ms, ${f.cost_per_million_usd:.4f} per 1M)",
    )  # fmt: skip


def launch_config(host: str, port: int, local_root: str, remote_root: str, runtime: str = "python") -> str:
    """A VS Code launch.json attach configuration for a debug session (issue #7): debugpy for
    Python, the Node inspector (VS Code's "node" type) for Node.js."""
    if runtime.startswith("nodejs"):
        return json.dumps(
            {
                "name": "Attach to Lamina",
                "type": "node",
                "request": "attach",
                "address": host,
                "port": port,
                "localRoot": local_root,
                "remoteRoot": remote_root,
                "skipFiles": ["<node_internals>/**", f"{remote_root}/../runtime/**"],
            },
            indent=2,
        )
    return json.dumps(
        {
            "name": "Attach to Lamina",
            "type": "debugpy",
            "request": "attach",
            "connect": {"host": host, "port": port},
            "pathMappings": [{"localRoot": local_root, "remoteRoot": remote_root}],
            "justMyCode": True,
        },
        indent=2,
    )
