"""The L_http baseline server: minimal keep-alive HTTP/1.1 on uvloop + httptools (PERFORMANCE 2c).

Run as `python echo_server.py`; it binds 127.0.0.1 on a free port, prints `ECHO_PORT <port>` and
answers every request with `{"ok":true}` until SIGTERM or SIGINT, except requests to `/echo`,
which get their own body back (L_1MB: a no-op function returns its event, so the platform's 1 MB
invoke carries 1 MB both ways, and so does its baseline). One event-loop thread, one
asyncio.Protocol per connection, no framework: the floor for one HTTP exchange on this machine.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from typing import cast

import httptools
import uvloop

READY_PREFIX = "ECHO_PORT "
_BODY = b'{"ok":true}'
ECHO_PATH = b"/echo"
_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(_BODY)).encode()
    + b"\r\n\r\n"
    + _BODY
)


class EchoProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self._transport: asyncio.WriteTransport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._echo = False
        self._body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self._transport = cast(asyncio.WriteTransport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:  # uvloop sets TCP_NODELAY already; plain asyncio does not
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            if self._transport is not None:
                self._transport.close()

    # httptools callbacks. Only /echo keeps its body: the plain reply stays the cheapest possible.
    def on_url(self, url: bytes) -> None:
        self._echo = url == ECHO_PATH

    def on_body(self, body: bytes) -> None:
        if self._echo:
            self._body.append(body)

    # The whole request (headers and body) has arrived.
    def on_message_complete(self) -> None:
        if self._transport is None:
            return
        if not self._echo:
            self._transport.write(_RESPONSE)
            return
        body = b"".join(self._body)
        self._body.clear()
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        self._transport.writelines((head, body))


async def serve() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(EchoProtocol, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"{READY_PREFIX}{port}", flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    uvloop.install()
    asyncio.run(serve())
