"""The managed Python runtime client (runtimes/bootstraps/python/bootstrap.py) through real boto3.

Each test deploys a function on the shared server and checks what Lambda's Python runtime does:
result marshalling, the context object, init and handler errors, and the log format.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timezone
from typing import Any

import pytest

from lamina.runtimes.catalog import RuntimeCatalog
from lamina.testing import isolation_for_tests, deploy

# Every python3.X this host can run; ids without dots, because the test id becomes a function name.
PYTHON_RUNTIMES = [
    pytest.param(r, id=r.replace(".", ""))
    for r in RuntimeCatalog.discover(shared_paths_only=isolation_for_tests() == "sandbox").available
    if r.startswith("python3.")
]
LOG_LINE = r"^\[{level}\]\t(\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}})Z\t{rid}\t{message}$"


def invoke(client: Any, name: str, event: Any = None, **kwargs: Any) -> tuple[dict[str, Any], bytes, str]:
    """(response, raw payload, decoded log tail) of a synchronous invoke."""
    resp = client.invoke(FunctionName=name, Payload=json.dumps(event or {}), LogType="Tail", **kwargs)
    return resp, resp["Payload"].read(), base64.b64decode(resp["LogResult"]).decode()


def request_id(resp: dict[str, Any]) -> str:
    return str(resp["ResponseMetadata"]["RequestId"])


def test_result_round_trip(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": "def handler(event, context):\n    return {'got': event}\n"})
    event = {"s": "text", "n": 1, "f": 2.5, "b": True, "null": None, "list": [1, [2, {"x": "y"}]]}
    resp, raw, _ = invoke(lambda_client, fname, event)
    assert resp["StatusCode"] == 200
    assert "FunctionError" not in resp
    assert json.loads(raw) == {"got": event}


def test_string_and_none_results_are_json(lambda_client: Any, fname: str) -> None:
    src = "def handler(event, context):\n    return None if event.get('none') else 'plain string'\n"
    deploy(lambda_client, fname, {"app.py": src})
    assert invoke(lambda_client, fname)[1] == b'"plain string"'
    assert invoke(lambda_client, fname, {"none": True})[1] == b"null"


def test_handler_in_a_subdirectory(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"pkg/app.py": "def handler(event, context):\n    return __name__\n"}, handler="pkg/app.handler")
    resp, raw, _ = invoke(lambda_client, fname)
    assert "FunctionError" not in resp
    assert json.loads(raw) == "pkg.app"


CONTEXT = """
import os
def handler(event, context):
    return {
        "aws_request_id": context.aws_request_id,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "invoked_function_arn": context.invoked_function_arn,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining": context.get_remaining_time_in_millis(),
        "client_context": context.client_context,
        "identity": [context.identity.cognito_identity_id, context.identity.cognito_identity_pool_id],
    }
"""


def test_context_attributes(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": CONTEXT}, MemorySize=256, Timeout=7)
    resp, raw, _ = invoke(lambda_client, fname)
    ctx = json.loads(raw)
    assert ctx["aws_request_id"] == request_id(resp)
    assert ctx["function_name"] == fname
    assert ctx["function_version"] == "$LATEST"
    assert ctx["memory_limit_in_mb"] == "256"  # a string, as on Lambda
    assert ctx["invoked_function_arn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{fname}"
    assert ctx["log_group_name"] == f"/aws/lambda/{fname}"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", ctx["log_stream_name"])
    assert 0 < ctx["remaining"] <= 7000
    assert ctx["client_context"] is None
    assert ctx["identity"] == [None, None]


CLIENT_CONTEXT = """
def handler(event, context):
    cc = context.client_context
    c = cc.client
    return {"custom": cc.custom, "env": cc.env,
            "client": [c.installation_id, c.app_title, c.app_version_name, c.app_version_code, c.app_package_name]}
"""


def test_client_context(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": CLIENT_CONTEXT})
    sent = {
        "custom": {"user": "ünïcode"},
        "env": {"platform": "Android"},
        "client": {"installation_id": "inst-1", "app_title": "Title", "app_version_code": "42"},
    }
    encoded = base64.b64encode(json.dumps(sent).encode()).decode()
    resp, raw, _ = invoke(lambda_client, fname, ClientContext=encoded)
    assert "FunctionError" not in resp
    assert json.loads(raw) == {
        "custom": {"user": "ünïcode"},
        "env": {"platform": "Android"},
        "client": ["inst-1", "Title", None, "42", None],
    }


INIT_ERRORS = [
    pytest.param(
        {"app.py": "def handler(event, context):\n    return 1\n"}, "apphandler",
        "Runtime.MalformedHandlerName", "Bad handler 'apphandler': not enough values to unpack (expected 2, got 1)",
        id="malformed-handler",
    ),
    pytest.param(
        {"app.py": "def handler(event, context):\n    return 1\n"}, "sys.handler",
        "Runtime.BuiltInModuleConflict", "Cannot use built-in module sys as a handler module",
        id="builtin-module",
    ),
    pytest.param(
        {"app.py": "import no_such_module_xyz\n"}, "app.handler",
        "Runtime.ImportModuleError", "Unable to import module 'app': No module named 'no_such_module_xyz'",
        id="import-error",
    ),
    pytest.param(
        {"app.py": "def other(event, context):\n    return 1\n"}, "app.handler",
        "Runtime.HandlerNotFound", "Handler 'handler' missing on module 'app'",
        id="handler-not-found",
    ),
    pytest.param(
        {"app.py": "x = 1\nraise RuntimeError('init boom')\n"}, "app.handler",
        "RuntimeError", "init boom",
        id="exception-at-import",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("files", "handler", "error_type", "message"), INIT_ERRORS)
def test_init_errors(lambda_client: Any, fname: str, files: dict[str, str], handler: str, error_type: str, message: str) -> None:
    deploy(lambda_client, fname, files, handler=handler)
    resp, raw, tail = invoke(lambda_client, fname)
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    body = json.loads(raw)
    assert body["errorType"] == error_type
    assert body["errorMessage"] == message
    assert body["requestId"] == ""
    assert f"[ERROR] {error_type}: {message}\rTraceback (most recent call last):" in tail
    if error_type == "RuntimeError":
        assert "app.py" in body["stackTrace"][-1] and "raise RuntimeError('init boom')" in body["stackTrace"][-1]
        assert not any("bootstrap.py" in frame for frame in body["stackTrace"])
    else:
        assert body["stackTrace"] == []


def test_init_syntax_error(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": "def handler(event, context)\n    return 1\n"})
    resp, raw, _ = invoke(lambda_client, fname)
    assert resp["FunctionError"] == "Unhandled"
    body = json.loads(raw)
    assert body["errorType"] == "Runtime.UserCodeSyntaxError"
    assert body["errorMessage"].startswith("Syntax error in module 'app': ")
    assert "(app.py, line 1)" in body["errorMessage"]
    assert re.fullmatch(r'  File ".*/app\.py" Line 1\n    def handler\(event, context\)\n', body["stackTrace"][0])


BOOM = """
def helper(x):
    raise ValueError("bad thing: %s" % x)

def handler(event, context):
    helper(event["x"])
"""


def test_handler_exception(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": BOOM})
    resp, raw, tail = invoke(lambda_client, fname, {"x": 1})
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    body = json.loads(raw)
    assert list(body) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "bad thing: 1"
    assert body["requestId"] == request_id(resp)
    # Only the user's frames, formatted like traceback.format_list.
    handler_frame, helper_frame = body["stackTrace"]
    assert re.fullmatch(r'  File ".*/app\.py", line 6, in handler\n    helper\(event\["x"\]\)\n', handler_frame)
    assert re.fullmatch(r'  File ".*/app\.py", line 3, in helper\n    raise ValueError\("bad thing: %s" % x\)\n', helper_frame)
    # Logged as one line: parts joined by \r, indentation as no-break spaces.
    assert re.search(
        r'^\[ERROR\] ValueError: bad thing: 1\rTraceback \(most recent call last\):\r'
        r'\u00a0\u00a0File ".*/app\.py", line 6, in handler\r\u00a0{4}helper\(event\["x"\]\)\r'
        r'\u00a0\u00a0File ".*/app\.py", line 3, in helper\r\u00a0{4}raise ValueError',
        tail,
        re.M,
    )


def test_environment_survives_a_handler_exception(lambda_client: Any, fname: str) -> None:
    src = "count = 0\ndef handler(event, context):\n    global count\n    count += 1\n    if event.get('fail'):\n        raise KeyError('k')\n    return count\n"
    deploy(lambda_client, fname, {"app.py": src})
    assert json.loads(invoke(lambda_client, fname)[1]) == 1
    resp, raw, _ = invoke(lambda_client, fname, {"fail": True})
    assert json.loads(raw)["errorType"] == "KeyError"
    assert json.loads(invoke(lambda_client, fname)[1]) == 3  # same process, same globals


LOGGING = """
import logging
def handler(event, context):
    logging.info("not shown at the default level")
    logging.warning("warn %s", 1)
    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger("app").info("hello %s", "world")
    print("printed as is")
    return "ok"
"""


def test_logging_format(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": LOGGING})
    resp, _, tail = invoke(lambda_client, fname)
    rid = re.escape(request_id(resp))
    assert "not shown at the default level" not in tail  # root logger starts at WARNING
    assert re.search(LOG_LINE.format(level="WARNING", rid=rid, message="warn 1"), tail, re.M)
    info = re.search(LOG_LINE.format(level="INFO", rid=rid, message="hello world"), tail, re.M)
    assert info, tail
    stamp = datetime.strptime(info.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc)
    assert abs((datetime.now(timezone.utc) - stamp).total_seconds()) < 300  # UTC, not local time
    assert re.search(r"^printed as is$", tail, re.M)


def test_bytes_result_is_sent_raw(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": "def handler(event, context):\n    return b'\\x00\\xffraw bytes'\n"})
    resp, raw, _ = invoke(lambda_client, fname)
    assert "FunctionError" not in resp
    assert raw == b"\x00\xffraw bytes"


def test_decimal_is_a_json_number(lambda_client: Any, fname: str) -> None:
    src = (
        "from decimal import Decimal\n"
        "def handler(event, context):\n"
        "    return {'price': Decimal('19.990'), 'big': Decimal('12345678901234567890.123456789'), 'nan': Decimal('NaN')}\n"
    )
    deploy(lambda_client, fname, {"app.py": src})
    resp, raw, _ = invoke(lambda_client, fname)
    assert "FunctionError" not in resp
    # Digits exactly as str(Decimal), not rounded through float.
    assert raw == b'{"price": 19.990, "big": 12345678901234567890.123456789, "nan": NaN}'


def test_marshal_error(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": "def handler(event, context):\n    return {'s': {1, 2}}\n"})
    resp, raw, tail = invoke(lambda_client, fname)
    assert resp["FunctionError"] == "Unhandled"
    assert json.loads(raw) == {
        "errorMessage": "Unable to marshal response: Object of type set is not JSON serializable",
        "errorType": "Runtime.MarshalError",
        "requestId": request_id(resp),
        "stackTrace": [],
    }
    assert "[ERROR] Runtime.MarshalError: Unable to marshal response: Object of type set" in tail


EVERY_VERSION = """
import logging, sys
logging.getLogger().setLevel(logging.INFO)
def handler(event, context):
    logging.info("running")
    if event.get("fail"):
        raise ValueError("failed on %d.%d" % sys.version_info[:2])
    return {"version": "%d.%d" % sys.version_info[:2], "text": event["text"]}
"""


@pytest.mark.parametrize("runtime", PYTHON_RUNTIMES)
def test_every_python_runtime(lambda_client: Any, fname: str, runtime: str) -> None:
    deploy(lambda_client, fname, {"app.py": EVERY_VERSION}, runtime=runtime)
    version = runtime.removeprefix("python")
    resp, raw, tail = invoke(lambda_client, fname, {"text": "café"})
    assert "FunctionError" not in resp, raw
    assert json.loads(raw) == {"version": version, "text": "café"}
    # Lambda's python3.12+ runtimes send non-ASCII unescaped; older ones escape it.
    assert (b'"caf\\u00e9"' in raw) == (int(version.split(".")[1]) < 12)
    assert re.search(LOG_LINE.format(level="INFO", rid=re.escape(request_id(resp)), message="running"), tail, re.M)
    resp, raw, _ = invoke(lambda_client, fname, {"fail": True})
    body = json.loads(raw)
    assert (resp["FunctionError"], body["errorType"], body["errorMessage"]) == ("Unhandled", "ValueError", f"failed on {version}")
    assert len(body["stackTrace"]) == 1 and "app.py" in body["stackTrace"][0]
