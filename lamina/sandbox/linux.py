"""BwrapSandbox: a process tree in its own namespaces, cgroup, uid and root, launched by bubblewrap.

What every sandbox gets (shared/ISOLATION.md "Recommended isolation design"):
- user, pid, ipc, uts, network and (where possible) cgroup namespaces; no capabilities;
  no_new_privs; no further user namespaces; the seccomp deny list (`seccomp.py`);
- when the server runs as root, a host uid of its own (from `UidPool`) that no other live
  sandbox has, so a breakout lands as nobody in particular;
- a scoped root: /usr and /etc read-only, each `Mount` bound from an open fd (so host paths
  under private directories need not be traversable by that uid), a private /tmp (`rootfs.py`),
  fresh /proc and /dev, and nothing else of the host;
- a cgroup with Lambda's limits (`cgroups.py`), entered before the command is exec'd;
- the service listener (the Runtime API) created inside the sandbox's own network namespace at
  127.0.0.1:9001, by entering that namespace from one host thread for one socket() call. No host
  port exists: nothing outside the sandbox can reach it, and the sandbox can reach nothing else.

Launch: bwrap starts with --info-fd (it reports the sandbox's pid 1) and --block-fd (it waits
before exec). Meanwhile the host puts both bwrap processes in the cgroup and makes the listener;
then it releases the block and the command runs.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path

from lamina.sandbox import network, rootfs, seccomp
from lamina.sandbox.base import SandboxExit, SandboxSetup, SandboxSpec, SandboxStats
from lamina.sandbox.cgroups import CgroupDriver, CgroupLimits, SandboxCgroup
from lamina.sandbox.leases import HostLeases

SERVICE_PORT = 9001  # Lambda's Runtime API port inside every environment (spec 4)
INSIDE_UID = 993  # sbx_user1051 on Lambda
INSIDE_GID = 990
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)


class UidPool(HostLeases):
    """Host uids for sandboxes, one per live sandbox on this host (lowest free first), unique
    across Lamina servers on one host too (see HostLeases)."""

    def __init__(self, first: int = 20000, count: int = 10000, lock_dir: Path = Path("/run/lamina/uids")) -> None:
        super().__init__(first=first, count=count, lock_dir=lock_dir, what="sandbox uid")


@dataclass(slots=True, kw_only=True)
class BwrapHost:
    """What all sandboxes of one server share: the launcher, cgroups, uids, the seccomp filter."""

    bwrap: str
    cgroups: CgroupDriver
    uids: UidPool | None  # None when not root: sandboxes run as the server's own uid
    etc: list[str] = field(default_factory=list)  # bwrap arguments building /etc (rootfs.etc_binds)
    # Cgroups whose killed tasks were not reaped yet when their sandbox was destroyed.
    leftover_cgroups: list[SandboxCgroup] = field(default_factory=list)
    # Set up on the host only when the first sandbox with outbound network starts.
    outbound: network.OutboundNetwork = field(default_factory=network.OutboundNetwork)
    prlimit: str | None = field(default_factory=lambda: shutil.which("prlimit"))
    setpriv: str = field(default_factory=lambda: shutil.which("setpriv") or "/usr/bin/setpriv")

    @classmethod
    def create(cls, cgroups: CgroupDriver, state_dir: Path) -> BwrapHost:
        """`state_dir`: a directory sandbox uids can reach, for the files every sandbox shares."""
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise RuntimeError("bubblewrap (bwrap) is not installed")
        seccomp.deny_list_bpf()  # compile once, now, so a broken libseccomp fails at start
        etc = rootfs.etc_binds(rootfs.write_generated_etc(state_dir / "etc", network.host_nameservers()))
        return cls(bwrap=bwrap, cgroups=cgroups, uids=UidPool() if os.geteuid() == 0 else None, etc=etc)

    def close(self) -> None:
        """Undo what the server's sandboxes set up on the host: cgroups, network rules."""
        for cgroup in self.leftover_cgroups:
            cgroup.remove(attempts=1500)  # up to 3 s: the host's init reaps killed pid 1s late
        self.leftover_cgroups.clear()
        self.cgroups.cleanup()
        self.outbound.close()


class CgroupControls:
    """The Sandbox methods that act on a tree through its cgroup, shared by the two launchers."""

    output_fd: int
    _cgroup: SandboxCgroup | None
    _cpu_quota: int
    _link: network.Link | None

    def _outbound(self) -> network.OutboundNetwork:
        raise NotImplementedError

    def _kill_group(self) -> None:
        if self._cgroup is not None:
            self._cgroup.kill_all()
            self._cgroup.thaw()  # a tree started later must not enter a frozen group

    async def _detach_network(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            await asyncio.to_thread(self._outbound().detach, link)

    def freeze(self) -> None:
        if self._cgroup is not None:
            self._cgroup.freeze()

    def thaw(self) -> None:
        if self._cgroup is not None:
            self._cgroup.thaw()

    def limit_cpu(self, enabled: bool) -> None:
        if self._cgroup is not None:
            self._cgroup.limit_cpu(self._cpu_quota if enabled else None)

    def peak_memory(self) -> int:
        return self._cgroup.peak_memory() if self._cgroup is not None else 0

    def oom_kills(self) -> int:
        return self._cgroup.oom_kills() if self._cgroup is not None else 0

    def stats(self) -> SandboxStats:
        return SandboxStats(max_memory_bytes=self.peak_memory(), oom_kills=self.oom_kills())

    def close_output(self) -> None:
        if self.output_fd >= 0:
            os.close(self.output_fd)
            self.output_fd = -1


class BwrapSandbox(CgroupControls):
    maps_paths = True

    def __init__(self, setup: SandboxSetup, host: BwrapHost) -> None:
        self._setup = setup
        self._host = host
        self.output_fd = -1
        self._uid: int | None = None
        self._cgroup: SandboxCgroup | None = None
        self._tmp: Path | None = None
        self._tmp_mounted = False
        self._proc: asyncio.subprocess.Process | None = None
        self._exit: SandboxExit | None = None
        self._destroyed = False
        self._cpu_quota = 0
        self._link: network.Link | None = None

    async def setup(self) -> None:
        setup = self._setup
        setup.work_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(setup.work_dir, 0o711)  # its uid passes through to /tmp; nobody lists it
        if self._host.uids is not None:
            self._uid = self._host.uids.acquire()
        limits = CgroupLimits.for_memory(setup.limits.memory_mb, setup.limits.pids)
        self._cpu_quota = limits.cpu_quota_us
        self._cgroup = await asyncio.to_thread(self._host.cgroups.create, setup.id, limits)
        gid = self._uid
        self._tmp, self._tmp_mounted = await asyncio.to_thread(
            rootfs.make_tmp, setup.work_dir, setup.limits.tmp_mb, self._uid, gid
        )

    def _argv(self, spec: SandboxSpec, fds: dict[str, int]) -> tuple[list[str], list[str], list[str]]:
        """(launcher argv ending in bwrap, bwrap's options, the command after `--`)."""
        launcher: list[str] = []
        if self._uid is not None:
            # Drop to the sandbox's own uid, then exec bwrap in place (uvloop's subprocess API has
            # no user=/group=, and preexec_fn is unsafe in a threaded server).
            launcher += [self._host.setpriv, f"--reuid={self._uid}", f"--regid={self._uid}", "--clear-groups", "--"]
        launcher.append(self._host.bwrap)
        a = ["--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
             "--unshare-net", "--unshare-cgroup-try", "--disable-userns", "--die-with-parent",
             "--new-session", "--cap-drop", "ALL", "--uid", str(INSIDE_UID), "--gid", str(INSIDE_GID),
             "--hostname", "sandbox"]  # fmt: skip
        for d in rootfs.SYSTEM_DIRS:
            a += ["--ro-bind", d, d]
        for link in rootfs.SYSTEM_LINKS:
            if os.path.islink(link):
                a += ["--symlink", os.readlink(link), link]
            elif os.path.isdir(link):
                a += ["--ro-bind", link, link]
        a += self._host.etc
        a += ["--proc", "/proc", "--dev", "/dev", "--dir", "/var"]
        for m in spec.mounts:
            a += ["--bind-fd" if m.writable else "--ro-bind-fd", str(fds[m.inside]), m.inside]
        a += ["--bind-fd", str(fds["/tmp"]), "/tmp"]
        a += ["--chdir", spec.cwd, "--seccomp", str(fds["seccomp"]), "--info-fd", str(fds["info"]),
              "--block-fd", str(fds["block"])]  # fmt: skip
        command = ["--"]
        if self._host.prlimit is not None:
            # Lowering one's own limit needs no capability (prlimit on another uid's process would).
            n = self._setup.limits.nofile
            command += [self._host.prlimit, f"--nofile={n}:{n}", "--"]
        return launcher, a, command + spec.argv

    async def start(self, spec: SandboxSpec) -> socket.socket:
        assert self._cgroup is not None and self._tmp is not None, "setup() first"
        await self._detach_network()  # the previous tree's namespace (a reset) is gone
        env = dict(spec.env)
        env[spec.service_address_env] = f"127.0.0.1:{SERVICE_PORT}"
        env["TMPDIR"] = "/tmp"
        opened: list[int] = []

        def keep(fd: int) -> int:
            opened.append(fd)
            return fd

        try:
            fds = {m.inside: keep(os.open(m.host, os.O_PATH | os.O_CLOEXEC)) for m in spec.mounts}
            fds["/tmp"] = keep(os.open(self._tmp, os.O_PATH | os.O_CLOEXEC))
            fds["seccomp"] = keep(seccomp.bpf_fd())
            info_r, info_w = os.pipe()
            keep(info_r)
            fds["info"] = keep(info_w)
            block_r, block_w = os.pipe()
            keep(block_w)
            fds["block"] = keep(block_r)
            out_r, out_w = os.pipe()
            keep(out_w)
            keep(out_r)  # until start succeeds; then it is output_fd
            os.set_blocking(out_r, False)
            self._exit = None
            # bwrap reads its options from a pipe (--args), so the sandbox's pid 1 shows no host
            # paths in /proc/1/cmdline; only the launcher words and the command stay in argv.
            launcher, options, command = self._argv(spec, fds)
            args_r, args_w = os.pipe()
            keep(args_r)
            keep(args_w)
            os.write(args_w, b"".join(o.encode() + b"\0" for o in options))
            os.close(args_w)
            opened.remove(args_w)
            fds["args"] = args_r
            passed = [fds[k] for k in fds]
            self._proc = await asyncio.create_subprocess_exec(
                *launcher, "--args", str(args_r), *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out_w,
                stderr=out_w,
                env=env,
                pass_fds=passed,
                start_new_session=True,
            )
            for fd in passed + [out_w]:
                os.close(fd)
                opened.remove(fd)
            child = await asyncio.to_thread(_read_child_pid, info_r)
            if child is None:
                raise RuntimeError("bwrap exited before the sandbox started: " + _peek(out_r))
            self._cgroup.attach(self._proc.pid)
            self._cgroup.attach(child)
            listener = await asyncio.to_thread(_listen_in_netns, child, SERVICE_PORT)
            if self._setup.network == "outbound":
                self._link = await asyncio.to_thread(self._host.outbound.attach, child)
            os.write(block_w, b"1")
            opened.remove(out_r)
            self.output_fd = out_r
            return listener
        except BaseException:
            self.kill()
            raise
        finally:
            for fd in opened:
                os.close(fd)

    async def wait_exit(self) -> SandboxExit:
        if self._exit is None:
            assert self._proc is not None
            rc = await self._proc.wait()
            if rc < 0:
                self._exit = SandboxExit(returncode=None, signal=-rc)
            elif rc > 128:
                # bwrap reports a command killed by signal N as 128 + N.
                self._exit = SandboxExit(returncode=None, signal=rc - 128)
            else:
                self._exit = SandboxExit(returncode=rc)
        return self._exit

    def kill(self) -> None:
        self._kill_group()
        if self._proc is not None and self._proc.returncode is None:
            try:
                os.killpg(self._proc.pid, 9)
            except (ProcessLookupError, PermissionError):
                pass

    def _outbound(self) -> network.OutboundNetwork:
        return self._host.outbound

    async def destroy(self) -> None:
        if self._destroyed:
            return
        self._destroyed = True
        self.kill()
        if self._proc is not None and self._proc.returncode is None:
            await self.wait_exit()
        self.close_output()
        await self._detach_network()
        cgroup, self._cgroup = self._cgroup, None
        if cgroup is not None and not await asyncio.to_thread(cgroup.remove):
            self._host.leftover_cgroups.append(cgroup)
        await asyncio.to_thread(rootfs.remove_tmp, self._setup.work_dir, self._tmp_mounted)
        if self._uid is not None and self._host.uids is not None:
            self._host.uids.release(self._uid)
            self._uid = None


def _read_child_pid(fd: int) -> int | None:
    """bwrap's --info-fd JSON (`{"child-pid": N}`), read to EOF; None if bwrap died first."""
    data = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
        if data.rstrip().endswith(b"}"):
            break
    try:
        return int(json.loads(data)["child-pid"])
    except (ValueError, KeyError):
        return None


def _listen_in_netns(pid: int, port: int) -> socket.socket:
    """A listening TCP socket on 127.0.0.1:port inside `pid`'s network namespace.

    setns() applies to the calling thread only; this runs on a worker thread and switches back
    before returning, and the socket keeps the namespace it was made in.
    """
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into the sandbox's network namespace: {os.strerror(err)}")
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(64)
            sock.setblocking(False)
        finally:
            if _libc.setns(home, CLONE_NEWNET) != 0:
                # A thread stranded in a sandbox's namespace must never serve anything else.
                os._exit(70)
        return sock
    finally:
        os.close(home)
        os.close(target)


def _peek(fd: int) -> str:
    try:
        return os.read(fd, 4096).decode("utf-8", "replace").strip()
    except BlockingIOError:
        return "(no output)"
