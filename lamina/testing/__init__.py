"""Helpers shipped for tests and users (as trio.testing): a running server, zips, deploys.

`running_server` starts the real `lamina up` in a subprocess on a free loopback port and stops it
on exit. Readiness is awaited by reading the line the server prints once it listens, not by
sleeping.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

READY_MARKER = "Lamina listening on "
DEFAULT_ROLE = "arn:aws:iam::000000000000:role/lamina"


@dataclass(frozen=True, slots=True)
class RunningServer:
    endpoint: str
    data_dir: Path
    process: subprocess.Popen[str]
    output: list[str]
    clients: list[Any] = field(default_factory=list)

    def client(self, service: str = "lambda", **config: Any) -> Any:
        """A boto3 client for this server; closed (with its pooled sockets) when the server stops."""
        import boto3
        from botocore.config import Config

        client = boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(retries={"max_attempts": 1}, **config),
        )
        self.clients.append(client)
        return client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def isolation_for_tests() -> str:
    """The isolation tests run servers with: LAMINA_TEST_ISOLATION, else `sandbox` (as CI does)."""
    return os.environ.get("LAMINA_TEST_ISOLATION", "sandbox")


@contextmanager
def data_directory(prefix: str = "lamina-test-") -> Iterator[Path]:
    """A fresh directory sandbox uids can reach (under /tmp, mode 0711), removed afterwards with
    anything a killed server left mounted in it."""
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(root, 0o711)
    try:
        yield root / "data"
    finally:
        from lamina.sandbox.rootfs import mounts_under

        for point in mounts_under(root):
            subprocess.run(["umount", "-l", str(point)], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def running_server(
    data_dir: Path,
    *,
    port: int | None = None,
    extra_args: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
    start_timeout: float = 30.0,
    isolation: str | None = None,
) -> Iterator[RunningServer]:
    """Run `python -m lamina up` until the block exits; SIGTERM then SIGKILL on the way out."""
    port = port or free_port()
    argv = [sys.executable, "-m", "lamina", "up", "--port", str(port), "--data-dir", str(data_dir),
            "--isolation", isolation or isolation_for_tests(), *extra_args]  # fmt: skip
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    output: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if READY_MARKER in line:
                ready.set()
        ready.set()  # EOF: the server died; let the waiter see it.

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        if not ready.wait(start_timeout) or proc.poll() is not None:
            raise RuntimeError("lamina up did not start:\n" + "".join(output))
        server = RunningServer(endpoint=f"http://127.0.0.1:{port}", data_dir=data_dir, process=proc, output=output)
        try:
            yield server
        finally:
            for client in server.clients:
                client.close()
    finally:
        stop_process(proc)
        reader.join(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()


def stop_process(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def zip_files(files: Mapping[str, str | bytes], *, executable: tuple[str, ...] = ()) -> bytes:
    """A deployment zip from {path: content}; paths in `executable` get mode 0755."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            mode = 0o755 if name in executable else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, content)
    return buf.getvalue()


def zip_directory(root: Path) -> bytes:
    """A deployment zip of a directory tree, keeping file modes (so `bootstrap` stays executable)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            if path.is_dir() or "__pycache__" in path.parts:
                continue
            info = zipfile.ZipInfo(str(path.relative_to(root)), date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = (path.stat().st_mode & 0xFFFF) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    return buf.getvalue()


def deploy(
    client: Any,
    name: str,
    files: Mapping[str, str | bytes],
    *,
    runtime: str = "python3.11",
    handler: str = "app.handler",
    executable: tuple[str, ...] = (),
    wait: bool = True,
    **kwargs: Any,
) -> dict[str, Any]:
    """create_function from files and wait until it is Active; returns the create response."""
    resp: dict[str, Any] = client.create_function(
        FunctionName=name,
        Runtime=runtime,
        Role=DEFAULT_ROLE,
        Handler=handler,
        Code={"ZipFile": zip_files(files, executable=executable)},
        **kwargs,
    )
    if wait:
        client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.05, "MaxAttempts": 400})
    return resp


def read_logs(endpoint: str, function: str, *, cursor: int = 0, wait: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Events of a function's log group from `cursor` (Lamina's admin API); `wait` long-polls."""
    import json
    import urllib.error
    import urllib.request

    url = f"{endpoint}/lamina/v1/logs/{function}?cursor={cursor}&wait={wait}"
    try:
        with urllib.request.urlopen(url, timeout=wait + 10) as r:
            doc = json.loads(r.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return [], cursor
        raise
    return list(doc["events"]), int(doc["nextCursor"])


def wait_for_log(endpoint: str, function: str, needle: str, *, timeout: float = 30.0) -> list[str]:
    """Block until a log line containing `needle` is written; returns all lines read so far.

    Uses the server's long-poll, so it wakes when the line is written rather than on a timer.
    """
    import time

    deadline = time.monotonic() + timeout
    cursor = 0
    lines: list[str] = []
    while time.monotonic() < deadline:
        remaining = max(1, int(deadline - time.monotonic()))
        events, cursor = read_logs(endpoint, function, cursor=cursor, wait=min(remaining, 10))
        lines += [e["message"] for e in events]
        if any(needle in line for line in lines):
            return lines
    raise TimeoutError(f"no log line containing {needle!r} in {timeout} s; got {lines[-20:]}")


def processes_with_env(key: str, value: str) -> list[int]:
    """Host pids of processes whose environment holds key=value (root can read every environ).

    Finds a function's runtime processes from outside any pid namespace: deploy it with a unique
    marker variable, then look for the marker."""
    needle = f"{key}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def send_events(
    endpoint: str,
    function: str,
    *,
    count: int,
    threads: int = 8,
    payload: Callable[[int], bytes] = lambda i: b'{"i": %d}' % i,
    accepted: list[str] | None = None,
    until: float | None = None,
) -> list[str]:
    """Send up to `count` Event invokes of `function` from `threads` keep-alive connections (until
    time.monotonic() passes `until`, if given); return the request ids of those answered 202 (in
    `accepted` too, as they come, if given).

    A connection that fails (the server died, say) ends its thread quietly: only what was
    acknowledged counts as accepted. Raw HTTP, not boto3, so the client is not the bottleneck.
    """
    import http.client
    import itertools
    import time
    from urllib.parse import urlsplit

    out = accepted if accepted is not None else []
    numbers = itertools.count()
    lock = threading.Lock()
    url = urlsplit(endpoint)
    path = f"/2015-03-31/functions/{function}/invocations"
    headers = {"X-Amz-Invocation-Type": "Event"}

    def worker() -> None:
        conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=30)
        try:
            while True:
                with lock:
                    i = next(numbers)
                if i >= count or (until is not None and time.monotonic() >= until):
                    return
                conn.request("POST", path, body=payload(i), headers=headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status == 202:
                    with lock:
                        out.append(resp.headers["x-amzn-RequestId"])
        except (OSError, http.client.HTTPException):
            return
        finally:
            conn.close()

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return out


# A package that exists only as the wheel make_wheel writes: pip installs it with no index.
PROBE = "lamina_build_probe"


def make_wheel(directory: Path, version: str = "1.0") -> Path:
    """A real (if hand-made) pure-Python wheel of PROBE, so pip has something local to install
    with no build backend and no network."""
    directory.mkdir(parents=True, exist_ok=True)
    dist_info = f"{PROBE}-{version}.dist-info"
    files = {
        f"{PROBE}.py": f'VERSION = "{version}"\n\ndef greet(name):\n    return "probe " + VERSION + " greets " + name\n',
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {PROBE}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: lamina-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    files[f"{dist_info}/RECORD"] = "\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n"
    path = directory / f"{PROBE}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return path
