"""One-flag debugging (issue #7): a real debugpy inside the environment, attached to by a small
Debug Adapter Protocol client (what VS Code speaks): breakpoint, evaluate, continue; the function
timeout does not fire while the handler is paused."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from typing import Any

import pytest

from lamina.testing import RunningServer, deploy, wait_for_log
from lamina.testing.dap import DapClient

HANDLER = """def handler(event, context):
    answer = event["x"] * 2
    return {"answer": answer}
"""
BREAK_LINE = 3


def _admin(server: RunningServer, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server.endpoint + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else {}


def _invoke(client: Any, fname: str, results: list[dict[str, Any]], answered: list[float]) -> None:
    """The invoke a debugger holds up; records the answer and when it came."""
    results.append(client.invoke(FunctionName=fname, Payload=b'{"x": 21}'))
    answered.append(time.monotonic())


@pytest.mark.timeout(120)
def test_breakpoint_hit_evaluate_continue_and_no_timeout_while_paused(server: RunningServer, fname: str) -> None:
    deploy(server.client(), fname, {"app.py": HANDLER}, Timeout=1)
    session = _admin(server, "PUT", f"/lamina/v1/functions/{fname}/debug", {"Port": 0})
    assert session["Port"] > 0 and session["Isolation"] == "process"
    handler_path = f"{session['RemoteRoot']}/app.py"

    client = server.client(read_timeout=90)
    results: list[dict[str, Any]] = []
    answered: list[float] = []
    invoking = threading.Thread(target=_invoke, args=(client, fname, results, answered))
    invoking.start()
    dap = None
    try:
        dap = DapClient(session["Host"], session["Port"])
        placed = dap.attach(breakpoints={handler_path: [BREAK_LINE]})
        assert placed[0]["verified"], placed

        stopped = dap.event("stopped")
        paused_at = time.monotonic()
        assert stopped["body"]["reason"] == "breakpoint"
        thread = stopped["body"]["threadId"]
        frame = dap.request("stackTrace", threadId=thread, levels=1)["body"]["stackFrames"][0]
        assert (frame["line"], frame["source"]["path"]) == (BREAK_LINE, handler_path)
        value = dap.request("evaluate", expression="answer", frameId=frame["id"], context="repl")["body"]["result"]
        assert value == "42"

        time.sleep(1.5)  # the scenario itself: paused for longer than the 1 s function timeout
        assert not results, "the invoke answered while the handler was paused"
        resumed_at = time.monotonic()
        dap.request("continue", threadId=thread)
        invoking.join(60)
        paused_s = resumed_at - paused_at
    finally:
        if dap is not None:
            dap.close()
        _admin(server, "DELETE", f"/lamina/v1/functions/{fname}/debug")
        invoking.join(90)
    assert len(results) == 1
    resp = results[0]
    assert "FunctionError" not in resp, resp
    assert json.loads(resp["Payload"].read()) == {"answer": 42}
    assert answered[0] >= resumed_at  # the answer came only once the debugger let the handler go on
    # The handler had waited for the debugger before it ran.
    wait_for_log(server.endpoint, fname, "LAMINA_DEBUG waiting for a debugger")
    print(f"\npaused {paused_s:.2f} s at app.py:{BREAK_LINE} under a 1 s timeout; invoke answered after continue")

    # The session is over: ordinary environments again, and the 1 s timeout applies.
    after = server.client().invoke(FunctionName=fname, Payload=b'{"x": 1}')
    assert json.loads(after["Payload"].read()) == {"answer": 2}


def test_debug_refuses_an_unknown_function_and_a_taken_port(server: RunningServer, fname: str) -> None:
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as missing:
        _admin(server, "PUT", f"/lamina/v1/functions/{fname}/debug", {"Port": 0})
    assert missing.value.code == 404
    deploy(server.client(), fname, {"app.py": HANDLER})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(urllib.error.HTTPError) as conflict:
            _admin(server, "PUT", f"/lamina/v1/functions/{fname}/debug", {"Port": taken.getsockname()[1]})
    assert conflict.value.code == 409
    assert "is in use" in json.loads(conflict.value.read())["message"]


NODE_HANDLER = """export const handler = async (event) => {
  const answer = event.x * 2;
  return { answer };
};
"""
NODE_BREAK_LINE = 3  # 1-based, as an editor shows it


class _Inspector:
    """A minimal Chrome DevTools Protocol client: what VS Code's Node debugger speaks."""

    def __init__(self, url: str) -> None:
        from websockets.sync.client import connect

        self._ws = connect(url, open_timeout=30, max_size=None)
        self._next = 0
        self._events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        ident = self._next
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            msg = json.loads(self._ws.recv(timeout=60))
            if msg.get("id") == ident:
                assert "error" not in msg, msg
                return dict(msg.get("result", {}))
            self._events.append(msg)

    def event(self, method: str) -> dict[str, Any]:
        for i, msg in enumerate(self._events):
            if msg.get("method") == method:
                return dict(self._events.pop(i)["params"])
        while True:
            msg = json.loads(self._ws.recv(timeout=60))
            if msg.get("method") == method:
                return dict(msg["params"])

    def close(self) -> None:
        self._ws.close()


def _inspector_url(port: int, deadline_s: float = 30.0) -> str:
    """The inspector's WebSocket address (its /json/list), once node listens."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as resp:
                targets = json.loads(resp.read())
            return str(targets[0]["webSocketDebuggerUrl"])
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # node's inspector has no readiness signal but its port


@pytest.mark.timeout(120)
def test_node_inspector_breakpoint_evaluate_resume(server: RunningServer, fname: str) -> None:
    deploy(server.client(), fname, {"app.mjs": NODE_HANDLER}, runtime="nodejs20.x", handler="app.handler", Timeout=1)
    session = _admin(server, "PUT", f"/lamina/v1/functions/{fname}/debug", {"Port": 0})
    assert session["Runtime"] == "nodejs20.x" and session["Port"] > 0

    client = server.client(read_timeout=90)
    results: list[dict[str, Any]] = []
    answered: list[float] = []
    invoking = threading.Thread(target=_invoke, args=(client, fname, results, answered))
    invoking.start()
    inspector = None
    try:
        inspector = _Inspector(_inspector_url(session["Port"]))
        inspector.call("Debugger.enable")
        inspector.call("Runtime.enable")
        placed = inspector.call("Debugger.setBreakpointByUrl", lineNumber=NODE_BREAK_LINE - 1, urlRegex=r".*/app\.mjs$")
        assert placed["breakpointId"]
        inspector.call("Runtime.runIfWaitingForDebugger")  # what an attaching debugger sends
        paused = inspector.event("Debugger.paused")
        frame = paused["callFrames"][0]
        assert (frame["functionName"], frame["location"]["lineNumber"]) == ("handler", NODE_BREAK_LINE - 1), frame
        value = inspector.call("Debugger.evaluateOnCallFrame", callFrameId=frame["callFrameId"], expression="answer")
        assert value["result"]["value"] == 42
        time.sleep(1.5)  # paused for longer than the 1 s function timeout
        assert not results, "the invoke answered while the handler was paused"
        resumed_at = time.monotonic()
        inspector.call("Debugger.resume")
        invoking.join(60)
    finally:
        if inspector is not None:
            inspector.close()
        _admin(server, "DELETE", f"/lamina/v1/functions/{fname}/debug")
        invoking.join(90)
    assert len(results) == 1 and "FunctionError" not in results[0], results
    assert json.loads(results[0]["Payload"].read()) == {"answer": 42}
    assert answered[0] >= resumed_at  # the answer came only once the debugger let the handler go on
