"""Where an event goes when it ends: invocation records for destinations, dead letters (spec 7).

Both are new events for another Lamina function, stored in the same transaction that removes
the finished event (EventQueue.settle), so each is delivered at least once and recorded once.

- An invocation record is Lambda's JSON document (`version`, `timestamp`, `requestContext`
  with `requestId`, `functionArn`, `condition`, `approximateInvokeCount`; `requestPayload`;
  `responseContext` and `responsePayload` once an attempt ran). The payloads are spliced in as
  the bytes they are: the platform never decodes an event (a response that is not JSON goes in
  as a JSON string).
- A dead letter is the original event, as Lambda puts it in the SQS message body; the message
  attributes Lambda adds (`RequestID`, `ErrorCode`, `ErrorMessage`, the first 1 KB) reach the
  dead-letter function as its client context's `custom` values (context.client_context.custom).
"""

from __future__ import annotations

import json
import time
import uuid

import simdjson

from lamina.model.events import AsyncEvent, AttemptResponse, EventCondition
from lamina.model.ids import FunctionRef, RequestId

RECORD_VERSION = "1.0"
DEAD_LETTER_MESSAGE_LIMIT = 1024
# One parser, reused, on the event loop's thread only (as api/invoke.py does).
_parser = simdjson.Parser()


def invocation_record(event: AsyncEvent, *, condition: EventCondition, function_arn: str, timestamp: float) -> bytes:
    """The record for `event`, which ended with `condition` (`function_arn` qualified, spec 7)."""
    head = {
        "version": RECORD_VERSION,
        "timestamp": _iso_ms(timestamp),
        "requestContext": {
            "requestId": event.id,
            "functionArn": function_arn,
            "condition": condition.value,
            "approximateInvokeCount": event.attempts,
        },
    }
    parts = [json.dumps(head, separators=(",", ":")).encode()[:-1], b',"requestPayload":', _as_json(event.payload or b"{}")]
    r = event.last_response
    if r is not None:  # absent when nothing ran (ZeroReservedConcurrency, observed)
        context: dict[str, object] = {"statusCode": r.status_code, "executedVersion": r.executed_version}
        if r.function_error is not None:
            context["functionError"] = r.function_error
        parts += [b',"responseContext":', json.dumps(context, separators=(",", ":")).encode()]
        parts += [b',"responsePayload":', _as_json(r.payload)]
    parts.append(b"}")
    return b"".join(parts)


def record_event(target: FunctionRef, record: bytes, *, source: AsyncEvent, now: float) -> AsyncEvent:
    """The event that delivers an invocation record to a destination function."""
    return AsyncEvent(
        id=RequestId(str(uuid.uuid4())),
        function_name=target.name,
        qualifier=target.qualifier,
        payload=record,
        enqueued_at=now,
        trace_id=source.trace_id,
    )


def dead_letter_event(target: FunctionRef, *, source: AsyncEvent, now: float) -> AsyncEvent:
    """The event that delivers `source` to its dead-letter function."""
    code, message = _dead_letter_error(source.last_response)
    attributes = {"RequestID": source.id, "ErrorCode": code, "ErrorMessage": message[:DEAD_LETTER_MESSAGE_LIMIT]}
    return AsyncEvent(
        id=RequestId(str(uuid.uuid4())),
        function_name=target.name,
        qualifier=target.qualifier,
        payload=source.payload,
        enqueued_at=now,
        trace_id=source.trace_id,
        client_context=json.dumps({"custom": attributes}),
    )


def _dead_letter_error(r: AttemptResponse | None) -> tuple[str, str]:
    """SQS attributes ErrorCode (the invoke's status) and ErrorMessage (the function's message)."""
    if r is None:  # it never ran: throttled until it expired, or reserved concurrency 0
        return "429", "Rate Exceeded."
    message = r.error_type or ""
    try:
        doc = json.loads(r.payload)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("errorMessage"), str):
        message = doc["errorMessage"]
    return str(r.status_code), message


def _as_json(payload: bytes) -> bytes:
    """`payload` if it is a JSON document, else the same text as a JSON string."""
    if not payload:
        return b"null"
    try:
        _parser.parse(payload)
    except ValueError:
        return json.dumps(payload.decode("utf-8", "replace")).encode()
    return payload


def _iso_ms(t: float) -> str:
    """2019-11-14T18:16:05.568Z, as Lambda stamps records."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"
