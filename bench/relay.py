"""L_relay_wrk (G7): wrk against a minimal relay with 2 runtime processes, in this run.

relay_server.py runs in its own process (the bench's interpreter: it has uvloop and httptools).
Its 2 runtimes are Lamina's own runtime client (bootstrap.py) with the same no-op handler as the
platform's function, run by the interpreter the platform's environments run, with the same
flags, outside any sandbox and without a CPU cap: so G7's ratio prices the platform between the
client and the runtime, not the runtime client. L_relay_wrk is the better of wrk -c2 and -c8.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import loadgen
import wrk
from relay_server import READY_PREFIX, STATUS_PATH
from stats import Figure

from lamina.runtimes.catalog import PYTHON_BOOTSTRAP

RELAY_SERVER = Path(__file__).with_name("relay_server.py")
RUNTIMES = 2
START_TIMEOUT_S = 15.0
INVOKE_PATH = "/2015-03-31/functions/relay/invocations"
HANDLER_SOURCE = "def handler(e, c):\n    return e\n"  # the platform's no-op function, verbatim


@contextmanager
def running_relay(interpreter: str) -> Iterator[int]:
    """The relay and its runtimes, until the block exits; yields the relay's port once both
    runtimes have asked it for work."""
    procs: list[subprocess.Popen[str]] = []
    with tempfile.TemporaryDirectory(prefix="lamina-bench-relay-") as task_root:
        Path(task_root, "app.py").write_text(HANDLER_SOURCE)
        try:
            server = subprocess.Popen([sys.executable, str(RELAY_SERVER)], stdout=subprocess.PIPE, text=True)
            procs.append(server)
            port = _await_port(server)
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
                "_HANDLER": "app.handler",
                "LAMBDA_TASK_ROOT": task_root,
                "AWS_LAMBDA_FUNCTION_NAME": "relay",
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769",
            }
            for _ in range(RUNTIMES):
                procs.append(
                    subprocess.Popen(
                        [interpreter, "-I", "-S", str(PYTHON_BOOTSTRAP)],
                        cwd=task_root,
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        text=True,
                    )
                )
            _await_runtimes(port, procs)
            yield port
        finally:
            for proc in reversed(procs):
                _stop(proc)


def l_relay_wrk(interpreter: str, *, seconds: int, connections: tuple[int, ...] = (2, 8)) -> Figure:
    with running_relay(interpreter) as port:
        url = f"http://127.0.0.1:{port}{INVOKE_PATH}"
        conn = loadgen.connect(port)
        try:
            loadgen.timed_posts(conn, INVOKE_PATH, 50, 10.0)  # the runtimes' first invokes, untimed
        finally:
            conn.close()
        runs = [wrk.run(url, connections=c, seconds=seconds) for c in connections]
    return wrk.best_figure(
        "l_relay_wrk",
        "L_relay_wrk: wrk → minimal relay, 2 runtimes",
        runs,
        runtimes=RUNTIMES,
        interpreter=interpreter,
    )


def _await_port(proc: subprocess.Popen[str]) -> int:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT_S)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith(READY_PREFIX):
        raise RuntimeError(f"relay server did not start (said {line!r}, exit code {proc.poll()})")
    return int(line.removeprefix(READY_PREFIX))


def _await_runtimes(port: int, procs: list[subprocess.Popen[str]]) -> None:
    """Poll the relay's status until every runtime has asked for work (bounded in time)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"relay process {dead[0].args!r} exited with {dead[0].returncode}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", STATUS_PATH.decode())
            if json.loads(conn.getresponse().read())["runtimes"] >= RUNTIMES:
                return
        finally:
            conn.close()
        time.sleep(0.02)
    raise RuntimeError(f"the relay's {RUNTIMES} runtimes did not ask for work within {START_TIMEOUT_S} s")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if proc.stdout is not None:
        proc.stdout.close()
