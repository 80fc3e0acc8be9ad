"""Lambda's text-format platform lines (spec 6)."""

from __future__ import annotations

import math
import time

from lamina.model.invocation import InvokeTimings


def start_line(request_id: str, version: str) -> str:
    return f"START RequestId: {request_id} Version: {version}"


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}"


def billed_ms(duration_ms: float) -> int:
    """Billed Duration: whole milliseconds, rounded up (1 ms granularity)."""
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
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"
    return f"{stamp} {request_id} Task timed out after {timeout_s:.2f} seconds"
