"""Pieces of a sandboxed environment's creation, timed outside any server (references).

The cold-start breakdown (platform_bench.py) says how long a sandboxed cold start spends before
init and in the launch; these say what some of the pieces cost on their own, by calling Lamina's
own sandbox modules the way a BwrapSandbox does, without a server and without instrumenting it:

- the private /tmp: `lamina.sandbox.rootfs.make_tmp` (an EphemeralStorage-sized sparse image,
  mkfs.ext4, a loop mount; a plain directory where that cannot work), in a data_directory() so
  that nothing stays mounted whatever happens;
- the runtime client's start (bootstrap.py with no Runtime API, as in baselines.py) under bwrap
  with a sandbox's namespaces, binds, uid and Lamina's seccomp filter (`seccomp.bpf_fd`): what
  the launch costs without a server, a cgroup or the Runtime API listener;
- the cgroup: `create` with the function's limits, then `attach` of a freshly spawned process
  (a sandbox attaches two: bwrap and its child), with the host's driver (`cgroups.detect`), under
  a `lamina-<bench pid>` group of the bench's own cgroup that is removed at the end. cgroup v1
  only: the v2 driver shares one `lamina` group per parent cgroup and moves the parent's
  processes into a leaf, which the bench must not do to a server that may run beside it.

Each is skipped (None) where it cannot run: not root, no cgroup v1 driver, or bwrap failing.
"""

from __future__ import annotations

import os
import time

import baselines
from stats import Figure, bounded, latency_figure

from lamina.runtimes.catalog import PYTHON_BOOTSTRAP
from lamina.sandbox import cgroups, rootfs, seccomp
from lamina.testing import data_directory

NOBODY = 65534
SLEEP = "/bin/sleep"


def tmp_image(*, size_mb: int, count: int, seconds: float) -> Figure | None:
    """Wall time of rootfs.make_tmp, each into a fresh work directory (removed right after)."""
    if os.geteuid() != 0:
        return None
    samples: list[float] = []
    mounted_any = False
    with data_directory(prefix="lamina-bench-tmp-") as root:
        for i in bounded(count, seconds):
            work = root / f"env{i}"
            t0 = time.perf_counter()
            _, mounted = rootfs.make_tmp(work, size_mb, NOBODY, NOBODY)
            samples.append((time.perf_counter() - t0) * 1000)
            mounted_any |= mounted
            rootfs.remove_tmp(work, mounted)
    if not samples:
        return None
    how = "sparse image + mkfs.ext4 + loop mount" if mounted_any else "plain directory"
    return latency_figure("tmp_image", f"sandbox /tmp: make_tmp, {size_mb} MB", samples, size_mb=size_mb, how=how)


def runtime_client_in_bwrap(interpreter: str, *, count: int, warmup: int, seconds: float) -> Figure | None:
    """`interpreter -I -S /var/runtime/bootstrap.py` (no Runtime API: imports, then exit 1) under
    bwrap as a sandbox runs it, with a fresh seccomp filter fd each run; None if it cannot run."""
    inside = f"/var/runtime/{PYTHON_BOOTSTRAP.name}"
    env = {k: v for k, v in os.environ.items() if k != "AWS_LAMBDA_RUNTIME_API"}
    samples: list[float] = []
    try:
        for i in bounded(warmup + count, seconds):
            fd = seccomp.bpf_fd()
            try:
                os.set_inheritable(fd, True)
                argv = baselines.sandboxed_argv(
                    [interpreter, "-I", "-S", inside], binds=[(str(PYTHON_BOOTSTRAP.parent), "/var/runtime")], seccomp_fd=fd
                )
                if argv is None:
                    return None
                elapsed = baselines.spawn_wait(argv, env, 1)
            finally:
                os.close(fd)
            if i >= warmup:
                samples.append(elapsed)
    except (OSError, RuntimeError):
        return None  # bwrap cannot run it here (e.g. the bootstrap is not readable by the sandbox uid)
    if not samples:
        return None
    return latency_figure("rt_start_bwrap", f"runtime client start under bwrap: {baselines.short_path(interpreter)}", samples)


def cgroup_costs(*, memory_mb: int, count: int, seconds: float) -> tuple[Figure, Figure] | None:
    """(create with limits, attach of one new process) with the host's cgroup driver."""
    if os.geteuid() != 0 or not os.path.exists(SLEEP):
        return None
    try:
        driver = cgroups.detect()
    except (cgroups.CgroupError, OSError):
        return None
    if driver.version != 1:
        return None
    limits = cgroups.CgroupLimits.for_memory(memory_mb)
    created: list[float] = []
    attached: list[float] = []
    try:
        for i in bounded(count, seconds):
            pid = os.posix_spawn(SLEEP, [SLEEP, "30"], {})
            group: cgroups.SandboxCgroup | None = None
            try:
                t0 = time.perf_counter()
                group = driver.create(f"bench-{i}", limits)
                t1 = time.perf_counter()
                group.attach(pid)
                t2 = time.perf_counter()
                created.append((t1 - t0) * 1000)
                attached.append((t2 - t1) * 1000)
            finally:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                if group is not None:
                    group.remove()
    except (cgroups.CgroupError, OSError):
        return None
    finally:
        driver.cleanup()
    if not created:
        return None
    where = driver.describe()
    return (
        latency_figure("cgroup_create", "sandbox cgroup: create with limits", created, driver=where),
        latency_figure("cgroup_attach", "sandbox cgroup: attach 1 process", attached, driver=where),
    )
