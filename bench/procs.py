"""Processes of the server under test, read from /proc: its environments and CPU time spent.

CPU time per request tells where a warm invoke's wall time goes: on a 2-vCPU machine a
sequential invoke is a chain of client, server and runtime work, so the three CPU shares add up
to nearly the whole latency when nothing waits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
RUNTIME_MARKER = b"bootstrap.py"  # the argv of Lamina's python3.X runtime client


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name (which may hold spaces): field 3 onwards."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def runtime_pids(server_pid: int) -> list[int]:
    """The server's children running Lamina's Python runtime client: one per environment."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry.name))[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile, or not ours to read
        if ppid == server_pid and RUNTIME_MARKER in cmdline:
            pids.append(int(entry.name))
    return pids


def cpu_seconds(pid: int) -> float:
    """CPU time of one process, all threads (0 if it is gone).

    From schedstat (nanoseconds) where the kernel has it; else utime + stime, in 10 ms ticks.
    """
    try:
        return sum(int((task / "schedstat").read_text().split()[0]) for task in Path(f"/proc/{pid}/task").iterdir()) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        fields = _stat_fields(pid)
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    server: float
    runtimes: float
    client: float

    @classmethod
    def take(cls, server_pid: int) -> CpuSnapshot:
        return cls(
            server=cpu_seconds(server_pid),
            runtimes=sum(cpu_seconds(p) for p in runtime_pids(server_pid)),
            client=cpu_seconds(os.getpid()),
        )

    def per_request_ms(self, later: CpuSnapshot, requests: int) -> dict[str, float]:
        """CPU ms per request of each party between this snapshot and `later`."""
        n = max(requests, 1)
        return {
            "server": (later.server - self.server) * 1000 / n,
            "runtimes": (later.runtimes - self.runtimes) * 1000 / n,
            "client": (later.client - self.client) * 1000 / n,
        }
