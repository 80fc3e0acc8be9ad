"""logs/format.py: the levels Lambda gives function output and platform records (spec 6)."""

from __future__ import annotations

import json

import pytest

from lamina.logs.format import InitInfo, PlatformLog, line_level
from lamina.model.function import LoggingConfig, LogFormat, LogLevel
from lamina.model.invocation import InvokeTimings


@pytest.mark.parametrize(
    ("line", "level"),
    [
        ("plain print", LogLevel.INFO),
        ('{"level": "debug", "msg": "x"}', LogLevel.DEBUG),
        ('{"level": "WARNING", "message": "x"}', LogLevel.WARN),
        ('{"level": "CRITICAL"}', LogLevel.FATAL),
        ('{"level": "loud"}', LogLevel.INFO),
        ('{"level": 3}', LogLevel.INFO),
        ("{not json", LogLevel.INFO),
        ('["level", "ERROR"]', LogLevel.INFO),
    ],
)
def test_line_level(line: str, level: LogLevel) -> None:
    assert line_level(line) is level


def test_text_format_keeps_everything_and_writes_text_lines() -> None:
    plog = PlatformLog.for_config(LoggingConfig())
    assert plog.keeps('{"level": "debug"}') and plog.keeps("x")
    assert plog.start("r1", "$LATEST", "arn") == "START RequestId: r1 Version: $LATEST"
    assert plog.end("r1", 1.0, 2, None, None) == "END RequestId: r1"
    assert str(plog.timeout("r1", 3)).endswith(" r1 Task timed out after 3.00 seconds")


INFO = InitInfo(initialization_type="on-demand", function_name="f", function_version="$LATEST", instance_id="i", memory_size=128)
TIMINGS = InvokeTimings(duration_ms=1.23456, billed_ms=2, max_memory_mb=30, init_ms=5.0)


@pytest.mark.parametrize(
    ("system", "kinds_ok", "kinds_failed"),
    [
        (LogLevel.DEBUG, ["initStart", "initRuntimeDone", "initReport", "start", "runtimeDone", "report"],
         ["initRuntimeDone", "initReport", "start", "runtimeDone", "report"]),
        (LogLevel.INFO, ["initStart", "start", "report"], ["initRuntimeDone", "initReport", "start", "runtimeDone", "report"]),
        (LogLevel.WARN, [], ["initRuntimeDone", "initReport", "runtimeDone"]),
    ],
)  # fmt: skip
def test_system_log_level_mapping(system: LogLevel, kinds_ok: list[str], kinds_failed: list[str]) -> None:
    plog = PlatformLog.for_config(LoggingConfig(log_format=LogFormat.JSON, system_log_level=system))

    def kinds(ok: bool) -> list[str]:
        status, error = ("success", None) if ok else ("error", "Runtime.ExitError")
        lines = [] if not ok else [plog.init_start(INFO, "init", "python:3.11.v1", "arn:rt")]
        lines += plog.init_done(INFO, "init", 10.0, status, error)
        lines += [plog.start("r", "$LATEST", "arn:fn"), plog.end("r", 1.0, 1, error, None if ok else "error"),
                  plog.report("r", TIMINGS, 128, status=None if ok else "error", error_type=error)]  # fmt: skip
        return [json.loads(line)["type"].removeprefix("platform.") for line in lines if line is not None]

    assert kinds(True) == kinds_ok
    assert kinds(False) == [k for k in kinds_failed if k != "initStart"]


def test_report_record_shape() -> None:
    plog = PlatformLog.for_config(LoggingConfig(log_format=LogFormat.JSON))
    report = plog.report("r", TIMINGS, 128, error_type="ValueError")
    assert report is not None
    record = json.loads(report)
    assert list(record) == ["time", "type", "record"]
    assert record["record"] == {
        "requestId": "r", "status": "error", "errorType": "ValueError",
        "metrics": {"durationMs": 1.235, "billedDurationMs": 2, "memorySizeMB": 128, "maxMemoryUsedMB": 30, "initDurationMs": 5.0},
    }  # fmt: skip
    assert PlatformLog.for_config(LoggingConfig(log_format=LogFormat.JSON, application_log_level=LogLevel.ERROR)).keeps("print") is False
