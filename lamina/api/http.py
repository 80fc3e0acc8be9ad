"""The Lambda API's HTTP/1.1 protocol: uvicorn's httptools protocol, with Invoke served on its own.

uvicorn runs every request as an ASGI cycle: a scope dict, a RequestResponseCycle and its Event, a
receive/send exchange, a header check per response header and two writes per response (head,
then body), so the client wakes twice. For Invoke, the data plane's hot path, that cost ~100 µs
of CPU per request against ~60 µs for a bare httptools protocol. `LambdaHttpProtocol` takes over
an Invoke request once its headers are parsed (`InvokeRoute.answer` builds the answer from the
scope and the body) and writes the answer with one write; every other request, and any Invoke it
does not take, runs through uvicorn unchanged.

It takes an Invoke only when nothing else is in flight on the connection, and while it answers
it stands in as the connection's current cycle (`_InvokeCycle`), so uvicorn queues pipelined
requests behind it and starts them (`on_response_complete`) once it has answered, as it does for
its own cycles. Its task is in `server_state.tasks`, so a graceful shutdown waits for it, and
`shutdown()` makes it close the connection after answering, as for a cycle of uvicorn's.

It leans on uvicorn's HttpToolsProtocol internals (its parser callbacks and per-request fields);
uvicorn is pinned in pyproject.toml, and tests/integration/test_invoke.py runs it for real.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from lamina.api.invoke import SYNC_LIMIT, InvokeRoute, function_name
from lamina.api.url_gateway import url_target


class _Event:
    """What uvicorn may call on a cycle's message event (connection_lost sets it)."""

    __slots__ = ()

    def set(self) -> None:
        return None


class _InvokeCycle:
    """An Invoke request taken by the protocol; the connection's current cycle until answered.

    Has the fields of uvicorn's RequestResponseCycle that uvicorn's protocol reads or sets.
    """

    __slots__ = ("name", "chunks", "size", "keep_alive", "response_complete", "disconnected", "message_event")

    def __init__(self, name: str, keep_alive: bool) -> None:
        self.name = name
        self.chunks: list[bytes] = []
        self.size = 0
        self.keep_alive = keep_alive
        self.response_complete = False
        self.disconnected = False
        self.message_event = _Event()


class LambdaHttpProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        app = self.app
        self._route: InvokeRoute | None = app if isinstance(app, InvokeRoute) else None
        self._taken: _InvokeCycle | None = None  # the Invoke whose body is being received

    def on_message_begin(self) -> None:
        self._taken = None
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        if self._route is not None and self._take():
            return
        super().on_headers_complete()

    def _take(self) -> bool:
        """Take this request if it is an Invoke this protocol may serve; False leaves it to uvicorn."""
        parser = self.parser
        if parser.get_method() != b"POST" or self.expect_100_continue or parser.should_upgrade():
            return False
        if b"/invocations" not in self.url:
            return False  # not Invoke: leave the URL to uvicorn, which parses it anyway
        if self.cycle is not None and not self.cycle.response_complete:
            return False  # pipelined behind a request in flight: uvicorn queues it
        http_version = parser.get_http_version()
        if http_version != "1.1":
            return False
        url = httptools.parse_url(self.url)
        raw_path: bytes = url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        name = function_name(path)
        if name is None:
            return False
        scope = self.scope
        scope["method"] = "POST"
        scope["path"] = self.root_path + path
        scope["raw_path"] = self.root_path.encode("ascii") + raw_path
        scope["query_string"] = url.query or b""
        if url_target(scope) is not None:
            return False  # an Invoke-like path on a function URL's host: the function's, not ours
        cycle = _InvokeCycle(name, parser.should_keep_alive())
        self._taken = cycle
        self.cycle = cycle  # type: ignore[assignment]  # uvicorn reads only _InvokeCycle's fields
        return True

    def on_body(self, body: bytes) -> None:
        taken = self._taken
        if taken is None:
            super().on_body(body)
            return
        taken.size += len(body)
        if taken.size <= SYNC_LIMIT:  # past every limit the answer is 413: keep only the count
            taken.chunks.append(body)

    def on_message_complete(self) -> None:
        taken = self._taken
        if taken is None:
            super().on_message_complete()
            return
        self._taken = None
        task = self.loop.create_task(self._answer(taken, self.scope))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    async def _answer(self, cycle: _InvokeCycle, scope: Any) -> None:
        assert self._route is not None
        chunks = cycle.chunks
        payload = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        try:
            status, headers, body = await self._route.answer(scope, cycle.name, payload, cycle.size)
        except BaseException:
            cycle.response_complete = True
            self.transport.close()
            raise
        cycle.response_complete = True
        if cycle.disconnected:
            return
        # uvicorn's default headers (Date) first, then the answer's, as uvicorn's send writes them.
        out = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            out += (name, b": ", value, b"\r\n")
        for name, value in headers:
            out += (name, b": ", value, b"\r\n")
        if not cycle.keep_alive:
            out.append(b"connection: close\r\n")
        out.append(b"\r\n")
        if len(body) < 65536:
            out.append(body)
            self.transport.write(b"".join(out))
        else:  # one writev, without copying a large body
            self.transport.writelines((b"".join(out), body))
        if not cycle.keep_alive:
            self.transport.close()
        self.on_response_complete()
