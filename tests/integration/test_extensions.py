"""External extensions (spec 4.7): an executable in a layer's extensions/ directory starts with the
environment, registers, gets an INVOKE event for each invocation and a SHUTDOWN when the
environment stops; the environment is not lent again until the extension is done with an
invocation, and init fails clearly when an extension does not come up."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from lamina.testing import RunningServer, deploy, read_logs, wait_for_log, zip_files

# A real external extension: a Python script speaking the Extensions API over one kept-alive
# connection. It appends every event to /tmp (which the function shares) and prints to its
# stdout, which reaches the function's log stream, as on Lambda.
RECORDER = """\
#!/usr/bin/python3 -I
import http.client, json, os, sys

api = os.environ["AWS_LAMBDA_RUNTIME_API"]
conn = http.client.HTTPConnection(api, timeout=None)
conn.request("POST", "/2020-01-01/extension/register", body=json.dumps({"events": ["INVOKE", "SHUTDOWN"]}),
             headers={"Lambda-Extension-Name": os.path.basename(sys.argv[0])})
r = conn.getresponse()
ident = r.getheader("Lambda-Extension-Identifier")
print("REGISTERED " + json.dumps({"status": r.status, "body": json.loads(r.read()),
                                  "handler_hidden": "_HANDLER" not in os.environ}), flush=True)
while True:
    conn.request("GET", "/2020-01-01/extension/event/next", headers={"Lambda-Extension-Identifier": ident})
    r = conn.getresponse()
    event = json.loads(r.read())
    if event["eventType"] == "SHUTDOWN":
        print("SHUTDOWN", event["shutdownReason"], flush=True)
        sys.exit(0)
    with open("/tmp/extension-events", "a") as f:
        f.write(event["requestId"] + "\\n")
"""
# Registers, then never asks for an event: init cannot finish.
STUCK = """\
#!/usr/bin/python3 -I
import http.client, json, os, time
conn = http.client.HTTPConnection(os.environ["AWS_LAMBDA_RUNTIME_API"])
conn.request("POST", "/2020-01-01/extension/register", body=json.dumps({"events": ["INVOKE"]}),
             headers={"Lambda-Extension-Name": "stuck"})
conn.getresponse().read()
time.sleep(60)
"""
HANDLER = """\
def handler(event, context):
    try:
        with open("/tmp/extension-events") as f:
            seen = f.read().split()
    except FileNotFoundError:
        seen = []
    return {"id": context.aws_request_id, "seen": seen}
"""


def layer(client: Any, name: str, files: dict[str, str]) -> str:
    content = zip_files(files, executable=tuple(files))
    arn: str = client.publish_layer_version(LayerName=name, Content={"ZipFile": content})["LayerVersionArn"]
    return arn


def messages(server: RunningServer, fname: str) -> list[str]:
    events, _ = read_logs(server.endpoint, fname)
    return [e["message"] for e in events]


def idle_environment(server: RunningServer, fname: str, timeout: float = 20.0) -> dict[str, Any]:
    """The function's one environment, once it is idle (polled: the server shows states only so)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(server.endpoint + "/lamina/v1/environments", timeout=10) as r:
            mine = [d for d in json.loads(r.read())["details"] if d["function"] == fname]
        if len(mine) == 1 and mine[0]["state"] == "idle":
            return mine[0]
        time.sleep(0.02)
    raise AssertionError(f"{fname}'s environment never became idle: {mine}")


def test_extension_gets_invoke_and_shutdown_events(server: RunningServer, lambda_client: Any, fname: str) -> None:
    arn = layer(lambda_client, fname + "-ext", {"extensions/recorder": RECORDER})
    deploy(lambda_client, fname, {"app.py": HANDLER}, Layers=[arn])
    first = json.loads(lambda_client.invoke(FunctionName=fname, Payload=b"{}")["Payload"].read())
    # The answer comes at once; the environment stays busy until the extension is done with the
    # invocation (post-invoke), and only then is it idle and lent again.
    assert idle_environment(server, fname)["invocations"] == 1
    second = json.loads(lambda_client.invoke(FunctionName=fname, Payload=b"{}")["Payload"].read())
    assert "id" in first and "id" in second, (first, second, messages(server, fname)[-20:])
    assert first["id"] in second["seen"], (first, second)  # the same, warm environment

    logs = messages(server, fname)
    registered = json.loads(next(m for m in logs if m.startswith("REGISTERED ")).removeprefix("REGISTERED "))
    assert registered == {
        "status": 200,
        "body": {"functionName": fname, "functionVersion": "$LATEST", "handler": "app.handler"},
        "handler_hidden": True,  # Lambda hides _HANDLER (and others) from extensions
    }
    assert "EXTENSION\tName: recorder\tState: Ready\tEvents: [INVOKE,SHUTDOWN]" in logs

    # A configuration change retires the environment: the extension gets SHUTDOWN and exits.
    started = time.monotonic()
    lambda_client.update_function_configuration(FunctionName=fname, Environment={"Variables": {"VERSION": "2"}})
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=fname)
    wait_for_log(server.endpoint, fname, "SHUTDOWN spindown", timeout=20)
    assert time.monotonic() - started < 15


def test_init_waits_for_extensions_and_fails_when_one_never_gets_ready(
    server: RunningServer, lambda_client: Any, fname: str
) -> None:
    arn = layer(lambda_client, fname + "-stuck", {"extensions/stuck": STUCK})
    deploy(lambda_client, fname, {"app.py": HANDLER}, Layers=[arn], Timeout=2)
    resp = lambda_client.invoke(FunctionName=fname, Payload=b"{}")
    body = json.loads(resp["Payload"].read())
    assert resp.get("FunctionError") == "Unhandled", body
    assert "stuck" in body["errorMessage"], body
