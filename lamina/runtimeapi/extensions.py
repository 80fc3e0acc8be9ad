"""ExtensionsHub: the Extensions API state of one execution environment (spec 4.7).

Extensions speak to the same listener as the runtime (`AWS_LAMBDA_RUNTIME_API`), under
`/2020-01-01/extension`. External extensions are the executables of `/opt/extensions`, started
before the runtime; internal ones run inside the runtime process and register during its init.

Each extension: REGISTERED → (GET /event/next) WAITING ⇄ (an event handed out) PROCESSING → GONE.
An extension "is done" with an event when it calls /event/next again; it is gone when it posts
/exit/error, or when the connection its SHUTDOWN went out on closes. The hub tells the environment:
- `ready()`: every registered extension is WAITING (init is over when this and the runtime's
  first /next both hold; an invocation's post-invoke phase is over when this holds again);
- `invoke(...)`: hand an INVOKE event to those registered for it;
- `shutdown(...)`: hand SHUTDOWN to those registered for it; `shut_down()` says when they left.
Registration closes when the runtime's init ends (its first /next), as on Lambda, except for the
external extensions the platform started (they start alongside the runtime here, not before it,
and init is not over until they have registered).
"""

from __future__ import annotations

import asyncio
import enum
import json
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

MAX_EXTENSIONS = 10


class ExtensionEvent(enum.Enum):
    INVOKE = "INVOKE"
    SHUTDOWN = "SHUTDOWN"


class ExtensionState(enum.Enum):
    REGISTERED = "registered"  # has not called /event/next yet
    WAITING = "waiting"  # in /event/next (or about to be), done with every event it was given
    PROCESSING = "processing"  # was handed an event and has not asked for the next one
    GONE = "gone"


class ExtensionError(Exception):
    """An Extensions API call refused: a 403 with Lambda's error type, unless `status` says otherwise."""

    def __init__(self, error_type: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status

    def body(self) -> bytes:
        return json.dumps({"errorMessage": self.message, "errorType": self.error_type}).encode()


class EventWaiter(Protocol):
    """An extension's /event/next parked until there is an event (the listener's connection)."""

    def extension_event(self, event_id: str, body: bytes) -> None: ...

    def extension_gone(self) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionIdentity:
    """What /register answers with (spec 4.7)."""

    name: str
    version: str
    handler: str
    account_id: str


@dataclass(slots=True, eq=False)
class Extension:
    id: str
    name: str
    events: frozenset[ExtensionEvent]
    external: bool
    state: ExtensionState = ExtensionState.REGISTERED
    queue: deque[bytes] = field(default_factory=deque)
    waiter: EventWaiter | None = None
    error: str | None = None  # the type of an /init/error or /exit/error it posted
    # The connection its SHUTDOWN went out on: when that closes, the extension has exited (after
    # SHUTDOWN an extension makes no more calls but /exit/error; see `connection_closed`).
    shutdown_on: EventWaiter | None = None
    shutdown_sent: bool = False


class ExtensionsHub:
    def __init__(self, identity: FunctionIdentity, external_names: frozenset[str] = frozenset()) -> None:
        self._identity = identity
        self._external = external_names  # file names in /opt/extensions, launched by the platform
        self._by_id: dict[str, Extension] = {}
        self._open = True
        self._changed = asyncio.Event()

    # --- the environment's side -----------------------------------------------------------

    @property
    def extensions(self) -> list[Extension]:
        return list(self._by_id.values())

    def close_registration(self) -> None:
        self._open = False

    def ready(self) -> bool:
        """Every extension still here has asked for its next event since the last one it got."""
        return all(e.state in (ExtensionState.WAITING, ExtensionState.GONE) for e in self._by_id.values())

    def init_error(self) -> Extension | None:
        """An extension that posted /init/error, if any (its init failed)."""
        return next((e for e in self._by_id.values() if e.error is not None and e.error.startswith("Extension.")), None)

    async def wait(self, predicate: Callable[[], bool]) -> None:
        """Return once `predicate()` holds; it is checked after every change of an extension."""
        while not predicate():
            self._changed.clear()
            await self._changed.wait()

    def invoke(self, *, request_id: str, deadline_ms: int, invoked_arn: str, trace_id: str | None) -> int:
        """Hand an INVOKE event to every extension registered for it; returns how many got one."""
        doc: dict[str, object] = {
            "eventType": "INVOKE", "deadlineMs": deadline_ms, "requestId": request_id, "invokedFunctionArn": invoked_arn,
        }  # fmt: skip
        if trace_id:
            doc["tracing"] = {"type": "X-Amzn-Trace-Id", "value": trace_id}
        return self._broadcast(ExtensionEvent.INVOKE, json.dumps(doc).encode())

    def shutdown(self, *, reason: str, deadline_ms: int) -> int:
        """Hand a SHUTDOWN event to every extension registered for it; returns how many got one."""
        doc = {"eventType": "SHUTDOWN", "deadlineMs": deadline_ms, "shutdownReason": reason}
        return self._broadcast(ExtensionEvent.SHUTDOWN, json.dumps(doc).encode())

    def close(self) -> None:
        for ext in self._by_id.values():
            ext.state = ExtensionState.GONE
            waiter, ext.waiter = ext.waiter, None
            if waiter is not None:
                waiter.extension_gone()
        self._changed.set()

    def shut_down(self) -> bool:
        """Every extension sent a SHUTDOWN has left (or asked for another event)."""
        return all(not (e.shutdown_sent and e.state is ExtensionState.PROCESSING) for e in self._by_id.values())

    def _broadcast(self, kind: ExtensionEvent, body: bytes) -> int:
        n = 0
        for ext in self._by_id.values():
            if kind in ext.events and ext.state is not ExtensionState.GONE:
                n += 1
                ext.state = ExtensionState.PROCESSING
                if kind is ExtensionEvent.SHUTDOWN:
                    ext.shutdown_sent = True
                waiter, ext.waiter = ext.waiter, None
                if waiter is not None:
                    if kind is ExtensionEvent.SHUTDOWN:
                        ext.shutdown_on = waiter
                    waiter.extension_event(str(uuid.uuid4()), body)
                else:
                    ext.queue.append(body)
        if n:
            self._changed.set()
        return n

    # --- the extensions' side (called by the listener) ------------------------------------

    def register(self, name: str | None, body: bytes, accept_feature: str | None) -> tuple[str, bytes]:
        """POST /extension/register: the new identifier and the answer's body."""
        if not name:
            raise ExtensionError("Extension.InvalidExtensionName", "Empty extension name")
        if not self._open and name not in self._external:
            # External extensions the platform launched may still come: init waits for them.
            raise ExtensionError("Extension.RegistrationClosed", "Extension registration closed already")
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            raise ExtensionError("InvalidRequestFormat", "Failed to parse register request body") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("events", []), list):
            raise ExtensionError("InvalidRequestFormat", "Failed to parse register request body")
        if "configurationKeys" in doc:
            raise ExtensionError("InvalidRequestFormat", "configurationKeys are not supported")
        external = name in self._external
        events: set[ExtensionEvent] = set()
        for raw in doc.get("events", []):
            try:
                kind = ExtensionEvent(raw)
            except ValueError:
                raise ExtensionError("Extension.InvalidEventType", f"Unknown event type {raw!r}") from None
            if kind is ExtensionEvent.SHUTDOWN and not external:
                # Internal extensions run in the runtime's process, which gets no SHUTDOWN (spec 4.7).
                raise ExtensionError("Extension.InvalidEventType", "Internal extensions cannot register for SHUTDOWN")
            events.add(kind)
        if any(e.name == name for e in self._by_id.values()):
            raise ExtensionError("Extension.AlreadyRegistered", f"Extension {name} is already registered")
        if len(self._by_id) >= MAX_EXTENSIONS:
            raise ExtensionError("Extension.TooManyExtensions", f"Extension limit ({MAX_EXTENSIONS}) reached")
        ext = Extension(id=str(uuid.uuid4()), name=name, events=frozenset(events), external=external)
        self._by_id[ext.id] = ext
        self._changed.set()
        i = self._identity
        answer: dict[str, str] = {"functionName": i.name, "functionVersion": i.version, "handler": i.handler}
        if accept_feature and "accountId" in [f.strip() for f in accept_feature.split(",")]:
            answer["accountId"] = i.account_id
        return ext.id, json.dumps(answer).encode()

    def next(self, identifier: str | None, waiter: EventWaiter) -> tuple[str, bytes] | None:
        """GET /extension/event/next: (event id, body) at once, or None with `waiter` parked."""
        ext = self._find(identifier)
        if ext.state is ExtensionState.GONE:
            raise ExtensionError("Extension.InvalidExtensionState", f"Extension {ext.name} has exited")
        if ext.queue:
            ext.state = ExtensionState.PROCESSING
            body = ext.queue.popleft()
            if ext.shutdown_sent and not ext.queue:
                ext.shutdown_on = waiter  # the SHUTDOWN is the last event it gets
            return str(uuid.uuid4()), body
        ext.state = ExtensionState.WAITING
        ext.waiter = waiter
        self._changed.set()
        return None

    def connection_closed(self, waiter: EventWaiter, *, kept_alive: bool) -> None:
        """`waiter`'s connection closed. That says nothing of a client that opens a connection per
        request (urllib closes one after every answer); but a kept-alive connection that its
        SHUTDOWN went out on closes when the extension exits."""
        for ext in self._by_id.values():
            if ext.waiter is waiter:
                ext.waiter = None
            if kept_alive and ext.shutdown_on is waiter and ext.state is ExtensionState.PROCESSING:
                ext.state = ExtensionState.GONE
                self._changed.set()

    def post_error(self, identifier: str | None, error_type: str | None, *, exiting: bool) -> None:
        """POST /extension/init/error or /exit/error."""
        ext = self._find(identifier)
        if not error_type:
            raise ExtensionError("Extension.MissingHeader", "Lambda-Extension-Function-Error-Type header is required")
        ext.error = error_type if error_type.startswith("Extension.") else "Extension.Unknown"
        if exiting:
            ext.state = ExtensionState.GONE
        self._changed.set()

    def _find(self, identifier: str | None) -> Extension:
        if not identifier:
            raise ExtensionError("Extension.MissingExtensionIdentifier", "Missing Lambda-Extension-Identifier header")
        try:
            uuid.UUID(identifier)
        except ValueError:
            raise ExtensionError("Extension.InvalidExtensionIdentifier", "Invalid Lambda-Extension-Identifier") from None
        ext = self._by_id.get(identifier)
        if ext is None:
            raise ExtensionError("Extension.UnknownExtensionIdentifier", "Unknown extension " + identifier)
        return ext

