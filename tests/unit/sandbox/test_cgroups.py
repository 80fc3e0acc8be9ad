"""cgroups drivers (lamina/sandbox/cgroups.py).

- v2 runs against a FAKE cgroupfs in a temp dir: these hosts bind every controller to v1, so a real
  v2 hierarchy with controllers cannot be exercised here (shared/ISOLATION.md section 3). The fake
  "kernel" is a hook on Path.mkdir/rmdir limited to the fake tree: a new directory gets the
  interface files the kernel would create (those the driver must read or probe for), and rmdir
  discards them as the kernel does. Files the driver writes that the fake does not create
  (memory.max, pids.max, cpu.max, ...) therefore show exactly what the driver wrote.
- v1 (with the hybrid unified mount for freeze/kill) runs on the REAL host with real processes.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lamina.sandbox import cgroups
from lamina.sandbox.cgroups import CgroupError, CgroupLimits, V1Driver, V2Driver, own_paths

MB = 1024 * 1024
CGROUP_ROOT = Path("/sys/fs/cgroup")

# --- the fake v2 kernel -------------------------------------------------------------------------


class FakeCgroupFs:
    """Directories made under `root` get `files` (name → content), like cgroupfs interface files."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str]) -> None:
        self.root = root
        self.files = files
        real_mkdir = Path.mkdir
        real_rmdir = Path.rmdir

        def mkdir(path: Path, mode: int = 0o777, parents: bool = False, exist_ok: bool = False) -> None:
            existed = path.is_dir()
            real_mkdir(path, mode, parents, exist_ok)
            if not existed and self._inside(path):
                for name, content in self.files.items():
                    (path / name).write_text(content)

        def rmdir(path: Path) -> None:
            if self._inside(path) and path.is_dir():
                for child in path.iterdir():
                    if child.is_file():
                        child.unlink()
            real_rmdir(path)

        monkeypatch.setattr(Path, "mkdir", mkdir)
        monkeypatch.setattr(Path, "rmdir", rmdir)

    def _inside(self, path: Path) -> bool:
        return path.is_relative_to(self.root) and path != self.root


CHILD_FILES = {
    "cgroup.procs": "",
    "cgroup.controllers": "cpu memory pids",
    "cgroup.subtree_control": "",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.freeze": "0",
    "cgroup.kill": "",
    "memory.swap.max": "max",
}
OWN = "/user.slice/x"
SERVER_PID = 4242


def fake_v2_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, controllers: str = "cpu io memory pids",
                 without: tuple[str, ...] = ()) -> Path:  # fmt: skip
    """A delegated v2 host: the root, and the server's own cgroup OWN holding SERVER_PID."""
    root = tmp_path / "cgroup"
    own = root / OWN.lstrip("/")
    own.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    (own / "cgroup.controllers").write_text(controllers + "\n")
    (own / "cgroup.procs").write_text(f"{SERVER_PID}\n")
    (own / "cgroup.subtree_control").write_text("")
    FakeCgroupFs(root, monkeypatch, {k: v for k, v in CHILD_FILES.items() if k not in without})
    return root


def read(path: Path) -> str:
    return path.read_text().strip()


def test_v2_moves_the_server_into_a_leaf_and_enables_controllers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = fake_v2_host(tmp_path, monkeypatch)
    own = root / OWN.lstrip("/")
    driver = V2Driver(root=root, own=OWN)
    assert driver.version == 2
    driver.create("sbx", CgroupLimits.for_memory(256))
    assert read(own / "server" / "cgroup.procs") == str(SERVER_PID)
    assert read(own / "cgroup.subtree_control") == "+cpu +memory +pids"
    assert read(own / "lamina" / "cgroup.subtree_control") == "+cpu +memory +pids"
    assert (own / "lamina" / "sbx").is_dir()
    assert str(own / "lamina") in driver.describe()


def test_v2_own_cgroup_without_processes_needs_no_leaf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = fake_v2_host(tmp_path, monkeypatch)
    own = root / OWN.lstrip("/")
    (own / "cgroup.procs").write_text("")
    V2Driver(root=root, own=OWN).create("sbx", CgroupLimits.for_memory(128))
    assert not (own / "server").exists()
    assert read(own / "cgroup.subtree_control") == "+cpu +memory +pids"


def test_v2_sandbox_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = fake_v2_host(tmp_path, monkeypatch)
    cg = V2Driver(root=root, own=OWN).create("sbx", CgroupLimits.for_memory(256))
    path = root / OWN.lstrip("/") / "lamina" / "sbx"
    assert read(path / "memory.max") == str(256 * 1048576)
    assert read(path / "memory.swap.max") == "0"
    assert read(path / "pids.max") == "1024"
    assert not (path / "cpu.max").exists()  # init runs uncapped
    cg.limit_cpu(7235)
    assert read(path / "cpu.max") == "7235 100000"
    cg.limit_cpu(None)
    assert read(path / "cpu.max") == "max 100000"


def test_v2_without_swap_accounting_does_not_create_memory_swap_max(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = fake_v2_host(tmp_path, monkeypatch, without=("memory.swap.max",))
    V2Driver(root=root, own=OWN).create("sbx", CgroupLimits.for_memory(128, pids=64))
    path = root / OWN.lstrip("/") / "lamina" / "sbx"
    assert not (path / "memory.swap.max").exists()
    assert read(path / "memory.max") == str(128 * MB)
    assert read(path / "pids.max") == "64"


def test_v2_prepares_once_for_many_sandboxes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = fake_v2_host(tmp_path, monkeypatch)
    own = root / OWN.lstrip("/")
    driver = V2Driver(root=root, own=OWN)
    driver.create("a", CgroupLimits.for_memory(128))
    (own / "cgroup.subtree_control").write_text("touched")
    driver.create("b", CgroupLimits.for_memory(128))
    assert read(own / "cgroup.subtree_control") == "touched"
    assert sorted(p.name for p in (own / "lamina").iterdir() if p.is_dir()) == ["a", "b"]


def test_v2_freeze_thaw_kill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = fake_v2_host(tmp_path, monkeypatch)
    cg = V2Driver(root=root, own=OWN).create("sbx", CgroupLimits.for_memory(128))
    path = root / OWN.lstrip("/") / "lamina" / "sbx"
    cg.attach(SERVER_PID + 1)
    assert read(path / "cgroup.procs") == str(SERVER_PID + 1)
    assert cg.pids() == [SERVER_PID + 1]
    cg.freeze()
    assert read(path / "cgroup.freeze") == "1"
    cg.thaw()
    assert read(path / "cgroup.freeze") == "0"
    cg.kill_all()
    assert read(path / "cgroup.kill") == "1"


def test_v2_kill_without_cgroup_kill_signals_every_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernels before 5.14 have no cgroup.kill: every listed task gets SIGKILL, then the group thaws."""
    root = fake_v2_host(tmp_path, monkeypatch, without=("cgroup.kill",))
    cg = V2Driver(root=root, own=OWN).create("sbx", CgroupLimits.for_memory(128))
    path = root / OWN.lstrip("/") / "lamina" / "sbx"
    child = subprocess.Popen(["sleep", "30"])
    try:
        (path / "cgroup.procs").write_text(f"{child.pid}\n")
        (path / "cgroup.freeze").write_text("1")
        cg.kill_all()
        assert child.wait(timeout=10) == -signal.SIGKILL
        assert read(path / "cgroup.freeze") == "0"
        assert not (path / "cgroup.kill").exists()
    finally:
        child.kill()
        child.wait()


def test_v2_oom_kills_and_peak_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = fake_v2_host(tmp_path, monkeypatch)
    cg = V2Driver(root=root, own=OWN).create("sbx", CgroupLimits.for_memory(128))
    path = root / OWN.lstrip("/") / "lamina" / "sbx"
    assert cg.oom_kills() == 0  # no memory.events at all
    (path / "memory.events").write_text("low 0\nhigh 0\nmax 7\noom 3\noom_kill 2\noom_group_kill 5\n")
    assert cg.oom_kills() == 2
    assert cg.peak_memory() == 0  # neither memory.peak nor memory.current
    (path / "memory.current").write_text("4096\n")
    assert cg.peak_memory() == 4096  # kernels before 5.19 have no memory.peak
    (path / "memory.peak").write_text("123456789\n")
    assert cg.peak_memory() == 123456789


def test_v2_remove_and_cleanup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = fake_v2_host(tmp_path, monkeypatch)
    base = root / OWN.lstrip("/") / "lamina"
    driver = V2Driver(root=root, own=OWN)
    a = driver.create("a", CgroupLimits.for_memory(128))
    driver.create("b", CgroupLimits.for_memory(128))
    a.remove()
    assert not (base / "a").exists() and (base / "b").is_dir()
    a.remove()  # harmless again
    driver.cleanup()
    assert not base.exists()
    assert (root / OWN.lstrip("/") / "server").is_dir()  # the server's own leaf stays


@pytest.mark.parametrize("controllers, missing", [("cpu io", "['memory', 'pids']"), ("memory pids", "['cpu']"), ("", "['cpu', 'memory', 'pids']")])  # fmt: skip
def test_v2_missing_controllers_raise_naming_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   controllers: str, missing: str) -> None:  # fmt: skip
    root = fake_v2_host(tmp_path, monkeypatch, controllers=controllers)
    own = root / OWN.lstrip("/")
    driver = V2Driver(root=root, own=OWN)
    with pytest.raises(CgroupError, match="controllers") as info:
        driver.create("sbx", CgroupLimits.for_memory(128))
    assert missing in str(info.value)
    assert str(own) in str(info.value)
    # Nothing was touched.
    assert not (own / "lamina").exists() and not (own / "server").exists()
    assert read(own / "cgroup.subtree_control") == ""


def test_detect_picks_the_hierarchy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = fake_v2_host(tmp_path, monkeypatch)
    assert isinstance(cgroups.detect(root), V2Driver)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CgroupError, match="no cgroup hierarchy"):
        cgroups.detect(empty)


# --- v1 on a fake tree: layout handling only ----------------------------------------------------


def fake_v1_host(tmp_path: Path, mounts: tuple[str, ...]) -> Path:
    root = tmp_path / "v1"
    for m in mounts:
        (root / m).mkdir(parents=True)
        (root / m / "cgroup.procs").write_text("")
    return root


def test_v1_finds_comounted_controllers_and_nests_under_own(tmp_path: Path) -> None:
    root = fake_v1_host(tmp_path, ("memory", "cpu,cpuacct", "pids", "freezer"))
    own = {"memory": "/host/job", "cpu": "/", "pids": "/", "freezer": "/f"}
    driver = V1Driver(root=root, own=own)
    assert isinstance(cgroups.detect(root), V1Driver)
    driver.create("sbx", CgroupLimits.for_memory(128))
    tag = f"lamina-{os.getpid()}"
    assert read(root / "memory/host/job" / tag / "sbx/memory.limit_in_bytes") == str(128 * MB)
    assert not (root / "memory/host/job" / tag / "sbx/memory.memsw.limit_in_bytes").exists()
    assert read(root / "cpu,cpuacct" / tag / "sbx/cpu.cfs_period_us") == "100000"
    assert read(root / "pids" / tag / "sbx/pids.max") == "1024"
    assert (root / "freezer/f" / tag / "sbx").is_dir()
    assert "unified" not in driver.describe()


def test_v1_missing_controller_raises_naming_it(tmp_path: Path) -> None:
    root = fake_v1_host(tmp_path, ("memory", "cpu", "pids"))
    with pytest.raises(CgroupError, match="'freezer'"):
        V1Driver(root=root, own={})


# --- limits and /proc/self/cgroup ---------------------------------------------------------------


def test_limits_follow_lambda_scaling() -> None:
    assert CgroupLimits.for_memory(1769).cpu_quota_us == 100_000  # one full CPU period
    assert CgroupLimits.for_memory(3538).cpu_quota_us == 200_000
    small = CgroupLimits.for_memory(128)
    assert small.cpu_quota_us == 7_235
    assert small.memory_bytes == 128 * 1048576
    assert small.pids == 1024
    assert CgroupLimits.for_memory(10).cpu_quota_us == 1000  # the floor


def test_own_paths_reads_v1_and_v2_lines() -> None:
    text = (
        "12:pids:/system.slice/lamina.service\n"
        "11:cpu,cpuacct:/system.slice\n"
        "10:memory:/process_api/abc\n"
        "9:name=systemd:/system.slice/lamina.service\n"
        "8:freezer:/\n"
        "0::/system.slice/lamina.service\n"
    )
    assert own_paths(text) == {
        "pids": "/system.slice/lamina.service",
        "cpu": "/system.slice",
        "cpuacct": "/system.slice",
        "memory": "/process_api/abc",
        "freezer": "/",
        "": "/system.slice/lamina.service",
    }
    assert own_paths("0::/user.slice/user-1000.slice/session-2.scope\n") == {
        "": "/user.slice/user-1000.slice/session-2.scope"
    }
    assert own_paths("0::/a:b\n") == {"": "/a:b"}  # a colon inside the path


# --- v1 on the real host ------------------------------------------------------------------------

real_v1 = pytest.mark.skipif(
    os.geteuid() != 0 or not (CGROUP_ROOT / "memory" / "cgroup.procs").exists()
    or not (CGROUP_ROOT / "freezer" / "cgroup.procs").exists(),
    reason="needs root and cgroup v1 controllers mounted under /sys/fs/cgroup",
)  # fmt: skip
CONTROLLERS = ("memory", "cpu", "pids", "freezer")


def own_v1() -> dict[str, str]:
    return own_paths(Path("/proc/self/cgroup").read_text())


def base_dirs(root: Path = CGROUP_ROOT) -> dict[str, Path]:
    """Where a V1Driver of this process keeps its groups: `lamina-<pid>` beneath our own cgroups."""
    own = own_v1()
    tag = f"lamina-{os.getpid()}"
    out = {c: root / c / own.get(c, "/").lstrip("/") / tag for c in CONTROLLERS}
    if (root / "unified" / "cgroup.procs").exists():
        out[""] = root / "unified" / own.get("", "/").lstrip("/") / tag
    return out


def proc_cgroups(pid: int) -> dict[str, str]:
    return own_paths(Path(f"/proc/{pid}/cgroup").read_text())


def wait_for_file(path: Path, predicate: Callable[[str], bool], timeout: float = 5.0) -> str:
    """Wait until `predicate(content)`; cgroup.events notifies pollers (POLLPRI) when it changes."""
    deadline = time.monotonic() + timeout
    fd = os.open(path, os.O_RDONLY)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLPRI | select.POLLERR)
        while True:
            content = os.pread(fd, 4096, 0).decode()
            if predicate(content):
                return content
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{path} never matched; last content {content!r}")
            # Bounded: kernfs files without notification simply time out the poll and re-read.
            poller.poll(min(left, 0.05) * 1000)
    finally:
        os.close(fd)


def wait_v1_frozen(freezer_dir: Path, timeout: float = 5.0) -> None:
    """v1's freezer.state has no change notification: re-read it until FROZEN (bounded)."""
    deadline = time.monotonic() + timeout
    while read(freezer_dir / "freezer.state") != "FROZEN":
        assert time.monotonic() < deadline, f"{freezer_dir} never reached FROZEN"
        time.sleep(0.001)


def frozen_line(content: str) -> str:
    return next((line for line in content.splitlines() if line.startswith("frozen ")), "")


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen(["sleep", "30"])
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)


@real_v1
def test_v1_real_cgroup_for_a_child(sleeper: subprocess.Popen[bytes]) -> None:
    driver = V1Driver()
    assert driver.version == 1
    name = f"t-{os.getpid()}"
    bases = base_dirs()
    try:
        cg = driver.create(name, CgroupLimits.for_memory(256))
        try:
            cg.attach(sleeper.pid)
            seen = proc_cgroups(sleeper.pid)
            own = own_v1()
            for c in CONTROLLERS:
                expected = own.get(c, "/").rstrip("/") + f"/lamina-{os.getpid()}/{name}"
                assert seen[c] == expected, (c, seen)
            assert sleeper.pid in cg.pids()
            mem = bases["memory"] / name
            assert read(mem / "memory.limit_in_bytes") == str(256 * MB)
            if (mem / "memory.memsw.limit_in_bytes").exists():
                assert read(mem / "memory.memsw.limit_in_bytes") == str(256 * MB)
            assert read(bases["pids"] / name / "pids.max") == "1024"
            cpu = bases["cpu"] / name
            assert read(cpu / "cpu.cfs_period_us") == "100000"
            assert read(cpu / "cpu.cfs_quota_us") == "-1"  # uncapped until limit_cpu
            cg.limit_cpu(7235)
            assert read(cpu / "cpu.cfs_quota_us") == "7235"
            cg.limit_cpu(None)
            assert read(cpu / "cpu.cfs_quota_us") == "-1"
            assert cg.oom_kills() == 0
            # v1 does not move a task's existing charges with it, so a group that adopted a
            # running process may well show 0; a sandbox is attached before exec (see test_linux).
            assert cg.peak_memory() >= 0

            cg.freeze()
            if "" in bases:  # the unified mount's freezer: the task state stays S, cgroup.events says
                assert seen.get("") is not None and seen[""].endswith(f"lamina-{os.getpid()}/{name}")
                wait_for_file(bases[""] / name / "cgroup.events", lambda s: frozen_line(s) == "frozen 1")
            else:
                wait_v1_frozen(bases["freezer"] / name)
                assert "State:\tD" in Path(f"/proc/{sleeper.pid}/status").read_text()
            cg.thaw()
            if "" in bases:
                wait_for_file(bases[""] / name / "cgroup.events", lambda s: frozen_line(s) == "frozen 0")

            cg.kill_all()
            assert sleeper.wait(timeout=10) == -signal.SIGKILL
            cg.remove()
            for d in bases.values():
                assert not (d / name).exists()
        finally:
            if sleeper.poll() is None:
                sleeper.kill()
                sleeper.wait(timeout=10)
    finally:
        driver.cleanup()
    for d in bases.values():
        assert not d.exists()


@real_v1
def test_v1_freeze_really_stops_the_tree() -> None:
    """A child printing every 5 ms prints nothing while frozen, and resumes when thawed."""
    driver = V1Driver()
    ticker = subprocess.Popen(
        [sys.executable, "-I", "-S", "-u", "-c", "import time\nwhile True:\n print('t', flush=True)\n time.sleep(0.005)"],
        stdout=subprocess.PIPE,
    )
    assert ticker.stdout is not None
    out = ticker.stdout.fileno()
    os.set_blocking(out, False)

    def drain() -> int:
        n = 0
        try:
            while chunk := os.read(out, 65536):
                n += len(chunk)
        except BlockingIOError:
            pass
        return n

    def readable(timeout: float) -> bool:
        return bool(select.select([out], [], [], timeout)[0])

    try:
        cg = driver.create(f"tick-{os.getpid()}", CgroupLimits.for_memory(128))
        try:
            cg.attach(ticker.pid)
            assert readable(10), "the ticker never printed"
            cg.freeze()
            if "" in base_dirs():
                wait_for_file(base_dirs()[""] / f"tick-{os.getpid()}" / "cgroup.events",
                              lambda s: frozen_line(s) == "frozen 1")  # fmt: skip
            drain()
            assert not readable(0.3), "output while frozen"
            cg.thaw()
            assert readable(10), "no output after thaw"
        finally:
            cg.kill_all()
            ticker.wait(timeout=10)
            cg.remove()
    finally:
        if ticker.poll() is None:
            ticker.kill()
            ticker.wait(timeout=10)
        ticker.stdout.close()
        driver.cleanup()


@real_v1
def test_v1_fallbacks_without_the_unified_mount(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    """On a v1 host without cgroup2: freezer.state for freezing, a freeze-kill-thaw loop for killing.
    The driver gets a root of symlinks to the real v1 mounts, with no `unified` among them."""
    root = tmp_path / "cgroup"
    root.mkdir()
    for c in CONTROLLERS:
        (root / c).symlink_to(CGROUP_ROOT / c)
    driver = V1Driver(root=root)
    assert "unified" not in driver.describe()
    name = f"fb-{os.getpid()}"
    freezer = base_dirs(root)["freezer"] / name
    try:
        cg = driver.create(name, CgroupLimits.for_memory(128))
        try:
            cg.attach(sleeper.pid)
            assert proc_cgroups(sleeper.pid)["freezer"].endswith(f"/lamina-{os.getpid()}/{name}")
            cg.freeze()
            wait_v1_frozen(freezer)
            assert "State:\tD" in Path(f"/proc/{sleeper.pid}/status").read_text()
            cg.thaw()
            assert read(freezer / "freezer.state") == "THAWED"
            cg.kill_all()
            assert sleeper.wait(timeout=10) == -signal.SIGKILL
        finally:
            cg.remove()
    finally:
        driver.cleanup()
    assert not freezer.exists()


@real_v1
def test_v1_driver_removes_groups_of_dead_servers_only(sleeper: subprocess.Popen[bytes]) -> None:
    parents = {k: d.parent for k, d in base_dirs().items()}
    dead = f"lamina-{2**22 + 7}"  # above the largest pid_max: no such process
    alive = f"lamina-{sleeper.pid}"
    made: list[Path] = []
    try:
        for parent in parents.values():
            for tag in (dead, alive):
                made.append(parent / tag)
                (parent / tag).mkdir()
            made.append(parent / dead / "child")
            (parent / dead / "child").mkdir()  # a sandbox group the dead server left inside its own
        driver = V1Driver()
        try:
            for parent in parents.values():
                assert not (parent / dead).exists(), parent
                assert (parent / alive).is_dir(), parent
        finally:
            driver.cleanup()
    finally:
        for path in sorted(made, key=lambda p: len(p.parts), reverse=True):
            try:
                path.rmdir()
            except FileNotFoundError:
                pass  # removed already (by the driver, or by another server's driver: the pid is dead)


@real_v1
def test_real_detect_on_this_host_is_v1_with_unified_freeze() -> None:
    driver = cgroups.detect()
    try:
        assert isinstance(driver, V1Driver)
        if (CGROUP_ROOT / "unified" / "cgroup.procs").exists():
            assert "unified" in driver.describe()
    finally:
        driver.cleanup()


def test_fake_tree_is_independent_of_the_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake kernel hook only acts inside its own tree (a guard for the helpers above)."""
    FakeCgroupFs(tmp_path / "root", monkeypatch, {"x": "1"})
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "a").mkdir()
    (tmp_path / "other").mkdir()
    assert (tmp_path / "root" / "a" / "x").exists()
    assert not (tmp_path / "root" / "x").exists() and not (tmp_path / "other" / "x").exists()
