"""Nothing lost: 2,000 Event invokes, the server SIGKILLed in the middle (the rest sent to it once
restarted on the same data directory). Every event answered 202 runs at least once; each is recorded as done by
its destination exactly once, and none runs after that record (at-least-once, duplicates only
where an attempt was under way when the server died, as Lambda allows).

Isolation `process`, so handlers can append to host files named in their environment: the
worker writes `<request id> <start time>` per attempt, the OnSuccess destination
`<source request id> <its own request id> <record timestamp>` per record.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

from lamina.testing import deploy, running_server, send_events

EVENTS = 2000
KILL_AFTER = 1000  # accepted events before the SIGKILL; the rest go to the restarted server
ACCOUNT_ARN = "arn:aws:lambda:us-east-1:000000000000:function:"
WORKER = """\
import os, time

def handler(event, context):
    line = "%s %.6f\\n" % (context.aws_request_id, time.time())
    fd = os.open(os.environ["RUNS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return {"i": event["i"]}
"""
RECORDER = """\
import os

def handler(event, context):
    rc = event["requestContext"]
    line = "%s %s %s %s\\n" % (rc["requestId"], context.aws_request_id, event["timestamp"], rc["condition"])
    fd = os.open(os.environ["DONE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
"""


def test_sigkill_loses_no_accepted_event(data_dir: Path, tmp_path: Path, fname: str) -> None:
    runs, done = tmp_path / "runs.log", tmp_path / "done.log"
    recorder = fname + "-done"
    accepted: list[str] = []
    with running_server(data_dir, isolation="process") as srv:
        client = srv.client()
        deploy(client, recorder, {"app.py": RECORDER}, Environment={"Variables": {"DONE": str(done)}})
        deploy(client, fname, {"app.py": WORKER}, Environment={"Variables": {"RUNS": str(runs)}})
        client.put_function_event_invoke_config(FunctionName=fname, DestinationConfig={"OnSuccess": {"Destination": ACCOUNT_ARN + recorder}})
        sender = threading.Thread(target=send_events, args=(srv.endpoint, fname), kwargs={"count": EVENTS, "accepted": accepted})
        sender.start()
        deadline = time.monotonic() + 30
        while len(accepted) < KILL_AFTER and sender.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(srv.process.pid, signal.SIGKILL)  # mid-flight: events queued, claimed, running
        sender.join(30)
        srv.process.wait(10)
    killed_at = len(accepted)
    assert KILL_AFTER <= killed_at < EVENTS, f"{killed_at} accepted when the server was killed"

    with running_server(data_dir, isolation="process") as srv:
        send_events(srv.endpoint, fname, count=EVENTS - killed_at, accepted=accepted)
        assert len(accepted) == EVENTS
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            stats = json.loads(urllib.request.urlopen(srv.endpoint + "/lamina/v1/events", timeout=10).read())
            if stats["queued"] == 0 and _lines(done) and set(accepted) <= set(_column(done, 0)):
                break
            time.sleep(0.2)
        assert stats["queued"] == 0, stats
        assert stats["failed"] == 0, stats

    starts: dict[str, list[float]] = defaultdict(list)
    for line in _lines(runs):
        rid, at = line.split()
        starts[rid].append(float(at))
    missing = [rid for rid in accepted if rid not in starts]
    assert not missing, f"{len(missing)} of {len(accepted)} accepted events never ran: {missing[:5]}"
    records: dict[str, set[str]] = defaultdict(set)
    recorded_at: dict[str, float] = {}
    for line in _lines(done):
        source, own, stamp, condition = line.split()
        assert condition == "Success"
        records[source].add(own)
        recorded_at[source] = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    twice = {rid: ids for rid, ids in records.items() if len(ids) != 1}
    assert not twice, f"events recorded as done more than once: {list(twice.items())[:3]}"
    # no attempt began after the attempt that completed it was recorded (1 ms: the stamp's precision)
    late = [rid for rid, at in starts.items() if rid in recorded_at and max(at) > recorded_at[rid] + 0.001]
    assert not late, f"ran again after being recorded as done: {late[:5]}"
    duplicates = Counter(len(v) for v in starts.values())
    print(f"accepted {len(accepted)}, ran {len(starts)} (attempts per event: {dict(duplicates)})")


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _column(path: Path, i: int) -> list[str]:
    return [line.split()[i] for line in _lines(path)]
