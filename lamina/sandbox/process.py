"""ProcessSandbox: a plain child process with rlimits, for development and trusted code.

It gives NO isolation between environments: same uid, shared network and filesystem, host
paths (`maps_paths` is False, so the tree sees its code at its host path). /tmp is stood in for
by a private directory passed as TMPDIR. Freezing uses SIGSTOP/SIGCONT on the process group.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import signal
import socket
from pathlib import Path

from lamina.sandbox.base import SandboxExit, SandboxSetup, SandboxSpec, SandboxStats

_SETPRIV = shutil.which("setpriv")


class ProcessSandbox:
    maps_paths = False

    def __init__(self, setup: SandboxSetup) -> None:
        self._setup = setup
        self.output_fd = -1
        self.tmp_dir = setup.work_dir / "tmp"
        self._proc: asyncio.subprocess.Process | None = None
        self._exit: SandboxExit | None = None
        self._memory: _TreeMemory | None = None

    async def setup(self) -> None:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    async def start(self, spec: SandboxSpec) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listener.setblocking(False)
        env = dict(spec.env)
        env[spec.service_address_env] = "127.0.0.1:%d" % listener.getsockname()[1]
        env["TMPDIR"] = str(self.tmp_dir)
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        self._exit = None
        argv = spec.argv
        if _SETPRIV is not None:
            # Die with the server even if it is SIGKILLed (bwrap's --die-with-parent, for plain processes).
            argv = [_SETPRIV, "--pdeathsig", "KILL", "--", *argv]
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                cwd=spec.cwd,
                env=env,
                # Its own process group, so kill() and freeze() reach every descendant.
                start_new_session=True,
            )
        except BaseException:
            os.close(read_fd)
            listener.close()
            raise
        finally:
            os.close(write_fd)
        self.output_fd = read_fd
        if self._memory is not None:
            self._memory.close()
        self._memory = _TreeMemory.open(self._proc.pid)
        try:
            # Lambda's 1,024 file descriptors (spec 11); set after spawn to avoid preexec_fn.
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            limit = min(self._setup.limits.nofile, hard)
            resource.prlimit(self._proc.pid, resource.RLIMIT_NOFILE, (limit, limit))
        except OSError:
            pass  # the process already exited; wait_exit reports it
        return listener

    async def wait_exit(self) -> SandboxExit:
        if self._exit is None:
            assert self._proc is not None
            rc = await self._proc.wait()
            self._exit = SandboxExit(returncode=None, signal=-rc) if rc < 0 else SandboxExit(returncode=rc)
        return self._exit

    def _signal_group(self, sig: int) -> None:
        # The group outlives its leader: signal it even after the main process exited, so nothing
        # the runtime left behind survives (a pgid is not reused while any member lives).
        if self._proc is None:
            return
        try:
            os.killpg(self._proc.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        self._signal_group(signal.SIGKILL)

    def freeze(self) -> None:
        self._signal_group(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal_group(signal.SIGCONT)

    def limit_cpu(self, enabled: bool) -> None:
        """No CPU control without cgroups."""

    def close_output(self) -> None:
        if self.output_fd >= 0:
            os.close(self.output_fd)
            self.output_fd = -1

    def peak_memory(self) -> int:
        """Peak RSS (VmHWM) summed over the process tree: the measured Max Memory Used."""
        if self._memory is not None:
            return self._memory.peak()
        return _tree_peak_rss(self._proc.pid) if self._proc is not None else 0

    def oom_kills(self) -> int:
        return 0  # no memory cgroup, no OOM counter

    def stats(self) -> SandboxStats:
        return SandboxStats(max_memory_bytes=self.peak_memory(), oom_kills=0)

    async def destroy(self) -> None:
        self.kill()
        if self._proc is not None and self._proc.returncode is None:
            await self.wait_exit()
        self.close_output()
        if self._memory is not None:
            self._memory.close()
            self._memory = None
        await asyncio.to_thread(shutil.rmtree, self._setup.work_dir, True)


class _TreeMemory:
    """The peak RSS of one process tree, read on every invoke through fds kept open on its root's
    /proc files: one pread of `status` (VmHWM and the thread count) and one of the main thread's
    `children`, where opening them by path each time took ~23 syscalls. A root with more threads
    or with children is walked in full (`_tree_peak_rss`). The fds name that process, not its pid:
    once it is gone they fail (ESRCH) rather than read a process that reused the pid."""

    def __init__(self, pid: int, status_fd: int, children_fd: int) -> None:
        self._pid = pid
        self._status = status_fd
        self._children = children_fd

    @classmethod
    def open(cls, pid: int) -> _TreeMemory | None:
        """None if the process is already gone (the caller falls back to walking by path)."""
        try:
            status = os.open(f"/proc/{pid}/status", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            children = os.open(f"/proc/{pid}/task/{pid}/children", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            os.close(status)
            return None
        return cls(pid, status, children)

    def peak(self) -> int:
        try:
            status = os.pread(self._status, 8192, 0)
            hwm = _status_kb(status, b"VmHWM:") * 1024
            if _status_kb(status, b"Threads:") != 1:
                return _tree_peak_rss(self._pid)
            children = os.pread(self._children, 4096, 0).split()
        except OSError:  # the root exited (ESRCH): its memory is no longer measured
            return 0
        return hwm + sum(_tree_peak_rss(int(c)) for c in children)

    def close(self) -> None:
        if self._status >= 0:
            os.close(self._status)
            os.close(self._children)
            self._status = self._children = -1


def _status_kb(status: bytes, key: bytes) -> int:
    """The number after `key` in /proc/<pid>/status text (kB for the Vm* lines); 0 if absent."""
    i = status.find(key)
    if i < 0:
        return 0
    end = status.find(b"\n", i)
    return int(status[i + len(key) : end if end >= 0 else None].split()[0])


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
            total += _status_kb((proc / "status").read_bytes(), b"VmHWM:") * 1024
            for task in (proc / "task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total
