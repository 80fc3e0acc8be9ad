"""The L_relay_wrk baseline's server (G7): a minimal Runtime-API relay on uvloop + httptools.

Run as `python relay_server.py`; it binds 127.0.0.1 on a free port, prints `RELAY_PORT <port>`,
and serves until SIGTERM or SIGINT. One port, one event-loop thread, one asyncio.Protocol per
connection, routed by path:

- `GET /2018-06-01/runtime/invocation/next`: a runtime parks here (long poll) until an event
  comes, then gets it with Lambda's headers (request id, deadline, function ARN);
- `POST /2018-06-01/runtime/invocation/<id>/response` (or `/error`): the runtime's result, handed
  to the waiting client; the runtime gets 202;
- `GET /relay/status`: how many runtime connections have asked for work (readiness, not timed);
- any other POST: an invoke. Its body goes to a parked runtime, or waits in a FIFO for one.

This is the shape PERFORMANCE 2c measured ("Runtime-API-shaped warm relay"): three HTTP exchanges
and two processes besides the client, nothing else: no routing table, no accounting, no logs.
It is the floor a Python platform of Lamina's shape can reach, which G7 holds Lamina to.
"""

from __future__ import annotations

import asyncio
import collections
import signal
import time
from typing import cast

import httptools
import uvloop

READY_PREFIX = "RELAY_PORT "
NEXT_PATH = b"/2018-06-01/runtime/invocation/next"
INVOCATION_PREFIX = b"/2018-06-01/runtime/invocation/"
STATUS_PATH = b"/relay/status"
FUNCTION_ARN = b"arn:aws:lambda:us-east-1:000000000000:function:relay"
DEADLINE_MS = 30_000
_ACCEPTED = b'HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{"status":"OK"}\n'


class Relay:
    """Invocations waiting for a runtime, runtimes waiting for an invocation, results awaited."""

    def __init__(self) -> None:
        self.waiting: collections.deque[tuple[bytes, bytes, RelayProtocol]] = collections.deque()
        self.parked: collections.deque[RelayProtocol] = collections.deque()
        self.pending: dict[bytes, RelayProtocol] = {}
        self.runtimes: set[int] = set()  # id() of each connection that has asked for work
        self._next_id = 0

    def invoke(self, client: RelayProtocol, body: bytes) -> None:
        self._next_id += 1
        request_id = b"%08d-0000-4000-8000-000000000000" % self._next_id
        self.pending[request_id] = client
        while self.parked:
            runtime = self.parked.popleft()
            if not runtime.closed:
                runtime.send_event(request_id, body)
                return
        self.waiting.append((request_id, body, client))

    def next(self, runtime: RelayProtocol) -> None:
        self.runtimes.add(id(runtime))
        if self.waiting:
            request_id, body, _ = self.waiting.popleft()
            runtime.send_event(request_id, body)
        else:
            self.parked.append(runtime)

    def result(self, request_id: bytes, body: bytes, error: bool) -> None:
        client = self.pending.pop(request_id, None)
        if client is not None and not client.closed:
            client.send_result(body, error)


class RelayProtocol(asyncio.Protocol):
    def __init__(self, relay: Relay) -> None:
        self._relay = relay
        self._transport: asyncio.WriteTransport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._body: list[bytes] = []
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self._transport = cast(asyncio.WriteTransport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            if self._transport is not None:
                self._transport.close()

    # httptools callbacks.
    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        url, body = self._url, b"".join(self._body)
        self._url = b""
        self._body.clear()
        method = self._parser.get_method()
        if method == b"GET" and url == NEXT_PATH:
            self._relay.next(self)
        elif method == b"POST" and url.startswith(INVOCATION_PREFIX):
            request_id, _, kind = url[len(INVOCATION_PREFIX) :].partition(b"/")
            self._relay.result(request_id, body, error=kind == b"error")
            self._write(_ACCEPTED)
        elif method == b"GET" and url == STATUS_PATH:
            status = b'{"runtimes":%d}' % len(self._relay.runtimes)
            self._write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(status), status))
        else:
            self._relay.invoke(self, body)

    def send_event(self, request_id: bytes, body: bytes) -> None:
        deadline = int(time.time() * 1000) + DEADLINE_MS
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: %s\r\n"
            b"Lambda-Runtime-Deadline-Ms: %d\r\nLambda-Runtime-Invoked-Function-Arn: %s\r\nContent-Length: %d\r\n\r\n"
        ) % (request_id, deadline, FUNCTION_ARN, len(body))
        self._write(head, body)

    def send_result(self, body: bytes, error: bool) -> None:
        extra = b"X-Amz-Function-Error: Unhandled\r\n" if error else b""
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n" % (extra, len(body))
        self._write(head, body)

    def _write(self, head: bytes, body: bytes = b"") -> None:
        if self._transport is not None and not self.closed:
            self._transport.writelines((head, body) if body else (head,))


async def serve() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    relay = Relay()
    server = await loop.create_server(lambda: RelayProtocol(relay), "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"{READY_PREFIX}{port}", flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    uvloop.install()
    asyncio.run(serve())
