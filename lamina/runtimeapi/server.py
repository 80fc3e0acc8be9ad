"""The Runtime API listener: HTTP/1.1 on httptools, one listener per environment.

Each listener is bound to exactly one RuntimeSession, so whatever connects to it can only pull
that environment's invocations (ARCHITECTURE 3.6): there are no ids to guess. This module parses
and routes; the rules live in `session.py`.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections import deque
from dataclasses import dataclass
from typing import cast

import httptools

from lamina.runtimeapi import wire
from lamina.runtimeapi.extensions import ExtensionError
from lamina.runtimeapi.session import NextEvent, PostStatus, RuntimeGone, RuntimeSession

_REASONS = {200: b"OK", 202: b"Accepted", 400: b"Bad Request", 403: b"Forbidden", 404: b"Not Found",
            405: b"Method Not Allowed", 413: b"Request Entity Too Large", 500: b"Internal Server Error"}  # fmt: skip
_OK_BODY = b'{"status":"OK"}'
_ACCEPTED = b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(_OK_BODY), _OK_BODY)
# "<Header>: " prefixes of /next's answer, encoded once (names from wire.py).
_P_REQUEST_ID = wire.H_REQUEST_ID.encode() + b": "
_P_DEADLINE = wire.H_DEADLINE.encode() + b": "
_P_FUNCTION_ARN = wire.H_FUNCTION_ARN.encode() + b": "
_P_TRACE_ID = wire.H_TRACE_ID.encode() + b": "
_P_CLIENT_CONTEXT = wire.H_CLIENT_CONTEXT.encode() + b": "


@dataclass(slots=True)
class _Request:
    method: bytes
    path: str
    headers: dict[bytes, bytes]
    body: bytes
    too_large: bool
    keep_alive: bool


class _Connection(asyncio.Protocol):
    """One runtime connection. Requests are answered in order; /next may park until work exists
    (the connection is then the session's Waiter)."""

    def __init__(self, session: RuntimeSession, loop: asyncio.AbstractEventLoop) -> None:
        self._session = session
        self._loop = loop
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._queue: deque[_Request] = deque()
        self._waiting: _Request | None = None  # a /next parked in the session
        self._held = False  # a 202 for a reply is due: later requests wait for it (see _accept_soon)
        self._ext_waiting: _Request | None = None  # an extension's /event/next, parked in the hub
        self._served = 0  # requests taken on this connection (more than one: a kept-alive client)

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; both have write/close.
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._waiting is not None:
            # The runtime hung up while parked: it must not be handed an event it cannot read.
            self._waiting = None
            self._session.unpark(self)
        hub = self._session.extensions
        if hub is not None:
            self._ext_waiting = None
            hub.connection_closed(self, kept_alive=self._served > 1)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._write(400, _error_body("InvalidRequestFormat", "malformed HTTP request"), keep_alive=False)

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._body = []
        self._size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size <= wire.MAX_RESPONSE_BYTES:
            self._body.append(body)

    def on_message_complete(self) -> None:
        path = self._url.split(b"?", 1)[0].decode("latin-1")
        self._queue.append(
            _Request(
                method=self._parser.get_method(),
                path=path,
                headers=self._headers,
                body=b"".join(self._body),
                too_large=self._size > wire.MAX_RESPONSE_BYTES,
                keep_alive=self._parser.should_keep_alive(),
            )
        )
        if self._waiting is None and self._ext_waiting is None and not self._held:
            self._process()

    # routing
    def _process(self) -> None:
        while self._queue and self._waiting is None and self._ext_waiting is None and not self._held and self._transport is not None:
            self._handle(self._queue.popleft())

    def _handle(self, req: _Request) -> None:
        s = self._session
        path = req.path
        self._served += 1
        if path.startswith(wire.EXT_PREFIX):
            self._handle_extension(req)
            return
        if path == wire.NEXT and req.method == b"GET":
            try:
                event = s.next(self)
            except RuntimeGone:
                self._write(500, _error_body("ServiceException", "environment is shutting down"), keep_alive=False)
                return
            if event is not None:
                self._write_event(event, req.keep_alive)
            else:
                self._waiting = req
            return
        if req.method != b"POST":
            self._write(405 if path.startswith(wire.PREFIX) else 404, _error_body("NotFound", "unknown path"), req.keep_alive)
            return
        content_type = req.headers.get(wire.H_CONTENT_TYPE_LC, b"").decode("latin-1") or None
        if path == wire.INIT_ERROR:
            err = req.headers.get(wire.H_ERROR_TYPE_LC, b"").decode("latin-1") or None
            self._answer_post(s.post_init_error(req.body, err), req.keep_alive)
            return
        if path.startswith(wire.INVOCATION):
            request_id, _, action = path[len(wire.INVOCATION):].partition("/")
            if action == "response":
                mode = req.headers.get(wire.H_RESPONSE_MODE_LC)
                if mode is not None and mode.lower() != b"streaming":
                    self._write(400, _error_body("InvalidFunctionResponseMode", "Invalid response mode"), req.keep_alive)
                    return
                status = s.post_response(request_id, req.body, content_type, too_large=req.too_large)
                self._answer_reply(status, req.keep_alive)
                return
            if action == "error":
                err = req.headers.get(wire.H_ERROR_TYPE_LC, b"").decode("latin-1") or None
                self._answer_reply(s.post_error(request_id, req.body, content_type, err), req.keep_alive)
                return
        self._write(404, _error_body("NotFound", "unknown path"), req.keep_alive)

    def _handle_extension(self, req: _Request) -> None:
        """The Extensions API (spec 4.7): errors are 403s with Lambda's Extension.* types."""
        hub = self._session.extensions
        path = req.path
        if hub is None:
            self._write(404, _error_body("NotFound", "unknown path"), req.keep_alive)
            return
        ident = req.headers.get(wire.H_EXT_IDENTIFIER_LC, b"").decode("latin-1") or None
        try:
            if path == wire.EXT_REGISTER and req.method == b"POST":
                name = req.headers.get(wire.H_EXT_NAME_LC, b"").decode("latin-1") or None
                feature = req.headers.get(wire.H_EXT_ACCEPT_FEATURE_LC, b"").decode("latin-1") or None
                new_id, body = hub.register(name, req.body, feature)
                self._write(200, body, req.keep_alive, extra=wire.H_EXT_IDENTIFIER.encode() + b": " + new_id.encode() + b"\r\n")
            elif path == wire.EXT_NEXT and req.method == b"GET":
                event = hub.next(ident, self)
                if event is None:
                    self._ext_waiting = req
                else:
                    self._write_extension_event(*event, keep_alive=req.keep_alive)
            elif path in (wire.EXT_INIT_ERROR, wire.EXT_EXIT_ERROR) and req.method == b"POST":
                err = req.headers.get(wire.H_EXT_ERROR_TYPE_LC, b"").decode("latin-1") or None
                hub.post_error(ident, err, exiting=path == wire.EXT_EXIT_ERROR)
                self._write(202, _OK_BODY, req.keep_alive)
            else:
                self._write(404, _error_body("NotFound", "unknown path"), req.keep_alive)
        except ExtensionError as exc:
            self._write(exc.status, exc.body(), req.keep_alive)

    # the hub's EventWaiter
    def extension_event(self, event_id: str, body: bytes) -> None:
        req, self._ext_waiting = self._ext_waiting, None
        if req is None:
            return
        self._write_extension_event(event_id, body, keep_alive=req.keep_alive)
        self._process()

    def extension_gone(self) -> None:
        if self._ext_waiting is not None:
            self._ext_waiting = None
            self._write(500, _error_body("ServiceException", "environment is shutting down"), keep_alive=False)

    def _write_extension_event(self, event_id: str, body: bytes, *, keep_alive: bool) -> None:
        self._write(200, body, keep_alive, extra=wire.H_EXT_EVENT_IDENTIFIER.encode() + b": " + event_id.encode() + b"\r\n")

    # the session's Waiter
    def event_ready(self, event: NextEvent) -> None:
        req, self._waiting = self._waiting, None
        if req is None:
            return
        self._write_event(event, req.keep_alive)
        self._process()

    def session_gone(self) -> None:
        if self._waiting is not None:
            self._waiting = None
            self._write(500, _error_body("ServiceException", "environment is shutting down"), keep_alive=False)

    def _answer_reply(self, status: PostStatus, keep_alive: bool) -> None:
        """Answer a posted reply. An accepted one has just woken the environment's task, whose
        answer to its caller is the critical path: the runtime's 202 is written after it, from
        a callback queued behind that task's step (the client's answer first, as a relay does)."""
        if status is not PostStatus.ACCEPTED:
            self._answer_post(status, keep_alive)
            return
        self._held = True
        self._loop.call_soon(self._accept_soon, keep_alive)

    def _accept_soon(self, keep_alive: bool) -> None:
        self._held = False
        t = self._transport
        if t is None:
            return
        if keep_alive:
            t.write(_ACCEPTED)
        else:
            self._write(202, _OK_BODY, keep_alive)
        self._process()

    def _answer_post(self, status: PostStatus, keep_alive: bool) -> None:
        if status is PostStatus.ACCEPTED:
            self._write(202, _OK_BODY, keep_alive)
        elif status is PostStatus.INVALID_REQUEST_ID:
            self._write(400, _error_body("InvalidRequestID", "Invalid request ID"), keep_alive)
        elif status is PostStatus.TOO_LARGE:
            msg = f"Exceeded maximum allowed payload size ({wire.MAX_RESPONSE_BYTES} bytes)."
            self._write(413, _error_body("RequestEntityTooLarge", msg), keep_alive)
        else:
            self._write(403, _error_body("InvalidStateTransition", "State transition failed for runtime."), keep_alive)

    # writing
    def _write_event(self, ev: NextEvent, keep_alive: bool) -> None:
        head = [
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n",
            _P_REQUEST_ID, ev.request_id.encode(), b"\r\n",
            _P_DEADLINE, str(ev.deadline_ms).encode(), b"\r\n",
            _P_FUNCTION_ARN, ev.invoked_arn.encode(), b"\r\n",
        ]  # fmt: skip
        if ev.trace_id:
            head += [_P_TRACE_ID, ev.trace_id.encode(), b"\r\n"]
        if ev.client_context:
            head += [_P_CLIENT_CONTEXT, ev.client_context.encode(), b"\r\n"]
        head += [b"Content-Length: ", str(len(ev.payload)).encode(), b"\r\n"]
        if not keep_alive:
            head.append(b"Connection: close\r\n")
        head.append(b"\r\n")
        self._send(b"".join(head), ev.payload, keep_alive)

    def _write(self, status: int, body: bytes, keep_alive: bool, extra: bytes = b"") -> None:
        head = (
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s%s\r\n"
            % (status, _REASONS.get(status, b"Error"), len(body), extra, b"" if keep_alive else b"Connection: close\r\n")
        )
        self._send(head, body, keep_alive)

    def _send(self, head: bytes, body: bytes, keep_alive: bool) -> None:
        t = self._transport
        if t is None:
            return
        if len(body) < 65536:
            t.write(head + body)
        else:
            t.writelines((head, body))
        if not keep_alive:
            t.close()


def _error_body(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


async def start_listener(session: RuntimeSession, sock: socket.socket | None = None) -> asyncio.Server:
    """Serve `session` on `sock` (a listening socket, e.g. one made inside a sandbox's network
    namespace), or on a new 127.0.0.1 port. The caller owns the server: close() it with the
    environment."""
    loop = asyncio.get_running_loop()
    if sock is None:
        return await loop.create_server(lambda: _Connection(session, loop), "127.0.0.1", 0, reuse_address=True)
    return await loop.create_server(lambda: _Connection(session, loop), sock=sock)
