"""The physical limits of PERFORMANCE.md Part 2, re-measured in this run on this machine.

- L_http: round trip of one small JSON POST over a persistent http.client connection to the
  uvloop + httptools echo server (echo_server.py, in its own process).
- Echo throughput: the same server under the same closed-loop load as the platform, so the
  platform's throughput can be read as a fraction of what one HTTP exchange allows.
- L_py: a fresh interpreter, the binary Lamina runs for python3.11 functions (the realpath of
  sys._base_executable), started with posix_spawn and reaped with waitpid: `-I -S -c pass`
  (Lamina's flags) and plain `-c pass`; and the same for any other interpreter a mode runs (a
  sandbox can only run an interpreter other uids can reach, e.g. /usr/bin/python3.11 when the
  venv's base lives under /root).
- Runtime client start: each such interpreter running Lamina's bootstrap.py with `-I -S` and no
  Runtime API address, so it makes its imports and exits: what a cold start's launch costs
  before any sandbox or server is involved.
- L_bwrap (PERFORMANCE Part 3): `bwrap --ro-bind / / --unshare-all --die-with-parent true`
  minus `true`; and L_py inside bwrap with the namespaces, binds and uid Lamina's sandboxes use
  (no cgroup, seccomp or /tmp image): what the sandbox adds to an interpreter start.
- The bwrap creation rate at 2 parallel (G6): that same bwrap command from 2 threads spawning
  back to back (as `xargs -P2`), completed runs over wall time.
- L_1MB (G10): the echo server's `/echo` round trip of a 1 MB JSON body (echoed back) minus that
  of a 1 KB one, on one persistent connection.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import loadgen
import procs
from echo_server import ECHO_PATH, READY_PREFIX
from stats import Figure, bounded, latency_figure, rate_figure, value_figure

from lamina.runtimes.catalog import PYTHON_BOOTSTRAP

ECHO_SERVER = Path(__file__).with_name("echo_server.py")
START_TIMEOUT_S = 15.0


@dataclass(frozen=True, slots=True)
class EchoServer:
    port: int
    pid: int


@contextmanager
def echo_server() -> Iterator[EchoServer]:
    """Run echo_server.py until the block exits."""
    proc = subprocess.Popen([sys.executable, str(ECHO_SERVER)], stdout=subprocess.PIPE, text=True)
    try:
        yield EchoServer(port=_await_port(proc), pid=proc.pid)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


def _await_port(proc: subprocess.Popen[str]) -> int:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT_S)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith(READY_PREFIX):
        raise RuntimeError(f"echo server did not start (said {line!r}, exit code {proc.poll()})")
    return int(line.removeprefix(READY_PREFIX))


def http_rtt(echo: EchoServer, *, count: int, warmup: int, seconds: float) -> Figure:
    """One round of L_http: sequential POSTs on one fresh keep-alive connection."""
    conn = loadgen.connect(echo.port)
    try:
        loadgen.timed_posts(conn, "/", warmup, seconds)
        before = (procs.cpu_seconds(echo.pid), procs.cpu_seconds(os.getpid()))
        samples = loadgen.timed_posts(conn, "/", count, seconds)
        after = (procs.cpu_seconds(echo.pid), procs.cpu_seconds(os.getpid()))
    finally:
        conn.close()
    n = len(samples)
    cpu = {"server": (after[0] - before[0]) * 1000 / n, "client": (after[1] - before[1]) * 1000 / n}
    return latency_figure("l_http", "L_http: echo RTT (uvloop+httptools)", samples, cpu_ms_per_request=cpu)


def best_round(rounds: Sequence[Figure]) -> Figure:
    """L_http from rounds taken at different times of the run: the one with the lowest p50.

    Noise on a shared 2-vCPU VM only ever adds time, and one disturbed round can triple the
    p50 (seen here); the lowest round is the best estimate of the limit. All rounds are kept.
    """
    best = min(rounds, key=lambda f: f.p50)
    summary = [{"n": f.n, "p50": f.p50, "p99": f.p99, "mean": f.mean} for f in rounds]
    spread = max(f.p50 for f in rounds) / best.p50
    return replace(best, extra={**best.extra, "rounds": summary, "round_p50_spread": spread})


def echo_throughput(echo: EchoServer, *, clients: int, seconds: float) -> Figure:
    res = loadgen.closed_loop(echo.port, "/", clients=clients, seconds=seconds, warmup=50)
    return rate_figure(
        f"echo_throughput_{clients}",
        f"echo throughput, {clients} client{'s' if clients > 1 else ''}",
        res.completed,
        res.seconds,
        res.latencies_ms,
        clients=clients,
        errors=res.errors,
    )


def lamina_python() -> Path:
    """The interpreter Lamina runs for python3.11 functions when the server runs on this Python."""
    return Path(os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable))


def python_start(name: str, label: str, argv: Sequence[str], *, count: int, warmup: int, seconds: float) -> Figure:
    """Wall time from posix_spawn to waitpid of `argv`, which must exit 0."""
    return latency_figure(name, label, spawn_samples(argv, count=count, warmup=warmup, seconds=seconds), argv=list(argv))


def spawn_samples(
    argv: Sequence[str],
    *,
    count: int,
    warmup: int,
    seconds: float,
    env: Mapping[str, str] | None = None,
    status: int = 0,
) -> list[float]:
    """Wall times (ms) from posix_spawn to waitpid of `argv`, after `warmup` unrecorded runs."""
    environ = dict(os.environ if env is None else env)
    for _ in bounded(warmup, seconds):
        spawn_wait(argv, environ, status)
    return [spawn_wait(argv, environ, status) for _ in bounded(count, seconds)]


def runtime_client_start(name: str, interpreter: str, *, count: int, warmup: int, seconds: float) -> Figure:
    """Lamina's Python runtime client started as a cold start starts it (`-I -S bootstrap.py`), but
    without AWS_LAMBDA_RUNTIME_API: it makes its imports and sets up, then exits with status 1
    before any connection. An interpreter start plus the client's own imports, outside any sandbox."""
    argv = [interpreter, "-I", "-S", str(PYTHON_BOOTSTRAP)]
    env = {k: v for k, v in os.environ.items() if k != "AWS_LAMBDA_RUNTIME_API"}
    samples = spawn_samples(argv, count=count, warmup=warmup, seconds=seconds, env=env, status=1)
    return latency_figure(name, f"runtime client start: {short_path(interpreter)}", samples, argv=argv)


def short_path(path: str) -> str:
    """A path short enough for a table cell: its last three parts when it is long."""
    parts = Path(path).parts
    return path if len(path) <= 24 or len(parts) <= 4 else "…/" + "/".join(parts[-3:])


def spawn_wait(argv: Sequence[str], env: Mapping[str, str], expected: int) -> float:
    """Wall time (ms) from posix_spawn to waitpid of `argv`, which must exit with `expected`.

    A command expected to fail has its stderr sent to /dev/null (the runtime client's one line)."""
    quiet = [(os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)] if expected != 0 else []
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], list(argv), env, file_actions=quiet)
    _, status = os.waitpid(pid, 0)
    elapsed = (time.perf_counter() - t0) * 1000
    if os.waitstatus_to_exitcode(status) != expected:
        raise RuntimeError(f"{' '.join(argv)} exited with status {os.waitstatus_to_exitcode(status)}, not {expected}")
    return elapsed


def l_bwrap(*, count: int, warmup: int, seconds: float) -> Figure | None:
    """`bwrap --ro-bind / / --unshare-all --die-with-parent true` minus `true`; None without bwrap."""
    argv, true = bwrap_argv(), shutil.which("true")
    if argv is None or true is None:
        return None
    plain = latency_figure("true", "true", spawn_samples([true], count=count, warmup=warmup, seconds=seconds))
    boxed = spawn_samples(argv, count=count, warmup=warmup, seconds=seconds)
    return latency_figure("l_bwrap", "L_bwrap: bwrap --unshare-all true", [b - plain.p50 for b in boxed],
                          argv=argv, true_p50=plain.p50)  # fmt: skip


def bwrap_argv() -> list[str] | None:
    """The L_bwrap command (PERFORMANCE 2d); None without bwrap."""
    bwrap, true = shutil.which("bwrap"), shutil.which("true")
    if bwrap is None or true is None:
        return None
    return [bwrap, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", true]


def bwrap_rate(*, parallel: int, count: int, seconds: float) -> Figure | None:
    """`bwrap --unshare-all true` started by `parallel` threads back to back (as `xargs -P`): runs
    completed over the wall time of all of them. None without bwrap."""
    argv = bwrap_argv()
    if argv is None:
        return None
    environ = dict(os.environ)
    for _ in bounded(3, seconds):
        spawn_wait(argv, environ, 0)  # page in bwrap and its libraries before the clock starts
    lock = threading.Lock()
    started = [0]
    latencies: list[float] = []
    failures: list[BaseException] = []
    deadline = time.monotonic() + seconds

    def worker() -> None:
        try:
            while time.monotonic() < deadline:
                with lock:
                    if started[0] >= count:
                        return
                    started[0] += 1
                latencies.append(spawn_wait(argv, environ, 0))  # list.append is atomic
        except (OSError, RuntimeError) as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(parallel)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)  # each spawn is bounded by bwrap running `true`
    wall = time.perf_counter() - t0
    if failures or not latencies:
        raise RuntimeError(f"bwrap rate: {failures[0] if failures else 'no run completed'}")
    return rate_figure(f"bwrap_rate_{parallel}", f"bwrap --unshare-all true, {parallel} parallel", len(latencies), wall,
                       latencies, parallel=parallel, argv=argv)  # fmt: skip


def payload_rtts(echo: EchoServer, *, small: int, large: int, warmup: int, seconds: float) -> list[Figure]:
    """The /echo round trips of a 1 KB and a 1 MB event on one connection, and L_1MB, their p50s' difference."""
    conn = loadgen.connect(echo.port)
    path = ECHO_PATH.decode()
    try:
        loadgen.timed_posts(conn, path, warmup, seconds, body=loadgen.EVENT_1MB)
        loadgen.timed_posts(conn, path, warmup, seconds, body=loadgen.EVENT_1KB)
        kb = loadgen.timed_posts(conn, path, small, seconds, body=loadgen.EVENT_1KB)
        mb = loadgen.timed_posts(conn, path, large, seconds, body=loadgen.EVENT_1MB)
    finally:
        conn.close()
    fig_kb = latency_figure("echo_1kb", "echo RTT, 1 KB event echoed back", kb, event_bytes=len(loadgen.EVENT_1KB))
    fig_mb = latency_figure("echo_1mb", "echo RTT, 1 MB event echoed back", mb, event_bytes=len(loadgen.EVENT_1MB))
    l_1mb = value_figure("l_1mb", "L_1MB: echo RTT 1 MB − 1 KB (p50s)", "ms", fig_mb.p50 - fig_kb.p50,
                         min(fig_kb.n, fig_mb.n), echo_1kb_p50=fig_kb.p50, echo_1mb_p50=fig_mb.p50)  # fmt: skip
    return [fig_kb, fig_mb, l_1mb]


NOBODY = 65534
INSIDE_UID, INSIDE_GID = 993, 990  # as Lamina's sandboxes (sbx_user1051)


def sandboxed_argv(
    argv: Sequence[str], *, binds: Sequence[tuple[str, str]] = (), seccomp_fd: int | None = None
) -> list[str] | None:
    """`argv` under setpriv + bwrap with the namespaces and read-only system binds of a Lamina sandbox,
    plus read-only `binds` (host path, inside path) and the seccomp filter in `seccomp_fd` if given."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return None
    a: list[str] = []
    setpriv = shutil.which("setpriv")
    if os.geteuid() == 0 and setpriv is not None:
        a += [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    a += [bwrap, "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
          "--unshare-cgroup-try", "--disable-userns", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
          "--uid", str(INSIDE_UID), "--gid", str(INSIDE_GID), "--hostname", "sandbox"]  # fmt: skip
    for d in ("/usr", "/etc"):
        a += ["--ro-bind", d, d]
    for link in ("/bin", "/lib", "/lib64", "/sbin"):
        if os.path.islink(link):
            a += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            a += ["--ro-bind", link, link]
    prefix = Path(argv[0]).parent.parent
    if not prefix.is_relative_to("/usr"):
        a += ["--ro-bind", str(prefix), str(prefix)]
    for host, inside in binds:
        a += ["--ro-bind", host, inside]
    if seccomp_fd is not None:
        a += ["--seccomp", str(seccomp_fd)]
    return [*a, "--proc", "/proc", "--dev", "/dev", "--", *argv]

