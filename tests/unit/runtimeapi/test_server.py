"""The Runtime API listener over a real loopback socket, with a plain HTTP client."""

from __future__ import annotations

import asyncio
import http.client
import json

import pytest

from lamina.runtimeapi.server import start_listener
from lamina.runtimeapi.session import NextEvent, RuntimeSession

pytestmark = pytest.mark.anyio


def _runtime_round_trip(port: int) -> tuple[dict[str, str], bytes, int, int, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse()
    headers = {k.lower(): v for k, v in r.getheaders()}
    body = r.read()
    rid = headers["lambda-runtime-aws-request-id"]
    conn.request("POST", "/2018-06-01/runtime/invocation/wrong/response", body=b"1")
    wrong = conn.getresponse()
    wrong.read()
    conn.request("POST", f"/2018-06-01/runtime/invocation/{rid}/response", body=b'{"ok": true}',
                 headers={"Content-Type": "application/json"})  # fmt: skip
    ok = conn.getresponse()
    ok.read()
    conn.request("POST", f"/2018-06-01/runtime/invocation/{rid}/response", body=b"2")
    again = conn.getresponse()
    again.read()
    conn.close()
    return headers, body, wrong.status, ok.status, again.status


async def test_next_response_over_http() -> None:
    session = RuntimeSession()
    server = await start_listener(session)
    port = server.sockets[0].getsockname()[1]
    try:
        runtime = asyncio.create_task(asyncio.to_thread(_runtime_round_trip, port))
        assert await asyncio.wait_for(session.wait_ready(), 10) is None
        ev = NextEvent(request_id="req-1", deadline_ms=1234, invoked_arn="arn:x", payload=b'{"a": 1}',
                       trace_id="Root=1-2-3", client_context='{"custom":{}}')  # fmt: skip
        reply = await asyncio.wait_for(session.deliver(ev), 10)
        headers, body, wrong, ok, again = await asyncio.wait_for(runtime, 10)
    finally:
        server.close()
    assert json.loads(reply.body) == {"ok": True} and reply.content_type == "application/json"
    assert body == b'{"a": 1}'
    assert headers["lambda-runtime-aws-request-id"] == "req-1"
    assert headers["lambda-runtime-deadline-ms"] == "1234"
    assert headers["lambda-runtime-invoked-function-arn"] == "arn:x"
    assert headers["lambda-runtime-trace-id"] == "Root=1-2-3"
    assert headers["lambda-runtime-client-context"] == '{"custom":{}}'
    assert headers["content-type"] == "application/json"
    assert (wrong, ok, again) == (400, 202, 403)


async def test_runtime_hanging_up_while_parked_loses_no_event() -> None:
    session = RuntimeSession()
    server = await start_listener(session)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        await session.wait_ready()
        writer.close()
        await writer.wait_closed()
        # Wait (bounded) until the listener has seen the hang-up and dropped the parked /next.
        for _ in range(2000):
            if not session.statistics().parked:
                break
            await asyncio.sleep(0.001)
        assert not session.statistics().parked
        ev = NextEvent(request_id="r", deadline_ms=1, invoked_arn="a", payload=b"{}")
        session.deliver(ev)
        # A new connection's /next must still get the event the dead connection never read.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert b"Lambda-Runtime-Aws-Request-Id: r\r\n" in head
        writer.close()
    finally:
        server.close()


async def test_pipelined_requests_are_answered_in_order() -> None:
    """A /next pipelined behind a response is answered after that response's 202, even when the
    next event is delivered before the listener gets to the 202's turn."""
    session = RuntimeSession()
    server = await start_listener(session)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        await session.wait_ready()
        reply = session.deliver(NextEvent(request_id="one", deadline_ms=1, invoked_arn="a", payload=b"{}"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert b"Lambda-Runtime-Aws-Request-Id: one\r\n" in head
        await reader.readexactly(2)
        writer.write(
            b"POST /2018-06-01/runtime/invocation/one/response HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\ntrue"
            b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        await writer.drain()
        assert (await reply).body == b"true"  # awaited directly, so "two" is delivered at once
        session.deliver(NextEvent(request_id="two", deadline_ms=1, invoked_arn="a", payload=b"[]"))
        first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert first.startswith(b"HTTP/1.1 202 ")
        assert await reader.readexactly(len(b'{"status":"OK"}')) == b'{"status":"OK"}'
        second = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert second.startswith(b"HTTP/1.1 200 ") and b"Lambda-Runtime-Aws-Request-Id: two\r\n" in second
        assert await reader.readexactly(2) == b"[]"
        writer.close()
        await writer.wait_closed()
    finally:
        server.close()
