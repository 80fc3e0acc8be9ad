"""cgroups for sandboxes: v1 (with the hybrid unified mount where present) and v2.

Each sandbox gets one cgroup, created beneath the server's own cgroup (never beside it at the
root: on delegated v2 hosts that is the only place we may write, and on our v1 hosts the server
already sits in a host-owned memory cgroup; shared/ISOLATION.md "Facts").

Limits follow Lambda: memory = MemorySize with no swap, CPU = MemorySize / 1,769 vCPU, at most
1,024 tasks. The CPU cap is applied by `limit_cpu` once init is done: init runs unthrottled, like
the extra CPU Lambda is widely observed to give the init phase, so a 128 MB function does not
take 14x its interpreter's start-up time to boot. Freezing and killing prefer the v2 core files (`cgroup.freeze`, `cgroup.kill`),
which also work on a v1 host's unified mount without controllers (0.1 ms against v1's 1.2 ms).

Every class takes its filesystem root as a parameter, so tests can run the v2 driver against a
fake tree on a machine that only has v1. All writes are small and non-blocking for the caller.
The files every invocation touches (the freeze switch, the peak-memory counter) are kept open per
group (`_HotFile`): a pwrite or pread costs 1 syscall where open/write/close cost 7 to 9.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

CPU_PERIOD_US = 100_000
MB_PER_VCPU = 1769  # Lambda's scaling: 1,769 MB = one vCPU


class CgroupError(Exception):
    """cgroups cannot be used as asked (not mounted, not writable, a controller missing)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CgroupLimits:
    memory_bytes: int
    cpu_quota_us: int  # per CPU_PERIOD_US
    pids: int

    @classmethod
    def for_memory(cls, memory_mb: int, pids: int = 1024) -> CgroupLimits:
        quota = max(1000, CPU_PERIOD_US * memory_mb // MB_PER_VCPU)
        return cls(memory_bytes=memory_mb * 1024 * 1024, cpu_quota_us=quota, pids=pids)


class SandboxCgroup(Protocol):
    def attach(self, pid: int) -> None: ...

    def procs_files(self) -> list[Path]:
        """Every `cgroup.procs` a process must be written to to enter this group (a process
        that writes "0" to each enters it itself)."""

    def set_memory(self, memory_bytes: int) -> None:
        """Change the memory limit (a pre-made group given to a function of another size)."""

    def limit_cpu(self, quota_us: int | None) -> None:
        """Cap CPU at quota_us per CPU_PERIOD_US, or lift the cap (None)."""

    def freeze(self) -> None: ...

    def thaw(self) -> None: ...

    def kill_all(self) -> None: ...

    def pids(self) -> list[int]: ...

    def peak_memory(self) -> int: ...

    def oom_kills(self) -> int: ...

    def remove(self, attempts: int = 50) -> bool:
        """Delete the group; False if tasks (e.g. unreaped zombies) still hold it: try again later."""


class CgroupDriver(Protocol):
    version: Literal[1, 2]

    def check(self) -> None:
        """Raise CgroupError if sandboxes' cgroups cannot be created here; changes nothing."""

    def create(self, name: str, limits: CgroupLimits) -> SandboxCgroup: ...

    def describe(self) -> str: ...

    def cleanup(self) -> None: ...


# --- helpers -----------------------------------------------------------------------------------


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read(path: Path) -> str:
    with open(path) as f:
        return f.read()


def _keyed(path: Path, key: str) -> int:
    """A `key value` line of a flat-keyed file (memory.events, memory.oom_control)."""
    try:
        for line in _read(path).splitlines():
            k, _, v = line.partition(" ")
            if k == key:
                return int(v)
    except FileNotFoundError:
        pass
    return 0


class _HotFile:
    """One cgroup file kept open (O_CLOEXEC), read or written at offset 0.

    Opened with its group (so the fd exists from the group's creation on, not from some later
    call), or at first use if the file was missing then. kernfs regenerates a file's text on a
    read at offset 0, so one pread is a fresh value. `close` before the group's directory is
    removed; a later use reopens it. Each live group holds two such fds.
    """

    __slots__ = ("path", "_flags", "_fd")

    def __init__(self, path: Path, flags: int) -> None:
        self.path = path
        self._flags = flags | os.O_CLOEXEC
        self._fd = -1
        try:
            self._open()
        except FileNotFoundError:
            pass

    def _open(self) -> int:
        fd = self._fd
        if fd < 0:
            fd = self._fd = os.open(self.path, self._flags)
        return fd

    def write(self, value: bytes) -> None:
        os.pwrite(self._open(), value, 0)

    def read(self) -> bytes:
        return os.pread(self._open(), 4096, 0)

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


def _procs(dir_: Path) -> list[int]:
    try:
        return [int(p) for p in _read(dir_ / "cgroup.procs").split()]
    except FileNotFoundError:
        return []


def _rmdir_tree(path: Path, attempts: int = 50) -> bool:
    """Remove a cgroup directory and its children (cgroup dirs hold only kernel files).

    Returns False if a task is still in it after `attempts` tries 2 ms apart (a killed task that
    has not been reaped yet still counts as a member).
    """
    if not path.is_dir():
        return True
    done = True
    for child in sorted((p for p in path.iterdir() if p.is_dir()), reverse=True):
        done = _rmdir_tree(child, attempts) and done
    for _ in range(attempts):
        try:
            path.rmdir()
            return True
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return True
            if exc.errno != errno.EBUSY:
                raise
            time.sleep(0.002)  # a killed task is still leaving the group
    return False


def own_paths(proc_cgroup: str) -> dict[str, str]:
    """controller (or "" for v2) → this process's path, from /proc/self/cgroup text."""
    out: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            out[""] = path
        for c in controllers.split(","):
            if c and not c.startswith("name="):
                out[c] = path
    return out


# --- v2 ----------------------------------------------------------------------------------------


class V2Cgroup:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._freeze = _HotFile(path / "cgroup.freeze", os.O_WRONLY)
        self._peak = _HotFile(path / "memory.peak", os.O_RDONLY)

    def attach(self, pid: int) -> None:
        _write(self.path / "cgroup.procs", str(pid))

    def procs_files(self) -> list[Path]:
        return [self.path / "cgroup.procs"]

    def set_memory(self, memory_bytes: int) -> None:
        _write(self.path / "memory.max", str(memory_bytes))

    def limit_cpu(self, quota_us: int | None) -> None:
        _write(self.path / "cpu.max", f"{quota_us if quota_us is not None else 'max'} {CPU_PERIOD_US}")

    def freeze(self) -> None:
        self._freeze.write(b"1")

    def thaw(self) -> None:
        self._freeze.write(b"0")

    def kill_all(self) -> None:
        if (self.path / "cgroup.kill").exists():
            _write(self.path / "cgroup.kill", "1")
        else:  # kernels before 5.14
            for pid in self.pids():
                _kill(pid)
            self.thaw()

    def pids(self) -> list[int]:
        return _procs(self.path)

    def peak_memory(self) -> int:
        try:
            return int(self._peak.read())
        except (FileNotFoundError, ValueError):
            try:
                return int(_read(self.path / "memory.current"))  # kernels before 5.19
            except (FileNotFoundError, ValueError):
                return 0

    def oom_kills(self) -> int:
        return _keyed(self.path / "memory.events", "oom_kill")

    def remove(self, attempts: int = 50) -> bool:
        self._freeze.close()
        self._peak.close()
        return _rmdir_tree(self.path, attempts)


class V2Driver:
    """Unified hierarchy. The server's own cgroup becomes `<own>/server` (a leaf), so that its
    parent may enable controllers for `<own>/lamina/<sandbox>` (the no-internal-process rule)."""

    version: Literal[1, 2] = 2

    def __init__(self, root: Path = Path("/sys/fs/cgroup"), own: str | None = None) -> None:
        self._root = root
        own = own if own is not None else own_paths(_read(Path("/proc/self/cgroup"))).get("", "/")
        self._own = root / own.lstrip("/")
        self._base = self._own / "lamina"
        self._ready = False

    def check(self) -> None:
        needed = {"memory", "cpu", "pids"}
        available = set(_read(self._own / "cgroup.controllers").split())
        missing = needed - available
        if missing:
            raise CgroupError(f"cgroup v2 controllers {sorted(missing)} are not delegated to {self._own}")
        if not os.access(self._own, os.W_OK):
            raise CgroupError(f"{self._own} is not writable by this user (no cgroup delegation)")

    def _prepare(self) -> None:
        if self._ready:
            return
        self.check()
        needed = {"memory", "cpu", "pids"}
        if _procs(self._own):
            leaf = self._own / "server"
            leaf.mkdir(exist_ok=True)
            for pid in _procs(self._own):
                try:
                    _write(leaf / "cgroup.procs", str(pid))
                except ProcessLookupError:
                    pass
        _write(self._own / "cgroup.subtree_control", " ".join(f"+{c}" for c in sorted(needed)))
        self._base.mkdir(exist_ok=True)
        _write(self._base / "cgroup.subtree_control", " ".join(f"+{c}" for c in sorted(needed)))
        self._ready = True

    def create(self, name: str, limits: CgroupLimits) -> V2Cgroup:
        self._prepare()
        path = self._base / name
        path.mkdir()
        _write(path / "memory.max", str(limits.memory_bytes))
        if (path / "memory.swap.max").exists():
            _write(path / "memory.swap.max", "0")
        _write(path / "pids.max", str(limits.pids))
        return V2Cgroup(path)  # CPU is capped with limit_cpu() once init is done

    def describe(self) -> str:
        return f"cgroup v2 at {self._root}, sandboxes under {self._base}"

    def cleanup(self) -> None:
        _rmdir_tree(self._base)


# --- v1 ----------------------------------------------------------------------------------------


class V1Cgroup:
    def __init__(self, dirs: dict[str, Path], unified: Path | None) -> None:
        self._dirs = dirs
        self._unified = unified
        # The unified mount's cgroup.freeze where there is one (0.1 ms against v1's 1.2 ms).
        if unified is not None:
            self._freeze = _HotFile(unified / "cgroup.freeze", os.O_WRONLY)
            self._frozen_thawed = (b"1", b"0")
        else:
            self._freeze = _HotFile(dirs["freezer"] / "freezer.state", os.O_WRONLY)
            self._frozen_thawed = (b"FROZEN", b"THAWED")
        self._peak = _HotFile(dirs["memory"] / "memory.max_usage_in_bytes", os.O_RDONLY)

    def attach(self, pid: int) -> None:
        for d in self._dirs.values():
            _write(d / "cgroup.procs", str(pid))
        if self._unified is not None:
            _write(self._unified / "cgroup.procs", str(pid))

    def procs_files(self) -> list[Path]:
        files = [d / "cgroup.procs" for d in self._dirs.values()]
        return files + ([self._unified / "cgroup.procs"] if self._unified is not None else [])

    def set_memory(self, memory_bytes: int) -> None:
        mem = self._dirs["memory"]
        memsw = mem / "memory.memsw.limit_in_bytes"
        # memsw may never be below the memory limit: raise it first, or lower it last.
        order = [mem / "memory.limit_in_bytes"] + ([memsw] if memsw.exists() else [])
        current = int(_read(order[0]))
        for path in order if memory_bytes < current else reversed(order):
            _write(path, str(memory_bytes))

    def limit_cpu(self, quota_us: int | None) -> None:
        _write(self._dirs["cpu"] / "cpu.cfs_quota_us", str(quota_us if quota_us is not None else -1))

    def freeze(self) -> None:
        self._freeze.write(self._frozen_thawed[0])

    def thaw(self) -> None:
        self._freeze.write(self._frozen_thawed[1])

    def kill_all(self) -> None:
        if self._unified is not None and (self._unified / "cgroup.kill").exists():
            _write(self._unified / "cgroup.kill", "1")
            return
        # v1 only: freeze so nothing forks meanwhile, SIGKILL every task, thaw so they die.
        for _ in range(20):
            pids = self.pids()
            if not pids:
                return
            self.freeze()
            for pid in pids:
                _kill(pid)
            self.thaw()

    def pids(self) -> list[int]:
        return _procs(self._dirs["memory"])

    def peak_memory(self) -> int:
        try:
            return int(self._peak.read())
        except (FileNotFoundError, ValueError):
            return 0

    def oom_kills(self) -> int:
        return _keyed(self._dirs["memory"] / "memory.oom_control", "oom_kill")

    def remove(self, attempts: int = 50) -> bool:
        self._freeze.close()
        self._peak.close()
        done = all([_rmdir_tree(d, attempts) for d in self._dirs.values()])
        if self._unified is not None:
            done = _rmdir_tree(self._unified, attempts) and done
        return done


class V1Driver:
    """Each v1 controller on its own mount (or co-mounted); the unified mount, if any, for
    freeze and kill."""

    version: Literal[1, 2] = 1
    CONTROLLERS = ("memory", "cpu", "pids", "freezer")

    def __init__(self, root: Path = Path("/sys/fs/cgroup"), own: dict[str, str] | None = None) -> None:
        self._root = root
        own = own if own is not None else own_paths(_read(Path("/proc/self/cgroup")))
        tag = f"lamina-{os.getpid()}"
        self._bases: dict[str, Path] = {}
        for c in self.CONTROLLERS:
            mount = _v1_mount(root, c)
            if mount is None:
                raise CgroupError(f"cgroup v1 controller {c!r} is not mounted under {root}")
            self._bases[c] = mount / own.get(c, "/").lstrip("/") / tag
        unified = root / "unified"
        self._unified_base: Path | None = None
        if (unified / "cgroup.procs").exists():
            self._unified_base = unified / own.get("", "/").lstrip("/") / tag
        self._remove_stale()

    def _remove_stale(self) -> None:
        """Delete `lamina-<pid>` groups of servers that are gone (their sandboxes died with them)."""
        parents = {b.parent for b in self._bases.values()}
        if self._unified_base is not None:
            parents.add(self._unified_base.parent)
        for parent in parents:
            if not parent.is_dir():
                continue
            for entry in parent.iterdir():
                pid = entry.name.removeprefix("lamina-")
                if entry.name.startswith("lamina-") and pid.isdigit() and not Path(f"/proc/{pid}").exists():
                    try:
                        _rmdir_tree(entry)
                    except OSError:
                        pass  # still has tasks: leave it

    def check(self) -> None:
        for c, base in self._bases.items():
            parent = base.parent
            if not parent.is_dir() or not os.access(parent, os.W_OK):
                raise CgroupError(f"cgroup v1 {c} group {parent} is not writable by this user")

    def create(self, name: str, limits: CgroupLimits) -> V1Cgroup:
        dirs: dict[str, Path] = {}
        for c, base in self._bases.items():
            d = base / name
            d.mkdir(parents=True, exist_ok=True)
            dirs[c] = d
        mem = dirs["memory"]
        _write(mem / "memory.limit_in_bytes", str(limits.memory_bytes))
        if (mem / "memory.memsw.limit_in_bytes").exists():
            _write(mem / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
        _write(dirs["cpu"] / "cpu.cfs_period_us", str(CPU_PERIOD_US))
        _write(dirs["pids"] / "pids.max", str(limits.pids))
        unified = None
        if self._unified_base is not None:
            unified = self._unified_base / name
            unified.mkdir(parents=True, exist_ok=True)
        return V1Cgroup(dirs, unified)

    def describe(self) -> str:
        extra = " + unified mount for freeze/kill" if self._unified_base else ""
        return f"cgroup v1 ({', '.join(self.CONTROLLERS)}){extra}"

    def cleanup(self) -> None:
        for base in self._bases.values():
            _rmdir_tree(base)
        if self._unified_base is not None:
            _rmdir_tree(self._unified_base)


def _v1_mount(root: Path, controller: str) -> Path | None:
    direct = root / controller
    if (direct / "cgroup.procs").exists():
        return direct
    for entry in root.iterdir() if root.is_dir() else ():
        if controller in entry.name.split(",") and (entry / "cgroup.procs").exists():
            return entry
    return None


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def detect(root: Path = Path("/sys/fs/cgroup")) -> CgroupDriver:
    """The driver for this host; raises CgroupError with the reason if none can work."""
    if (root / "cgroup.controllers").exists():
        return V2Driver(root)
    if (root / "memory").exists() or any("memory" in p.name for p in root.iterdir() if root.is_dir()):
        return V1Driver(root)
    raise CgroupError(f"no cgroup hierarchy found at {root}")
