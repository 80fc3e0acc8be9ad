"""Host-wide leases on small numbers, shared by every Lamina server on the machine."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path


class HostLeases:
    """Numbers (sandbox uids, network slots) handed out one per holder, lowest free first, unique
    across Lamina servers on one host: each number in use is held with an exclusive flock on
    `<lock_dir>/<number>`, which the kernel releases if the server dies.
    """

    def __init__(self, *, first: int, count: int, lock_dir: Path, what: str) -> None:
        self._what = what
        self._free = list(range(first + count - 1, first - 1, -1))
        self._lock = threading.Lock()
        self._lock_dir = lock_dir
        self._held: dict[int, int] = {}  # number → fd holding its flock
        lock_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def acquire(self) -> int:
        with self._lock:
            skipped = []
            try:
                while self._free:
                    number = self._free.pop()
                    fd = os.open(self._lock_dir / str(number), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        os.close(fd)
                        skipped.append(number)  # another server holds it
                        continue
                    self._held[number] = fd
                    return number
                raise RuntimeError(f"no free {self._what} left")
            finally:
                self._free.extend(reversed(skipped))

    def holds(self, number: int) -> bool:
        """Whether this server holds `number` now."""
        with self._lock:
            return number in self._held

    def release(self, number: int) -> None:
        with self._lock:
            fd = self._held.pop(number, None)
            if fd is not None:
                os.close(fd)
            self._free.append(number)
            self._free.sort(reverse=True)
