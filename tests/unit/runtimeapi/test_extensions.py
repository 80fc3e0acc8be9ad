"""The Extensions API (spec 4.7) on a real Runtime API listener, spoken to with plain HTTP."""

from __future__ import annotations

import asyncio
import http.client
import json
from typing import Any

import pytest

from lamina.runtimeapi.extensions import ExtensionsHub, FunctionIdentity
from lamina.runtimeapi.server import start_listener
from lamina.runtimeapi.session import NextEvent, RuntimeSession

pytestmark = pytest.mark.anyio

IDENTITY = FunctionIdentity(name="fn", version="$LATEST", handler="app.handler", account_id="000000000000")
EXT = "/2020-01-01/extension"


def call(port: int, method: str, path: str, body: bytes | None = None, **headers: str) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={k.replace("_", "-"): v for k, v in headers.items()})
        r = conn.getresponse()
        raw = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, json.loads(raw) if raw else None
    finally:
        conn.close()


def register(port: int, name: str, events: list[str], **headers: str) -> tuple[int, dict[str, str], Any]:
    return call(port, "POST", f"{EXT}/register", json.dumps({"events": events}).encode(), Lambda_Extension_Name=name, **headers)


async def serve(hub: ExtensionsHub) -> tuple[RuntimeSession, asyncio.Server, int]:
    session = RuntimeSession(extensions=hub)
    server = await start_listener(session)
    return session, server, server.sockets[0].getsockname()[1]


async def test_register_answers_identity_and_an_identifier() -> None:
    hub = ExtensionsHub(IDENTITY, external_names=frozenset({"ext"}))
    _, server, port = await serve(hub)
    try:
        status, headers, body = await asyncio.to_thread(register, port, "ext", ["INVOKE", "SHUTDOWN"])
        plain = await asyncio.to_thread(register, port, "other", ["INVOKE"], Lambda_Extension_Accept_Feature="accountId")
    finally:
        server.close()
    assert status == 200
    assert body == {"functionName": "fn", "functionVersion": "$LATEST", "handler": "app.handler"}
    assert len(headers["lambda-extension-identifier"]) == 36
    assert plain[2]["accountId"] == "000000000000"
    assert [e.name for e in hub.extensions] == ["ext", "other"]
    assert hub.extensions[0].external and not hub.extensions[1].external


@pytest.mark.parametrize(
    ("name", "body", "error_type"),
    [
        ("", b'{"events":["INVOKE"]}', "Extension.InvalidExtensionName"),
        ("x", b"not json", "InvalidRequestFormat"),
        ("x", b'{"events":["BOOT"]}', "Extension.InvalidEventType"),
        ("internal", b'{"events":["SHUTDOWN"]}', "Extension.InvalidEventType"),  # internal: no SHUTDOWN
    ],
)
async def test_register_errors(name: str, body: bytes, error_type: str) -> None:
    hub = ExtensionsHub(IDENTITY)
    _, server, port = await serve(hub)
    try:
        status, _, doc = await asyncio.to_thread(call, port, "POST", f"{EXT}/register", body, Lambda_Extension_Name=name)
    finally:
        server.close()
    assert status == 403 and doc["errorType"] == error_type and doc["errorMessage"]


async def test_limit_and_registration_closing() -> None:
    hub = ExtensionsHub(IDENTITY)
    session, server, port = await serve(hub)
    try:
        for i in range(10):
            assert (await asyncio.to_thread(register, port, f"e{i}", []))[0] == 200
        status, _, doc = await asyncio.to_thread(register, port, "e10", [])
        assert status == 403 and doc == {"errorType": "Extension.TooManyExtensions", "errorMessage": "Extension limit (10) reached"}
        session.next(_NoWaiter())  # the runtime's first /next: its init is over
        status, _, doc = await asyncio.to_thread(register, port, "late", [])
        assert status == 403 and doc["errorType"] == "Extension.RegistrationClosed"
    finally:
        server.close()


async def test_identifier_errors() -> None:
    hub = ExtensionsHub(IDENTITY)
    _, server, port = await serve(hub)
    try:
        missing = await asyncio.to_thread(call, port, "GET", f"{EXT}/event/next")
        invalid = await asyncio.to_thread(call, port, "GET", f"{EXT}/event/next", Lambda_Extension_Identifier="nope")
        unknown = await asyncio.to_thread(
            call, port, "GET", f"{EXT}/event/next", Lambda_Extension_Identifier="0b3fb3c6-0000-4000-8000-000000000000"
        )
    finally:
        server.close()
    assert [(s, d["errorType"]) for s, _, d in (missing, invalid, unknown)] == [
        (403, "Extension.MissingExtensionIdentifier"),
        (403, "Extension.InvalidExtensionIdentifier"),
        (403, "Extension.UnknownExtensionIdentifier"),
    ]


def _extension(port: int, events: list[str], rounds: int) -> list[tuple[str, dict[str, Any]]]:
    """Register, then take `rounds` events, each over a new connection (as urllib does)."""
    _, headers, _ = register(port, "ext", events)
    ident = headers["lambda-extension-identifier"]
    got = []
    for _ in range(rounds):
        status, h, body = call(port, "GET", f"{EXT}/event/next", Lambda_Extension_Identifier=ident)
        assert status == 200, body
        got.append((h["lambda-extension-event-identifier"], body))
    return got


async def test_invoke_and_shutdown_events_and_readiness() -> None:
    hub = ExtensionsHub(IDENTITY, external_names=frozenset({"ext"}))
    session, server, port = await serve(hub)
    try:
        ext = asyncio.create_task(asyncio.to_thread(_extension, port, ["INVOKE", "SHUTDOWN"], 2))
        await asyncio.wait_for(hub.wait(lambda: bool(hub.extensions) and hub.ready()), 10)
        session.next(_NoWaiter())
        n = hub.invoke(request_id="r1", deadline_ms=99, invoked_arn="arn:fn", trace_id="Root=1-2-3")
        assert n == 1 and not hub.ready()  # handed out, not yet done with it
        await asyncio.wait_for(hub.wait(hub.ready), 10)  # the extension asked for its next event
        assert hub.shutdown(reason="spindown", deadline_ms=123) == 1
        events = await asyncio.wait_for(ext, 10)
    finally:
        server.close()
    (id1, invoke), (id2, shutdown) = events
    assert invoke == {"eventType": "INVOKE", "deadlineMs": 99, "requestId": "r1", "invokedFunctionArn": "arn:fn",
                      "tracing": {"type": "X-Amzn-Trace-Id", "value": "Root=1-2-3"}}  # fmt: skip
    assert shutdown == {"eventType": "SHUTDOWN", "deadlineMs": 123, "shutdownReason": "spindown"}
    assert id1 != id2


async def test_exit_error_marks_the_extension_gone() -> None:
    hub = ExtensionsHub(IDENTITY, external_names=frozenset({"ext"}))
    _, server, port = await serve(hub)
    try:
        _, headers, _ = await asyncio.to_thread(register, port, "ext", ["INVOKE"])
        ident = headers["lambda-extension-identifier"]
        assert not hub.ready()  # registered, never asked for an event
        status, _, _ = await asyncio.to_thread(
            call, port, "POST", f"{EXT}/exit/error", b"{}", Lambda_Extension_Identifier=ident,
            Lambda_Extension_Function_Error_Type="Extension.Boom",
        )  # fmt: skip
        assert status == 202
        assert hub.ready() and hub.extensions[0].error == "Extension.Boom"
        assert hub.invoke(request_id="r", deadline_ms=1, invoked_arn="a", trace_id=None) == 0
    finally:
        server.close()


async def test_runtime_api_unaffected() -> None:
    """The runtime and an extension share the listener; the runtime's invoke still flows."""
    hub = ExtensionsHub(IDENTITY)
    session, server, port = await serve(hub)
    try:
        ready = asyncio.ensure_future(session.wait_ready())

        def runtime() -> bytes:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/2018-06-01/runtime/invocation/next")
            r = conn.getresponse()
            body = r.read()
            conn.request("POST", f"/2018-06-01/runtime/invocation/{r.getheader('Lambda-Runtime-Aws-Request-Id')}/response", body=body)
            conn.getresponse().read()
            conn.close()
            return body

        task = asyncio.create_task(asyncio.to_thread(runtime))
        assert await asyncio.wait_for(ready, 10) is None
        reply = await asyncio.wait_for(session.deliver(NextEvent(request_id="x", deadline_ms=1, invoked_arn="a", payload=b"[1]")), 10)
        assert reply.body == b"[1]" and await task == b"[1]"
    finally:
        server.close()


class _NoWaiter:
    def event_ready(self, event: NextEvent) -> None:
        pass

    def session_gone(self) -> None:
        pass
