"""LoggingConfig (spec 2.1, 6) through real boto3: the API's defaults and validation, the Python
runtime's JSON application logs filtered by ApplicationLogLevel, and the platform's JSON records
filtered by SystemLogLevel. Text format stays as it was (test_invoke.py, test_python_runtime.py).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from lamina.testing import RunningServer, deploy, wait_for_log

# --- the API ---------------------------------------------------------------------------------

APP = "def handler(event, context):\n    return 1\n"


def logging_of(client: Any, name: str) -> dict[str, Any]:
    return dict(client.get_function_configuration(FunctionName=name)["LoggingConfig"])


def updated(client: Any, name: str, config: dict[str, Any]) -> dict[str, Any]:
    resp = dict(client.update_function_configuration(FunctionName=name, LoggingConfig=config)["LoggingConfig"])
    client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.05, "MaxAttempts": 400})
    assert logging_of(client, name) == resp
    return resp


def test_defaults_and_partial_updates(lambda_client: Any, fname: str) -> None:
    created = deploy(lambda_client, fname, {"app.py": APP})
    group = f"/aws/lambda/{fname}"
    text = {"LogFormat": "Text", "LogGroup": group}
    assert created["LoggingConfig"] == text == logging_of(lambda_client, fname)
    # Switching to JSON sets both levels to INFO; a level given alone keeps the other.
    assert updated(lambda_client, fname, {"LogFormat": "JSON"}) == {**text, "LogFormat": "JSON", "ApplicationLogLevel": "INFO", "SystemLogLevel": "INFO"}
    assert updated(lambda_client, fname, {"ApplicationLogLevel": "DEBUG"})["ApplicationLogLevel"] == "DEBUG"
    assert updated(lambda_client, fname, {"SystemLogLevel": "WARN"}) == {
        "LogFormat": "JSON", "LogGroup": group, "ApplicationLogLevel": "DEBUG", "SystemLogLevel": "WARN",
    }  # fmt: skip
    # Back to Text: the levels go; a LogGroup alone changes only the group.
    assert updated(lambda_client, fname, {"LogFormat": "Text"}) == text
    assert updated(lambda_client, fname, {"LogGroup": "cool_lambda"}) == {"LogFormat": "Text", "LogGroup": "cool_lambda"}


def test_create_with_json_and_levels(lambda_client: Any, fname: str) -> None:
    config = {"LogFormat": "JSON", "ApplicationLogLevel": "TRACE", "SystemLogLevel": "DEBUG", "LogGroup": "/custom/group"}
    assert deploy(lambda_client, fname, {"app.py": APP}, LoggingConfig=config)["LoggingConfig"] == config
    assert logging_of(lambda_client, fname) == config


TEXT_LEVEL = 'LogLevel is not supported when LogFormat is set to "Text". Remove LogLevel from your request or change the LogFormat to "JSON" and try again.'


@pytest.mark.parametrize(
    ("config", "code", "message"),
    [
        ({"LogFormat": "Text", "ApplicationLogLevel": "DEBUG"}, "InvalidParameterValueException", TEXT_LEVEL),
        ({"SystemLogLevel": "WARN"}, "InvalidParameterValueException", TEXT_LEVEL),  # Text is the default
        ({"LogFormat": "XML"}, "ValidationException",
         "1 validation error detected: Value 'XML' at 'loggingConfig.logFormat' failed to satisfy constraint: "
         "Member must satisfy enum value set: [JSON, Text]"),
        ({"LogFormat": "JSON", "ApplicationLogLevel": "WARNING"}, "ValidationException",
         "1 validation error detected: Value 'WARNING' at 'loggingConfig.applicationLogLevel' failed to satisfy "
         "constraint: Member must satisfy enum value set: [TRACE, DEBUG, INFO, WARN, ERROR, FATAL]"),
        ({"LogFormat": "JSON", "SystemLogLevel": "ERROR"}, "ValidationException",
         "1 validation error detected: Value 'ERROR' at 'loggingConfig.systemLogLevel' failed to satisfy "
         "constraint: Member must satisfy enum value set: [DEBUG, INFO, WARN]"),
        ({"LogGroup": "bad group!"}, "ValidationException",
         "1 validation error detected: Value 'bad group!' at 'loggingConfig.logGroup' failed to satisfy "
         "constraint: Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+"),
        ({"LogGroup": ""}, "ValidationException",
         "1 validation error detected: Value '' at 'loggingConfig.logGroup' failed to satisfy constraint: "
         "Member must have length greater than or equal to 1"),
    ],
)  # fmt: skip
def test_validation(unvalidated_client: Any, fname: str, config: dict[str, Any], code: str, message: str) -> None:
    with pytest.raises(unvalidated_client.exceptions.ClientError) as create:
        deploy(unvalidated_client, fname, {"app.py": APP}, LoggingConfig=config, wait=False)
    deploy(unvalidated_client, fname, {"app.py": APP})
    with pytest.raises(unvalidated_client.exceptions.ClientError) as update:
        unvalidated_client.update_function_configuration(FunctionName=fname, LoggingConfig=config)
    for exc in (create, update):
        err = exc.value.response
        assert (err["Error"]["Code"], err["Error"]["Message"], err["ResponseMetadata"]["HTTPStatusCode"]) == (code, message, 400)
    assert logging_of(unvalidated_client, fname)["LogFormat"] == "Text"  # unchanged


# --- application logs ------------------------------------------------------------------------

LOGS = """
import logging, os
log = logging.getLogger("app")
def handler(event, context):
    log.debug("at debug")
    log.info("at info")
    log.warning("at warning %s", 1)
    log.error("at error", extra={"order": 7})
    try:
        {}["missing"]
    except KeyError:
        log.exception("with traceback")
    print("printed plain")
    print('{"level": "debug", "msg": "printed json"}')
    return [os.environ.get("AWS_LAMBDA_LOG_FORMAT"), os.environ.get("AWS_LAMBDA_LOG_LEVEL")]
"""
APP_MESSAGES = {"at debug": 1, "at info": 2, "at warning 1": 3, "at error": 4, "with traceback": 4}


def invoke_tail(client: Any, name: str, event: Any = None) -> tuple[dict[str, Any], Any, list[str]]:
    resp = client.invoke(FunctionName=name, Payload=json.dumps(event or {}), LogType="Tail")
    body = json.loads(resp["Payload"].read())
    return resp, body, base64.b64decode(resp["LogResult"]).decode().splitlines()


def json_lines(lines: list[str]) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


@pytest.mark.parametrize(("level", "rank"), [("DEBUG", 1), ("INFO", 2), ("WARN", 3), ("ERROR", 4)])
def test_application_log_level(lambda_client: Any, fname: str, level: str, rank: int) -> None:
    deploy(lambda_client, fname, {"app.py": LOGS}, LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": level})
    resp, body, lines = invoke_tail(lambda_client, fname)
    assert body == ["JSON", level]
    rid = resp["ResponseMetadata"]["RequestId"]
    records = {r["message"]: r for r in json_lines(lines) if "message" in r}
    assert set(records) == {m for m, r in APP_MESSAGES.items() if r >= rank}
    # print() stays plain text, filtered as INFO; a printed JSON line is filtered by its "level".
    assert ("printed plain" in lines) == (rank <= 2)
    assert any('"printed json"' in line for line in lines) == (rank <= 1)
    for message, record in records.items():
        assert record["requestId"] == rid and record["logger"] == "app"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["timestamp"])
        assert record["level"] == {1: "DEBUG", 2: "INFO", 3: "WARNING", 4: "ERROR"}[APP_MESSAGES[message]]
    err = records["at error"]
    assert err["order"] == 7 and "stackTrace" not in err  # extra attributes merged
    exc = records["with traceback"]
    assert (exc["errorType"], exc["errorMessage"]) == ("KeyError", "'missing'")
    assert re.fullmatch(r"/\S*/app\.py:handler:\d+", exc["location"]) and "app.py" in exc["stackTrace"][0]  # /var/task in a sandbox


def test_uncaught_error_in_json(lambda_client: Any, fname: str) -> None:
    src = "def handler(event, context):\n    raise ValueError('bad thing')\n"
    deploy(lambda_client, fname, {"app.py": src}, LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "ERROR"})
    resp, body, lines = invoke_tail(lambda_client, fname)
    assert resp["FunctionError"] == "Unhandled" and body["errorType"] == "ValueError"
    logged = [r for r in json_lines(lines) if r.get("level") == "ERROR"]
    assert len(logged) == 1 and logged[0]["errorMessage"] == "bad thing" and logged[0]["requestId"] == resp["ResponseMetadata"]["RequestId"]


def test_text_format_is_unchanged(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": LOGS})
    resp, body, lines = invoke_tail(lambda_client, fname)
    rid = resp["ResponseMetadata"]["RequestId"]
    assert body == [None, None]
    assert lines[0] == f"START RequestId: {rid} Version: $LATEST"
    assert lines[-2] == f"END RequestId: {rid}" and lines[-1].startswith(f"REPORT RequestId: {rid}\t")
    assert "printed plain" in lines and '{"level": "debug", "msg": "printed json"}' in lines
    assert any(line.startswith(f"[WARNING]\t") and line.endswith(f"\t{rid}\tat warning 1") for line in lines)
    assert not any(line.startswith("{") and '"type"' in line for line in lines)


# --- platform records ------------------------------------------------------------------------


def platform(lines: list[str]) -> list[dict[str, Any]]:
    return [r for r in json_lines(lines) if str(r.get("type", "")).startswith("platform.")]


def test_system_log_level_debug(server: RunningServer, lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": APP}, MemorySize=256, LoggingConfig={"LogFormat": "JSON", "SystemLogLevel": "DEBUG"})
    resp, _, lines = invoke_tail(lambda_client, fname)
    rid = resp["ResponseMetadata"]["RequestId"]
    records = platform(lines)
    assert [r["type"] for r in records] == ["platform.start", "platform.runtimeDone", "platform.report"]
    for r in records:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["time"])
    start, done, report = (r["record"] for r in records)
    assert start == {"requestId": rid, "functionArn": f"arn:aws:lambda:us-east-1:000000000000:function:{fname}", "version": "$LATEST"}
    assert done["requestId"] == rid and done["status"] == "success" and done["metrics"]["producedBytes"] == 1
    assert report["requestId"] == rid and report["status"] == "success"
    metrics = report["metrics"]
    assert set(metrics) == {"durationMs", "billedDurationMs", "memorySizeMB", "maxMemoryUsedMB", "initDurationMs"}
    assert metrics["memorySizeMB"] == 256 and metrics["durationMs"] > 0
    # Lambda bills an on-demand init with its invocation (since August 2025).
    assert -0.001 <= metrics["billedDurationMs"] - (metrics["durationMs"] + metrics["initDurationMs"]) < 1.001
    # The init records of the environment are in the stream, before the invocation's.
    stream = platform(wait_for_log(server.endpoint, fname, '"platform.report"'))
    assert [r["type"] for r in stream][:3] == ["platform.initStart", "platform.initRuntimeDone", "platform.initReport"]
    init = stream[0]["record"]
    assert (init["initializationType"], init["phase"], init["functionName"], init["functionVersion"]) == ("on-demand", "init", fname, "$LATEST")
    assert init["instanceMaxMemory"] == 256 * 1048576 and init["runtimeVersion"].startswith("python:3.11")
    assert stream[2]["record"]["status"] == "success" and stream[2]["record"]["metrics"]["durationMs"] > 0


def test_system_log_level_info_is_the_default(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": APP}, LoggingConfig={"LogFormat": "JSON"})
    _, _, lines = invoke_tail(lambda_client, fname)
    assert [r["type"] for r in platform(lines)] == ["platform.start", "platform.report"]
    assert not any(line.startswith(("START ", "END ", "REPORT ")) for line in lines)


def test_system_log_level_warn_keeps_only_failures(lambda_client: Any, fname: str) -> None:
    src = "import time\ndef handler(event, context):\n    if event.get('sleep'):\n        time.sleep(5)\n    return 1\n"
    deploy(lambda_client, fname, {"app.py": src}, Timeout=1, LoggingConfig={"LogFormat": "JSON", "SystemLogLevel": "WARN"})
    _, _, lines = invoke_tail(lambda_client, fname)
    assert platform(lines) == []
    resp, body, lines = invoke_tail(lambda_client, fname, {"sleep": True})
    assert body["errorType"] == "Sandbox.Timedout"
    records = platform(lines)
    assert [r["type"] for r in records] == ["platform.runtimeDone"]
    assert records[0]["record"]["status"] == "timeout" and records[0]["record"]["requestId"] == resp["ResponseMetadata"]["RequestId"]
    assert not any("Task timed out" in line for line in lines)  # the text format's line
