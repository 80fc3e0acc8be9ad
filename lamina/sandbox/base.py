"""The Sandbox seam: what an execution environment needs from an isolation backend.

A Sandbox belongs to one execution environment for its whole life. `setup` creates what
outlives a reset (the uid, the cgroup, the private /tmp); `start` launches a process tree in it
and returns a listening socket that the tree reaches at the address it finds in
`env[spec.service_address_env]` (the Runtime API); the tree's stdout and stderr come out joined on
`output_fd`. After the tree exits or is killed, `start` may be called again (a reset keeps /tmp).

Contract (after open-lambda's sandbox/api.go): `kill` ends every process of the current tree and
is harmless to call again, after exit, or before start; `wait_exit` resolves once the tree's main
process has exited; `freeze`/`thaw` stop and resume every process of the tree; `stats` may be
called at any time; `destroy` kills and releases everything and is idempotent. The caller owns
the sandbox and must `destroy` it.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

NetworkMode = Literal["none", "outbound"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    memory_mb: int
    # Ephemeral storage in MB: the size of the private /tmp, not charged to memory.
    tmp_mb: int = 512
    nofile: int = 1024
    pids: int = 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Mount:
    """`host` appears at `inside` (read-only unless `writable`) in backends that map paths."""

    host: Path
    inside: str
    writable: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxSetup:
    """What is fixed for the sandbox's life."""

    id: str
    work_dir: Path  # private to this sandbox; removed by destroy()
    limits: Limits
    network: NetworkMode = "none"


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxSpec:
    """One launch: the command and what it sees."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    mounts: tuple[Mount, ...] = field(default=())
    # The variable through which the tree learns where its service listener is (host:port).
    service_address_env: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxExit:
    returncode: int | None  # None: killed by a signal
    signal: int | None = None

    def describe(self) -> str:
        """Go's os/exec wording, which Lambda's messages use (spec 3.1)."""
        if self.signal is not None:
            import signal as _signal

            try:
                name = _signal.strsignal(self.signal) or f"signal {self.signal}"
            except ValueError:
                name = f"signal {self.signal}"
            return f"signal: {name.lower()}"
        return f"exit status {self.returncode}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxStats:
    max_memory_bytes: int
    # How many times the kernel's OOM killer has killed a process of this sandbox (cgroup counter).
    oom_kills: int = 0


class Sandbox(Protocol):
    output_fd: int
    # True if the tree sees `Mount.inside` paths (and `/tmp` is private); False if it sees host paths.
    maps_paths: bool

    async def setup(self) -> None: ...

    async def start(self, spec: SandboxSpec) -> socket.socket: ...

    async def wait_exit(self) -> SandboxExit: ...

    def kill(self) -> None: ...

    def freeze(self) -> None: ...

    def thaw(self) -> None: ...

    def limit_cpu(self, enabled: bool) -> None:
        """Apply (True) or lift (False) the CPU share that the limits give."""

    def peak_memory(self) -> int:
        """Bytes: the most the tree has held at once (what REPORT calls Max Memory Used)."""

    def oom_kills(self) -> int:
        """How often the kernel's OOM killer has killed a process of this sandbox."""

    def stats(self) -> SandboxStats:
        """Both of the above, as one snapshot."""

    def close_output(self) -> None: ...

    async def destroy(self) -> None: ...
