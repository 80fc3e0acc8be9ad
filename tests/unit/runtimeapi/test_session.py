"""RuntimeSession: the Runtime API state machine, driven directly (it is pure asyncio)."""

from __future__ import annotations

import json

import pytest

from lamina.runtimeapi.session import (
    InitError,
    InvocationExpired,
    NextEvent,
    PostStatus,
    RuntimeGone,
    RuntimeSession,
    SessionState,
)

pytestmark = pytest.mark.anyio


def event(rid: str = "r1") -> NextEvent:
    return NextEvent(request_id=rid, deadline_ms=1, invoked_arn="arn", payload=b"{}")


class Waiter:
    """A parked /next that records what it was handed."""

    def __init__(self) -> None:
        self.events: list[NextEvent] = []
        self.gone = False

    def event_ready(self, event: NextEvent) -> None:
        self.events.append(event)

    def session_gone(self) -> None:
        self.gone = True


async def test_first_next_makes_ready_and_parks() -> None:
    s = RuntimeSession()
    waiter = Waiter()
    assert s.next(waiter) is None
    assert s.statistics().parked
    assert await s.wait_ready() is None
    reply = s.deliver(event())
    assert waiter.events == [event()]  # handed over within deliver()
    assert not s.statistics().parked
    assert s.post_response("r1", b'"ok"', "application/json", too_large=False) is PostStatus.ACCEPTED
    assert (await reply).body == b'"ok"'
    assert s.state is SessionState.READY


async def test_delivery_before_next_is_picked_up_and_repeated_next_rerenders() -> None:
    s = RuntimeSession()
    first = Waiter()
    assert s.next(first) is None
    s.unpark(first)  # its connection went away before the event came
    s.deliver(event("a"))
    assert first.events == []
    # The runtime asks again while "a" is outstanding: it gets the same event (RIE behaviour).
    assert s.next(Waiter()) == event("a")
    assert s.next(Waiter()) == event("a")


async def test_wrong_and_repeated_request_ids() -> None:
    s = RuntimeSession()
    s.next(Waiter())
    reply = s.deliver(event("a"))
    assert s.post_response("zzz", b"1", None, too_large=False) is PostStatus.INVALID_REQUEST_ID
    assert s.post_error("a", b'{"errorType":"ValueError","errorMessage":"x"}', "application/json", None) is PostStatus.ACCEPTED
    assert (await reply).error_type == "ValueError"
    assert s.post_response("a", b"1", None, too_large=False) is PostStatus.INVALID_STATE


async def test_error_type_header_is_normalised_when_body_has_none() -> None:
    s = RuntimeSession()
    s.next(Waiter())
    reply = s.deliver(event())
    s.post_error("r1", b"not json", None, "Weird")
    r = await reply
    assert r.error_type == "Runtime.Unknown" and r.body == b"not json"


async def test_error_cause_is_stripped() -> None:
    s = RuntimeSession()
    s.next(Waiter())
    reply = s.deliver(event())
    body = json.dumps({"errorType": "E", "errorMessage": "m", "errorCause": {"big": 1}}).encode()
    s.post_error("r1", body, "application/vnd.aws.lambda.error.cause+json", None)
    assert json.loads((await reply).body) == {"errorType": "E", "errorMessage": "m"}


async def test_too_large_response() -> None:
    s = RuntimeSession()
    s.next(Waiter())
    reply = s.deliver(event())
    assert s.post_response("r1", b"", None, too_large=True) is PostStatus.TOO_LARGE
    assert (await reply).too_large


async def test_init_error_before_next() -> None:
    s = RuntimeSession()
    body = b'{"errorType":"Runtime.ImportModuleError","errorMessage":"nope","requestId":"","stackTrace":[]}'
    assert s.post_init_error(body, "Runtime.ImportModuleError") is PostStatus.ACCEPTED
    assert await s.wait_ready() == InitError(error_type="Runtime.ImportModuleError", body=body)
    assert s.post_init_error(body, None) is PostStatus.INVALID_STATE


async def test_close_fails_the_outstanding_reply() -> None:
    s = RuntimeSession()
    s.next(Waiter())
    reply = s.deliver(event())
    s.close("gone")
    with pytest.raises(RuntimeGone):
        await reply
    s.close("again")  # harmless


async def test_close_tells_a_parked_waiter_and_later_next_fails() -> None:
    s = RuntimeSession()
    waiter = Waiter()
    s.next(waiter)
    s.close("gone")
    assert waiter.gone and not s.statistics().parked
    with pytest.raises(RuntimeGone):
        s.next(Waiter())


async def test_expire_fails_the_outstanding_reply_and_refuses_a_late_one() -> None:
    s = RuntimeSession()
    s.next(Waiter())
    reply = s.deliver(event())
    s.expire()
    with pytest.raises(InvocationExpired):
        await reply
    assert s.post_response("r1", b"1", None, too_large=False) is PostStatus.INVALID_STATE
