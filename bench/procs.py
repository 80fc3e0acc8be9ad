"""Processes of the server under test, read from /proc: its environments and CPU time spent.

CPU time per request tells where a warm invoke's wall time goes: on a 2-vCPU machine a
sequential invoke is a chain of client, server and runtime work, so the three CPU shares add up
to nearly the whole latency when nothing waits.

A runtime is a descendant of the server, not always its child: in process mode the server spawns
the interpreter itself; in sandbox mode with bubblewrap the chain is setpriv (exec'd into bwrap)
→ bwrap → the command (prlimit exec'd into the interpreter), and the wrappers' argv hold
`bootstrap.py` too; with the zygote, environments are forked from a template process (and keep
an argv naming the runtime client). So runtimes are the server's descendants whose argv[0] is a
Python interpreter and whose argv holds the runtime client. Their cgroup's cpu.stat (read-only) says how often the CPU cap of the
function's MemorySize throttled them.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
RUNTIME_MARKER = b"bootstrap.py"  # the argv of Lamina's python3.X runtime client


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name (which may hold spaces): field 3 onwards."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


MAX_DESCENDANTS = 10_000  # a bound on the /proc walk


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (children of all its threads, recursively)."""
    found: list[int] = []
    stack = [pid]
    seen = {pid}
    while stack and len(found) < MAX_DESCENDANTS:
        parent = stack.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue  # gone meanwhile
        for task in tasks:
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
            for child in children:
                if child not in seen:
                    seen.add(child)
                    found.append(child)
                    stack.append(child)
    return found


def runtime_pids(server_pid: int) -> list[int]:
    """The server's descendants running Lamina's Python runtime client: one per environment."""
    pids = []
    for pid in descendants(server_pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        if argv and os.path.basename(argv[0]).startswith(b"python") and any(RUNTIME_MARKER in a for a in argv[1:]):
            pids.append(pid)
    return pids


def executable(pid: int) -> str | None:
    """The binary a process runs (as its own mount namespace names it), or None if it is gone."""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class Throttling:
    """cgroup CPU bandwidth counters (cpu.stat): enforcement periods, throttled ones, time held back."""

    periods: int = 0
    throttled: int = 0
    throttled_ms: float = 0.0

    def __add__(self, other: Throttling) -> Throttling:
        return Throttling(self.periods + other.periods, self.throttled + other.throttled, self.throttled_ms + other.throttled_ms)

    def __sub__(self, other: Throttling) -> Throttling:
        return Throttling(self.periods - other.periods, self.throttled - other.throttled, self.throttled_ms - other.throttled_ms)

    def as_dict(self) -> dict[str, float]:
        return {"periods": self.periods, "throttled_periods": self.throttled, "throttled_ms": self.throttled_ms}


CGROUP_ROOT = Path("/sys/fs/cgroup")


def cpu_cgroup_stat(pid: int) -> Throttling | None:
    """The CPU throttling counters of the cgroup `pid` is in; None without a capped cgroup of its own.

    cgroup v1: the `cpu` controller's directory (throttled_time in ns); v2: the unified one
    (throttled_usec). Processes in the root cgroup (process mode) have no counters.
    """
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if path in ("", "/"):
            continue
        if "cpu" in controllers.split(","):
            candidates = [CGROUP_ROOT / d / path.lstrip("/") for d in ("cpu", "cpu,cpuacct", "cpuacct,cpu")]
        elif controllers == "":
            candidates = [CGROUP_ROOT / path.lstrip("/"), CGROUP_ROOT / "unified" / path.lstrip("/")]
        else:
            continue
        for directory in candidates:
            try:
                fields = dict(entry.split() for entry in (directory / "cpu.stat").read_text().splitlines())
            except (OSError, ValueError):
                continue
            if "nr_periods" not in fields:
                continue
            held = int(fields["throttled_usec"]) / 1000 if "throttled_usec" in fields else int(fields.get("throttled_time", 0)) / 1e6
            return Throttling(int(fields["nr_periods"]), int(fields["nr_throttled"]), held)
    return None


def throttling(server_pid: int) -> dict[int, Throttling]:
    """The throttling counters of each runtime's cgroup, by runtime pid (empty in process mode)."""
    stats = {p: cpu_cgroup_stat(p) for p in runtime_pids(server_pid)}
    return {p: s for p, s in stats.items() if s is not None}


def throttled_between(before: dict[int, Throttling], after: dict[int, Throttling]) -> Throttling | None:
    """What the runtimes present at both snapshots were throttled in between; None if none was capped."""
    common = [p for p in after if p in before]
    if not common:
        return None
    total = Throttling()
    for p in common:
        total = total + (after[p] - before[p])
    return total


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


# --- memory of environments (G9) ---------------------------------------------------------------


def pss_kb(pid: int) -> int | None:
    """Proportional set size of one process (smaps_rollup; shared pages split among their users)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None  # gone meanwhile
    return None


def parent(pid: int) -> int | None:
    try:
        return int(_stat_fields(pid)[1])
    except (OSError, ValueError, IndexError):
        return None


def environment_trees(server_pid: int, runtimes: list[int]) -> dict[int, list[int]]:
    """For each runtime (one per environment): the processes that belong to its environment alone.

    That is the runtime, its descendants, and its ancestors below the server that are no other
    runtime's ancestor: in sandbox mode the bwrap processes or the container init an environment
    runs under; a process shared by several environments (the zygote they were forked from) is
    counted in none of them.
    """
    chains: dict[int, list[int]] = {}
    for runtime in runtimes:
        chain: list[int] = []
        pid: int | None = parent(runtime)
        while pid is not None and pid not in (server_pid, 0, 1) and len(chain) < 16:
            chain.append(pid)
            pid = parent(pid)
        chains[runtime] = chain if pid == server_pid else []
    users: dict[int, int] = {}
    for chain in chains.values():
        for pid in chain:
            users[pid] = users.get(pid, 0) + 1
    return {
        runtime: [runtime, *descendants(runtime), *(p for p in chain if users[p] == 1)]
        for runtime, chain in chains.items()
    }


# --- what a stopped server leaves behind -------------------------------------------------------


def start_time(pid: int) -> int | None:
    """When a process started (clock ticks since boot): with the pid, it names one process for good."""
    try:
        return int(_stat_fields(pid)[19])
    except (OSError, ValueError, IndexError):
        return None


def snapshot_tree(pid: int) -> dict[int, int]:
    """The descendants of `pid` now, each with its start time."""
    out = {}
    for child in descendants(pid):
        started = start_time(child)
        if started is not None:
            out[child] = started
    return out


def comm(pid: int) -> str:
    """The process's name (/proc/<pid>/comm: the executable's, or what the process set)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def end_leftovers(tree: dict[int, int], timeout: float = 5.0) -> dict[int, str]:
    """SIGKILL every process of a `snapshot_tree` still alive (same pid, same start time): what a
    stopped server left running. A process in a frozen cgroup only dies once thawed, so its
    freezer is thawed too. Returns the pids that were left, with their command lines."""
    left = {pid: command_line(pid) for pid, started in tree.items() if start_time(pid) == started and _alive(pid)}
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue
        _thaw(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(start_time(p) == tree[p] and _alive(p) for p in left):
        time.sleep(0.05)
    return left


def _alive(pid: int) -> bool:
    """Not a zombie: a dead child waits for its new parent (PID 1 here) to reap it, and holds nothing."""
    try:
        return _stat_fields(pid)[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _thaw(pid: int) -> None:
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return
    for line in lines:
        _, controllers, path = line.split(":", 2)
        rel = path.lstrip("/")
        if "freezer" in controllers.split(","):
            targets = [(CGROUP_ROOT / "freezer" / rel / "freezer.state", "THAWED")]
        elif controllers == "" and rel:  # v2: mounted at the root, or beside v1 as `unified`
            targets = [(CGROUP_ROOT / d / rel / "cgroup.freeze", "0") for d in ("unified", ".")]
        else:
            continue
        for target, value in targets:
            try:
                target.write_text(value)
            except OSError:
                pass  # not frozen that way here, or gone meanwhile
