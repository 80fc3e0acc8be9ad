"""RuntimeSession: the Runtime API state of one execution environment.

One session per runtime process. The listener that serves a session is bound to it (see
`server.py`), so a runtime can only ever receive its own environment's invocations.

Lifecycle: INITIALIZING → (first /next) READY ⇄ BUSY → CLOSED. `wait_ready` resolves on the first
/next, or with the init error the runtime posted. `deliver` hands one invocation to the runtime
and returns a future for its reply; only one invocation is outstanding at a time. A /next that
finds no work parks its `Waiter`, which `deliver` hands the event at once (the listener writes it
within the same call: no future and no loop pass between the invoke and the runtime's socket).
After `close`, pending futures fail with RuntimeGone, a parked waiter is told, and later calls
are harmless.
"""

from __future__ import annotations

import asyncio
import enum
import json
from dataclasses import dataclass
from typing import Protocol

from lamina.runtimeapi.extensions import ExtensionsHub
from lamina.runtimeapi.wire import ERROR_CAUSE_CONTENT_TYPE, MAX_RESPONSE_BYTES, normalise_error_type


class SessionState(enum.Enum):
    INITIALIZING = "initializing"
    READY = "ready"  # runtime is (or will be) parked in /next with nothing to do
    BUSY = "busy"  # an invocation has been delivered and not answered
    CLOSED = "closed"


class PostStatus(enum.Enum):
    ACCEPTED = 202
    INVALID_REQUEST_ID = 400
    INVALID_STATE = 403
    TOO_LARGE = 413


@dataclass(frozen=True, slots=True, kw_only=True)
class NextEvent:
    """What /next returns: one invocation as the runtime sees it."""

    request_id: str
    deadline_ms: int
    invoked_arn: str
    payload: bytes
    trace_id: str | None = None
    client_context: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeReply:
    """A runtime's answer to one invocation: a response, or an error it posted."""

    body: bytes
    content_type: str | None
    error_type: str | None = None  # set for /error posts
    too_large: bool = False

    @property
    def is_error(self) -> bool:
        return self.error_type is not None or self.too_large


@dataclass(frozen=True, slots=True, kw_only=True)
class InitError:
    error_type: str
    body: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionStatistics:
    state: SessionState
    invocations: int
    parked: bool


class Waiter(Protocol):
    """A runtime's /next parked until there is work (the listener's connection)."""

    def event_ready(self, event: NextEvent) -> None:
        """Answer the /next with `event` (called from `deliver`)."""

    def session_gone(self) -> None:
        """The session closed: answer the /next with an error."""


class RuntimeGone(Exception):
    """The runtime went away (process exit, kill) before answering."""


class InvocationExpired(Exception):
    """The invocation's deadline passed before the runtime answered (see `expire`)."""


class RuntimeSession:
    def __init__(self, extensions: ExtensionsHub | None = None) -> None:
        loop = asyncio.get_running_loop()
        # The Extensions API of this environment, served by the same listener (None: not offered).
        self.extensions = extensions
        self._loop = loop
        self.state = SessionState.INITIALIZING
        self._ready: asyncio.Future[InitError | None] = loop.create_future()
        self._parked: Waiter | None = None
        self._current: NextEvent | None = None
        self._reply: asyncio.Future[RuntimeReply] | None = None
        self._invocations = 0
        # Whether the runtime has been handed the outstanding event (by a parked or later /next).
        self.taken = False

    # --- the environment's side -------------------------------------------------------------

    async def wait_ready(self) -> InitError | None:
        """None once the runtime first calls /next; the InitError if it posted /init/error first."""
        return await asyncio.shield(self._ready)

    def deliver(self, event: NextEvent) -> asyncio.Future[RuntimeReply]:
        """Hand `event` to the runtime; the future resolves with its reply or fails with RuntimeGone."""
        if self.state is not SessionState.READY:
            raise RuntimeError(f"cannot deliver in state {self.state.value}")
        self.state = SessionState.BUSY
        self._invocations += 1
        self._current = event
        reply = self._reply = self._loop.create_future()
        parked, self._parked = self._parked, None
        self.taken = parked is not None
        if parked is not None:
            parked.event_ready(event)
        # Otherwise the runtime's next /next picks it up (see next()).
        return reply

    def expire(self) -> None:
        """Fail the outstanding invocation's reply with InvocationExpired: its deadline passed.

        The session stays BUSY (the runtime may still be working on it); the environment resets
        the runtime and closes the session next. A reply posted later is refused (403)."""
        reply = self._reply
        if reply is not None and not reply.done():
            reply.set_exception(InvocationExpired())

    def close(self, reason: str = "runtime closed") -> None:
        if self.state is SessionState.CLOSED:
            return
        self.state = SessionState.CLOSED
        gone = RuntimeGone(reason)
        if not self._ready.done():
            self._ready.set_exception(gone)
            self._ready.exception()  # mark retrieved: the environment learns of it via the exit
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(gone)
            self._reply.exception()
        parked, self._parked = self._parked, None
        if parked is not None:
            parked.session_gone()
        if self.extensions is not None:
            self.extensions.close()

    def statistics(self) -> SessionStatistics:
        return SessionStatistics(
            state=self.state, invocations=self._invocations, parked=self._parked is not None
        )

    # --- the runtime's side (called by the listener) ----------------------------------------

    def next(self, waiter: Waiter) -> NextEvent | None:
        """GET /next: the outstanding event; else None, and `waiter` is parked until `deliver`
        hands it one (or `close` tells it the session is gone). Raises RuntimeGone if closed."""
        if self.state is SessionState.INITIALIZING:
            self.state = SessionState.READY
            if self.extensions is not None:
                self.extensions.close_registration()  # the runtime's init is over (spec 4.7)
            self._ready.set_result(None)
        if self.state is SessionState.BUSY and self._current is not None:
            # A repeated /next while an invoke is outstanding re-renders it (RIE, spec 4.3).
            self.taken = True
            return self._current
        if self.state is SessionState.CLOSED:
            raise RuntimeGone("session closed")
        self._parked = waiter
        return None

    def unpark(self, waiter: Waiter) -> None:
        """`waiter` can no longer answer (its connection is gone): it must not be handed an event."""
        if self._parked is waiter:
            self._parked = None

    def post_response(self, request_id: str, body: bytes, content_type: str | None, *, too_large: bool) -> PostStatus:
        status = self._check(request_id)
        if status is not PostStatus.ACCEPTED:
            return status
        if too_large or len(body) > MAX_RESPONSE_BYTES:
            self._finish(RuntimeReply(body=b"", content_type=None, too_large=True))
            return PostStatus.TOO_LARGE
        self._finish(RuntimeReply(body=body, content_type=content_type))
        return PostStatus.ACCEPTED

    def post_error(self, request_id: str, body: bytes, content_type: str | None, error_type: str | None) -> PostStatus:
        status = self._check(request_id)
        if status is not PostStatus.ACCEPTED:
            return status
        body, body_type = _client_error_body(body, content_type)
        if error_type:
            error_type = normalise_error_type(error_type)
        self._finish(RuntimeReply(body=body, content_type="application/json", error_type=body_type or error_type or "Runtime.Unknown"))
        return PostStatus.ACCEPTED

    def post_init_error(self, body: bytes, error_type: str | None) -> PostStatus:
        if self.state is not SessionState.INITIALIZING:
            return PostStatus.INVALID_STATE
        body, body_type = _client_error_body(body, None)
        self._ready.set_result(InitError(error_type=body_type or error_type or "Runtime.Unknown", body=body))
        self.state = SessionState.CLOSED  # the runtime exits after posting an init error (spec 4.4)
        return PostStatus.ACCEPTED

    def _check(self, request_id: str) -> PostStatus:
        current = self._current
        if current is None or current.request_id != request_id:
            return PostStatus.INVALID_REQUEST_ID if self.state is not SessionState.CLOSED else PostStatus.INVALID_STATE
        if self.state is not SessionState.BUSY or self._reply is None or self._reply.done():
            return PostStatus.INVALID_STATE
        return PostStatus.ACCEPTED

    def _finish(self, reply: RuntimeReply) -> None:
        assert self._reply is not None
        self._reply.set_result(reply)
        self.state = SessionState.READY


def _client_error_body(body: bytes, content_type: str | None) -> tuple[bytes, str | None]:
    """The error body the caller sees, and its errorType if the body names one.

    Bodies are forwarded verbatim (spec 12), except the error-cause format, whose `errorCause`
    (an X-Ray cause) is stripped (spec 4.3).
    """
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        return body, None
    if not isinstance(doc, dict):
        return body, None
    error_type = doc.get("errorType") if isinstance(doc.get("errorType"), str) else None
    if content_type == ERROR_CAUSE_CONTENT_TYPE and "errorCause" in doc:
        doc.pop("errorCause")
        body = json.dumps(doc).encode()
    return body, error_type
