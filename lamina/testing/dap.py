"""A small Debug Adapter Protocol client (what VS Code speaks to debugpy), for tests that attach
to a debug session as a user's editor would (issue #7)."""

from __future__ import annotations

import json
import socket
import time
from typing import Any


class DapClient:
    """Just enough DAP over a socket: requests with sequence numbers, events kept in order."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._sock = socket.create_connection((host, port), timeout=timeout)
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self._buf = b""
        self._seq = 0
        self._timeout = timeout
        self.events: list[dict[str, Any]] = []
        self._responses: dict[int, dict[str, Any]] = {}

    def close(self) -> None:
        self._sock.close()

    def send(self, command: str, **arguments: Any) -> int:
        self._seq += 1
        body = json.dumps({"seq": self._seq, "type": "request", "command": command, "arguments": arguments}).encode()
        self._sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return self._seq

    def _read_message(self) -> dict[str, Any]:
        while b"\r\n\r\n" not in self._buf:
            self._recv()
        head, self._buf = self._buf.split(b"\r\n\r\n", 1)
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        while len(self._buf) < length:
            self._recv()
        body, self._buf = self._buf[:length], self._buf[length:]
        message: dict[str, Any] = json.loads(body)
        return message

    def _recv(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("the debug adapter closed the connection")
        self._buf += chunk

    def _pump_until(self, done: Any) -> Any:
        deadline = time.monotonic() + self._timeout
        while True:
            found = done()
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"no such DAP message; events: {[e.get('event') for e in self.events]}")
            message = self._read_message()
            if message["type"] == "event":
                self.events.append(message)
            elif message["type"] == "response":
                self._responses[message["request_seq"]] = message

    def response(self, seq: int) -> dict[str, Any]:
        message: dict[str, Any] = self._pump_until(lambda: self._responses.pop(seq, None))
        assert message["success"], message
        return message

    def request(self, command: str, **arguments: Any) -> dict[str, Any]:
        return self.response(self.send(command, **arguments))

    def event(self, name: str) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for i, e in enumerate(self.events):
                if e.get("event") == name:
                    return self.events.pop(i)
            return None

        found: dict[str, Any] = self._pump_until(find)
        return found

    def attach(self, breakpoints: dict[str, list[int]] | None = None, **arguments: Any) -> list[dict[str, Any]]:
        """The attach handshake as VS Code does it: initialize, attach, (on `initialized`) set
        breakpoints by file path, configurationDone. Returns the breakpoints as the adapter set them."""
        self.request("initialize", clientID="lamina-testing", adapterID="debugpy", pathFormat="path",
                     linesStartAt1=True, columnsStartAt1=True)  # fmt: skip
        attach = self.send("attach", justMyCode=True, **arguments)  # debugpy ignores an attach without arguments
        self.event("initialized")
        placed = []
        for path, lines in (breakpoints or {}).items():
            placed += self.request("setBreakpoints", source={"path": path}, breakpoints=[{"line": n} for n in lines])["body"]["breakpoints"]
        self.request("configurationDone")
        self.response(attach)
        return placed
