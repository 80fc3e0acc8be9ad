"""Invocation records and dead letters: Lambda's shapes (spec 7), payloads spliced in as they are."""

from __future__ import annotations

import json

from lamina.asyncq.destinations import dead_letter_event, invocation_record, record_event
from lamina.model.events import AsyncEvent, AttemptResponse, EventCondition
from lamina.model.ids import FunctionName, FunctionRef, RequestId

ARN = "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST"


def _event(**kw: object) -> AsyncEvent:
    return AsyncEvent(id=RequestId("e4b46cbf-0000-4000-8000-000000000001"), function_name="f", qualifier=None,
                      payload=b'{"a": [1, 2]}', enqueued_at=0.0, **kw)  # type: ignore[arg-type]  # fmt: skip


def test_failure_record_has_lambdas_shape() -> None:
    error = b'{"errorMessage": "boom", "errorType": "ValueError"}'
    e = _event(attempts=3, last_response=AttemptResponse(executed_version="$LATEST", function_error="Unhandled", payload=error))
    record = json.loads(invocation_record(e, condition=EventCondition.RETRIES_EXHAUSTED, function_arn=ARN, timestamp=1573755365.568))
    assert record == {
        "version": "1.0",
        "timestamp": "2019-11-14T18:16:05.568Z",
        "requestContext": {"requestId": e.id, "functionArn": ARN, "condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": {"a": [1, 2]},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": "boom", "errorType": "ValueError"},
    }


def test_success_record_has_no_function_error_and_keeps_odd_payloads() -> None:
    e = _event(attempts=1, last_response=AttemptResponse(executed_version="3", function_error=None, payload=b"not json"))
    record = json.loads(invocation_record(e, condition=EventCondition.SUCCESS, function_arn=ARN, timestamp=0))
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "3"}
    assert record["responsePayload"] == "not json"


def test_nothing_ran_no_response_members() -> None:
    record = json.loads(invocation_record(_event(), condition=EventCondition.ZERO_RESERVED_CONCURRENCY, function_arn=ARN, timestamp=0))
    assert record["requestContext"]["approximateInvokeCount"] == 0
    assert "responseContext" not in record and "responsePayload" not in record


def test_destination_and_dead_letter_events() -> None:
    target = FunctionRef(name=FunctionName("dest"), qualifier="live")
    e = _event(attempts=1, last_response=AttemptResponse(executed_version="$LATEST", function_error="Unhandled",
                                                         payload=b'{"errorMessage": "' + b"m" * 2000 + b'"}'))  # fmt: skip
    r = record_event(target, b"{}", source=e, now=5.0)
    assert (r.function_name, r.qualifier, r.payload, r.enqueued_at) == ("dest", "live", b"{}", 5.0)
    assert r.id != e.id
    d = dead_letter_event(target, source=e, now=5.0)
    assert d.payload == e.payload  # the original event, as Lambda's SQS message body
    custom = json.loads(d.client_context or "")["custom"]
    assert custom["RequestID"] == e.id and custom["ErrorCode"] == "200"
    assert custom["ErrorMessage"] == "m" * 1024
