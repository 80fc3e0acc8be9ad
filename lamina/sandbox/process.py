"""ProcessSandbox: a plain child process with rlimits, for development and trusted code.

It gives NO isolation between environments (same uid, shared network and filesystem); the
isolation issue adds the `sandbox` backend. /tmp is stood in for by TMPDIR.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
from pathlib import Path

from lamina.sandbox.base import SandboxExit, SandboxSpec, SandboxStats


class ProcessSandbox:
    def __init__(self) -> None:
        self.output_fd = -1
        self._proc: asyncio.subprocess.Process | None = None
        self._exit: SandboxExit | None = None

    async def start(self, spec: SandboxSpec) -> None:
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *spec.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                cwd=spec.cwd,
                env=spec.env,
                # Its own process group, so kill() reaches every descendant.
                start_new_session=True,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self.output_fd = read_fd
        try:
            # Lambda's 1,024 file descriptors (spec 11); set after spawn to avoid preexec_fn.
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            limit = min(spec.limits.nofile, hard)
            resource.prlimit(self._proc.pid, resource.RLIMIT_NOFILE, (limit, limit))
        except (ProcessLookupError, PermissionError, OSError):
            pass  # the process already exited; wait_exit reports it

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def wait_exit(self) -> SandboxExit:
        if self._exit is None:
            assert self._proc is not None
            rc = await self._proc.wait()
            self._exit = SandboxExit(returncode=None, signal=-rc) if rc < 0 else SandboxExit(returncode=rc)
        return self._exit

    def kill(self) -> None:
        if self._proc is None or self._proc.returncode is not None:
            return
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def close_output(self) -> None:
        if self.output_fd >= 0:
            os.close(self.output_fd)
            self.output_fd = -1

    def stats(self) -> SandboxStats:
        """Peak RSS (VmHWM) summed over the process tree: the measured Max Memory Used."""
        if self._proc is None:
            return SandboxStats(max_memory_bytes=0)
        return SandboxStats(max_memory_bytes=_tree_peak_rss(self._proc.pid))


def _tree_peak_rss(root: int) -> int:
    total = 0
    stack = [root]
    seen = set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        proc = Path(f"/proc/{pid}")
        try:
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
                    break
            for task in (proc / "task").iterdir():
                children = (task / "children").read_text().split()
                stack.extend(int(c) for c in children)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total
