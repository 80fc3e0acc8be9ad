"""Lamina's own endpoints under /lamina/v1: health, code download, logs, statistics, metrics, and the
asynchronous event queue (statistics, failed events, replay)."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from lamina.api.common import Services, json_response
from lamina.metrics import CONTENT_TYPE
from lamina.model.errors import InvalidParameterValueException, ResourceNotFoundException

_SHA = re.compile(r"^[0-9a-f]{64}$")


async def health(request: Request, s: Services) -> Response:
    return json_response({"status": "ok", "functions": s.functions.count()})


async def download_code(request: Request, s: Services) -> Response:
    """The target of GetFunction's Code.Location."""
    sha = request.path_params["sha"]
    if _SHA.match(sha) and s.code.has(sha):
        return FileResponse(s.code.zip_path(sha), media_type="application/zip", filename=f"{sha}.zip")
    tree = await s.code.zip_tree(sha) if _SHA.match(sha) else None  # a source snapshot's code
    if tree is None:
        raise ResourceNotFoundException(f"Code {sha} not found")
    return Response(tree, media_type="application/zip", headers={"Content-Disposition": f'attachment; filename="{sha}.zip"'})


def int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise InvalidParameterValueException(f"{name} must be a whole number from {lo} to {hi}")
    return int(raw)


async def read_logs(request: Request, s: Services) -> Response:
    """Events of a function's log group from byte offset `cursor`; `wait` long-polls for new ones."""
    name = request.path_params["name"]
    cursor = int_param(request, "cursor", 0, 0, 2**62)
    limit = int_param(request, "limit", 1000, 1, 10000)
    wait = int_param(request, "wait", 0, 0, 60)
    try:
        exists = s.logs.exists(name)
    except ValueError as exc:
        raise InvalidParameterValueException(str(exc)) from exc
    if not exists and not wait:
        raise ResourceNotFoundException(f"The specified log group does not exist: /aws/lambda/{name}")
    if wait:
        await s.logs.wait_for_more(name, cursor, wait)
        if not s.logs.exists(name):
            return json_response({"events": [], "nextCursor": cursor})
    events, next_cursor = s.logs.read(name, cursor, limit)
    return json_response(
        {
            "events": [
                {"timestamp": e.timestamp, "logStreamName": e.stream, "message": e.message, "codeSha256": e.code}
                for e in events
            ],
            "nextCursor": next_cursor,
        }
    )


async def environments(request: Request, s: Services) -> Response:
    """Execution environments and their states (statistics(), ARCHITECTURE rule 13)."""
    stats = s.environments.statistics()
    return json_response(
        {
            "environments": stats.environments,
            "idle": stats.idle,
            "busy": stats.busy,
            "coldStarts": stats.cold_starts,
            "warmStarts": stats.warm_starts,
            "memoryCommittedMb": stats.memory_committed_mb,
            "memoryBudgetMb": stats.memory_budget_mb,
            "evictions": stats.evictions,
            "details": [
                {"id": d.id, "function": d.function, "version": d.version, "state": d.state.value,
                 "invocations": d.invocations, "warm": d.warm, "provisioned": d.provisioned,
                 "codeSha256": d.code_sha256, "debugPort": d.debug_port,
                 "runtimeVersionArn": d.runtime_version_arn}  # fmt: skip
                for d in stats.details
            ],
        }
    )


async def runtimes(request: Request, s: Services) -> Response:
    """The runtime catalog (spec 10): every identifier with its lifecycle dates and phase on the
    server's today, and the versions installed here (newest first: the current one)."""
    await s.runtimes.look()
    items = []
    for e in s.calendar.entries():
        versions = s.runtimes.installed(e.identifier)
        items.append(
            {
                "identifier": e.identifier,
                "name": e.name,
                "os": e.os,
                "deprecation": e.deprecation.isoformat() if e.deprecation else None,
                "blockCreate": e.block_create.isoformat() if e.block_create else None,
                "blockUpdate": e.block_update.isoformat() if e.block_update else None,
                "phase": s.calendar.phase(e.identifier).value,
                "source": e.source,
                "available": bool(versions),
                "versions": [
                    {"name": v.name, "arn": v.arn, "interpreter": str(v.interpreter) if v.interpreter else None}
                    for v in versions
                ],
            }
        )
    return json_response({"today": s.calendar.today().isoformat(), "runtimes": items})


async def metrics(request: Request, s: Services) -> Response:
    """Prometheus metrics (text exposition format): invocations, throttles, durations, concurrency."""
    return Response(s.invoker.metrics.render(), media_type=CONTENT_TYPE)


# --- asynchronous invocation -------------------------------------------------------------------


async def events(request: Request, s: Services) -> Response:
    """The event queue, the dispatcher and the scheduler: what waits, what runs, what failed, what
    schedules fired (statistics())."""
    q = await s.queue.statistics()
    d = s.dispatcher.statistics()
    commits, writes = s.queue.commit_statistics()
    sched = s.scheduler.statistics()
    return json_response(
        {
            "queued": q.queued,
            "claimed": q.claimed,
            "failed": q.failed,
            "accepted": d.accepted,
            "inFlight": d.in_flight,
            "maxInFlight": d.max_in_flight,
            "succeeded": d.succeeded,
            "failedAttempts": d.failed_attempts,
            "throttled": d.throttled,
            "retriesScheduled": d.retries_scheduled,
            "ended": d.failed,
            "waiting": d.waiting,
            "functions": {
                name: {"window": f.window, "running": f.running, "waiting": f.waiting} for name, f in d.functions.items()
            },
            "commits": commits,
            "writesCommitted": writes,
            "schedules": {
                "schedules": sched.schedules,
                "enabled": sched.enabled,
                "fired": sched.fired,
                "caughtUp": sched.caught_up,
                "skipped": sched.skipped,
            },
        }
    )


_PREVIEW = 1024  # characters of a payload shown in a listing


async def failed_events(request: Request, s: Services) -> Response:
    """Events that failed with no destination or dead-letter target, oldest first.

    Query: `function` (a name; 404 if there is no such function and no failed event of it),
    `limit` (1–1000), `marker` (the `NextMarker` of the last page).
    """
    function = request.query_params.get("function") or None
    limit = int_param(request, "limit", 100, 1, 1000)
    after = int_param(request, "marker", 0, 0, 2**62)
    page = await s.queue.list_failed(function=function, after=after, limit=limit)
    if not page and function is not None and s.functions.find(function) is None:
        # (a deleted function's failed events are still listed, and can be replayed)
        raise ResourceNotFoundException(f"Function not found: {s.functions.arns.function(function)}")
    items = []
    for f in page:
        e = f.event
        item: dict[str, object] = {
            "RequestId": e.id,
            "FunctionArn": s.functions.arns.function(e.function_name, e.qualifier or "$LATEST"),
            "Condition": f.condition.value,
            "ApproximateInvokeCount": e.attempts,
            "EnqueuedAt": round(e.enqueued_at, 3),
            "FailedAt": round(f.failed_at, 3),
            "RequestPayload": e.payload[:_PREVIEW].decode("utf-8", "replace"),
            "RequestPayloadSize": len(e.payload),
        }
        if e.last_response is not None:
            r = e.last_response
            item["Response"] = {
                "StatusCode": r.status_code,
                "ExecutedVersion": r.executed_version,
                "FunctionError": r.function_error,
                "ErrorType": r.error_type,
                "Payload": r.payload[:_PREVIEW].decode("utf-8", "replace"),
            }
        items.append(item)
    body: dict[str, object] = {"FailedEvents": items}
    if len(page) == limit:
        body["NextMarker"] = str(page[-1].seq)
    return json_response(body)


async def replay_event(request: Request, s: Services) -> Response:
    """Put a failed event back in the queue, as new: attempts and age start again."""
    event_id = request.path_params["id"]
    event = await s.dispatcher.replay(event_id)
    if event is None:
        raise ResourceNotFoundException(f"No failed event has the request id {event_id}")
    return json_response(
        {"RequestId": event.id, "FunctionArn": s.functions.arns.function(event.function_name, event.qualifier or "$LATEST")},
        202,
    )
