"""`lamina dev` and `lamina invoke --debug` as a user runs them: real processes, a real server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import sys
import time
from pathlib import Path
from typing import Any

from lamina.testing import RunningServer

from lamina.testing.dap import DapClient


def _lamina(server: RunningServer, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "LAMINA_ENDPOINT": server.endpoint, "NO_COLOR": "1"}
    return subprocess.Popen([sys.executable, "-m", "lamina", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)  # fmt: skip


def _read_until(stream: Any, pattern: str, seen: list[str], timeout: float = 30.0) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        found = re.search(pattern, line)
        if found:
            return found
    raise AssertionError(f"no line matching {pattern!r}; got {seen[-20:]}")


def _interrupt(dev: subprocess.Popen[str]) -> str:
    """Ctrl-C `lamina dev` and return its stderr; killed if it does not stop in time (then raises)."""
    dev.send_signal(signal.SIGINT)
    try:
        return dev.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired:
        dev.kill()
        dev.communicate()
        raise


def test_lamina_dev_prints_reloads_and_stops_on_ctrl_c(server: RunningServer, fname: str, tmp_path: Path) -> None:
    src = tmp_path / "fn"
    src.mkdir()
    os.chmod(tmp_path, 0o755)
    (src / "app.py").write_text("def handler(event, context):\n    return 1\n")
    dev = _lamina(server, "dev", str(src), "--name", fname, "--runtime", "python3.11")
    seen: list[str] = []
    try:
        assert dev.stdout is not None
        watching = _read_until(dev.stdout, r"watching .* code ([0-9a-f]{12})", seen)
        client = server.client()
        assert json.loads(client.invoke(FunctionName=fname)["Payload"].read()) == 1
        (src / "app.py.tmp").write_text("def handler(event, context):\n    return 2\n")
        os.replace(src / "app.py.tmp", src / "app.py")  # an editor's save (see test_dev_reload._write)
        reload = _read_until(dev.stdout, r"reload code ([0-9a-f]{12})\s+app\.py\s+\(write → live ([0-9.]+) ms", seen)
        assert reload.group(1) != watching.group(1)
        assert json.loads(client.invoke(FunctionName=fname)["Payload"].read()) == 2
        _read_until(dev.stdout, rf"REPORT .*Code: {reload.group(1)}", seen)  # its log tail
    finally:
        err = _interrupt(dev)
    assert dev.returncode == 0, err
    assert "lamina dev stopped" in err


def test_lamina_invoke_debug_prints_launch_json_and_waits_for_the_debugger(server: RunningServer, fname: str) -> None:
    from lamina.testing import deploy

    deploy(server.client(), fname, {"app.py": "def handler(event, context):\n    return event['x'] + 1\n"})
    proc = _lamina(server, "invoke", fname, "--debug", "--payload", '{"x": 41}')
    assert proc.stderr is not None and proc.stdout is not None
    seen: list[str] = []
    try:
        _read_until(proc.stderr, r"listening on 127\.0\.0\.1:(\d+)", seen)
        _read_until(proc.stderr, r"launch.json", seen)
        config_lines = [_read_until(proc.stderr, r".*", seen).group(0)]
        while not config_lines[-1].startswith("}"):
            config_lines.append(_read_until(proc.stderr, r".*", seen).group(0))
        config = json.loads("".join(config_lines))
        assert config["type"] == "debugpy" and config["request"] == "attach"
        assert config["pathMappings"][0]["localRoot"] == os.getcwd()
        dap = DapClient(config["connect"]["host"], config["connect"]["port"])
        try:
            dap.attach()
            out, err = proc.communicate(timeout=60)
        finally:
            dap.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert json.loads(out) == 42


def test_lamina_dev_debug_reattaches_after_a_reload(server: RunningServer, fname: str, tmp_path: Path) -> None:
    from lamina.testing import free_port

    src = tmp_path / "fn"
    src.mkdir()
    os.chmod(tmp_path, 0o755)
    (src / "app.py").write_text("def handler(event, context):\n    return 'one'\n")
    port = free_port()
    dev = _lamina(server, "dev", str(src), "--name", fname, "--runtime", "python3.11", "--debug", "--debug-port", str(port))
    seen: list[str] = []
    client = server.client(read_timeout=60)

    def invoke_attached() -> Any:
        results: list[Any] = []
        t = threading.Thread(target=lambda: results.append(json.loads(client.invoke(FunctionName=fname)["Payload"].read())))
        t.start()
        dap = None
        try:
            dap = DapClient("127.0.0.1", port)
            dap.attach()
        finally:
            if dap is not None:
                dap.close()
            t.join(60)
        return results

    try:
        assert dev.stdout is not None and dev.stderr is not None
        _read_until(dev.stdout, r"watching ", seen)
        config = _read_until(dev.stderr, r'"localRoot": "([^"]+)"', seen)
        assert invoke_attached() == ["one"]
        (src / "app.py.tmp").write_text("def handler(event, context):\n    return 'two'\n")
        os.replace(src / "app.py.tmp", src / "app.py")
        _read_until(dev.stdout, r"reload code", seen)
        assert invoke_attached() == ["two"]  # a new environment, the same port, attached again
    finally:
        err = _interrupt(dev)
    assert dev.returncode == 0, err
    assert config.group(1) == str(src.resolve())  # dev debugs the directory itself: no path mapping
