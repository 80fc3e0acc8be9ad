"""ZygoteSandbox: sandboxed environments forked from a template process, a few made ahead.

The isolation is BwrapSandbox's (shared/ISOLATION.md; the same namespaces, uid, root, /tmp,
cgroup, seccomp list and Runtime API listener), but no new process is exec'd for it: the zygote
(`zygote_main.py`, run as root by the server with the runtimes' interpreter) forks each
environment, which builds its own namespaces and root. What a cold start pays for on the request
path (shared/PERFORMANCE.md 2b, 2d) moves off it:

- the interpreter start and the runtime client's imports: the zygote made them once; a Python
  function's process calls the preloaded client's main() instead of exec'ing the interpreter;
- entering the cgroup (a ~8 ms RCU wait when no attach happened recently), making the /tmp
  image, the namespaces and the root: `ZygoteHost` keeps `pool_size` sandboxes prepared up to
  the point where only the function is missing, and refills the pool in the background.

Only root can do this (mounts, pivot_root, setuid); without root the server uses BwrapSandbox.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import os
import shutil
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from lamina.sandbox import network, rootfs, seccomp
from lamina.sandbox.base import SandboxExit, SandboxSetup, SandboxSpec
from lamina.sandbox.cgroups import CgroupDriver, CgroupLimits, SandboxCgroup
from lamina.sandbox.linux import INSIDE_GID, INSIDE_UID, SERVICE_PORT, CgroupControls, UidPool

ZYGOTE_MAIN = Path(__file__).with_name("zygote_main.py")
POOL_TMP_MB = 512  # Lambda's default EphemeralStorage: what the pool's /tmp images are made with
POOL_MEMORY_MB = 128
STEP_TIMEOUT_S = 10.0
REFILL_DELAY_S = 0.05

log = logging.getLogger("lamina.sandbox")


class ZygoteError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Preload:
    """A runtime the zygote imports ahead: a launch of exactly `argv` runs it in place."""

    argv: tuple[str, ...]  # as the sandbox would exec it, e.g. (/usr/bin/python3.11, -I, -S, /var/runtime/bootstrap.py)
    script: Path  # the host file that argv[-1] names inside


@dataclass(slots=True, kw_only=True)
class Prepared:
    """An environment's processes, forked and isolated, waiting for their function."""

    ctl: socket.socket  # to the environment's pid 1 (and, until "go", the function's process)
    output_fd: int  # read end of the tree's stdout and stderr
    listener: socket.socket  # the Runtime API listener inside the environment's network namespace
    pid: int  # the function's process, as the host sees it (its netns is the environment's)

    def alive(self) -> bool:
        """Still waiting for its function: nothing to read yet (an exit status, an error or EOF
        would be there if its processes had died, e.g. with a zygote that went away)."""
        try:
            self.ctl.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False

    def close(self) -> None:
        self.ctl.close()
        self.listener.close()
        if self.output_fd >= 0:
            os.close(self.output_fd)
            self.output_fd = -1


@dataclass(slots=True, kw_only=True)
class Slot:
    """What outlives a reset (uid, cgroup, /tmp), made ahead and possibly with its tree prepared."""

    id: str
    work_dir: Path
    uid: int | None
    cgroup: SandboxCgroup
    tmp: Path
    tmp_mounted: bool
    tmp_mb: int
    prepared: Prepared | None = None


class ZygoteProcess:
    """The zygote and the socket to it (one request per environment; replies come per environment)."""

    def __init__(self, proc: asyncio.subprocess.Process, sock: socket.socket, lifeline: int) -> None:
        self._proc = proc
        self._sock = sock
        self._lifeline = lifeline

    @classmethod
    async def start(cls, interpreter: Path, config: dict[str, object]) -> ZygoteProcess:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # The lifeline: environments watch the read end; the write end stays in this process
        # only (close-on-exec), so they all end when the server does, however it ends.
        lifeline_r, lifeline_w = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                str(interpreter), "-I", "-S", str(ZYGOTE_MAIN), str(theirs.fileno()), str(lifeline_r),
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=[theirs.fileno(), lifeline_r],
            )  # fmt: skip
        except BaseException:
            os.close(lifeline_w)
            raise
        finally:
            theirs.close()
            os.close(lifeline_r)
        zygote = cls(proc, ours, lifeline_w)
        try:
            ours.send(json.dumps(config).encode())
            ours.setblocking(False)
            reply = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(ours, 4096), STEP_TIMEOUT_S)
            if not reply or not json.loads(reply).get("ready"):
                raise ZygoteError(f"the zygote ({interpreter}) exited while starting")
            ours.setblocking(True)
        except BaseException:
            await zygote.close()
            raise
        return zygote

    def fork(self, request: dict[str, object], fds: list[int]) -> None:
        try:
            socket.send_fds(self._sock, [json.dumps(request).encode()], fds)
        except OSError as exc:
            raise ZygoteError(f"the zygote is gone ({exc.strerror})") from exc

    @property
    def alive(self) -> bool:
        return self._proc.returncode is None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    @property
    def pid(self) -> int:
        return self._proc.pid

    async def close(self) -> None:
        if self._lifeline >= 0:
            os.close(self._lifeline)  # every environment it forked ends
            self._lifeline = -1
        self._sock.close()  # the zygote exits when it reads EOF
        if self._proc.returncode is None:
            try:
                await asyncio.wait_for(self._proc.wait(), 2.0)
            except asyncio.TimeoutError:
                self._proc.kill()
                await self._proc.wait()


@dataclass(slots=True, kw_only=True)
class ZygoteHost:
    """What all sandboxes of one server share: the zygote, its pool of prepared slots, cgroups, uids."""

    cgroups: CgroupDriver
    uids: UidPool
    work_root: Path  # where slots' work directories go (the server's envs directory)
    interpreter: Path
    config: dict[str, object]
    preload: Preload | None
    pool_size: int = 2
    zygote: ZygoteProcess | None = None
    leftover_cgroups: list[SandboxCgroup] = field(default_factory=list)
    outbound: network.OutboundNetwork = field(default_factory=network.OutboundNetwork)
    _slots: list[Slot] = field(default_factory=list)
    _filling: asyncio.Task[None] | None = None
    _restart: asyncio.Lock = field(default_factory=asyncio.Lock)
    _closed: bool = False

    @classmethod
    def create(
        cls, cgroups: CgroupDriver, state_dir: Path, work_root: Path, interpreter: Path, preload: Preload | None, pool_size: int = 2
    ) -> ZygoteHost:
        """`interpreter` runs the zygote (and so every preloaded runtime); `state_dir` holds the
        files all sandboxes share; `work_root` is where slots are made (cleaned at start)."""
        etc = rootfs.etc_sources(rootfs.write_generated_etc(state_dir / "etc", network.host_nameservers()))
        dirs = list(rootfs.SYSTEM_DIRS)
        links = []
        for link in rootfs.SYSTEM_LINKS:
            if os.path.islink(link):
                links.append((os.readlink(link), link))
            elif os.path.isdir(link):
                dirs.append(link)
        config: dict[str, object] = {
            "seccomp": seccomp.deny_list_bpf().hex(),
            "etc": etc,
            "system_dirs": dirs,
            "system_links": links,
            "hostname": "sandbox",
            "port": SERVICE_PORT,
            "inside_uid": INSIDE_UID,
            "inside_gid": INSIDE_GID,
            "in_place_argv": list(preload.argv) if preload is not None else [],
            "preload": {"host": str(preload.script), "inside": preload.argv[-1]} if preload is not None else None,
        }
        return cls(cgroups=cgroups, uids=UidPool(), work_root=work_root, interpreter=interpreter,
                   config=config, preload=preload, pool_size=pool_size)  # fmt: skip

    async def open(self) -> None:
        """Start the zygote and begin filling the pool."""
        await self._running_zygote()
        self._refill()

    # --- slots -------------------------------------------------------------------------------

    async def make_slot(self, id: str, work_dir: Path, memory_mb: int, tmp_mb: int, pids: int = 1024) -> Slot:
        work_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(work_dir, 0o711)  # its uid passes through to /tmp; nobody lists it
        (work_dir / "root").mkdir(mode=0o700, exist_ok=True)
        uid = self.uids.acquire()
        cgroup: SandboxCgroup | None = None
        try:
            cgroup = await asyncio.to_thread(self.cgroups.create, id, CgroupLimits.for_memory(memory_mb, pids))
            tmp, mounted = await asyncio.to_thread(rootfs.make_tmp, work_dir, tmp_mb, uid, uid)
        except BaseException:
            if cgroup is not None:
                await asyncio.to_thread(cgroup.remove)
            self.uids.release(uid)
            shutil.rmtree(work_dir, ignore_errors=True)
            raise
        return Slot(id=id, work_dir=work_dir, uid=uid, cgroup=cgroup, tmp=tmp, tmp_mounted=mounted, tmp_mb=tmp_mb)

    async def release_slot(self, slot: Slot) -> None:
        if slot.prepared is not None:
            slot.prepared.close()
            slot.prepared = None
        slot.cgroup.kill_all()
        slot.cgroup.thaw()
        if not await asyncio.to_thread(slot.cgroup.remove):
            self.leftover_cgroups.append(slot.cgroup)
        await asyncio.to_thread(rootfs.remove_tmp, slot.work_dir, slot.tmp_mounted)
        if slot.uid is not None:
            self.uids.release(slot.uid)
            slot.uid = None

    def pooled(self) -> int:
        """How many prepared slots wait in the pool."""
        return len(self._slots)

    def take_slot(self, setup: SandboxSetup) -> Slot | None:
        """A pooled slot for this sandbox, if one fits (the pool's /tmp size); refills behind."""
        if setup.limits.tmp_mb != POOL_TMP_MB or not self._slots:
            return None
        slot = self._slots.pop()
        slot.cgroup.set_memory(setup.limits.memory_mb * 1024 * 1024)
        # Refill a moment later: the cold start that took this slot gets the CPU first.
        asyncio.get_running_loop().call_later(REFILL_DELAY_S, self._refill)
        return slot

    def _refill(self) -> None:
        if not self._closed and self.pool_size > 0 and (self._filling is None or self._filling.done()):
            self._filling = asyncio.ensure_future(self._fill())

    async def _fill(self) -> None:
        while not self._closed and len(self._slots) < self.pool_size:
            sid = f"pool-{uuid.uuid4().hex}"
            try:
                slot = await self.make_slot(sid, self.work_root / sid, POOL_MEMORY_MB, POOL_TMP_MB)
            except (OSError, RuntimeError, ZygoteError) as exc:
                log.warning("could not make a pooled sandbox: %s", exc)
                return
            try:
                slot.prepared = await self.prepare(slot)
            except (OSError, ZygoteError) as exc:
                log.warning("could not prepare a pooled sandbox: %s", exc)
                await self.release_slot(slot)
                return
            if self._closed:
                await self.release_slot(slot)
                return
            self._slots.append(slot)

    # --- preparing a tree --------------------------------------------------------------------

    async def prepare(self, slot: Slot) -> Prepared:
        """Fork the slot's environment processes and wait until they wait for their function."""
        zygote = await self._running_zygote()
        ctl, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        out_r, out_w = os.pipe()
        passed = [theirs.fileno(), out_w]
        try:
            passed += [os.open(p, os.O_WRONLY | os.O_CLOEXEC) for p in slot.cgroup.procs_files()]
            uid = slot.uid if slot.uid is not None else 0
            zygote.fork({"uid": uid, "gid": uid, "root": str(slot.work_dir / "root"), "tmp": str(slot.tmp)}, passed)
        except BaseException:
            ctl.close()
            os.close(out_r)
            raise
        finally:
            theirs.close()
            for fd in passed[1:]:
                os.close(fd)
        try:
            ctl.setblocking(False)
            await asyncio.wait_for(_readable(ctl), STEP_TIMEOUT_S)
            msg, fds, _, _ = socket.recv_fds(ctl, 65536, 1)
            reply = json.loads(msg) if msg else {"error": "the environment's processes exited while starting"}
            if "error" in reply:
                for fd in fds:
                    os.close(fd)
                raise ZygoteError(f"sandbox setup failed: {reply['error']}")
            listener = socket.socket(fileno=fds[0])
            listener.setblocking(False)
        except BaseException:
            slot.cgroup.kill_all()
            ctl.close()
            os.close(out_r)
            raise
        os.set_blocking(out_r, False)
        return Prepared(ctl=ctl, output_fd=out_r, listener=listener, pid=int(reply["pid"]))

    async def _running_zygote(self) -> ZygoteProcess:
        """The zygote, started again if it died (its environments died with it; new ones need it)."""
        async with self._restart:
            if self.zygote is None or not self.zygote.alive:
                if self._closed:
                    raise ZygoteError("the sandbox host is closed")
                if self.zygote is not None:
                    log.warning("the zygote exited (status %s); starting a new one", self.zygote.returncode)
                    await self.zygote.close()
                self.zygote = await ZygoteProcess.start(self.interpreter, self.config)
        return self.zygote

    async def close(self) -> None:
        """Release the pool, stop the zygote, and undo what sandboxes set up on the host."""
        self._closed = True
        if self._filling is not None:
            self._filling.cancel()
            try:
                await self._filling
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - closing regardless
                pass
        slots, self._slots = self._slots, []
        for slot in slots:
            await self.release_slot(slot)
        if self.zygote is not None:
            await self.zygote.close()
        for cgroup in self.leftover_cgroups:
            await asyncio.to_thread(cgroup.remove, 1500)  # up to 3 s: killed pid 1s are reaped late
        self.leftover_cgroups.clear()
        self.cgroups.cleanup()
        self.outbound.close()


class ZygoteSandbox(CgroupControls):
    maps_paths = True

    def __init__(self, setup: SandboxSetup, host: ZygoteHost) -> None:
        self._setup = setup
        self._host = host
        self.output_fd = -1
        self._slot: Slot | None = None
        self._cgroup: SandboxCgroup | None = None  # the slot's, while this sandbox has it
        self._ctl: socket.socket | None = None
        self._exit_task: asyncio.Task[SandboxExit] | None = None
        self._last_exit: SandboxExit | None = None
        self._link: network.Link | None = None
        self._cpu_quota = CgroupLimits.for_memory(setup.limits.memory_mb).cpu_quota_us
        self._destroyed = False

    async def setup(self) -> None:
        s = self._setup
        slot = self._host.take_slot(s)
        if slot is None:
            slot = await self._host.make_slot(s.id, s.work_dir, s.limits.memory_mb, s.limits.tmp_mb, s.limits.pids)
        self._slot = slot
        self._cgroup = slot.cgroup

    async def start(self, spec: SandboxSpec) -> socket.socket:
        slot = self._slot
        assert slot is not None, "setup() first"
        await self._detach_network()  # the previous tree's namespace (a reset) is gone
        prepared, slot.prepared = slot.prepared, None
        if prepared is not None and not prepared.alive():
            prepared.close()  # prepared by a zygote that has died since: its processes are gone
            self._kill_group()
            prepared = None
        if prepared is None:
            prepared = await self._host.prepare(slot)
        try:
            if self._setup.network == "outbound":
                self._link = await asyncio.to_thread(self._host.outbound.attach, prepared.pid)
            env = dict(spec.env)
            env[spec.service_address_env] = f"127.0.0.1:{SERVICE_PORT}"
            env["TMPDIR"] = "/tmp"
            go = {
                "mounts": [{"inside": m.inside, "writable": m.writable} for m in spec.mounts],
                "env": env,
                "cwd": spec.cwd,
                "argv": spec.argv,
                "nofile": self._setup.limits.nofile,
            }
            trees = [_detached_tree(m.host) for m in spec.mounts]
            try:
                socket.send_fds(prepared.ctl, [json.dumps(go).encode()], trees)
            finally:
                for fd in trees:
                    os.close(fd)
        except BaseException:
            prepared.close()
            self.kill()
            raise
        self._forget_tree()  # a reset: the previous tree's control socket and exit watch
        self._ctl = prepared.ctl
        self.output_fd = prepared.output_fd
        prepared.output_fd = -1
        self._exit_task = asyncio.ensure_future(_read_exit(prepared.ctl))
        return prepared.listener

    def _forget_tree(self) -> None:
        task, self._exit_task = self._exit_task, None
        if task is not None and task.done() and not task.cancelled() and task.exception() is None:
            self._last_exit = task.result()
        elif task is not None:
            task.cancel()
            self._last_exit = SandboxExit(returncode=None, signal=9)
        if self._ctl is not None:
            self._ctl.close()
            self._ctl = None

    async def wait_exit(self) -> SandboxExit:
        if self._exit_task is None:
            assert self._last_exit is not None, "start() first"
            return self._last_exit  # after destroy: how the last tree ended
        return await asyncio.shield(self._exit_task)

    def kill(self) -> None:
        self._kill_group()

    def _outbound(self) -> network.OutboundNetwork:
        return self._host.outbound

    async def destroy(self) -> None:
        if self._destroyed:
            return
        self._destroyed = True
        self.kill()
        if self._exit_task is not None:
            await asyncio.wait({self._exit_task}, timeout=5.0)
        self._forget_tree()
        self.close_output()
        await self._detach_network()
        slot, self._slot, self._cgroup = self._slot, None, None
        if slot is not None:
            await self._host.release_slot(slot)


_libc = ctypes.CDLL(None, use_errno=True)
SYS_OPEN_TREE = 428  # the same on every architecture (asm-generic numbering)
OPEN_TREE_CLONE, AT_RECURSIVE = 0x1, 0x8000
AT_FDCWD = -100


def _detached_tree(path: Path) -> int:
    """A detached copy of the mount tree at `path` (open_tree(OPEN_TREE_CLONE)), which a process in
    another mount namespace attaches with move_mount: the environment's root no longer holds the
    host's tree to bind from."""
    fd = int(_libc.syscall(SYS_OPEN_TREE, AT_FDCWD, str(path).encode(), OPEN_TREE_CLONE | os.O_CLOEXEC | AT_RECURSIVE))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"open_tree {path}: {os.strerror(err)}")
    return fd


async def _readable(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


async def _read_exit(ctl: socket.socket) -> SandboxExit:
    """The tree's exit, as its container process reports it; EOF means it was killed."""
    loop = asyncio.get_running_loop()
    while True:
        data = await loop.sock_recv(ctl, 4096)
        if not data:
            return SandboxExit(returncode=None, signal=9)
        msg = json.loads(data)
        if "status" in msg:
            rc = int(msg["status"])
            if rc < 0:
                return SandboxExit(returncode=None, signal=-rc)
            if rc > 128:
                return SandboxExit(returncode=None, signal=rc - 128)  # pid 1 reports signal N as 128 + N
            return SandboxExit(returncode=rc)
