"""Log groups on disk: one append-only JSON-lines file per function under <data>/logs.

Each line is {"t": epoch ms, "s": log stream name, "m": message, "c": code hash}; "c" (the first
12 hex digits of the code the environment ran, issue #7) is absent from lines written before it. A reader's cursor is a byte
offset into the file, so `lamina logs --follow` resumes exactly where it stopped. Writes are
batched per invocation (one write call on an O_APPEND fd, no userspace buffer), so a server crash
loses nothing already written. Environments write an invocation's lines right after its response
is sent (envs/environment.py); `close` only releases the fds, as nothing is ever held back here.

Lines are built with the json module's own string encoder (`encode_basestring`, what
`json.dumps(..., ensure_ascii=False)` uses for a str) around a fixed template: the same bytes as
`json.dumps` of the dict, at a quarter of its cost.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from dataclasses import dataclass
from json.encoder import encode_basestring
from pathlib import Path

_SAFE = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class LogEvent:
    timestamp: int
    stream: str
    message: str
    code: str = ""


class LogStore:
    def __init__(self, root: Path) -> None:
        self._root = root
        root.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, int] = {}  # function → O_APPEND fd
        self._streams: dict[str, str] = {}  # stream name → its JSON string, encoded once
        self._changed: dict[str, asyncio.Event] = {}
        self._stopping = False

    def _path(self, function: str) -> Path:
        if not _SAFE.match(function):
            raise ValueError(f"bad function name {function!r}")
        return self._root / f"{function}.jsonl"

    def write(self, function: str, stream: str, events: list[tuple[int, str]], *, code: str = "") -> None:
        """Append events (epoch ms, message) of one stream, run by `code`; visible to readers on return."""
        if not events:
            return
        fd = self._files.get(function)
        if fd is None:
            path = self._path(function)
            fd = self._files[function] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        s = self._streams.get(stream)
        if s is None:
            if len(self._streams) > 4096:
                self._streams.clear()
            s = self._streams[stream] = encode_basestring(stream)
        c = encode_basestring(code)
        data = "".join(['{"t": %d, "s": %s, "m": %s, "c": %s}\n' % (t, s, encode_basestring(m), c) for t, m in events]).encode()
        written = os.write(fd, data)
        while written < len(data):  # a regular file takes it all at once, short of a full disk
            written += os.write(fd, data[written:])
        ev = self._changed.pop(function, None)
        if ev is not None:
            ev.set()

    def exists(self, function: str) -> bool:
        return self._path(function).exists()

    def read(self, function: str, cursor: int = 0, limit: int = 1000) -> tuple[list[LogEvent], int]:
        """Up to `limit` events from byte offset `cursor`; returns them and the next cursor."""
        path = self._path(function)
        events: list[LogEvent] = []
        with open(path, "rb") as f:
            f.seek(cursor)
            while len(events) < limit:
                line = f.readline()
                if not line.endswith(b"\n"):
                    break  # end, or a line still being written
                cursor += len(line)
                d = json.loads(line)
                events.append(LogEvent(timestamp=d["t"], stream=d["s"], message=d["m"], code=d.get("c", "")))
        return events, cursor

    async def wait_for_more(self, function: str, cursor: int, timeout: float) -> None:
        """Return when the log grows past `cursor`, or after `timeout` seconds."""
        path = self._path(function)
        if self._stopping or (path.exists() and path.stat().st_size > cursor):
            return
        ev = self._changed.setdefault(function, asyncio.Event())
        try:
            await asyncio.wait_for(ev.wait(), timeout)
        except TimeoutError:
            pass

    def release_waiters(self) -> None:
        """The server is stopping: end every long-poll now (and any that starts later)."""
        self._stopping = True
        for ev in self._changed.values():
            ev.set()
        self._changed.clear()

    def close(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()
