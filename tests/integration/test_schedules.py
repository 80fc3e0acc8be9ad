"""Schedules against a real server: the admin API and its errors, Scheduled Events delivered
through the durable queue (LAMINA_SCHEDULE_TIME_SCALE makes rate(1 minute) fire every second),
persistence and the rule for fires missed while the server was down, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lamina.testing import RunningServer, deploy, read_logs, running_server

ACCOUNT, REGION = "000000000000", "us-east-1"
ECHO = """\
import json

def handler(event, context):
    print("EVENT " + json.dumps(event))
"""
SCALE = 60  # LAMINA_SCHEDULE_TIME_SCALE: a minute of a rate() takes a second


def call(endpoint: str, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, JSON body or {}, headers) of an admin-API request."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(endpoint + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw, status, headers = r.read(), r.status, {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as exc:
        raw, status, headers = exc.read(), exc.code, {k.lower(): v for k, v in exc.headers.items()}
    return status, (json.loads(raw) if raw else {}), headers


def add(endpoint: str, **body: Any) -> dict[str, Any]:
    status, doc, _ = call(endpoint, "POST", "/lamina/v1/schedules", body)
    assert status == 201, doc
    return doc


def iso(t: float) -> str:
    return datetime.fromtimestamp(int(t), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def wait_events(endpoint: str, function: str, count: int, *, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The first `count` events the function printed (long-polling its log)."""
    deadline = time.monotonic() + timeout
    cursor, seen = 0, []
    while time.monotonic() < deadline:
        events, cursor = read_logs(endpoint, function, cursor=cursor, wait=max(1, min(5, int(deadline - time.monotonic()))))
        seen += [json.loads(e["message"].split("EVENT ", 1)[1]) for e in events if "EVENT " in e["message"]]
        if len(seen) >= count:
            return seen
    raise TimeoutError(f"{function} got {len(seen)} of {count} events in {timeout} s: {seen}")


def stats(endpoint: str) -> dict[str, Any]:
    return call(endpoint, "GET", "/lamina/v1/events")[1]["schedules"]  # type: ignore[no-any-return]


# --- the API -----------------------------------------------------------------------------------


def test_schedule_api_and_its_errors(server: RunningServer, lambda_client: Any, fname: str) -> None:
    ep = server.endpoint
    deploy(lambda_client, fname, {"app.py": ECHO})
    name = f"{fname}-daily"
    doc = add(ep, Name=name, ScheduleExpression="cron(0 12 * * ? *)", FunctionName=fname)
    assert doc["Arn"] == f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}"
    assert doc["State"] == "ENABLED" and doc["FunctionArn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{fname}"
    assert doc["LastFireAt"] is None
    nxt = datetime.fromtimestamp(doc["NextFireAt"], tz=UTC)
    assert (nxt.hour, nxt.minute, nxt.second) == (12, 0, 0) and 0 < doc["NextFireAt"] - time.time() <= 86400

    def error(body: dict[str, Any], status: int, kind: str, says: str, method: str = "POST", path: str = "/lamina/v1/schedules") -> None:
        got, doc, headers = call(ep, method, path, body)
        assert (got, headers.get("x-amzn-errortype", "").split(":")[0]) == (status, kind), doc
        assert says in doc["message"], doc["message"]

    base = {"Name": f"{fname}-x", "FunctionName": fname}
    error({**base, "ScheduleExpression": "rate(1 minutes)"}, 400, "ValidationException",
          "Parameter ScheduleExpression is not valid. A value of 1 takes a singular unit")  # fmt: skip
    error({**base, "ScheduleExpression": "cron(0 12 * * * *)"}, 400, "ValidationException",
          "Exactly one of the Day-of-month and Day-of-week fields must be '?'")  # fmt: skip
    error({**base, "ScheduleExpression": "cron(0 25 * * ? *)"}, 400, "ValidationException", "The Hours field '25'")
    error({**base, "ScheduleExpression": "rate(5 minutes)", "Name": "bad name"}, 400, "ValidationException",
          "Value 'bad name' at 'name' failed to satisfy constraint")  # fmt: skip
    error({**base, "ScheduleExpression": "rate(5 minutes)", "Input": "{not json"}, 400, "ValidationException",
          "Parameter Input is not valid JSON text")  # fmt: skip
    error({"Name": f"{fname}-x", "FunctionName": fname}, 400, "ValidationException",
          "Value null at 'scheduleExpression' failed to satisfy constraint: Member must not be null")  # fmt: skip
    error({**base, "ScheduleExpression": "rate(5 minutes)", "FunctionName": fname + "-nope"}, 404, "ResourceNotFoundException",
          f"Function not found: arn:aws:lambda:{REGION}:{ACCOUNT}:function:{fname}-nope")  # fmt: skip
    error({**base, "ScheduleExpression": "rate(5 minutes)", "Qualifier": "7"}, 404, "ResourceNotFoundException",
          f"function:{fname}:7")  # fmt: skip
    error({**base, "Name": name, "ScheduleExpression": "rate(5 minutes)"}, 409, "ResourceConflictException",
          f"Schedule {name} already exists.")  # fmt: skip
    error({}, 404, "ResourceNotFoundException", f"Schedule {fname}-none does not exist.", "GET", f"/lamina/v1/schedules/{fname}-none")
    error({"State": "PAUSED"}, 400, "ValidationException", "Member must satisfy enum value set: [ENABLED, DISABLED]",
          "POST", f"/lamina/v1/schedules/{name}")  # fmt: skip

    # disabled: no next fire; enabled again: counts from then
    status, doc, _ = call(ep, "POST", f"/lamina/v1/schedules/{name}", {"State": "DISABLED"})
    assert (status, doc["State"], doc["NextFireAt"]) == (200, "DISABLED", None)
    status, doc, _ = call(ep, "POST", f"/lamina/v1/schedules/{name}", {"State": "ENABLED"})
    assert (status, doc["State"]) == (200, "ENABLED") and doc["NextFireAt"] is not None

    # an alias target, by ARN, with an Input
    lambda_client.publish_version(FunctionName=fname)
    lambda_client.create_alias(FunctionName=fname, Name="live", FunctionVersion="1")
    other = add(ep, Name=f"{fname}-live", ScheduleExpression="rate(7 days)",
                FunctionName=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{fname}:live", Input='{"k": 1}')  # fmt: skip
    assert (other["FunctionArn"].rsplit(":", 1)[1], other["Qualifier"], other["Input"]) == ("live", "live", '{"k": 1}')
    assert abs(other["NextFireAt"] - other["CreatedAt"] - 7 * 86400) < 0.01  # a rate counts from creation

    status, listing, _ = call(ep, "GET", f"/lamina/v1/schedules?FunctionName={fname}")
    assert [s["Name"] for s in listing["Schedules"]] == sorted([name, f"{fname}-live"])
    status, _, _ = call(ep, "DELETE", f"/lamina/v1/schedules/{fname}-live")
    assert status == 204
    assert call(ep, "GET", f"/lamina/v1/schedules/{fname}-live")[0] == 404

    # deleting the function deletes its schedules
    lambda_client.delete_function(FunctionName=fname)
    assert call(ep, "GET", f"/lamina/v1/schedules/{name}")[0] == 404
    assert all(s["FunctionName"] != fname for s in call(ep, "GET", "/lamina/v1/schedules")[1]["Schedules"])


# --- fires -------------------------------------------------------------------------------------


def test_rate_schedule_delivers_scheduled_events(data_dir: Path, fname: str) -> None:
    env = {"LAMINA_SCHEDULE_TIME_SCALE": str(SCALE)}
    with running_server(data_dir, env=env) as srv:
        client = srv.client()
        deploy(client, fname, {"app.py": ECHO})
        deploy(client, fname + "-in", {"app.py": ECHO})
        sched = add(srv.endpoint, Name="every-minute", ScheduleExpression="rate(1 minute)", FunctionName=fname)
        add(srv.endpoint, Name="with-input", ScheduleExpression="rate(2 minutes)", FunctionName=fname + "-in", Input='{"custom": [1, 2]}')

        events = wait_events(srv.endpoint, fname, 3)[:3]
        created = sched["CreatedAt"]
        # on time: created + 1 s, + 2 s, + 3 s (a minute each, scaled), in order, each once
        assert [e["time"] for e in events] == [iso(created + k * 60 / SCALE) for k in (1, 2, 3)]
        for e in events:
            assert e == {
                "version": "0", "id": e["id"], "detail-type": "Scheduled Event", "source": "aws.events",
                "account": ACCOUNT, "time": e["time"], "region": REGION,
                "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/every-minute"], "detail": {},
            }  # fmt: skip
            uuid.UUID(e["id"])
        assert len({e["id"] for e in events}) == 3
        assert wait_events(srv.endpoint, fname + "-in", 1)[0] == {"custom": [1, 2]}  # Input replaces the event

        status, doc, _ = call(srv.endpoint, "GET", "/lamina/v1/schedules/every-minute")
        assert doc["LastFireAt"] >= created + 3 and doc["NextFireAt"] > doc["LastFireAt"]
        assert stats(srv.endpoint)["fired"] >= 4

        # removed: it fires no more (two more periods pass without an event)
        assert call(srv.endpoint, "DELETE", "/lamina/v1/schedules/every-minute")[0] == 204
        before = len(wait_events(srv.endpoint, fname, 0, timeout=5))
        time.sleep(2.5 * 60 / SCALE)  # an absence cannot be awaited: let two periods go by
        assert len(wait_events(srv.endpoint, fname, 0, timeout=5)) <= before + 1  # one may have been under way


def test_missed_fires_run_once_if_young_else_are_skipped(data_dir: Path, fname: str) -> None:
    """Both schedules' fire at created + P passes while the server is down. At restart it is
    P/2... older than 1 s: young for `catch` (default MaximumEventAgeInSeconds: 6 h, scaled 6 min),
    too old for `skip` (60 s, scaled 1 s): one catch-up event for the first, nothing for the second,
    and both go on firing on time."""
    period = 10.0  # rate(10 minutes) at scale 60
    env = {"LAMINA_SCHEDULE_TIME_SCALE": str(SCALE), "LAMINA_ASYNC_TIME_SCALE": "60"}
    catch, skip = fname + "-catch", fname + "-skip"
    with running_server(data_dir, env=env) as srv:
        client = srv.client()
        deploy(client, catch, {"app.py": ECHO})
        deploy(client, skip, {"app.py": ECHO})
        client.put_function_event_invoke_config(FunctionName=skip, MaximumEventAgeInSeconds=60)
        c = add(srv.endpoint, Name="catch", ScheduleExpression="rate(10 minutes)", FunctionName=catch)
        s = add(srv.endpoint, Name="skip", ScheduleExpression="rate(10 minutes)", FunctionName=skip)
    # down past both first fires, by more than 1 s
    missed_by = max(c["CreatedAt"], s["CreatedAt"]) + period + 1.5 - time.time()
    assert missed_by > 0, "the first server took a whole period to stop"
    time.sleep(missed_by)  # the server is down: nothing to wait on but the clock
    with running_server(data_dir, env=env) as srv:
        restarted = time.time()
        assert restarted < c["CreatedAt"] + 2 * period - 1, "too slow a restart for this test's timing"
        caught = wait_events(srv.endpoint, catch, 1, timeout=15)
        assert caught[0]["time"] == iso(c["CreatedAt"] + period)  # the missed fire, once, with its own time
        assert stats(srv.endpoint)["caughtUp"] == 1 and stats(srv.endpoint)["skipped"] == 1
        assert any("schedule skip: its fire at" in line and "skipped" in line for line in srv.output)
        # both go on: the next fire comes on time, and is the first event `skip` ever gets
        first_skip = wait_events(srv.endpoint, skip, 1, timeout=2 * period)[0]
        assert first_skip["time"] == iso(s["CreatedAt"] + 2 * period)
        assert [e["time"] for e in wait_events(srv.endpoint, catch, 2, timeout=2 * period)] == [
            iso(c["CreatedAt"] + period), iso(c["CreatedAt"] + 2 * period)
        ]  # fmt: skip
        status, listing, _ = call(srv.endpoint, "GET", "/lamina/v1/schedules")
        assert {x["Name"] for x in listing["Schedules"]} == {"catch", "skip"}  # persisted


# --- the CLI -----------------------------------------------------------------------------------


def test_cli_schedule_add_ls_rm(server: RunningServer, lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": ECHO})

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lamina", "--endpoint", server.endpoint, "schedule", *args],
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    added = cli("add", fname, "rate(5 minutes)")
    assert added.returncode == 0, added.stderr
    assert f"added {fname}: rate(5 minutes) runs {fname} (next fire " in added.stdout
    named = cli("add", fname, "cron(0 9 ? * MON-FRI *)", "--name", fname + "-weekdays", "--input", '{"a": 1}')
    assert named.returncode == 0, named.stderr
    bad = cli("add", fname, "cron(0 9 * * MON-FRI *)", "--name", fname + "-bad")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "ValidationException: Parameter ScheduleExpression is not valid. Exactly one of the Day-of-month" in bad.stderr

    listed = cli("ls", fname)
    assert listed.returncode == 0, listed.stderr
    lines = [line for line in listed.stdout.splitlines() if fname in line]
    assert len(lines) == 2 and "NEXT FIRE (UTC)" in listed.stdout
    assert "rate(5 minutes)" in lines[0] and "ENABLED" in lines[0] and "(in 4m" in lines[0]
    assert "cron(0 9 ? * MON-FRI *)" in lines[1] and " 09:00:00" in lines[1]

    disabled = cli("disable", fname + "-weekdays")
    assert disabled.returncode == 0 and f"disabled {fname}-weekdays (no fire to come)" in disabled.stdout
    assert "DISABLED" in [line for line in cli("ls", fname).stdout.splitlines() if "-weekdays" in line][0]
    enabled = cli("enable", fname + "-weekdays")
    assert enabled.returncode == 0 and f"enabled {fname}-weekdays (next fire " in enabled.stdout

    removed = cli("rm", fname)
    assert removed.returncode == 0 and f"deleted schedule {fname}" in removed.stdout
    missing = cli("rm", fname)
    assert missing.returncode == 1 and f"ResourceNotFoundException: Schedule {fname} does not exist." in missing.stderr
    assert [line for line in cli("ls", fname).stdout.splitlines() if fname in line][0].startswith(fname + "-weekdays")


# --- a crash -----------------------------------------------------------------------------------

RECORDER = """\
import json, os

def handler(event, context):
    with open(os.environ["FIRES"], "a") as f:  # one write of a short line: O_APPEND keeps lines whole
        f.write(json.dumps({"time": event["time"], "id": event["id"]}) + "\\n")
"""


def test_sigkill_neither_loses_nor_doubles_a_fire(data_dir: Path, tmp_path: Path, fname: str) -> None:
    """Fires every second; the server is SIGKILLed and restarted. Each scheduled time runs with
    one event id at most (a re-run after the crash keeps its id: at-least-once delivery), every
    fire before the crash runs, and the time the server was down is one catch-up fire."""
    fires = tmp_path / "fires.jsonl"
    env = {"LAMINA_SCHEDULE_TIME_SCALE": str(SCALE)}

    def recorded() -> list[dict[str, str]]:
        return [json.loads(line) for line in fires.read_text().splitlines()] if fires.exists() else []

    def wait_recorded(n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len({r["time"] for r in recorded()}) < n:  # the handler writes a host file: poll it
            assert time.monotonic() < deadline, f"{len(recorded())} fires recorded in {timeout} s"
            time.sleep(0.05)

    with running_server(data_dir, env=env, isolation="process") as srv:
        deploy(srv.client(), fname, {"app.py": RECORDER}, Environment={"Variables": {"FIRES": str(fires)}})
        created = add(srv.endpoint, Name="tick", ScheduleExpression="rate(1 minute)", FunctionName=fname)["CreatedAt"]
        wait_recorded(4, 20)
        srv.process.kill()
        srv.process.wait(10)
    before = len({r["time"] for r in recorded()})
    with running_server(data_dir, env=env, isolation="process"):
        wait_recorded(before + 4, 30)
    ids: dict[str, set[str]] = {}
    for r in recorded():
        ids.setdefault(r["time"], set()).add(r["id"])
    assert all(len(v) == 1 for v in ids.values()), ids  # no time fired twice
    ks = sorted(round(datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp() - int(created)) for t in ids)
    # 1, 2, ... up to the crash, then (after one gap at most: the downtime, coalesced) on again
    gaps = [(a, b) for a, b in zip(ks, ks[1:]) if b != a + 1]
    assert ks[0] == 1 and len(gaps) <= 1, ks


def test_up_refuses_a_non_positive_schedule_time_scale(data_dir: Path) -> None:
    import os

    from lamina.testing import free_port

    done = subprocess.run([sys.executable, "-m", "lamina", "up", "--port", str(free_port()), "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "LAMINA_SCHEDULE_TIME_SCALE": "0"})  # fmt: skip
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "LAMINA_SCHEDULE_TIME_SCALE must be a positive number, not 0.0" in done.stderr
