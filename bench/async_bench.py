"""Asynchronous invocation: how fast Event invokes are accepted, how fast they run, and that a
SIGKILL loses none. `python bench/async_bench.py [--isolation sandbox|process] [--seconds 5]
[--connections 64] [--events 2000] [--json PATH]`; runs on its own (nothing of run.py needed).

Each scenario gets a server of its own (lamina.testing.running_server, a fresh data directory):

1. accept: wrk (-t1, --connections, --seconds) POSTs ~80-byte events with
   `X-Amz-Invocation-Type: Event` to a function held at reserved concurrency 1 that sleeps a
   second, so the dispatcher hardly runs: the queue's own acceptance rate (202s per second; each
   202 is sent after the commit holding its event), with latency percentiles and how many events
   shared a commit (group commit).
2. accept+run: the same load on a no-op function, the dispatcher running it meanwhile: the
   acceptance rate while events execute on the same host, then how fast the backlog drains.
3. kill: `--events` events from 8 keep-alive threads; after half are accepted the server is
   SIGKILLed, restarted on the same data directory and sent the rest; then every accepted event
   must have run (at least once), and been recorded done by its OnSuccess destination exactly
   once. Always in process isolation, so handlers can append to host files.

Without wrk (scripts/setup.sh bench installs it) scenarios 1 and 2 use Python threads as the
client, which saturate sooner; the table says which. A figure below its target is reported, not
an error; a broken guarantee in scenario 3 makes the exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's lamina, for the client and the server alike

from lamina.testing import RunningServer, data_directory, deploy, running_server, send_events  # noqa: E402

TARGET_ACCEPTED_PER_S = 5000
BODY = b'{"id":12345,"name":"lamina-bench","payload":"abcdefghijklmnopqrstuvwxyz0123456789"}'
ACCOUNT_ARN = "arn:aws:lambda:us-east-1:000000000000:function:"
SLEEPER = "import time\n\ndef handler(e, c):\n    time.sleep(1)\n"
NOOP = "def handler(e, c):\n    return e\n"
WORKER = """\
import os, time

def handler(event, context):
    fd = os.open(os.environ["RUNS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, ("%s %.6f\\n" % (context.aws_request_id, time.time())).encode())
    finally:
        os.close(fd)
"""
RECORDER = """\
import os

def handler(event, context):
    rc = event["requestContext"]
    fd = os.open(os.environ["DONE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, ("%s %s %s\\n" % (rc["requestId"], context.aws_request_id, rc["condition"])).encode())
    finally:
        os.close(fd)
"""
WRK_SCRIPT = """wrk.method = "POST"
wrk.body = [==[%(body)s]==]
wrk.headers["X-Amz-Invocation-Type"] = "Event"
done = function(summary, latency, requests)
  io.write(string.format('WRK_JSON {"requests":%%d,"duration_us":%%d,"non_2xx":%%d,"errors":%%d,' ..
    '"p50_us":%%d,"p99_us":%%d,"max_us":%%d}\\n', summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def server(data_dir: Path, isolation: str) -> Any:
    return running_server(data_dir, isolation=isolation, env={"PYTHONPATH": str(REPO)})


def events_stats(srv: RunningServer) -> dict[str, Any]:
    with urllib.request.urlopen(srv.endpoint + "/lamina/v1/events", timeout=30) as r:
        stats: dict[str, Any] = json.loads(r.read())
    return stats


def load(srv: RunningServer, function: str, *, seconds: int, connections: int) -> dict[str, Any]:
    """Event invokes for `seconds`: wrk if installed, else Python threads."""
    url = f"{srv.endpoint}/2015-03-31/functions/{function}/invocations"
    before = events_stats(srv)
    wrk = shutil.which("wrk")
    if wrk is not None:
        with tempfile.TemporaryDirectory(prefix="lamina-async-bench-") as tmp:
            script = Path(tmp) / "event.lua"
            script.write_text(WRK_SCRIPT % {"body": BODY.decode()})
            argv = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), url]
            out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
        line = next((x for x in out.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
        if line is None:
            raise RuntimeError(f"wrk failed: {out.stdout[-300:]} {out.stderr[-300:]}")
        w = json.loads(line.removeprefix("WRK_JSON "))
        elapsed = w["duration_us"] / 1e6
        result = {"client": f"wrk -t1 -c{connections}", "seconds": elapsed, "sent": w["requests"],
                  "accepted": w["requests"] - w["non_2xx"], "rejected": w["non_2xx"], "socket_errors": w["errors"],
                  "p50_ms": w["p50_us"] / 1000, "p99_ms": w["p99_us"] / 1000, "max_ms": w["max_us"] / 1000}  # fmt: skip
    else:
        accepted: list[str] = []
        started = time.monotonic()
        threads = min(connections, 32)
        send_events(srv.endpoint, function, count=10**9, threads=threads, accepted=accepted, payload=lambda i: BODY,
                    until=started + seconds)  # fmt: skip
        elapsed = time.monotonic() - started
        result = {"client": f"{threads} Python threads", "seconds": elapsed, "accepted": len(accepted)}
    after = events_stats(srv)
    commits = after["commits"] - before["commits"]
    writes = after["writesCommitted"] - before["writesCommitted"]
    result["accepted_per_s"] = result["accepted"] / result["seconds"]
    result["commits"] = commits
    result["writes_per_commit"] = writes / commits if commits else 0.0
    return result


def drain(srv: RunningServer, *, timeout: float = 600.0) -> dict[str, Any]:
    """Wait until the queue is empty; how fast its events ran meanwhile."""
    start = time.monotonic()
    first = events_stats(srv)
    stats = first
    while stats["queued"] and time.monotonic() - start < timeout:
        time.sleep(0.25)
        stats = events_stats(srv)
    elapsed = time.monotonic() - start
    ran = stats["succeeded"] - first["succeeded"]
    return {"backlog": first["queued"], "seconds": elapsed, "ran": ran, "ran_per_s": ran / elapsed if elapsed else 0.0,
            "left": stats["queued"], "windows": first.get("functions", {})}  # fmt: skip


def scenario_accept(isolation: str, seconds: int, connections: int) -> dict[str, Any]:
    with data_directory("lamina-async-bench-") as data_dir, server(data_dir, isolation) as srv:
        client = srv.client()
        deploy(client, "sleeper", {"app.py": SLEEPER}, Timeout=5)
        client.put_function_concurrency(FunctionName="sleeper", ReservedConcurrentExecutions=1)
        return load(srv, "sleeper", seconds=seconds, connections=connections)


def scenario_accept_and_run(isolation: str, seconds: int, connections: int) -> dict[str, Any]:
    with data_directory("lamina-async-bench-") as data_dir, server(data_dir, isolation) as srv:
        deploy(srv.client(), "noop", {"app.py": NOOP})
        result = load(srv, "noop", seconds=seconds, connections=connections)
        result["drain"] = drain(srv)
        return result


def scenario_kill(events: int) -> dict[str, Any]:
    """Half the events, SIGKILL, restart, the other half; then check every accepted one."""
    with data_directory("lamina-async-bench-") as data_dir, tempfile.TemporaryDirectory(prefix="lamina-async-bench-") as tmp:
        runs, done = Path(tmp) / "runs.log", Path(tmp) / "done.log"
        accepted: list[str] = []
        with server(data_dir, "process") as srv:
            client = srv.client()
            deploy(client, "done", {"app.py": RECORDER}, Environment={"Variables": {"DONE": str(done)}})
            deploy(client, "worker", {"app.py": WORKER}, Environment={"Variables": {"RUNS": str(runs)}})
            client.put_function_event_invoke_config(FunctionName="worker", DestinationConfig={"OnSuccess": {"Destination": ACCOUNT_ARN + "done"}})
            sender = threading.Thread(target=send_events, args=(srv.endpoint, "worker"), kwargs={"count": events, "accepted": accepted})
            sender.start()
            while len(accepted) < events // 2 and sender.is_alive():
                time.sleep(0.002)
            os.kill(srv.process.pid, signal.SIGKILL)
            killed_with = events_in_store(data_dir)
            sender.join(60)
            srv.process.wait(10)
        before_kill = len(accepted)
        restarted = time.monotonic()
        with server(data_dir, "process") as srv:
            send_events(srv.endpoint, "worker", count=events - before_kill, accepted=accepted)
            drained = drain(srv)
        recovery_s = time.monotonic() - restarted
        ran = Counter(line.split()[0] for line in _lines(runs))
        records: dict[str, set[str]] = defaultdict(set)
        for line in _lines(done):
            source, own, _ = line.split()
            records[source].add(own)
        missing = [rid for rid in accepted if rid not in ran]
        unrecorded = [rid for rid in accepted if rid not in records]
        twice = [rid for rid, ids in records.items() if len(ids) > 1]
        return {
            "events": events, "accepted": len(accepted), "accepted_before_kill": before_kill,
            "in_store_at_kill": killed_with, "ran": len(ran), "ran_twice": sum(1 for n in ran.values() if n > 1),
            "never_ran": len(missing), "not_recorded_done": len(unrecorded), "recorded_done_twice": len(twice),
            "seconds_from_restart_to_drained": recovery_s, "drain": drained,
            "ok": not missing and not unrecorded and not twice and drained["left"] == 0,
        }  # fmt: skip


def events_in_store(data_dir: Path) -> int:
    """Events in the queue right after the kill (read from the database file: the server is gone)."""
    import sqlite3

    conn = sqlite3.connect(data_dir / "lamina.db", timeout=10)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    finally:
        conn.close()


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(figure, value, target, notes) for each figure measured."""
    rows: list[tuple[str, str, str, str]] = []
    a = results.get("accept")
    if a:
        rows.append(("accepted Event invokes/s (queue alone)", f"{a['accepted_per_s']:,.0f}", f">= {TARGET_ACCEPTED_PER_S:,}",
                     f"{a['client']}, p50 {a.get('p50_ms', 0):.1f} ms, p99 {a.get('p99_ms', 0):.1f} ms, "
                     f"{a['writes_per_commit']:.0f} events per commit"))  # fmt: skip
    r = results.get("accept_and_run")
    if r:
        rows.append(("accepted Event invokes/s (no-op running alongside)", f"{r['accepted_per_s']:,.0f}", "",
                     f"{r['client']}, p50 {r.get('p50_ms', 0):.1f} ms, p99 {r.get('p99_ms', 0):.1f} ms"))  # fmt: skip
        d = r["drain"]
        rows.append(("backlog drained, events run/s", f"{d['ran_per_s']:,.0f}", "", f"{d['backlog']:,} events in {d['seconds']:.1f} s"))
    k = results.get("kill")
    if k:
        rows.append(("SIGKILL mid-load: accepted events lost", str(k["never_ran"]), "0",
                     f"{k['accepted']:,} accepted ({k['accepted_before_kill']:,} before the kill), "
                     f"{k['ran_twice']} ran twice, {k['recorded_done_twice']} recorded done twice"))  # fmt: skip
    return rows


def table(results: dict[str, Any]) -> str:
    rows_ = [("figure", "value", "target", "notes"), *rows(results)]
    widths = [max(len(row[i]) for row in rows_) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows_)


def outcomes(results: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """The #5 targets: (figure, value, target, met) for each scenario that ran."""
    rows: list[tuple[str, str, str, bool]] = []
    a = results.get("accept")
    if a:
        rows.append(("accepted Event invokes/s", f"{a['accepted_per_s']:,.0f}", f">= {TARGET_ACCEPTED_PER_S:,}",
                     a["accepted_per_s"] >= TARGET_ACCEPTED_PER_S))  # fmt: skip
    k = results.get("kill")
    if k:
        rows.append(("accepted events lost to SIGKILL", str(k["never_ran"]), "0", k["never_ran"] == 0))
        rows.append(("recorded done twice by its destination", str(k["recorded_done_twice"]), "0",
                     k["recorded_done_twice"] == 0))  # fmt: skip
    return rows


def render(results: dict[str, Any], console: Any) -> None:
    """The figures and the targets as rich tables (run.py's report)."""
    from rich.table import Table

    figures = Table(title=f"Asynchronous invocation ({results.get('isolation', '?')} mode for the load scenarios)")
    for column in ("figure", "value", "target", "notes"):
        figures.add_column(column)
    for row in rows(results):
        figures.add_row(*row)
    console.print(figures)
    goals = Table(title="Asynchronous invocation targets (#5)")
    for column in ("figure", "value", "target", "met"):
        goals.add_column(column)
    for figure, value, target, met in outcomes(results):
        goals.add_row(figure, value, target, "[green]yes[/]" if met else "[red]no[/]")
    console.print(goals)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--isolation", default="sandbox", choices=("sandbox", "process"), help="for scenarios 1 and 2")
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--events", type=int, default=2000, help="events of the SIGKILL scenario")
    p.add_argument("--scenarios", default="accept,accept_and_run,kill")
    p.add_argument("--json", metavar="PATH", help="write every figure here")
    args = p.parse_args()
    chosen = args.scenarios.split(",")
    results: dict[str, Any] = {"isolation": args.isolation, "cpus": os.cpu_count()}
    if "accept" in chosen:
        results["accept"] = scenario_accept(args.isolation, args.seconds, args.connections)
    if "accept_and_run" in chosen:
        results["accept_and_run"] = scenario_accept_and_run(args.isolation, args.seconds, args.connections)
    if "kill" in chosen:
        results["kill"] = scenario_kill(args.events)
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if results.get("kill", {"ok": True})["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
