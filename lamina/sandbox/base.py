"""The Sandbox seam: what an execution environment needs from an isolation backend.

Contract (after open-lambda's sandbox/api.go): `start` launches the process tree described by a
SandboxSpec with its stdout and stderr joined on `output_fd`; `wait_exit` resolves once the tree's
main process has exited; `kill` ends the whole tree and is harmless to call again or after exit;
`stats` may be called at any time. The caller owns the sandbox and must `kill` it (and await
`wait_exit`) before dropping it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    memory_mb: int
    nofile: int = 1024
    # Ephemeral storage in MB (the size of the private /tmp).
    tmp_mb: int = 512


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxSpec:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    limits: Limits
    tmp_dir: Path
    extra_mounts: tuple[Path, ...] = field(default=())


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


class Sandbox(Protocol):
    output_fd: int

    async def start(self, spec: SandboxSpec) -> None: ...

    async def wait_exit(self) -> SandboxExit: ...

    def kill(self) -> None: ...

    def stats(self) -> SandboxStats: ...
