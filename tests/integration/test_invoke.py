"""Invoke through real boto3: invocation types, qualifiers, logs, errors, limits, environments."""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError

from lamina.testing import RunningServer, deploy, read_logs, wait_for_log

ECHO = """
import os, json
count = 0
def handler(event, context):
    global count
    count += 1
    print("echo handler saw", json.dumps(event))
    return {"event": event, "count": count, "request_id": context.aws_request_id,
            "arn": context.invoked_function_arn, "stream": context.log_stream_name}
"""


def payload(resp: dict[str, Any]) -> Any:
    return json.loads(resp["Payload"].read())


def tail(resp: dict[str, Any]) -> str:
    return base64.b64decode(resp["LogResult"]).decode()


def test_request_response(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": ECHO})
    resp = lambda_client.invoke(FunctionName=fname, Payload=json.dumps({"x": [1, 2]}))
    assert resp["StatusCode"] == 200
    assert resp["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in resp
    body = payload(resp)
    assert body["event"] == {"x": [1, 2]}
    assert body["request_id"] == resp["ResponseMetadata"]["RequestId"]
    assert body["arn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{fname}"
    # No payload: the handler gets {} as on Lambda.
    assert payload(lambda_client.invoke(FunctionName=fname))["event"] == {}


def test_zip_made_with_writestr_runs(lambda_client: Any, fname: str) -> None:
    """The README's example: `ZipFile.writestr(name, ...)` stores its members as 0600."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", "def handler(event, context):\n    return {'hello': event.get('name')}\n")
    lambda_client.create_function(FunctionName=fname, Runtime="python3.11", Handler="app.handler",
                                  Role="arn:aws:iam::000000000000:role/lamina", Code={"ZipFile": buf.getvalue()})  # fmt: skip
    lambda_client.get_waiter("function_active_v2").wait(FunctionName=fname)
    resp = lambda_client.invoke(FunctionName=fname, Payload=b'{"name": "you"}')
    assert "FunctionError" not in resp and json.loads(resp["Payload"].read()) == {"hello": "you"}


def test_warm_environment_is_reused(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": ECHO})
    first = payload(lambda_client.invoke(FunctionName=fname, Payload=b"{}"))
    second = payload(lambda_client.invoke(FunctionName=fname, Payload=b"{}"))
    assert (first["count"], second["count"]) == (1, 2)
    assert first["stream"] == second["stream"]


def test_log_tail_has_lambda_lines(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": ECHO}, MemorySize=256)
    resp = lambda_client.invoke(FunctionName=fname, Payload=b'{"k": "v"}', LogType="Tail")
    rid = resp["ResponseMetadata"]["RequestId"]
    lines = tail(resp).splitlines()
    assert lines[0] == f"START RequestId: {rid} Version: $LATEST"
    assert 'echo handler saw {"k": "v"}' in lines
    assert lines[-2] == f"END RequestId: {rid}"
    report = lines[-1].split("\t")
    assert report[0] == f"REPORT RequestId: {rid}"
    assert report[1].startswith("Duration: ") and report[1].endswith(" ms")
    assert report[3] == "Memory Size: 256 MB"
    used = int(report[4].removeprefix("Max Memory Used: ").removesuffix(" MB"))
    assert 1 <= used < 256  # measured from the process, not copied from the config
    assert report[5].startswith("Init Duration: ")  # the first invoke of a new environment
    # Lambda bills an on-demand init with the invocation that ran it (since August 2025).
    duration, init = (float(report[i].split(": ")[1].removesuffix(" ms")) for i in (1, 5))
    billed = int(report[2].removeprefix("Billed Duration: ").removesuffix(" ms"))
    assert -0.01 <= billed - (duration + init) < 1.01
    assert report[-3] == "Start: cold"  # Lamina's own last fields: the start kind and the code hash
    sha = lambda_client.get_function_configuration(FunctionName=fname)["CodeSha256"]
    assert report[-2] == f"Code: {base64.b64decode(sha).hex()[:12]}"
    warm = tail(lambda_client.invoke(FunctionName=fname, Payload=b"{}", LogType="Tail"))
    assert "Init Duration" not in warm
    assert "\tStart: warm\tCode: " in warm.rstrip("\n").splitlines()[-1]


def test_log_tail_is_at_most_4kb(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": "def handler(e, c):\n    for i in range(500):\n        print('line', i, 'x' * 40)\n"})
    text = tail(lambda_client.invoke(FunctionName=fname, LogType="Tail"))
    assert len(text.encode()) <= 4096
    assert text.rstrip("\n").splitlines()[-1].startswith("REPORT RequestId:")


def test_dry_run(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": ECHO})
    resp = lambda_client.invoke(FunctionName=fname, InvocationType="DryRun")
    assert resp["StatusCode"] == 204
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.invoke(FunctionName=fname + "-missing", InvocationType="DryRun")


def test_event_invocation_runs(server: RunningServer, lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": ECHO})
    resp = lambda_client.invoke(FunctionName=fname, InvocationType="Event", Payload=b'{"async": "yes"}')
    assert resp["StatusCode"] == 202
    assert resp["Payload"].read() == b""
    rid = resp["ResponseMetadata"]["RequestId"]
    lines = wait_for_log(server.endpoint, fname, f"END RequestId: {rid}")
    assert 'echo handler saw {"async": "yes"}' in lines


def test_function_error(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": "def handler(e, c):\n    raise ValueError('bad thing')\n"})
    resp = lambda_client.invoke(FunctionName=fname)
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    body = payload(resp)
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "bad thing"
    assert any("app.py" in frame for frame in body["stackTrace"])


def test_timeout_resets_environment_and_keeps_tmp(lambda_client: Any, fname: str) -> None:
    code = """
import os, tempfile, time
def handler(event, context):
    path = os.path.join(tempfile.gettempdir(), "marker")
    if event.get("write"):
        open(path, "w").write("kept")
    if event.get("sleep"):
        time.sleep(event["sleep"])
    return {"tmp": open(path).read() if os.path.exists(path) else None}
"""
    deploy(lambda_client, fname, {"app.py": code}, Timeout=1)
    assert payload(lambda_client.invoke(FunctionName=fname, Payload=b'{"write": true}')) == {"tmp": "kept"}
    resp = lambda_client.invoke(FunctionName=fname, Payload=b'{"sleep": 5}', LogType="Tail")
    assert resp["FunctionError"] == "Unhandled"
    body = payload(resp)
    rid = resp["ResponseMetadata"]["RequestId"]
    assert body == {"errorType": "Sandbox.Timedout", "errorMessage": f"RequestId: {rid} Error: Task timed out after 1.00 seconds"}
    assert f"{rid} Task timed out after 1.00 seconds" in tail(resp)
    assert "Status: timeout" in tail(resp)
    # The environment was reset (runtime killed, re-initialised) but its /tmp survived (spec 5.1).
    after = lambda_client.invoke(FunctionName=fname, Payload=b"{}", LogType="Tail")
    assert payload(after) == {"tmp": "kept"}
    assert "Init Duration" in tail(after)


def test_runtime_exit_is_reported_and_environment_recovers(lambda_client: Any, fname: str) -> None:
    code = "import os\ndef handler(e, c):\n    if e.get('exit'):\n        os._exit(3)\n    return 'ok'\n"
    deploy(lambda_client, fname, {"app.py": code})
    resp = lambda_client.invoke(FunctionName=fname, Payload=b'{"exit": true}', LogType="Tail")
    rid = resp["ResponseMetadata"]["RequestId"]
    assert resp["FunctionError"] == "Unhandled"
    assert payload(resp) == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {rid} Error: Runtime exited with error: exit status 3",
    }
    assert "Status: error\tError Type: Runtime.ExitError" in tail(resp)
    assert payload(lambda_client.invoke(FunctionName=fname, Payload=b"{}")) == "ok"


def test_import_error_is_retried_then_reported(server: RunningServer, lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": "import not_a_module_anywhere\ndef handler(e, c):\n    return 1\n"})
    resp = lambda_client.invoke(FunctionName=fname)
    assert resp["FunctionError"] == "Unhandled"
    body = payload(resp)
    assert body["errorType"] == "Runtime.ImportModuleError"
    assert "Unable to import module 'app'" in body["errorMessage"]
    lines = wait_for_log(server.endpoint, fname, "REPORT RequestId")
    init_reports = [line for line in lines if line.startswith("INIT_REPORT")]
    assert any("Phase: init\tStatus: error\tError Type: Runtime.ImportModuleError" in line for line in init_reports)
    assert any("Phase: invoke\tStatus: error\tError Type: Runtime.ImportModuleError" in line for line in init_reports)


def test_reserved_environment_variables(lambda_client: Any, fname: str) -> None:
    keys = ["AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_REGION", "AWS_DEFAULT_REGION",
            "AWS_EXECUTION_ENV", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "_HANDLER", "AWS_LAMBDA_RUNTIME_API",
            "TZ", "LANG", "PATH", "AWS_LAMBDA_INITIALIZATION_TYPE", "MY_SETTING"]  # fmt: skip
    code = f"import os\ndef handler(e, c):\n    return {{k: os.environ.get(k) for k in {keys!r}}}\n"
    deploy(lambda_client, fname, {"app.py": code}, MemorySize=512, Environment={"Variables": {"MY_SETTING": "42"}})
    env = payload(lambda_client.invoke(FunctionName=fname))
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == fname
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{fname}"
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"].split("/")[3].startswith("[$LATEST]")
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11"
    assert env["_HANDLER"] == "app.handler"
    assert env["AWS_LAMBDA_RUNTIME_API"].startswith("127.0.0.1:")
    assert env["TZ"] == ":UTC" and env["LANG"] == "en_US.UTF-8"
    assert env["PATH"].startswith("/var/lang/bin:")
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert env["LAMBDA_TASK_ROOT"] and env["LAMBDA_RUNTIME_DIR"]
    assert env["MY_SETTING"] == "42"


def test_client_context_reaches_the_handler(lambda_client: Any, fname: str) -> None:
    code = "def handler(e, c):\n    return {'custom': c.client_context.custom, 'app': c.client_context.client.app_title}\n"
    deploy(lambda_client, fname, {"app.py": code})
    ctx = {"custom": {"tenant": "t1"}, "client": {"app_title": "demo"}, "env": {}}
    resp = lambda_client.invoke(FunctionName=fname, ClientContext=base64.b64encode(json.dumps(ctx).encode()).decode())
    assert payload(resp) == {"custom": {"tenant": "t1"}, "app": "demo"}


def test_invalid_payloads(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": ECHO})
    with pytest.raises(ClientError) as exc:
        lambda_client.invoke(FunctionName=fname, Payload=b"{not json")
    assert exc.value.response["Error"]["Code"] == "InvalidRequestContentException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as exc:
        lambda_client.invoke(FunctionName=fname, Payload=b'"' + b"x" * 6_291_456 + b'"')
    assert exc.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    with pytest.raises(ClientError) as exc:
        lambda_client.invoke(FunctionName=fname, InvocationType="Event", Payload=b'"' + b"x" * 1_048_576 + b'"')
    assert exc.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    assert "too large for the Event invocation type" in exc.value.response["Error"]["Message"]


def test_response_too_large(lambda_client: Any, fname: str) -> None:
    code = "def handler(e, c):\n    return 'x' * (7 * 1024 * 1024) if e.get('big') else 'small'\n"
    deploy(lambda_client, fname, {"app.py": code})
    resp = lambda_client.invoke(FunctionName=fname, Payload=b'{"big": true}')
    assert resp["FunctionError"] == "Unhandled"
    body = payload(resp)
    assert body["errorType"] == "Function.ResponseSizeTooLarge"
    assert "6291556 bytes" in body["errorMessage"]
    assert payload(lambda_client.invoke(FunctionName=fname, Payload=b"{}")) == "small"


def test_large_payload_round_trip(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": "def handler(e, c):\n    return e\n"})
    event = {"blob": "y" * (5 * 1024 * 1024)}
    assert payload(lambda_client.invoke(FunctionName=fname, Payload=json.dumps(event))) == event


def test_concurrent_invokes_get_separate_environments(lambda_client: Any, fname: str) -> None:
    code = "import time\ndef handler(e, c):\n    time.sleep(0.5)\n    return c.log_stream_name\n"
    deploy(lambda_client, fname, {"app.py": code})
    streams: list[str] = []
    threads = [threading.Thread(target=lambda: streams.append(payload(lambda_client.invoke(FunctionName=fname)))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(streams) == 3
    assert len(set(streams)) == 3  # one invocation at a time per environment


def test_logs_are_stored_per_function(server: RunningServer, lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": ECHO})
    rid = lambda_client.invoke(FunctionName=fname, Payload=b'{"n": 1}')["ResponseMetadata"]["RequestId"]
    events, cursor = read_logs(server.endpoint, fname)
    messages = [e["message"] for e in events]
    assert f"START RequestId: {rid} Version: $LATEST" in messages
    assert any(m.startswith(f"REPORT RequestId: {rid}") for m in messages)
    streams = {e["logStreamName"] for e in events}
    assert len(streams) == 1  # one environment served it: one log stream
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", streams.pop())
    more, _ = read_logs(server.endpoint, fname, cursor=cursor)
    assert more == []  # the cursor resumes after what was read


def test_unfinished_last_line_stays_with_its_invocation(lambda_client: Any, fname: str) -> None:
    code = "import sys\ndef handler(e, c):\n    sys.stderr.write('no newline ' + e['tag'])\n    return 1\n"
    deploy(lambda_client, fname, {"app.py": code})
    first = tail(lambda_client.invoke(FunctionName=fname, Payload=b'{"tag": "one"}', LogType="Tail")).splitlines()
    second = tail(lambda_client.invoke(FunctionName=fname, Payload=b'{"tag": "two"}', LogType="Tail")).splitlines()
    assert "no newline one" in first
    assert second[0].startswith("START RequestId:")
    assert "no newline two" in second


def raw_request(server: RunningServer, method: str, path: str, body: bytes | None = None, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """One unsigned request over http.client (Lamina does not check signatures yet)."""
    conn = http.client.HTTPConnection(server.endpoint.removeprefix("http://"), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_payload_json_is_checked_strictly(lambda_client: Any, fname: str) -> None:
    """Lambda's parser refuses what Python's json accepts beyond RFC 8259 (NaN, Infinity)."""
    deploy(lambda_client, fname, {"app.py": ECHO})
    for bad in (b"NaN", b'{"x": Infinity}', b'{"x": 1}{', b"[1,]", b'{"x": "\xff"}'):
        with pytest.raises(ClientError) as exc:
            lambda_client.invoke(FunctionName=fname, Payload=bad)
        assert exc.value.response["Error"]["Code"] == "InvalidRequestContentException", bad
    with pytest.raises(ClientError) as exc:
        lambda_client.invoke(FunctionName=fname, Payload=b"{not json")
    assert exc.value.response["Error"]["Message"] == (
        "Could not parse request body into json: Could not parse payload into json: "
        "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
    )
    # Valid JSON of every top-level kind reaches the handler unchanged.
    for good in ([1, {"a": None}], "text", 3.5, True, None, {"deep": [[[[{"u": "é€😀"}]]]]}):
        assert payload(lambda_client.invoke(FunctionName=fname, Payload=json.dumps(good, ensure_ascii=False).encode()))["event"] == good


def test_invoke_over_raw_http(server: RunningServer, lambda_client: Any, fname: str) -> None:
    """The Invoke route's HTTP edges: headers, query, chunked bodies, wrong methods and paths."""
    deploy(lambda_client, fname, {"app.py": ECHO})
    version = lambda_client.publish_version(FunctionName=fname)["Version"]
    path = f"/2015-03-31/functions/{fname}/invocations"

    status, headers, body = raw_request(server, "POST", path, b'{"a": 1}', **{"X-Amz-Log-Type": "Tail"})
    assert status == 200 and headers["content-type"] == "application/json"
    assert headers["x-amz-executed-version"] == "$LATEST" and "x-amz-function-error" not in headers
    assert json.loads(body)["request_id"] == headers["x-amzn-requestid"]
    assert "REPORT RequestId" in base64.b64decode(headers["x-amz-log-result"]).decode()

    status, headers, body = raw_request(server, "POST", f"{path}?Qualifier={version}", b"{}")
    assert status == 200 and headers["x-amz-executed-version"] == version

    # A body sent in chunks is joined before it is checked and passed on.
    event = {"rows": [{"i": i, "s": "x" * 100} for i in range(3000)]}
    conn = http.client.HTTPConnection(server.endpoint.removeprefix("http://"), timeout=30)
    try:
        data = json.dumps(event).encode()
        conn.request("POST", path, body=iter([data[:1000], data[1000:200_000], data[200_000:]]), encode_chunked=True)
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read())["event"] == event
    finally:
        conn.close()

    status, headers, body = raw_request(server, "POST", path, b"{}", **{"X-Amz-Invocation-Type": "Sometimes"})
    assert status == 400 and headers["x-amzn-errortype"] == "ValidationException"
    assert "Member must satisfy enum value set: [Event, RequestResponse, DryRun]" in json.loads(body)["message"]
    status, headers, _ = raw_request(server, "POST", path, b"{}", **{"X-Amz-Invocation-Type": "DryRun"})
    assert status == 204 and headers["x-amzn-requestid"]
    status, headers, _ = raw_request(server, "POST", "/2015-03-31/functions/no-such-function/invocations", b"{}")
    assert status == 404 and headers["x-amzn-errortype"] == "ResourceNotFoundException"
    # Other methods and near-miss paths answer as any unknown operation does.
    for method, other in (("GET", path), ("PUT", path), ("POST", path + "/"), ("POST", "/2015-03-31/functions//invocations")):
        status, headers, body = raw_request(server, method, other, b"{}")
        assert (status, headers["x-amzn-errortype"]) == (404, "UnknownOperationException"), (method, other)
        assert json.loads(body)["message"] == f"Lamina does not implement {method} {other}."


def test_pipelined_requests_are_answered_in_order(server: RunningServer, lambda_client: Any, fname: str) -> None:
    """Invokes and other requests pipelined on one connection are answered once each, in order,
    and `Connection: close` on the last one ends the connection after its answer."""
    deploy(lambda_client, fname, {"app.py": ECHO})
    path = f"/2015-03-31/functions/{fname}/invocations"

    def post(body: bytes, extra: str = "") -> bytes:
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
        return head.encode() + body

    requests = (
        post(b'{"n": 1}')
        + b"GET /lamina/v1/health HTTP/1.1\r\nHost: x\r\n\r\n"
        + post(b'{"n": 2}')
        + post(b'{"n": 3}', "X-Amz-Invocation-Type: DryRun\r\n")
        + post(b'{"n": 4}', "Connection: close\r\n")
    )
    host, port = server.endpoint.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(requests)
        data = b""
        while chunk := sock.recv(65536):  # the server closes after the last answer
            data += chunk
    answers = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        length = int({k.lower(): v for k, v in headers.items()}.get("content-length", "0"))
        answers.append((int(lines[0].split()[1]), rest[:length]))
        data = rest[length:]
    assert [status for status, _ in answers] == [200, 200, 200, 204, 200]
    assert json.loads(answers[0][1])["event"] == {"n": 1}
    assert json.loads(answers[2][1])["event"] == {"n": 2}
    assert json.loads(answers[4][1])["event"] == {"n": 4}
