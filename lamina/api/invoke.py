"""Invoke (RequestResponse, Event, DryRun) and the deprecated InvokeAsync (spec 3.1, 3.2)."""

from __future__ import annotations

import base64
import binascii
import json

from starlette.requests import Request
from starlette.responses import Response

from lamina.api.common import Services, empty_response, json_response
from lamina.model.errors import InvalidRequestContentException, RequestEntityTooLargeException
from lamina.model.ids import FunctionRef, validation_error
from lamina.model.invocation import InvocationType, InvokeRequest

SYNC_LIMIT = 6_291_456
ASYNC_LIMIT = 1_048_576
CLIENT_CONTEXT_LIMIT = 3583
_TYPES = {t.value: t for t in InvocationType}


def _check_json(payload: bytes) -> None:
    """Lambda refuses a payload that is not JSON (spec 3.2)."""
    if not payload:
        return
    try:
        json.loads(payload)
    except ValueError as exc:
        raise InvalidRequestContentException(
            f"Could not parse request body into json: Could not parse payload into json: {exc}"
        ) from exc


def _client_context(raw: str | None) -> str | None:
    if raw is None:
        return None
    if len(raw) > CLIENT_CONTEXT_LIMIT:
        raise validation_error(raw[:40] + "...", "clientContext", f"Member must have length less than or equal to {CLIENT_CONTEXT_LIMIT}")
    try:
        text = base64.b64decode(raw, validate=True).decode()
        json.loads(text)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequestContentException("Client context must be a valid Base64-encoded JSON object.") from exc
    return text


async def invoke(request: Request, s: Services) -> Response:
    ref = FunctionRef.parse(request.path_params["name"], request.query_params.get("Qualifier"))
    raw_type = request.headers.get("x-amz-invocation-type", "RequestResponse")
    itype = _TYPES.get(raw_type)
    if itype is None:
        raise validation_error(raw_type, "invocationType", "Member must satisfy enum value set: [Event, RequestResponse, DryRun]")
    payload = await request.body()
    if itype is InvocationType.EVENT and len(payload) > ASYNC_LIMIT:
        raise RequestEntityTooLargeException(
            f"{len(payload)} byte payload is too large for the Event invocation type (limit {ASYNC_LIMIT} bytes)"
        )
    if len(payload) > SYNC_LIMIT:
        raise RequestEntityTooLargeException(f"Request must be smaller than {SYNC_LIMIT} bytes for the InvokeFunction operation")
    _check_json(payload)
    req = InvokeRequest(
        ref=ref,
        payload=payload,
        invocation_type=itype,
        client_context=_client_context(request.headers.get("x-amz-client-context")),
        tail_log=request.headers.get("x-amz-log-type") == "Tail",
        trace_id=request.headers.get("x-amzn-trace-id"),
    )
    if itype is InvocationType.DRY_RUN:
        s.invoker.route(req)
        return empty_response(204)
    if itype is InvocationType.EVENT:
        return empty_response(202, s.invoker.submit_event(req))
    result = await s.invoker.invoke(req)
    headers = {"x-amzn-RequestId": result.request_id, "X-Amz-Executed-Version": result.executed_version}
    if result.failed:
        headers["X-Amz-Function-Error"] = "Unhandled"
    if result.log_tail is not None:
        headers["X-Amz-Log-Result"] = base64.b64encode(result.log_tail).decode()
    return Response(result.payload, status_code=200, headers=headers, media_type="application/json")


async def invoke_async(request: Request, s: Services) -> Response:
    """The deprecated InvokeAsync: an Event invoke answering {"Status": 202}."""
    ref = FunctionRef.parse(request.path_params["name"])
    payload = await request.body()
    if len(payload) > ASYNC_LIMIT:
        raise RequestEntityTooLargeException(
            f"{len(payload)} byte payload is too large for the Event invocation type (limit {ASYNC_LIMIT} bytes)"
        )
    _check_json(payload)
    request_id = s.invoker.submit_event(InvokeRequest(ref=ref, payload=payload, invocation_type=InvocationType.EVENT))
    return json_response({"Status": 202}, 202, request_id)
