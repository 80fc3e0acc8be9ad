"""What this host supports for sandboxing, with reasons: the facts behind `lamina doctor` and the
choice of isolation mode at start.

`sandbox` needs: bubblewrap, user namespaces that bwrap can create, a cgroup hierarchy with the
memory, cpu, pids controllers (and a freezer), and libseccomp. A loop-mounted /tmp is preferred
but optional (a plain directory stands in).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from lamina.sandbox import cgroups, rootfs


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class HostReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def sandbox_ok(self) -> bool:
        return all(c.ok for c in self.checks if c.required)

    @property
    def reason(self) -> str:
        failed = [f"{c.name}: {c.detail}" for c in self.checks if c.required and not c.ok]
        return "; ".join(failed) if failed else "every requirement is met"


def _namespaces() -> Check:
    try:
        limit = int(Path("/proc/sys/user/max_user_namespaces").read_text())
    except (OSError, ValueError):
        limit = -1
    present = sorted(p.name for p in Path("/proc/self/ns").iterdir())
    if limit == 0:
        return Check(name="namespaces", ok=False, detail="user namespaces are disabled (user.max_user_namespaces = 0)")
    return Check(name="namespaces", ok=True, detail=f"{', '.join(present)}; max_user_namespaces {limit}")


def _bwrap() -> Check:
    path = shutil.which("bwrap")
    if path is None:
        return Check(name="bubblewrap", ok=False, detail="bwrap is not installed (Debian: apt-get install bubblewrap)")
    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
        # The same namespaces as a real sandbox, as an unprivileged uid when we are root (as sandboxes run).
        nobody = 65534 if os.geteuid() == 0 else None
        trial = subprocess.run(
            [path, "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
             "--unshare-cgroup-try", "--disable-userns", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin",
             "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--", "/usr/bin/true"],
            capture_output=True, text=True, timeout=10, user=nobody, group=nobody,
            extra_groups=[] if nobody is not None else None, cwd="/",
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check(name="bubblewrap", ok=False, detail=f"{path} cannot run: {exc}")
    if trial.returncode != 0:
        return Check(name="bubblewrap", ok=False, detail=f"{version} cannot create a sandbox: {trial.stderr.strip()}")
    return Check(name="bubblewrap", ok=True, detail=f"{version} at {path}")


def _cgroups() -> Check:
    try:
        driver = cgroups.detect()
        driver.check()
    except (cgroups.CgroupError, OSError) as exc:
        return Check(name="cgroups", ok=False, detail=str(exc))
    return Check(name="cgroups", ok=True, detail=driver.describe())


def _seccomp() -> Check:
    try:
        from lamina.sandbox import seccomp

        size = len(seccomp.deny_list_bpf())
    except (OSError, ImportError, RuntimeError) as exc:
        return Check(name="seccomp", ok=False, detail=f"libseccomp is not usable: {exc}")
    return Check(name="seccomp", ok=True, detail=f"deny list of {len(seccomp.DENIED)} calls compiled ({size} bytes of BPF)")


def _tmp() -> Check:
    if rootfs.loop_tmp_supported():
        return Check(name="loop devices", ok=True, detail="/tmp is a loop-mounted ext4 image of EphemeralStorage size", required=False)
    return Check(
        name="loop devices",
        ok=False,
        detail="not root, or no mkfs.ext4 or /dev/loop-control: /tmp is a plain directory without a size limit",
        required=False,
    )


def _privileges() -> Check:
    if os.geteuid() == 0:
        return Check(name="uids", ok=True, detail="root: each sandbox runs as a host uid of its own", required=False)
    return Check(name="uids", ok=False, detail="not root: sandboxes share the server's uid", required=False)


def _outbound() -> Check:
    from lamina.sandbox.network import NetworkError, OutboundNetwork

    try:
        OutboundNetwork.check()
    except NetworkError as exc:
        return Check(name="outbound network", ok=False, detail=str(exc), required=False)
    return Check(name="outbound network", ok=True, detail="veth + nftables available for --network outbound", required=False)


def inspect_host() -> HostReport:
    return HostReport(checks=[_namespaces(), _bwrap(), _cgroups(), _seccomp(), _tmp(), _privileges(), _outbound()])


def unreachable_ancestor(path: Path) -> Path | None:
    """The first directory on the way to `path` that other uids cannot traverse, if any."""
    current = Path("/")
    for part in path.resolve().parts[1:]:
        current = current / part
        try:
            mode = current.stat().st_mode
        except FileNotFoundError:
            return None
        if current.is_dir() and not mode & 0o001:
            return current
    return None
