"""Asynchronous invocation end to end (spec 7): retries and their schedule, event age,
destinations and their records, dead letters, throttled events, the failed-events store.

One server for the module, with the test-mode clock at 60x (LAMINA_ASYNC_TIME_SCALE): Lambda's
1-minute retry takes a second and a 60-second MaximumEventAgeInSeconds one second. Destination
functions print the records they get; the tests read them back from the logs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

import lamina
from prometheus_client.parser import text_string_to_metric_families

from lamina.testing import RunningServer, data_directory, deploy, read_logs, running_server

SCALE = 60
ACCOUNT_ARN = "arn:aws:lambda:us-east-1:000000000000:function:"
RECORDER = """\
import json

def handler(event, context):
    custom = context.client_context.custom if context.client_context else None
    print("RECORD " + json.dumps({"event": event, "custom": custom, "id": context.aws_request_id}))
"""
# Fails its first FAILS attempts of each event (counted per request id: retries keep the id),
# then returns what it was given.
FLAKY = """\
import os, time

seen = {}

def handler(event, context):
    n = seen[context.aws_request_id] = seen.get(context.aws_request_id, 0) + 1
    print("ATTEMPT", context.aws_request_id, n, time.time())
    if n <= int(os.environ.get("FAILS", "1000")):
        raise RuntimeError("attempt %d failed" % n)
    time.sleep(float(event.get("sleep", 0)))
    return {"attempts": n, "event": event}
"""


@pytest.fixture(scope="module")
def scaled() -> Iterator[RunningServer]:
    with data_directory() as data_dir, running_server(data_dir, env={"LAMINA_ASYNC_TIME_SCALE": str(SCALE)}) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(scaled: RunningServer) -> Any:
    return scaled.client()


def records(server: RunningServer, recorder: str, count: int, *, timeout: float = 20.0) -> list[dict[str, Any]]:
    """The first `count` things `recorder` printed, waiting for them (server long-poll)."""
    deadline = time.monotonic() + timeout
    found: list[dict[str, Any]] = []
    cursor = 0
    while time.monotonic() < deadline:
        events, cursor = read_logs(server.endpoint, recorder, cursor=cursor, wait=2)
        found += [json.loads(e["message"].split("RECORD ", 1)[1]) for e in events if e["message"].startswith("RECORD ")]
        if len(found) >= count:
            return found
    raise TimeoutError(f"{recorder} got {len(found)} records, not {count}: {found}")


def concurrent_executions(server: RunningServer) -> float:
    with urllib.request.urlopen(server.endpoint + "/lamina/v1/metrics") as r:
        lines = r.read().decode().splitlines()
    return next(float(line.split()[1]) for line in lines if line.startswith("lamina_concurrent_executions "))


def metric(server: RunningServer, name: str, **labels: str) -> float:
    """One sample of GET /lamina/v1/metrics (0 if absent)."""
    with urllib.request.urlopen(server.endpoint + "/lamina/v1/metrics") as r:
        families = text_string_to_metric_families(r.read().decode())
        return next((s.value for f in families for s in f.samples if s.name == name and s.labels == labels), 0.0)


def attempts(server: RunningServer, function: str) -> list[tuple[str, int, float]]:
    events, _ = read_logs(server.endpoint, function)
    out = []
    for e in events:
        if e["message"].startswith("ATTEMPT "):
            _, rid, n, at = e["message"].split()
            out.append((rid, int(n), float(at)))
    return out


def setup(client: Any, name: str, *, fails: int = 1000, recorder: bool = True, **config: Any) -> str:
    """The flaky function `name` (and `name`-rec, recording its destinations); returns the recorder."""
    rec = name + "-rec"
    if recorder:
        deploy(client, rec, {"app.py": RECORDER})
    deploy(client, name, {"app.py": FLAKY}, Environment={"Variables": {"FAILS": str(fails)}}, Timeout=10)
    if config:
        client.put_function_event_invoke_config(FunctionName=name, **config)
    return rec


def on(kind: str, recorder: str) -> dict[str, Any]:
    return {kind: {"Destination": ACCOUNT_ARN + recorder}}


def test_retries_follow_lambdas_schedule_then_succeed(scaled: RunningServer, client: Any, fname: str) -> None:
    rec = setup(client, fname, fails=2, DestinationConfig=on("OnSuccess", fname + "-rec"))
    resp = client.invoke(FunctionName=fname, InvocationType="Event", Payload=b'{"k": "v"}')
    assert resp["StatusCode"] == 202 and resp["Payload"].read() == b""
    rid = resp["ResponseMetadata"]["RequestId"]
    (record,) = records(scaled, rec, 1)
    event = record["event"]
    assert set(event) == {"version", "timestamp", "requestContext", "requestPayload", "responseContext", "responsePayload"}
    assert event["version"] == "1.0" and event["timestamp"].endswith("Z")
    assert event["requestContext"] == {"requestId": rid, "functionArn": f"{ACCOUNT_ARN}{fname}:$LATEST",
                                       "condition": "Success", "approximateInvokeCount": 3}  # fmt: skip
    assert event["requestPayload"] == {"k": "v"}
    assert event["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert event["responsePayload"] == {"attempts": 3, "event": {"k": "v"}}
    # three attempts under the request id the caller got, ~1 min then ~2 min apart (scaled)
    tries = attempts(scaled, fname)
    assert [(r, n) for r, n, _ in tries] == [(rid, 1), (rid, 2), (rid, 3)]
    gaps = [b[2] - a[2] for a, b in zip(tries, tries[1:])]
    assert 60 / SCALE * 0.9 < gaps[0] < 60 / SCALE + 1.5, gaps
    assert 120 / SCALE * 0.9 < gaps[1] < 120 / SCALE + 1.5, gaps


def test_retries_exhausted_go_to_on_failure(scaled: RunningServer, client: Any, fname: str) -> None:
    rec = setup(client, fname, MaximumRetryAttempts=1, DestinationConfig=on("OnFailure", fname + "-rec"))
    rid = client.invoke(FunctionName=fname, InvocationType="Event", Payload=b'[1, 2]')["ResponseMetadata"]["RequestId"]
    (record,) = records(scaled, rec, 1)
    event = record["event"]
    assert event["requestContext"]["condition"] == "RetriesExhausted"
    assert event["requestContext"]["approximateInvokeCount"] == 2
    assert event["requestContext"]["requestId"] == rid
    assert event["requestPayload"] == [1, 2]
    assert event["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert event["responsePayload"]["errorType"] == "RuntimeError"
    assert event["responsePayload"]["errorMessage"] == "attempt 2 failed"
    dropped = metric(scaled, "lamina_async_events_dropped_total", function=fname, condition="RetriesExhausted")
    assert dropped == 1


def test_event_age_exceeded(scaled: RunningServer, client: Any, fname: str) -> None:
    # Each attempt fails; the retry would come a (scaled) minute later, when the event is as
    # old as MaximumEventAgeInSeconds allows: it ends EventAgeExceeded after one attempt.
    rec = setup(client, fname, MaximumEventAgeInSeconds=60, DestinationConfig=on("OnFailure", fname + "-rec"))
    client.invoke(FunctionName=fname, InvocationType="Event", Payload=b"{}")
    (record,) = records(scaled, rec, 1)
    assert record["event"]["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["event"]["requestContext"]["approximateInvokeCount"] == 1
    assert record["event"]["responseContext"]["functionError"] == "Unhandled"


def test_alias_config_and_arn(scaled: RunningServer, client: Any, fname: str) -> None:
    rec = setup(client, fname, fails=0)
    version = client.publish_version(FunctionName=fname)["Version"]
    client.create_alias(FunctionName=fname, Name="live", FunctionVersion=version)
    client.put_function_event_invoke_config(FunctionName=fname, Qualifier="live", DestinationConfig=on("OnSuccess", rec))
    client.invoke(FunctionName=fname, InvocationType="Event", Payload=b'{"via": "latest"}')  # no config: no record
    client.invoke(FunctionName=f"{fname}:live", InvocationType="Event", Payload=b'{"via": "alias"}')
    (record,) = records(scaled, rec, 1)
    deadline = time.monotonic() + 10
    while len(attempts(scaled, fname)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # time enough for a record of the unqualified event, were there one
    assert len(records(scaled, rec, 1)) == 1
    assert record["event"]["requestPayload"] == {"via": "alias"}
    assert record["event"]["requestContext"]["functionArn"] == f"{ACCOUNT_ARN}{fname}:live"
    assert record["event"]["responseContext"]["executedVersion"] == version


def test_dead_letter_gets_the_event(scaled: RunningServer, client: Any, fname: str) -> None:
    dlq = fname + "-dlq"
    deploy(client, dlq, {"app.py": RECORDER})
    deploy(client, fname, {"app.py": FLAKY}, DeadLetterConfig={"TargetArn": ACCOUNT_ARN + dlq})
    client.put_function_event_invoke_config(FunctionName=fname, MaximumRetryAttempts=0)
    rid = client.invoke(FunctionName=fname, InvocationType="Event", Payload=b'{"lost": true}')["ResponseMetadata"]["RequestId"]
    (record,) = records(scaled, dlq, 1)
    assert record["event"] == {"lost": True}  # the original event, as Lambda's SQS message body
    assert record["custom"] == {"RequestID": rid, "ErrorCode": "200", "ErrorMessage": "attempt 1 failed"}
    assert record["id"] != rid


def test_zero_reserved_concurrency_fails_at_once(scaled: RunningServer, client: Any, fname: str) -> None:
    rec = setup(client, fname, fails=0, DestinationConfig=on("OnFailure", fname + "-rec"))
    client.put_function_concurrency(FunctionName=fname, ReservedConcurrentExecutions=0)
    resp = client.invoke(FunctionName=fname, InvocationType="Event", Payload=b'{"z": 0}')
    assert resp["StatusCode"] == 202  # accepted, then failed without an attempt (observed)
    (record,) = records(scaled, rec, 1)
    event = record["event"]
    assert event["requestContext"]["condition"] == "ZeroReservedConcurrency"
    assert event["requestContext"]["approximateInvokeCount"] == 0
    assert event["requestPayload"] == {"z": 0}
    assert "responseContext" not in event and "responsePayload" not in event
    assert attempts(scaled, fname) == []


def test_throttled_events_wait_and_run(scaled: RunningServer, client: Any, fname: str) -> None:
    rec = setup(client, fname, fails=0, DestinationConfig=on("OnSuccess", fname + "-rec"))
    client.put_function_concurrency(FunctionName=fname, ReservedConcurrentExecutions=1)
    started = time.monotonic()
    ids = {client.invoke(FunctionName=fname, InvocationType="Event", Payload=json.dumps({"sleep": 0.4, "i": i}))
           ["ResponseMetadata"]["RequestId"] for i in range(4)}  # fmt: skip
    # meanwhile the one slot is taken: synchronous calls are throttled
    throttled = 0
    for _ in range(10):
        time.sleep(0.05)
        try:
            client.invoke(FunctionName=fname, Payload=b'{"sleep": 0}')
        except client.exceptions.TooManyRequestsException:
            throttled += 1
    assert throttled
    got = records(scaled, rec, 4)
    assert {r["event"]["requestContext"]["requestId"] for r in got} == ids
    # each ran once: waiting for concurrency is not an attempt
    assert all(r["event"]["requestContext"]["approximateInvokeCount"] == 1 for r in got)
    assert time.monotonic() - started >= 4 * 0.4  # one at a time


def test_queue_metrics(scaled: RunningServer, client: Any, fname: str) -> None:
    rec = setup(client, fname, fails=0, DestinationConfig=on("OnSuccess", fname + "-rec"))
    client.put_function_concurrency(FunctionName=fname, ReservedConcurrentExecutions=1)
    for i in range(3):
        client.invoke(FunctionName=fname, InvocationType="Event", Payload=json.dumps({"sleep": 0.5, "i": i}))
    assert metric(scaled, "lamina_async_events_received_total", function=fname) == 3
    # one at a time, half a second each: the other two are still in the queue
    assert metric(scaled, "lamina_async_events_queued", function=fname) >= 2
    records(scaled, rec, 3)
    assert metric(scaled, "lamina_async_events_queued", function=fname) == 0
    assert metric(scaled, "lamina_async_event_age_seconds_count") >= 3
    assert metric(scaled, "lamina_async_events_dropped_total", function=fname, condition="RetriesExhausted") == 0


def test_failed_events_list_and_replay(scaled: RunningServer, client: Any, fname: str, tmp_path: Path) -> None:
    setup(client, fname, recorder=False, MaximumRetryAttempts=0)
    rid = client.invoke(FunctionName=fname, InvocationType="Event", Payload=b'{"keep": "me"}')["ResponseMetadata"]["RequestId"]
    deadline = time.monotonic() + 20
    while True:
        listing = cli(scaled, "events", "failed", fname)
        if rid in listing.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert listing.returncode == 0, listing.stderr
    assert rid in listing.stdout and "RetriesExhausted" in listing.stdout
    assert "RuntimeError: attempt 1 failed" in listing.stdout and '{"keep": "me"}' in listing.stdout
    # fix the function, then replay: the same event runs again and succeeds
    client.update_function_configuration(FunctionName=fname, Environment={"Variables": {"FAILS": "0"}})
    client.get_waiter("function_updated_v2").wait(FunctionName=fname, WaiterConfig={"Delay": 0.05, "MaxAttempts": 400})
    replayed = cli(scaled, "events", "replay", rid)
    assert replayed.returncode == 0, replayed.stderr
    assert rid in replayed.stdout
    deadline = time.monotonic() + 20
    while len(attempts(scaled, fname)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    # the configuration change started a new environment: its count starts again
    assert [(r, n) for r, n, _ in attempts(scaled, fname)] == [(rid, 1), (rid, 1)]
    assert cli(scaled, "events", "failed", fname).stdout.strip() == ""
    again = cli(scaled, "events", "replay", rid)
    assert again.returncode == 1 and "ResourceNotFoundException" in again.stderr
    missing = cli(scaled, "events", "failed", fname + "-nope")
    assert missing.returncode == 1 and "ResourceNotFoundException" in missing.stderr


def test_events_of_a_deleted_function_are_kept(scaled: RunningServer, client: Any, fname: str) -> None:
    setup(client, fname, fails=0, recorder=False)
    client.put_function_concurrency(FunctionName=fname, ReservedConcurrentExecutions=1)
    # A synchronous call holds the function's one slot, so the event waits for it...
    holder = threading.Thread(target=scaled.client().invoke, kwargs={"FunctionName": fname, "Payload": b'{"sleep": 2}'})
    holder.start()
    deadline = time.monotonic() + 10
    while concurrent_executions(scaled) < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    rid = client.invoke(FunctionName=fname, InvocationType="Event", Payload=b'{"late": 1}')["ResponseMetadata"]["RequestId"]
    client.delete_function(FunctionName=fname)  # ...and finds its function gone
    holder.join(30)
    deadline = time.monotonic() + 20
    failed: list[dict[str, Any]] = []
    while not failed and time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            with urllib.request.urlopen(f"{scaled.endpoint}/lamina/v1/events/failed?function={fname}") as r:
                failed = json.loads(r.read())["FailedEvents"]
        except urllib.error.HTTPError as exc:  # 404: no such function, and none of its events failed yet
            assert exc.code == 404
            exc.close()
    assert [(f["RequestId"], f["Condition"], f["ApproximateInvokeCount"]) for f in failed] == [(rid, "FunctionNotFound", 0)]
    assert failed[0]["RequestPayload"] == '{"late": 1}'


def test_deprecated_invoke_async_is_queued_too(scaled: RunningServer, client: Any, fname: str) -> None:
    rec = setup(client, fname, fails=0, DestinationConfig=on("OnSuccess", fname + "-rec"))
    resp = client.invoke_async(FunctionName=fname, InvokeArgs=b'{"old": "api"}')
    assert resp["Status"] == 202
    (record,) = records(scaled, rec, 1)
    assert record["event"]["requestPayload"] == {"old": "api"}
    assert record["event"]["requestContext"]["requestId"] == resp["ResponseMetadata"]["RequestId"]


def test_payload_limit(client: Any, fname: str) -> None:
    deploy(client, fname, {"app.py": "def handler(e, c):\n    return None\n"})
    frame = b'{"x":""}'
    exactly = b'{"x":"' + b"a" * (1_048_576 - len(frame)) + b'"}'
    assert client.invoke(FunctionName=fname, InvocationType="Event", Payload=exactly)["StatusCode"] == 202
    with pytest.raises(ClientError) as exc:
        client.invoke(FunctionName=fname, InvocationType="Event", Payload=exactly[:-2] + b'a"}')
    assert exc.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert exc.value.response["Error"]["Message"] == "1048577 byte payload is too large for the Event invocation type (limit 1048576 bytes)"


def cli(server: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(lamina.__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-m", "lamina", "--endpoint", server.endpoint, *args],
                          capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
