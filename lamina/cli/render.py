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

from lamina.cli.client import FailedEvent, FunctionSummary, LogEvent


def size(n: int) -> str:
    """Bytes as a short human size: 812 B, 4.2 KiB, 12.0 MiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024 or unit == "MiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def functions_table(functions: Iterable[FunctionSummary]) -> Table:
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
            Text(fn.runtime),
            f"{fn.memory_mb} MB",
            f"{fn.timeout_s} s",
            Text(fn.last_modified),
            size(fn.code_size),
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


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def launch_config(host: str, port: int, local_root: str, remote_root: str) -> str:
    """A VS Code launch.json attach configuration for a debug session (issue #7)."""
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
