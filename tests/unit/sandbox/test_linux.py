"""The Sandbox seam's two real implementations, driven directly (no server).

BwrapSandbox (lamina/sandbox/linux.py) on this host: bubblewrap, a host uid of its own, v1
cgroups with the unified mount, a loop-mounted ext4 /tmp, the seccomp filter, the Runtime API
listener inside the sandbox's network namespace. ProcessSandbox (process.py) for the same
contract. The program inside speaks a line protocol on the service connection:

    child → {"hello": pid}      host → "report"   child → {observations}
    host → "ping"  child → "pong"  (repeatable)     host → "bye"  child exits 0
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import json
import os
import select
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from lamina.sandbox import cgroups, probe
from lamina.sandbox.base import Limits, Mount, Sandbox, SandboxSetup, SandboxSpec
from lamina.sandbox.cgroups import CgroupDriver, CgroupLimits, SandboxCgroup
from lamina.sandbox.linux import INSIDE_GID, INSIDE_UID, SERVICE_PORT, BwrapHost, BwrapSandbox
from lamina.sandbox.process import ProcessSandbox
from lamina.sandbox.zygote import Preload, ZygoteHost, ZygoteSandbox

PYTHON = "/usr/bin/python3.11"
ADDR_ENV = "AWS_LAMBDA_RUNTIME_API"
CGROUP_ROOT = Path("/sys/fs/cgroup")
MB = 1024 * 1024

pytestmark = pytest.mark.anyio

needs_sandbox = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("bwrap") is None or not Path(PYTHON).exists()
    or not (CGROUP_ROOT / "memory" / "cgroup.procs").exists(),
    reason="needs root, bubblewrap, /usr/bin/python3.11 and cgroup v1 (this project's machine kind)",
)  # fmt: skip

PROGRAM = r"""
import errno, json, os, resource, socket, sys
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
conn = socket.create_connection((host, int(port)), timeout=60)
f = conn.makefile("rwb")

def send(obj):
    f.write(json.dumps(obj).encode() + b"\n")
    f.flush()

send({"hello": os.getpid()})
assert f.readline() == b"report\n"
tmp = os.environ["TMPDIR"]
obs = {"pid": os.getpid(), "uid": os.getuid(), "gid": os.getgid(), "cwd": os.getcwd(), "tmpdir": tmp,
       "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)), "hostname": socket.gethostname(),
       "address": os.environ["AWS_LAMBDA_RUNTIME_API"], "tmp_before": sorted(os.listdir(tmp))}
st = os.statvfs(tmp)
obs["tmp_bytes"] = st.f_blocks * st.f_frsize
obs["tmp_owner"] = os.stat(tmp).st_uid
with open("/proc/self/mounts") as m:
    obs["tmp_fstype"] = [line.split()[2] for line in m if line.split()[1] == tmp]
with open(os.path.join(tmp, "marker"), "a") as m:
    m.write(os.environ["RUN"] + "\n")
with open(os.path.join(tmp, "marker")) as m:
    obs["marker"] = m.read()
try:
    with open("written-by-the-function", "x"):
        obs["code_write"] = 0
except OSError as e:
    obs["code_write"] = e.errno
with open("handler.py") as h:
    obs["handler"] = h.read()
obs["visible"] = {p: os.path.exists(p) for p in sys.argv[1:]}
with open("/proc/self/status") as s:
    status = dict(line.split(":\t", 1) for line in s.read().splitlines() if ":\t" in line)
obs["status"] = {k: status[k].strip() for k in ("Seccomp", "NoNewPrivs", "CapEff")}
obs["interfaces"] = sorted(name for _, name in socket.if_nameindex())
send(obs)
for line in f:
    if line == b"ping\n":
        send("pong")
    elif line == b"bye\n":
        break
"""

ALLOCATE = r"""
chunks = []
while True:
    chunks.append(b"\x01" * (16 * 1024 * 1024))  # touched pages: calloc'd zeroes would not count
"""


# --- helpers ------------------------------------------------------------------------------------


class RecordingDriver:
    """The real cgroup driver, remembering the groups it made (the test's window on the cgroup)."""

    def __init__(self, inner: CgroupDriver) -> None:
        self.inner = inner
        self.version = inner.version
        self.created: dict[str, SandboxCgroup] = {}

    def create(self, name: str, limits: CgroupLimits) -> SandboxCgroup:
        cg = self.inner.create(name, limits)
        self.created[name] = cg
        return cg

    def describe(self) -> str:
        return self.inner.describe()

    def cleanup(self) -> None:
        self.inner.cleanup()


def v1_dirs(name: str) -> list[Path]:
    """The directories V1Driver makes for sandbox `name` in this process (its documented layout)."""
    own = cgroups.own_paths(Path("/proc/self/cgroup").read_text())
    tag = f"lamina-{os.getpid()}"
    dirs = [CGROUP_ROOT / c / own.get(c, "/").lstrip("/") / tag / name for c in ("memory", "cpu", "pids", "freezer")]
    if (CGROUP_ROOT / "unified" / "cgroup.procs").exists():
        dirs.append(CGROUP_ROOT / "unified" / own.get("", "/").lstrip("/") / tag / name)
    return dirs


def proc_status(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return {k: v.strip() for k, _, v in (line.partition(":\t") for line in text.splitlines())}


def mounted(path: Path) -> bool:
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == str(path) for line in f)


def loop_backing_files() -> list[str]:
    """The image files that loop devices are attached to right now."""
    out = []
    for f in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            out.append(f.read_text().strip())
        except OSError:
            pass  # detached meanwhile
    return out


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def peek_output(fd: int) -> str:
    if fd < 0:
        return "(output closed)"
    try:
        return os.read(fd, 65536).decode("utf-8", "replace")
    except BlockingIOError:
        return "(no output)"


async def wait_until_empty(name: str, timeout: float = 10) -> None:
    """Until the sandbox's cgroup has no task: `populated 0` in the unified group's cgroup.events
    (which notifies pollers), else the v1 memory group's cgroup.procs."""
    dirs = v1_dirs(name)
    unified = [d for d in dirs if d.parts[len(CGROUP_ROOT.parts)] == "unified"]
    memory = dirs[0]
    with anyio.fail_after(timeout):
        if unified:
            fd = os.open(unified[0] / "cgroup.events", os.O_RDONLY)
            try:
                while "populated 1" in os.pread(fd, 4096, 0).decode():
                    await asyncio.to_thread(_poll_pri, fd, 0.5)  # bounded: re-read at least every 0.5 s
            finally:
                os.close(fd)
        else:
            while (memory / "cgroup.procs").read_text().strip():
                await anyio.sleep(0.005)


def _poll_pri(fd: int, timeout: float) -> None:
    poller = select.poll()
    poller.register(fd, select.POLLPRI | select.POLLERR)
    poller.poll(timeout * 1000)


class Channel:
    """The host's end of the service connection, as a line protocol."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.buf = b""

    async def line(self, timeout: float = 30) -> str:
        loop = asyncio.get_running_loop()
        with anyio.fail_after(timeout):
            while b"\n" not in self.buf:
                chunk = await loop.sock_recv(self.sock, 65536)
                if not chunk:
                    raise EOFError("the sandboxed program closed the connection")
                self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode()

    async def json(self, timeout: float = 30) -> Any:
        return json.loads(await self.line(timeout))

    async def send(self, text: str) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, text.encode() + b"\n")

    def close(self) -> None:
        self.sock.close()


async def accept(listener: socket.socket, output_fd: int, timeout: float = 30) -> Channel:
    try:
        with anyio.fail_after(timeout):
            conn, _ = await asyncio.get_running_loop().sock_accept(listener)
    except TimeoutError:
        raise AssertionError(f"the sandboxed program never connected; its output: {peek_output(output_fd)}") from None
    return Channel(conn)


async def frozen_stays_silent(ch: Channel, quiet: float = 0.3) -> bool:
    """Send a ping; True if no pong comes within `quiet` seconds (the tree is frozen)."""
    await ch.send("ping")
    with anyio.move_on_after(quiet):
        await ch.line()
        return False
    return True


@pytest.fixture
def recording() -> Iterator[RecordingDriver]:
    driver = RecordingDriver(cgroups.detect())
    try:
        yield driver
    finally:
        driver.cleanup()


@pytest.fixture
def code_dir(data_dir: Path) -> Path:
    data_dir.mkdir(mode=0o711)
    os.chmod(data_dir, 0o711)
    code = data_dir / "code" / "fn"
    code.mkdir(parents=True)
    for p in (data_dir / "code", code):
        os.chmod(p, 0o755)
    (code / "handler.py").write_text("def handler(event, context):\n    return event\n")
    os.chmod(code / "handler.py", 0o644)
    return code


def bwrap_spec(code: Path, run: int, argv_extra: list[str], program: str = PROGRAM) -> SandboxSpec:
    return SandboxSpec(
        argv=[PYTHON, "-I", "-S", "-c", program, *argv_extra],
        env={"RUN": str(run), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        cwd="/var/task",
        mounts=(Mount(host=code, inside="/var/task"),),
        service_address_env=ADDR_ENV,
    )


@asynccontextmanager
async def bwrap_sandbox(host: BwrapHost | ZygoteHost, data_dir: Path, sid: str, limits: Limits) -> AsyncIterator[Sandbox]:
    setup = SandboxSetup(id=sid, work_dir=data_dir / "envs" / sid, limits=limits)
    sb: Sandbox = BwrapSandbox(setup, host) if isinstance(host, BwrapHost) else ZygoteSandbox(setup, host)
    try:
        with anyio.fail_after(30):
            await sb.setup()
        yield sb
    finally:
        with anyio.fail_after(30):
            await sb.destroy()


@asynccontextmanager
async def launcher_host(kind: str, driver: CgroupDriver, data_dir: Path, preload: Preload | None = None,
                        pool_size: int = 0) -> AsyncIterator[BwrapHost | ZygoteHost]:  # fmt: skip
    """The host side of one sandbox launcher: bwrap, or the zygote (pool off unless asked for)."""
    if kind == "bwrap":
        yield BwrapHost.create(driver, data_dir / "sandbox")
        return
    (data_dir / "envs").mkdir(parents=True, exist_ok=True)
    host = ZygoteHost.create(driver, data_dir / "sandbox", data_dir / "envs", Path(PYTHON), preload, pool_size)
    try:
        with anyio.fail_after(30):
            await host.open()
        yield host
    finally:
        with anyio.fail_after(30):
            await host.close()


@pytest.fixture(params=["bwrap", "zygote"])
def launcher(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# --- BwrapSandbox -------------------------------------------------------------------------------


@needs_sandbox
async def test_sandbox_lifecycle(launcher: str, recording: RecordingDriver, data_dir: Path, code_dir: Path) -> None:
    async with launcher_host(launcher, recording, data_dir) as host:
        await _lifecycle(host, recording, data_dir, code_dir)


async def _lifecycle(host: BwrapHost | ZygoteHost, recording: RecordingDriver, data_dir: Path, code_dir: Path) -> None:
    limits = Limits(memory_mb=256, tmp_mb=64)
    sid = f"sbx-{os.getpid()}"
    work_dir = data_dir / "envs" / sid
    hidden = ["/root", str(data_dir), str(data_dir.parent), str(code_dir)]
    listener: socket.socket | None = None
    ch: Channel | None = None
    async with bwrap_sandbox(host, data_dir, sid, limits) as sb:
        try:
            assert sb.maps_paths
            host_uid = (work_dir / "tmp").stat().st_uid  # the ext4 root belongs to the sandbox's uid
            assert host_uid >= 20000
            assert mounted(work_dir / "tmp")
            assert str(work_dir / "tmp.img") in loop_backing_files()
            cgroup = recording.created[sid]
            for d in v1_dirs(sid):
                assert d.is_dir(), d

            # --- first run: what the tree sees, then kill ----------------------------------
            with anyio.fail_after(30):
                listener = await sb.start(bwrap_spec(code_dir, 1, hidden))
            assert listener.getsockname() == ("127.0.0.1", SERVICE_PORT)
            ch = await accept(listener, sb.output_fd)
            hello = await ch.json()
            await ch.send("report")
            obs = await ch.json()

            assert obs["address"] == f"127.0.0.1:{SERVICE_PORT}"
            assert (obs["uid"], obs["gid"]) == (INSIDE_UID, INSIDE_GID) == (993, 990)
            assert obs["cwd"] == "/var/task"
            assert obs["nofile"] == [1024, 1024]
            assert obs["hostname"] == "sandbox"
            assert obs["interfaces"] == ["lo"]
            assert obs["status"] == {"Seccomp": "2", "NoNewPrivs": "1", "CapEff": "0000000000000000"}
            # /tmp: private (empty at first, none of the host's), writable, ext4 of tmp_mb, ours.
            assert obs["tmpdir"] == "/tmp"
            assert obs["tmp_before"] == []
            assert obs["marker"] == "1\n"
            assert obs["tmp_fstype"] == ["ext4"]
            assert 0.85 * 64 * MB <= obs["tmp_bytes"] <= 64 * MB
            assert obs["tmp_owner"] == INSIDE_UID
            assert (work_dir / "tmp" / "marker").read_text() == "1\n"
            # /var/task: the code, read-only.
            assert obs["handler"] == (code_dir / "handler.py").read_text()
            assert obs["code_write"] == errno.EROFS
            # Nothing else of the host.
            assert obs["visible"] == {p: False for p in hidden}

            # On the host: every task of the sandbox runs as its own uid, and is in its cgroup.
            pids = cgroup.pids()
            assert len(pids) >= 2  # bwrap, its init inside and python; or the zygote's pid 1 and python
            statuses = {pid: proc_status(pid) for pid in pids}
            for pid, st in statuses.items():
                assert st["Uid"].split() == [str(host_uid)] * 4, (pid, st["Uid"])
            python = [pid for pid, st in statuses.items() if st["NSpid"].split()[-1] == str(hello["hello"])]
            assert len(python) == 1 and statuses[python[0]]["Name"].startswith("python3")
            assert str(python[0]) != str(hello["hello"])  # its own pid namespace
            for d in v1_dirs(sid):
                assert python[0] in [int(p) for p in (d / "cgroup.procs").read_text().split()], d

            # Freeze and thaw the whole tree.
            sb.freeze()
            assert await frozen_stays_silent(ch), "the sandbox answered while frozen"
            sb.thaw()
            assert await ch.line() == '"pong"'

            # The CPU cap is applied and lifted on request (256 MB: 14,471 µs per 100 ms).
            cpu = next(d for d in v1_dirs(sid) if d.parts[len(CGROUP_ROOT.parts)] == "cpu")
            assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "-1"
            sb.limit_cpu(True)
            assert (cpu / "cpu.cfs_quota_us").read_text().strip() == str(CgroupLimits.for_memory(256).cpu_quota_us)
            sb.limit_cpu(False)
            assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "-1"

            stats = sb.stats()
            assert stats.max_memory_bytes > 0 and stats.oom_kills == 0

            sb.kill()
            with anyio.fail_after(10):
                exit_ = await sb.wait_exit()
            assert exit_.returncode is None and exit_.signal == signal.SIGKILL
            assert exit_.describe() == "signal: killed"
            # bwrap itself is reaped; the rest of the tree has its SIGKILL and leaves the group.
            await wait_until_empty(sid)
            assert cgroup.pids() == []
            sb.kill()  # harmless again
            ch.close()
            listener.close()
            sb.close_output()

            # --- second run: a reset keeps /tmp; this time the program exits by itself ------
            with anyio.fail_after(30):
                listener = await sb.start(bwrap_spec(code_dir, 2, hidden))
            ch = await accept(listener, sb.output_fd)
            await ch.json()
            await ch.send("report")
            obs2 = await ch.json()
            assert obs2["tmp_before"] == ["marker"]
            assert obs2["marker"] == "1\n2\n"
            await ch.send("bye")
            with anyio.fail_after(10):
                exit_ = await sb.wait_exit()
            assert (exit_.returncode, exit_.signal) == (0, None)
            assert exit_.describe() == "exit status 0"
        finally:
            if ch is not None:
                ch.close()
            if listener is not None:
                listener.close()

    # --- destroy released everything --------------------------------------------------------
    assert sb.output_fd == -1
    assert not mounted(work_dir / "tmp")
    assert not any(f.startswith(str(work_dir)) for f in loop_backing_files())
    assert not work_dir.exists()
    for d in v1_dirs(sid):
        assert not d.exists(), d
    await sb.destroy()  # idempotent
    # The uid is free again (other servers on this host may take it next, so which uid the next
    # sandbox gets shows nothing).
    assert host.uids is not None and not host.uids.holds(host_uid)


@needs_sandbox
async def test_uids_are_distinct_while_alive_and_released_by_destroy(launcher: str, recording: RecordingDriver, data_dir: Path) -> None:
    async with launcher_host(launcher, recording, data_dir) as host:
        await _uids_distinct(host, data_dir)


async def _uids_distinct(host: BwrapHost | ZygoteHost, data_dir: Path) -> None:
    limits = Limits(memory_mb=128, tmp_mb=16)

    def uid(sid: str) -> int:
        return (data_dir / "envs" / sid / "tmp").stat().st_uid

    async with bwrap_sandbox(host, data_dir, "a", limits):
        async with bwrap_sandbox(host, data_dir, "b", limits):
            first, second = uid("a"), uid("b")
            assert first != second and min(first, second) >= 20000
        assert host.uids is not None and not host.uids.holds(second)  # b's, released by its destroy
        async with bwrap_sandbox(host, data_dir, "c", limits):
            assert uid("c") != first


@needs_sandbox
async def test_kill_and_destroy_before_start_are_harmless(launcher: str, recording: RecordingDriver, data_dir: Path) -> None:
    async with launcher_host(launcher, recording, data_dir) as host:
        async with bwrap_sandbox(host, data_dir, "idle", Limits(memory_mb=128, tmp_mb=16)) as sb:
            sb.kill()
            sb.freeze()
            sb.thaw()
            assert sb.stats().max_memory_bytes == 0
    assert not (data_dir / "envs" / "idle").exists()
    for d in v1_dirs("idle"):
        assert not d.exists(), d


@needs_sandbox
async def test_out_of_memory_is_counted(launcher: str, recording: RecordingDriver, data_dir: Path, code_dir: Path) -> None:
    async with launcher_host(launcher, recording, data_dir) as host:
        await _out_of_memory(host, data_dir, code_dir)


async def _out_of_memory(host: BwrapHost | ZygoteHost, data_dir: Path, code_dir: Path) -> None:
    async with bwrap_sandbox(host, data_dir, "oom", Limits(memory_mb=128, tmp_mb=16)) as sb:
        listener = await sb.start(bwrap_spec(code_dir, 1, [], program=ALLOCATE))
        try:
            with anyio.fail_after(30):
                exit_ = await sb.wait_exit()
        finally:
            listener.close()
        assert exit_.signal == signal.SIGKILL, (exit_, peek_output(sb.output_fd))
        stats = sb.stats()
        assert stats.oom_kills >= 1
        assert 100 * MB <= stats.max_memory_bytes <= 128 * MB


@needs_sandbox
async def test_destroy_of_a_frozen_sandbox(launcher: str, recording: RecordingDriver, data_dir: Path, code_dir: Path) -> None:
    """Idle environments sit frozen; destroying one must not hang on the frozen tree."""
    async with launcher_host(launcher, recording, data_dir) as host:
        await _destroy_frozen(host, recording, data_dir, code_dir)


async def _destroy_frozen(host: BwrapHost | ZygoteHost, recording: RecordingDriver, data_dir: Path, code_dir: Path) -> None:
    async with bwrap_sandbox(host, data_dir, "frozen", Limits(memory_mb=128, tmp_mb=16)) as sb:
        listener = await sb.start(bwrap_spec(code_dir, 1, []))
        ch: Channel | None = None
        try:
            ch = await accept(listener, sb.output_fd)
            await ch.json()
            pids = recording.created["frozen"].pids()
            sb.freeze()
            assert await frozen_stays_silent(ch)
            with anyio.fail_after(10):
                await sb.destroy()
            assert (await sb.wait_exit()).signal == signal.SIGKILL
            for pid in pids:  # dead: gone, or a zombie left to the host's init (bwrap's pid 1 is)
                assert not Path(f"/proc/{pid}").exists() or proc_status(pid)["State"].startswith("Z"), pid
        finally:
            if ch is not None:
                ch.close()
            listener.close()
    for d in v1_dirs("frozen"):
        assert not d.exists(), d


@needs_sandbox
async def test_bwrap_failing_early_is_reported_with_its_message(recording: RecordingDriver, data_dir: Path) -> None:
    data_dir.mkdir(mode=0o755)
    os.chmod(data_dir, 0o755)
    fake = data_dir / "bwrap"  # stands in for a bwrap that cannot create its namespaces
    fake.write_text("#!/bin/sh\necho 'bwrap: Creating new namespace failed: No space left on device' >&2\nexit 1\n")
    os.chmod(fake, 0o755)
    host = dataclasses.replace(BwrapHost.create(recording, data_dir / "sandbox"), bwrap=str(fake))
    async with bwrap_sandbox(host, data_dir, "early", Limits(memory_mb=128, tmp_mb=16)) as sb:
        spec = SandboxSpec(argv=["/usr/bin/true"], env={}, cwd="/", service_address_env=ADDR_ENV)
        with pytest.raises(RuntimeError, match="bwrap exited before the sandbox started.*No space left on device"):
            with anyio.fail_after(30):
                await sb.start(spec)


@needs_sandbox
async def test_bwrap_failed_spawn_leaks_no_fd(recording: RecordingDriver, data_dir: Path, code_dir: Path) -> None:
    host = dataclasses.replace(BwrapHost.create(recording, data_dir / "sandbox"), setpriv=str(data_dir / "no-such-setpriv"))
    async with bwrap_sandbox(host, data_dir, "spawn", Limits(memory_mb=128, tmp_mb=16)) as sb:
        before = open_fds()
        with pytest.raises(FileNotFoundError):
            await sb.start(bwrap_spec(code_dir, 1, []))
        leaked = {}
        for fd in open_fds() - before:
            try:
                leaked[fd] = os.readlink(f"/proc/self/fd/{fd}")
            except FileNotFoundError:
                continue  # the fd listdir itself used
            os.close(fd)  # keep the rest of the session clean
        assert not leaked


@needs_sandbox
async def test_bwrap_uids_are_unique_across_servers(data_dir: Path) -> None:
    one, two = RecordingDriver(cgroups.detect()), RecordingDriver(cgroups.detect())
    try:
        host_one, host_two = BwrapHost.create(one, data_dir / "sandbox"), BwrapHost.create(two, data_dir / "sandbox")
        limits = Limits(memory_mb=128, tmp_mb=16)
        async with bwrap_sandbox(host_one, data_dir, "s1", limits), bwrap_sandbox(host_two, data_dir, "s2", limits):
            uids = [(data_dir / "envs" / sid / "tmp").stat().st_uid for sid in ("s1", "s2")]
            assert uids[0] != uids[1]
    finally:
        one.cleanup()


# --- ProcessSandbox -----------------------------------------------------------------------------


async def test_process_sandbox_contract(data_dir: Path, code_dir: Path) -> None:
    work_dir = data_dir / "envs" / "proc"
    sb = ProcessSandbox(SandboxSetup(id="proc", work_dir=work_dir, limits=Limits(memory_mb=128)))
    listener: socket.socket | None = None
    ch: Channel | None = None
    spec = SandboxSpec(
        argv=[sys.executable, "-I", "-S", "-c", PROGRAM, "/root"],
        env={"RUN": "1", "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        cwd=str(code_dir),
        service_address_env=ADDR_ENV,
    )
    try:
        await sb.setup()
        assert not sb.maps_paths
        with anyio.fail_after(30):
            listener = await sb.start(spec)
        ch = await accept(listener, sb.output_fd)
        pid = (await ch.json())["hello"]
        await ch.send("report")
        obs = await ch.json()
        assert obs["address"] == "127.0.0.1:%d" % listener.getsockname()[1]
        assert obs["tmpdir"] == str(sb.tmp_dir) and sb.tmp_dir.is_relative_to(work_dir)
        assert (sb.tmp_dir / "marker").read_text() == "1\n"
        assert obs["cwd"] == str(code_dir)
        assert obs["nofile"] == [1024, 1024]
        assert obs["uid"] == os.getuid()  # no isolation: the server's own uid and view
        assert obs["visible"] == {"/root": True}

        sb.freeze()
        assert await frozen_stays_silent(ch), "the process answered while stopped"
        assert proc_status(pid)["State"].startswith("T")  # SIGSTOP is delivered by now
        sb.thaw()
        assert await ch.line() == '"pong"'
        assert not proc_status(pid)["State"].startswith("T")
        assert sb.stats().max_memory_bytes > 0

        sb.freeze()  # killing a stopped tree works too
        sb.kill()
        with anyio.fail_after(10):
            exit_ = await sb.wait_exit()
        assert (exit_.returncode, exit_.signal) == (None, signal.SIGKILL)
        sb.kill()  # harmless after exit
        ch.close()
        listener.close()
        sb.close_output()

        # A second start after kill works, and keeps the tmp dir.
        with anyio.fail_after(30):
            listener = await sb.start(dataclasses.replace(spec, env={**spec.env, "RUN": "2"}))
        ch = await accept(listener, sb.output_fd)
        await ch.json()
        await ch.send("report")
        assert (await ch.json())["marker"] == "1\n2\n"
        await ch.send("bye")
        with anyio.fail_after(10):
            assert (await sb.wait_exit()).returncode == 0
    finally:
        if ch is not None:
            ch.close()
        if listener is not None:
            listener.close()
        with anyio.fail_after(30):
            await sb.destroy()
    assert sb.output_fd == -1
    assert not work_dir.exists()
    await sb.destroy()  # idempotent


# --- probe --------------------------------------------------------------------------------------


@needs_sandbox
def test_probe_reports_this_host_ready() -> None:
    report = probe.inspect_host()
    assert report.sandbox_ok, report.reason
    assert report.reason == "every requirement is met"
    names = {c.name for c in report.checks}
    assert {"namespaces", "bubblewrap", "cgroups", "seccomp"} <= names
    # The probe's own cgroup is gone again.
    own = cgroups.own_paths(Path("/proc/self/cgroup").read_text())
    assert not (CGROUP_ROOT / "memory" / own.get("memory", "/").lstrip("/") / f"lamina-{os.getpid()}").exists()


def test_unreachable_ancestor(tmp_path: Path, data_dir: Path) -> None:
    if Path("/root").stat().st_mode & 0o001:
        pytest.skip("/root is world-searchable on this host")
    assert probe.unreachable_ancestor(Path("/root/x")) == Path("/root")
    data_dir.mkdir()
    assert probe.unreachable_ancestor(data_dir / "envs") is None  # data_directory() is reachable
    private = tmp_path / "private"
    (private / "inner").mkdir(parents=True)
    os.chmod(private, 0o700)
    os.chmod(tmp_path, 0o711)
    try:
        blocked = probe.unreachable_ancestor(private / "inner")
        # The first blocked directory on the way, which may be above tmp_path on some hosts.
        assert blocked is not None and (private / "inner").is_relative_to(blocked)
        os.chmod(private, 0o711)
        ancestors = [tmp_path, *tmp_path.parents]
        if all(p.stat().st_mode & 0o001 for p in ancestors):
            assert probe.unreachable_ancestor(private / "inner") is None
    finally:
        os.chmod(private, 0o755)


FORKER = r"""
import os, sys, time
pid = os.fork()
if pid == 0:
    time.sleep(60)
    os._exit(0)
print(pid, flush=True)
"""


async def test_process_sandbox_kill_after_exit_ends_descendants(data_dir: Path) -> None:
    sb = ProcessSandbox(SandboxSetup(id="forker", work_dir=data_dir / "envs" / "forker", limits=Limits(memory_mb=128)))
    orphan = 0
    listener: socket.socket | None = None
    try:
        await sb.setup()
        spec = SandboxSpec(argv=[sys.executable, "-I", "-S", "-c", FORKER], env={}, cwd="/",
                           service_address_env=ADDR_ENV)  # fmt: skip
        listener = await sb.start(spec)
        with anyio.fail_after(30):
            assert (await sb.wait_exit()).returncode == 0
            await anyio.wait_readable(sb.output_fd)
        orphan = int(os.read(sb.output_fd, 100).split()[0])
        assert Path(f"/proc/{orphan}").exists()
        sb.kill()
        await sb.destroy()
        # The orphan was re-parented to init (or a subreaper), which reaps it once it is killed.
        with anyio.fail_after(5):
            while Path(f"/proc/{orphan}").exists() and not proc_status(orphan)["State"].startswith("Z"):
                await anyio.sleep(0.01)  # nothing to await: the orphan is not our child
    finally:
        if listener is not None:
            listener.close()
        await sb.destroy()
        if orphan:
            try:
                os.kill(orphan, signal.SIGKILL)
            except ProcessLookupError:
                pass


# --- ZygoteSandbox only -------------------------------------------------------------------------

# A stand-in runtime client for the zygote to preload: its import is recorded (in which process,
# and whether /var/task was there yet), and main() speaks PROGRAM's protocol's first steps.
PRELOADED = r"""
import os, socket, json, sys
IMPORTED_IN = os.getpid()

def main():
    host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
    conn = socket.create_connection((host, int(port)), timeout=60)
    f = conn.makefile("rwb")
    with open("/proc/self/cmdline", "rb") as c:
        cmdline = c.read().split(b"\0")[:-1]
    with open("/proc/self/environ", "rb") as e:
        environ = dict(kv.decode().split("=", 1) for kv in e.read().split(b"\0") if kv)
    obs = {"imported_in": IMPORTED_IN, "pid": os.getpid(), "argv": sys.argv, "cmdline": [w.decode() for w in cmdline],
           "run": os.environ.get("RUN"), "environ_run": environ.get("RUN"), "uid": os.getuid(), "cwd": os.getcwd(),
           "file": __file__}
    f.write(json.dumps(obs).encode() + b"\n")
    f.flush()
    f.readline()
    sys.exit(3)
"""


@needs_sandbox
async def test_zygote_runs_a_preloaded_runtime_in_place(recording: RecordingDriver, data_dir: Path, code_dir: Path) -> None:
    runtime_dir = data_dir / "runtime"
    runtime_dir.mkdir(mode=0o755)
    (runtime_dir / "client.py").write_text(PRELOADED)
    os.chmod(runtime_dir / "client.py", 0o644)
    argv = [PYTHON, "-I", "-S", "/var/runtime/client.py"]
    preload = Preload(argv=tuple(argv), script=runtime_dir / "client.py")
    async with launcher_host("zygote", recording, data_dir, preload=preload) as host:
        assert isinstance(host, ZygoteHost) and host.zygote is not None
        async with bwrap_sandbox(host, data_dir, "inplace", Limits(memory_mb=128, tmp_mb=16)) as sb:
            spec = SandboxSpec(argv=argv, env={"RUN": "7", "PATH": "/usr/bin"}, cwd="/var/task",
                               mounts=(Mount(host=code_dir, inside="/var/task"), Mount(host=runtime_dir, inside="/var/runtime")),
                               service_address_env=ADDR_ENV)  # fmt: skip
            listener = await sb.start(spec)
            try:
                ch = await accept(listener, sb.output_fd)
                obs = await ch.json()
                # Imported once, in the zygote (another process), not by an interpreter started for it.
                assert obs["imported_in"] != obs["pid"]
                assert obs["file"] == "/var/runtime/client.py"  # under its inside name, for tracebacks
                # As an exec of argv would be: argv, /proc/self/cmdline and environ, the environment.
                assert obs["argv"] == ["/var/runtime/client.py"]
                assert obs["cmdline"] == argv
                assert obs["run"] == obs["environ_run"] == "7"
                assert (obs["uid"], obs["cwd"]) == (INSIDE_UID, "/var/task")
                await ch.send("bye")
                with anyio.fail_after(10):
                    exit_ = await sb.wait_exit()
                assert (exit_.returncode, exit_.signal) == (3, None)  # sys.exit(3) from main()
                ch.close()
            finally:
                listener.close()


@needs_sandbox
async def test_zygote_pool_hands_out_prepared_sandboxes_and_refills(recording: RecordingDriver, data_dir: Path, code_dir: Path) -> None:
    async with launcher_host("zygote", recording, data_dir, pool_size=1) as host:
        assert isinstance(host, ZygoteHost)

        async def pooled() -> list[str]:
            with anyio.fail_after(30):
                while host.pooled() < 1:  # bounded: the pool fills in the background
                    await anyio.sleep(0.01)
            return [n for n in recording.created if n.startswith("pool-")]

        first = await pooled()
        assert len(first) == 1
        async with bwrap_sandbox(host, data_dir, "taken", Limits(memory_mb=256, tmp_mb=512)) as sb:
            # The sandbox got the pooled slot (its cgroup, now with this function's memory limit)...
            mem = next(d for d in v1_dirs(first[0]) if d.parts[len(CGROUP_ROOT.parts)] == "memory")
            assert (mem / "memory.limit_in_bytes").read_text().strip() == str(256 * MB)
            assert "taken" not in recording.created
            listener = await sb.start(bwrap_spec(code_dir, 1, []))
            try:
                ch = await accept(listener, sb.output_fd)
                await ch.json()
                await ch.send("bye")
                ch.close()
            finally:
                listener.close()
            # ...and the pool made the next one behind it.
            second = await pooled()
            assert len(second) == 2 and first[0] in second
        # Another /tmp size than the pool's: made on demand.
        async with bwrap_sandbox(host, data_dir, "own-size", Limits(memory_mb=128, tmp_mb=16)):
            assert "own-size" in recording.created


@needs_sandbox
async def test_zygote_environments_end_with_the_server_even_frozen(recording: RecordingDriver, data_dir: Path, code_dir: Path) -> None:
    async with launcher_host("zygote", recording, data_dir) as host:
        assert isinstance(host, ZygoteHost) and host.zygote is not None
        async with bwrap_sandbox(host, data_dir, "orphan", Limits(memory_mb=128, tmp_mb=16)) as sb:
            listener = await sb.start(bwrap_spec(code_dir, 1, []))
            try:
                ch = await accept(listener, sb.output_fd)
                await ch.json()
                sb.freeze()
                # What the server's death does: its end of the lifeline closes, the zygote dies.
                await host.zygote.close()
                with anyio.fail_after(10):
                    exit_ = await sb.wait_exit()
                assert exit_.signal == signal.SIGKILL
                await wait_until_empty("orphan")
                ch.close()
            finally:
                listener.close()


@needs_sandbox
async def test_zygote_is_restarted_after_it_dies(recording: RecordingDriver, data_dir: Path, code_dir: Path) -> None:
    async with launcher_host("zygote", recording, data_dir, pool_size=1) as host:
        assert isinstance(host, ZygoteHost) and host.zygote is not None
        with anyio.fail_after(30):
            while host.pooled() < 1:  # bounded: the pool fills in the background
                await anyio.sleep(0.01)
        dead = host.zygote
        os.kill(dead.pid, signal.SIGKILL)  # the pooled slot's processes die with it (death signal)
        with anyio.fail_after(10):
            while dead.alive:
                await anyio.sleep(0.01)
        async with bwrap_sandbox(host, data_dir, "after", Limits(memory_mb=128, tmp_mb=512)) as sb:
            listener = await sb.start(bwrap_spec(code_dir, 1, []))  # the dead slot is prepared again
            try:
                ch = await accept(listener, sb.output_fd)
                assert "hello" in await ch.json()
                await ch.send("bye")
                ch.close()
            finally:
                listener.close()
        assert host.zygote is not dead and host.zygote.alive
