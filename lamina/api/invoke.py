"""Invoke (RequestResponse, Event, DryRun) and the deprecated InvokeAsync (spec 3.1, 3.2).

Invoke is the data plane's front door, so `InvokeRoute` serves it as a raw ASGI app placed in
front of Starlette (see app.py): the route is matched with two string tests, the scope's headers
are read in one pass, and the response is two ASGI messages. Starlette's middleware, its walk
over the route table's regexes and its Request/Response objects took 35 µs of CPU per invoke;
this takes 14 µs. Errors still go through `common.failure_response`, as on every other route.
`InvokeRoute.answer` builds the whole answer (status, headers, body) from the scope and the
payload, so the HTTP protocol (`http.py`) can serve Invoke without the ASGI cycle and write the
answer in one piece; the ASGI path above remains for requests that protocol hands to uvicorn.

The payload is checked to be JSON (Lambda refuses anything else) with simdjson, which validates
without building Python objects (1 MB of records: about 1 ms against 17 ms for `json.loads`),
and then passed on as the same bytes object: the platform never decodes or re-encodes an event.
"""

from __future__ import annotations

import base64
import binascii
import json

import simdjson
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from lamina.api.common import Services, empty_response, failure_response, json_response
from lamina.api.url_gateway import url_target
from lamina.model.errors import InvalidRequestContentException, RequestEntityTooLargeException
from lamina.model.events import ASYNC_PAYLOAD_LIMIT
from lamina.model.ids import FunctionRef, validation_error
from lamina.model.invocation import SYNC_PAYLOAD_LIMIT, InvocationType, InvokeRequest

SYNC_LIMIT = SYNC_PAYLOAD_LIMIT
ASYNC_LIMIT = ASYNC_PAYLOAD_LIMIT
CLIENT_CONTEXT_LIMIT = 3583
_PREFIX = "/2015-03-31/functions/"
_SUFFIX = "/invocations"
_TYPES = {t.value: t for t in InvocationType}
# One parser, reused: it keeps its buffers between documents. Only the event loop's thread uses
# it, and no document outlives `_check_json`, which pysimdjson requires before the next parse.
_parser = simdjson.Parser()
_JSON_TYPE = (b"content-type", b"application/json")
# An answer to an Invoke request: status, headers (content-length among them), body.
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


def _amz_headers(raw: list[tuple[bytes, bytes]]) -> dict[bytes, str]:
    """The scope's x-amz* headers, in one pass; the first of a repeated name wins, as in Starlette."""
    found: dict[bytes, str] = {}
    for key, value in raw:
        if key.startswith(b"x-am") and key not in found:
            found[key] = value.decode("latin-1")
    return found


class _ClientGone(Exception):
    """The caller hung up before its request body arrived: there is no one to answer."""


class InvokeRoute:
    """ASGI: answers function URL requests (through `Services.url_gateway`) and POST
    /2015-03-31/functions/{name}/invocations; passes anything else to `app`.

    `{name}` matches as Starlette's `{name}` would (one or more characters, no `/`), so every
    other request, wrong methods included, gets the same answer from `app` as before.
    """

    def __init__(self, services: Services, app: ASGIApp) -> None:
        self._services = services
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            target = url_target(scope)  # function URLs first: their paths are the function's own
            if target is not None:
                await self._services.url_gateway.serve(scope, receive, send, *target)
                return
        if scope["type"] == "http" and scope["method"] == "POST":
            name = function_name(scope["path"])
            if name is not None:
                await self._invoke(scope, receive, send, name)
                return
        await self._app(scope, receive, send)

    async def _invoke(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        try:
            payload = await _read_body(receive)
        except _ClientGone:
            return
        status, headers, body = await self.answer(scope, name, payload, len(payload))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def answer(self, scope: Scope, name: str, payload: bytes, size: int) -> Answer:
        """The answer to Invoke of `name` (from `function_name`) with `payload` as the body.

        `size` is the body's length as received: `payload` may have been cut short once the body
        passed every limit (the protocol stops keeping it then). Never raises an Exception:
        failures become Lambda's error answers, as on every other route.
        """
        s = self._services
        try:
            s.authorizer.authorize(Request(scope), "invoke")
            headers = _amz_headers(scope["headers"])
            query: bytes = scope["query_string"]
            ref = FunctionRef.parse(name, QueryParams(query).get("Qualifier") if query else None)
            itype = _invocation_type(headers.get(b"x-amz-invocation-type"))
            _check_size(itype, size)
            _check_json(payload)
            req = InvokeRequest(
                ref=ref,
                payload=payload,
                invocation_type=itype,
                client_context=_client_context(headers.get(b"x-amz-client-context")),
                tail_log=headers.get(b"x-amz-log-type") == "Tail",
                trace_id=headers.get(b"x-amzn-trace-id"),
            )
            if itype is InvocationType.DRY_RUN:
                s.invoker.route(req)
                response = empty_response(204)
            elif itype is InvocationType.EVENT:
                # 202 only once the event is durably stored (asyncq.Dispatcher.submit).
                response = empty_response(202, await s.dispatcher.submit(req))
            else:
                return await _answer_sync(req, s)
        except Exception as exc:  # the boundary, as `common.endpoint`
            response = failure_response(exc, "POST", scope["path"])
        return response.status_code, response.raw_headers, bytes(response.body)


def function_name(path: str) -> str | None:
    """`{name}` if `path` is Invoke's, matched as Starlette's `{name}` would (one or more
    characters, no `/`), so any other path gets the same answer from Starlette as before."""
    if path.startswith(_PREFIX) and path.endswith(_SUFFIX):
        name = path[len(_PREFIX) : -len(_SUFFIX)]
        if name and "/" not in name:
            return name
    return None


async def _answer_sync(req: InvokeRequest, s: Services) -> Answer:
    result = await s.invoker.invoke(req)
    # Starlette's Response would send the same: lower-case names, its own headers first.
    headers = [(b"x-amzn-requestid", result.request_id.encode()), (b"x-amz-executed-version", result.executed_version.encode())]
    if result.failed:
        headers.append((b"x-amz-function-error", b"Unhandled"))
    if result.log_tail is not None:
        headers.append((b"x-amz-log-result", base64.b64encode(result.log_tail)))
    headers += ((b"content-length", b"%d" % len(result.payload)), _JSON_TYPE)
    return 200, headers, result.payload


async def _read_body(receive: Receive) -> bytes:
    """The request body; one chunk is returned as it came, several are joined once."""
    message = await receive()
    if message["type"] != "http.request":
        raise _ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    chunks = [body]
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _ClientGone
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _invocation_type(raw: str | None) -> InvocationType:
    if raw is None:
        return InvocationType.REQUEST_RESPONSE
    itype = _TYPES.get(raw)
    if itype is None:
        raise validation_error(raw, "invocationType", "Member must satisfy enum value set: [Event, RequestResponse, DryRun]")
    return itype


def _check_size(itype: InvocationType, size: int) -> None:
    if itype is InvocationType.EVENT and size > ASYNC_LIMIT:
        raise RequestEntityTooLargeException(
            f"{size} byte payload is too large for the Event invocation type (limit {ASYNC_LIMIT} bytes)"
        )
    if size > SYNC_LIMIT:
        raise RequestEntityTooLargeException(f"Request must be smaller than {SYNC_LIMIT} bytes for the InvokeFunction operation")


def _check_json(payload: bytes) -> None:
    """Lambda refuses a payload that is not JSON (spec 3.2). Strict RFC 8259, as Lambda's parser:
    NaN, Infinity, invalid UTF-8 and lone surrogates are refused."""
    if not payload:
        return
    try:
        _parser.parse(payload)
    except ValueError as exc:
        raise InvalidRequestContentException(
            f"Could not parse request body into json: Could not parse payload into json: {_describe(payload, exc)}"
        ) from exc


def _describe(payload: bytes, exc: ValueError) -> str:
    """What is wrong with `payload`: the stdlib's message says where, so prefer it when it has one."""
    try:
        json.loads(payload)
    except ValueError as std:
        return str(std)
    return str(exc)


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


async def invoke_async(request: Request, s: Services) -> Response:
    """The deprecated InvokeAsync: an Event invoke answering {"Status": 202}."""
    ref = FunctionRef.parse(request.path_params["name"])
    payload = await request.body()
    if len(payload) > ASYNC_LIMIT:
        raise RequestEntityTooLargeException(
            f"{len(payload)} byte payload is too large for the Event invocation type (limit {ASYNC_LIMIT} bytes)"
        )
    _check_json(payload)
    request_id = await s.dispatcher.submit(InvokeRequest(ref=ref, payload=payload, invocation_type=InvocationType.EVENT))
    return json_response({"Status": 202}, 202, request_id)
