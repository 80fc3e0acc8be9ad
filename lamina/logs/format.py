"""The platform's own log lines (spec 6): Lambda's text lines (START, END, REPORT, INIT_START,
INIT_REPORT), or in the JSON log format the Telemetry API's records, `{"time","type","record"}`
(platform.initStart, .initRuntimeDone, .initReport, .start, .runtimeDone, .report), kept or
dropped by the function's SystemLogLevel as Lambda maps each record to a level. `PlatformLog`
also applies ApplicationLogLevel to the function's own output lines in JSON format.

Record shapes follow Lambda's CloudWatch output in JSON format (e.g. platform.start carries
requestId, functionArn and version; platform.report requestId, metrics and status).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

from lamina.model.function import LoggingConfig, LogLevel
from lamina.model.invocation import InvokeTimings


def start_line(request_id: str, version: str) -> str:
    return f"START RequestId: {request_id} Version: {version}"


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}"


def billed_ms(duration_ms: float) -> int:
    """Billed Duration: whole milliseconds, rounded up (1 ms granularity). The caller adds an
    on-demand Init Duration (Lambda's REPORT: Duration 15.74 + Init 130.49 → Billed 147 ms)."""
    return max(1, math.ceil(duration_ms))


def report_line(
    request_id: str,
    timings: InvokeTimings,
    memory_size: int,
    *,
    status: str | None = None,
    error_type: str | None = None,
    code: str | None = None,
) -> str:
    parts = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {timings.duration_ms:.2f} ms",
        f"Billed Duration: {timings.billed_ms} ms",
        f"Memory Size: {memory_size} MB",
        f"Max Memory Used: {timings.max_memory_mb} MB",
    ]
    if timings.init_ms is not None:
        parts.append(f"Init Duration: {timings.init_ms:.2f} ms")
    if status:
        parts.append(f"Status: {status}")
    if error_type:
        parts.append(f"Error Type: {error_type}")
    # Lamina's addition, last so Lambda's fields keep their places: cold, warm or provisioned.
    parts.append(f"Start: {timings.start}")
    if code:
        # Lamina's: the first 12 hex digits of the code the invocation ran (CodeSha256 of a zip, in
        # hex; the tree hash of a source snapshot), so a log says which save produced it.
        parts.append(f"Code: {code}")
    return "\t".join(parts) + "\t"


def init_start_line(runtime_version: str, runtime_version_arn: str) -> str:
    return f"INIT_START Runtime Version: {runtime_version}\tRuntime Version ARN: {runtime_version_arn}"


def init_report_line(init_ms: float, phase: str, status: str, error_type: str | None) -> str:
    line = f"INIT_REPORT Init Duration: {init_ms:.2f} ms\tPhase: {phase}\tStatus: {status}"
    return f"{line}\tError Type: {error_type}" if error_type else line


def timeout_line(request_id: str, timeout_s: float) -> str:
    return f"{_iso_now()} {request_id} Task timed out after {timeout_s:.2f} seconds"


def _iso_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def _record(kind: str, record: dict[str, Any]) -> str:
    return json.dumps({"time": _iso_now(), "type": kind, "record": record}, separators=(",", ":"))


# What the "level" of a JSON line the function printed means (Python's logging names included);
# anything else, and lines that are not JSON objects, count as INFO (Lambda's rule).
_LINE_LEVELS = {
    "TRACE": LogLevel.TRACE, "DEBUG": LogLevel.DEBUG, "INFO": LogLevel.INFO, "WARN": LogLevel.WARN,
    "WARNING": LogLevel.WARN, "ERROR": LogLevel.ERROR, "FATAL": LogLevel.FATAL, "CRITICAL": LogLevel.FATAL,
}  # fmt: skip


def line_level(line: str) -> LogLevel:
    """The level Lambda gives a line of function output when it filters application logs."""
    if not line.startswith("{"):
        return LogLevel.INFO
    try:
        value = json.loads(line)
    except ValueError:
        return LogLevel.INFO
    level = value.get("level") if isinstance(value, dict) else None
    return _LINE_LEVELS.get(level.upper(), LogLevel.INFO) if isinstance(level, str) else LogLevel.INFO


@dataclass(frozen=True, slots=True, kw_only=True)
class InitInfo:
    """What the init records of an environment name (platform.initStart and the reports)."""

    initialization_type: str  # on-demand | provisioned-concurrency
    function_name: str
    function_version: str
    instance_id: str
    memory_size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformLog:
    """One function's platform lines in its LoggingConfig's format. A method returns None for a
    line its SystemLogLevel drops (never in Text format, which has no levels)."""

    system_level: LogLevel | None = None  # None: Text format
    application_level: LogLevel | None = None  # None: Text format (function output unfiltered)

    @classmethod
    def for_config(cls, logging: LoggingConfig) -> PlatformLog:
        return cls(system_level=logging.system_level, application_level=logging.application_level)

    def _json(self, level: LogLevel, kind: str, record: dict[str, Any]) -> str | None:
        assert self.system_level is not None
        return _record(kind, record) if level >= self.system_level else None

    def keeps(self, line: str) -> bool:
        """Whether a line of function output passes ApplicationLogLevel (always, in Text format)."""
        return self.application_level is None or line_level(line) >= self.application_level

    def init_start(self, info: InitInfo, phase: str, runtime_version: str, runtime_version_arn: str) -> str | None:
        if self.system_level is None:
            return init_start_line(runtime_version, runtime_version_arn)
        return self._json(LogLevel.INFO, "platform.initStart", {
            "initializationType": info.initialization_type, "phase": phase, "runtimeVersion": runtime_version,
            "runtimeVersionArn": runtime_version_arn, "functionName": info.function_name,
            "functionVersion": info.function_version, "instanceId": info.instance_id,
            "instanceMaxMemory": info.memory_size * 1048576,
        })  # fmt: skip

    def init_done(self, info: InitInfo, phase: str, init_ms: float, status: str, error_type: str | None) -> list[str]:
        """The lines that end an init: INIT_REPORT after a failure (text), or platform.initRuntimeDone
        and platform.initReport (JSON; DEBUG when it succeeded on demand)."""
        if self.system_level is None:
            return [] if status == "success" else [init_report_line(init_ms, phase, status, error_type)]
        failed = status != "success"
        base: dict[str, Any] = {"initializationType": info.initialization_type, "phase": phase, "status": status}
        if error_type:
            base["errorType"] = error_type
        report_level = LogLevel.WARN if failed else (LogLevel.DEBUG if info.initialization_type == "on-demand" else LogLevel.INFO)
        lines = [
            self._json(LogLevel.WARN if failed else LogLevel.DEBUG, "platform.initRuntimeDone", base),
            self._json(report_level, "platform.initReport", {**base, "metrics": {"durationMs": round(init_ms, 3)}}),
        ]
        return [line for line in lines if line is not None]

    def start(self, request_id: str, version: str, function_arn: str) -> str | None:
        if self.system_level is None:
            return start_line(request_id, version)
        return self._json(LogLevel.INFO, "platform.start", {"requestId": request_id, "functionArn": function_arn, "version": version})

    def end(self, request_id: str, duration_ms: float, produced_bytes: int, error_type: str | None, status: str | None) -> str | None:
        """END (text) or platform.runtimeDone (JSON: DEBUG when it succeeded, else WARN)."""
        if self.system_level is None:
            return end_line(request_id)
        outcome = _json_status(status, error_type)
        record: dict[str, Any] = {"requestId": request_id, "status": outcome}
        if error_type:
            record["errorType"] = error_type
        record["metrics"] = {"durationMs": round(duration_ms, 3), "producedBytes": produced_bytes}
        return self._json(LogLevel.DEBUG if outcome == "success" else LogLevel.WARN, "platform.runtimeDone", record)

    def report(
        self,
        request_id: str,
        timings: InvokeTimings,
        memory_size: int,
        *,
        status: str | None = None,
        error_type: str | None = None,
        code: str | None = None,
    ) -> str | None:
        """REPORT (text; `status` only for platform failures) or platform.report (JSON). `code`: the
        code hash the invocation ran (Lamina's; the log store keeps it on every record too)."""
        if self.system_level is None:
            return report_line(request_id, timings, memory_size, status=status, error_type=error_type if status else None, code=code)
        metrics: dict[str, Any] = {
            "durationMs": round(timings.duration_ms, 3), "billedDurationMs": timings.billed_ms,
            "memorySizeMB": memory_size, "maxMemoryUsedMB": timings.max_memory_mb,
        }  # fmt: skip
        if timings.init_ms is not None:
            metrics["initDurationMs"] = round(timings.init_ms, 3)
        record: dict[str, Any] = {"requestId": request_id, "metrics": metrics, "status": _json_status(status, error_type)}
        if error_type:
            record["errorType"] = error_type
        return self._json(LogLevel.INFO, "platform.report", record)

    def timeout(self, request_id: str, timeout_s: float) -> str | None:
        """The text format's "Task timed out" line; JSON says it in runtimeDone and report."""
        return timeout_line(request_id, timeout_s) if self.system_level is None else None


def _json_status(status: str | None, error_type: str | None) -> str:
    """A record's status: the platform's (error, timeout) if any; a function error is "error"."""
    return status or ("error" if error_type else "success")
