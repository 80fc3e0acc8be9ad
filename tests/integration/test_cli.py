"""The `lamina` CLI run as a user runs it: a subprocess against a real server on loopback."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import zipfile
from io import BytesIO
from pathlib import Path

import pytest

import lamina
from lamina.testing import RunningServer, free_port

RUNTIME = "python3.11"
HANDLER_TEMPLATE = """\
import os

def handler(event, context):
    print("handler saw", event.get("marker"))
    return {{"version": {version}, "greeting": os.environ.get("GREETING"), "event": event}}
"""
FAILING_HANDLER = """\
def handler(event, context):
    raise ValueError("boom from handler")
"""
CLI_TIMEOUT = 60.0
_ENV = {**os.environ, "PYTHONPATH": str(Path(lamina.__file__).resolve().parents[1])}
_ENV.pop("LAMINA_ENDPOINT", None)


def lamina_cli(endpoint: str, *args: str, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lamina", "--endpoint", endpoint, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_ENV,
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def write_app(directory: Path, *, version: int = 1, source: str | None = None) -> Path:
    directory.mkdir(exist_ok=True)
    (directory / "app.py").write_text(source if source is not None else HANDLER_TEMPLATE.format(version=version))
    return directory


def deploy(server: RunningServer, directory: Path, name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    args = ("deploy", str(directory), "--name", name, "--runtime", RUNTIME, "--handler", "app.handler", *extra)
    result = lamina_cli(server.endpoint, *args)
    assert_ok(result)
    return result


def invoke_json(server: RunningServer, name: str, payload: object) -> tuple[object, str]:
    result = lamina_cli(server.endpoint, "invoke", name, "--payload", json.dumps(payload))
    assert_ok(result)
    return json.loads(result.stdout), result.stderr


# --- without a server -------------------------------------------------------------------------


def test_help_does_not_import_boto3() -> None:
    probe = (
        "import sys\n"
        "from lamina.cli.main import app\n"
        "try:\n"
        "    app(['--help'], prog_name='lamina')\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=CLI_TIMEOUT, env=_ENV
    )
    assert_ok(result)
    for command in ("up", "deploy", "invoke", "ls", "logs", "rm"):
        assert command in result.stdout


def test_deployment_zip_is_deterministic_and_keeps_exec_bit(tmp_path: Path) -> None:
    from lamina.cli.client import zip_directory

    src = tmp_path / "src"
    (src / "pkg" / "__pycache__").mkdir(parents=True)
    (src / "bootstrap").write_text("#!/bin/sh\n")
    (src / "bootstrap").chmod(0o700)
    (src / "pkg" / "mod.py").write_text("X = 1\n")
    (src / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"junk")

    first = zip_directory(src)
    (src / "pkg" / "mod.py").touch()  # a new mtime must not change the bytes
    assert zip_directory(src) == first

    with zipfile.ZipFile(BytesIO(first)) as zf:
        modes = {info.filename: (info.external_attr >> 16) & 0o777 for info in zf.infolist()}
    assert modes == {"bootstrap": 0o755, "pkg/mod.py": 0o644}


def test_unreachable_endpoint_is_one_line() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    for args in (("invoke", "anything", "--payload", "{}"), ("logs", "anything"), ("ls",)):
        result = lamina_cli(endpoint, *args)
        assert_one_line_error(result, f"cannot reach Lamina at {endpoint}")


# --- against the session server -------------------------------------------------------------


def test_deploy_then_invoke_prints_result_and_env(server: RunningServer, fname: str, tmp_path: Path) -> None:
    result = deploy(server, write_app(tmp_path / "fn"), fname, "--env", "GREETING=hello=world", "--memory", "256")
    assert fname in result.stdout and "Active" in result.stdout

    body, tail = invoke_json(server, fname, {"marker": "first"})
    assert body == {"version": 1, "greeting": "hello=world", "event": {"marker": "first"}}
    assert "handler saw first" in tail


def test_redeploy_updates_code(server: RunningServer, fname: str, tmp_path: Path) -> None:
    directory = write_app(tmp_path / "fn", version=1)
    deploy(server, directory, fname)
    assert invoke_json(server, fname, {})[0] == {"version": 1, "greeting": None, "event": {}}

    write_app(directory, version=2)
    result = deploy(server, directory, fname, "--env", "GREETING=again")
    assert "updated" in result.stdout
    assert invoke_json(server, fname, {})[0] == {"version": 2, "greeting": "again", "event": {}}


def test_invoke_payload_from_file(server: RunningServer, fname: str, tmp_path: Path) -> None:
    deploy(server, write_app(tmp_path / "fn"), fname)
    (tmp_path / "event.json").write_text('{"marker": "from-file"}')
    result = lamina_cli(server.endpoint, "invoke", fname, "--payload", f"@{tmp_path / 'event.json'}")
    assert_ok(result)
    assert json.loads(result.stdout)["event"] == {"marker": "from-file"}


def test_function_error_prints_error_json_and_exits_1(server: RunningServer, fname: str, tmp_path: Path) -> None:
    deploy(server, write_app(tmp_path / "fn", source=FAILING_HANDLER), fname)
    result = lamina_cli(server.endpoint, "invoke", fname, "--payload", "{}")
    assert result.returncode == 1, result.stderr
    error = json.loads(result.stdout)
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "boom from handler"
    assert "FunctionError: Unhandled" in result.stderr


def test_event_invoke_prints_request_id(server: RunningServer, fname: str, tmp_path: Path) -> None:
    deploy(server, write_app(tmp_path / "fn"), fname)
    result = lamina_cli(server.endpoint, "invoke", fname, "--event", "--payload", '{"marker": "async"}')
    assert_ok(result)
    request_id = result.stdout.strip()
    assert request_id and len(request_id.split()) == 1


def test_ls_lists_function(server: RunningServer, fname: str, tmp_path: Path) -> None:
    deploy(server, write_app(tmp_path / "fn"), fname, "--memory", "192", "--timeout", "7")
    result = lamina_cli(server.endpoint, "ls")
    assert_ok(result)
    row = next(line for line in result.stdout.splitlines() if line.split() and line.split()[0] == fname)
    assert RUNTIME in row and "192 MB" in row and "7 s" in row


def test_logs_show_platform_lines_and_prints(server: RunningServer, fname: str, tmp_path: Path) -> None:
    deploy(server, write_app(tmp_path / "fn"), fname)
    invoke_json(server, fname, {"marker": "for-logs"})

    result = lamina_cli(server.endpoint, "logs", fname)
    assert_ok(result)
    messages = [line.split(" ", 1)[1] for line in result.stdout.splitlines()]
    for prefix in ("START RequestId:", "END RequestId:", "REPORT RequestId:"):
        assert any(m.startswith(prefix) for m in messages), result.stdout
    assert any("handler saw for-logs" in m for m in messages), result.stdout
    # `<ISO time> <message>`: the first field is a timestamp.
    assert result.stdout.splitlines()[0][:4].isdigit()


def test_logs_of_unknown_function_is_one_line(server: RunningServer, fname: str) -> None:
    result = lamina_cli(server.endpoint, "logs", fname)
    assert_one_line_error(result, "ResourceNotFoundException")


def test_logs_follow_shows_new_events(server: RunningServer, fname: str, tmp_path: Path) -> None:
    deploy(server, write_app(tmp_path / "fn"), fname)
    invoke_json(server, fname, {"marker": "before-follow"})

    argv = [sys.executable, "-m", "lamina", "--endpoint", server.endpoint, "logs", fname, "--follow"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_ENV) as proc:
        lines, reader = _lines_of(proc)
        try:
            _wait_for_line(lines, "handler saw before-follow", deadline=time.monotonic() + CLI_TIMEOUT)
            invoke_json(server, fname, {"marker": "while-following"})
            _wait_for_line(lines, "handler saw while-following", deadline=time.monotonic() + CLI_TIMEOUT)
            proc.send_signal(signal.SIGINT)  # Ctrl-C ends it quietly with 0.
            assert proc.wait(CLI_TIMEOUT) == 0
            assert proc.stderr is not None
            assert "Traceback" not in proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            reader.join(CLI_TIMEOUT)


def test_rm_then_invoke_fails_cleanly(server: RunningServer, fname: str, tmp_path: Path) -> None:
    deploy(server, write_app(tmp_path / "fn"), fname)
    assert_ok(lamina_cli(server.endpoint, "rm", fname))

    result = lamina_cli(server.endpoint, "invoke", fname, "--payload", "{}")
    assert_one_line_error(result, "ResourceNotFoundException")
    assert fname not in lamina_cli(server.endpoint, "ls").stdout.split()


# --- helpers ----------------------------------------------------------------------------------


def _lines_of(proc: subprocess.Popen[str]) -> tuple[queue.Queue[str | None], threading.Thread]:
    """Stdout lines of `proc` as they come, from a reader thread; None marks EOF."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    return lines, reader


def _wait_for_line(lines: queue.Queue[str | None], needle: str, *, deadline: float) -> str:
    seen: list[str] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"{needle!r} did not appear; saw:\n{''.join(seen)}")
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            continue
        if line is None:
            pytest.fail(f"output ended before {needle!r}; saw:\n{''.join(seen)}")
        seen.append(line)
        if needle in line:
            return line


# --- layers ---------------------------------------------------------------------------------


def test_layer_publish_ls_and_deploy_with_layer(server: RunningServer, fname: str, tmp_path: Path) -> None:
    layer_dir = tmp_path / "layer"
    (layer_dir / "python").mkdir(parents=True)
    (layer_dir / "python" / "greeting.py").write_text("TEXT = 'hello from a layer'\n")
    # Big enough for the progress bar (PROGRESS_MIN_BYTES); zeros keep the zip small.
    (layer_dir / "data.bin").write_bytes(bytes(9 * 1024 * 1024))
    result = lamina_cli(server.endpoint, "layer", "publish", str(layer_dir), "--name", fname,
                        "--runtime", RUNTIME, "--runtime", "python3.12", "--description", "greetings")  # fmt: skip
    assert_ok(result)
    arn = f"arn:aws:lambda:us-east-1:000000000000:layer:{fname}:1"
    assert result.stdout.startswith(f"published {arn}  sha256 "), result.stdout

    listed = lamina_cli(server.endpoint, "layer", "ls")
    assert_ok(listed)
    row = next(line for line in listed.stdout.splitlines() if line.startswith(fname + " "))
    assert row.split()[1:4] == ["1", f"{RUNTIME},", "python3.12"] and row.rstrip().endswith(arn)

    app = write_app(tmp_path / "app", source="import greeting\ndef handler(event, context):\n    return greeting.TEXT\n")
    deploy(server, app, fname, "--layer", arn)
    assert invoke_json(server, fname, {})[0] == "hello from a layer"
