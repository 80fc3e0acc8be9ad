"""Hot reload from source (issue #7): a real directory, real file writes picked up by the server's
watcher, real invokes through boto3. Timings are printed, never asserted (slow machines)."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from lamina.testing import RunningServer, read_logs, wait_for_log

HANDLER = "def handler(event, context):\n    return {{'version': {v}, 'event': event}}\n"


def _admin(server: RunningServer, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server.endpoint + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=70) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else {}


def _invoke(client: Any, name: str, payload: dict[str, Any] | None = None) -> tuple[dict[str, Any], str | None]:
    resp = client.invoke(FunctionName=name, Payload=json.dumps(payload or {}).encode())
    return json.loads(resp["Payload"].read()), resp.get("FunctionError")


def _write(path: Path, text: str) -> float:
    """Save as most editors do (a temporary file renamed over the old one, so no reader sees it half
    written); returns the time of the save. In-place saves are covered by tests/unit/store."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return time.time()


def _wait_generation(server: RunningServer, name: str, after: int) -> dict[str, Any]:
    state = _admin(server, "GET", f"/lamina/v1/functions/{name}/source?generation={after}&wait=20")
    assert state["Generation"] > after, state
    return state


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "fn"
    src.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(src, 0o755)
    (src / "app.py").write_text(HANDLER.format(v=1))
    return src


def test_save_reloads_and_next_invoke_runs_new_code(server: RunningServer, lambda_client: Any, fname: str, source: Path) -> None:
    state = _admin(server, "PUT", f"/lamina/v1/functions/{fname}/source",
                   {"Directory": str(source), "Runtime": "python3.11", "Handler": "app.handler"})  # fmt: skip
    assert state["Generation"] == 1 and state["ChangedFiles"] == ["app.py"]
    assert _invoke(lambda_client, fname) == ({"version": 1, "event": {}}, None)

    # Editor droppings and caches do not trigger a reload, and are not part of the code.
    (source / ".app.py.swp").write_text("x")
    (source / "__pycache__").mkdir(exist_ok=True)

    written = _write(source / "app.py", HANDLER.format(v=2))
    after = _wait_generation(server, fname, 1)
    reloaded = time.time()
    body, error = _invoke(lambda_client, fname, {"n": 2})
    answered = time.time()
    assert (body, error) == ({"version": 2, "event": {"n": 2}}, None)
    assert after["ChangedFiles"] == ["app.py"] and after["CodeSha256"] != state["CodeSha256"]
    print(f"\nreload: write -> watcher {after['WriteToSeenMs']} ms, write -> live {after['WriteToLiveMs']} ms (server), write -> reload seen {(reloaded - written) * 1000:.1f} ms, "
          f"write -> new code answered {(answered - written) * 1000:.1f} ms (snapshot {after['SnapshotMs']} ms)")

    # The configuration reports the tree hash; REPORT lines and log records carry its first 12 digits.
    conf = lambda_client.get_function_configuration(FunctionName=fname)
    assert conf["State"] == "Active" and conf["LastUpdateStatus"] == "Successful"
    lines = wait_for_log(server.endpoint, fname, f"Code: {after['CodeSha256'][:12]}")
    reports = [line for line in lines if line.startswith("REPORT")]
    assert reports[0].rstrip("\t").endswith(f"Code: {state['CodeSha256'][:12]}")
    assert reports[-1].rstrip("\t").endswith(f"Code: {after['CodeSha256'][:12]}")
    events, _ = read_logs(server.endpoint, fname)
    assert {e["codeSha256"] for e in events} == {state["CodeSha256"][:12], after["CodeSha256"][:12]}


def test_invoke_right_after_a_save_never_runs_old_code(server: RunningServer, lambda_client: Any, fname: str, source: Path) -> None:
    """Back-to-back invokes across saves: once an invoke answers with version N, no later invoke
    answers an older version (the invoker waits for a reload under way)."""
    _admin(server, "PUT", f"/lamina/v1/functions/{fname}/source",
           {"Directory": str(source), "Runtime": "python3.11", "Handler": "app.handler"})  # fmt: skip
    seen = 1
    firsts = []
    for v in range(2, 5):
        written = _write(source / "app.py", HANDLER.format(v=v))
        deadline = time.monotonic() + 20
        while True:
            got = _invoke(lambda_client, fname)[0]["version"]
            assert got >= seen, f"an invoke ran version {got} after version {seen} had answered"
            seen = got
            if got == v:
                firsts.append((time.time() - written) * 1000)
                break
            assert time.monotonic() < deadline, "the new code never ran"
    print(f"\nwrite -> first invoke answering the new code: {', '.join(f'{ms:.1f}' for ms in firsts)} ms")


def test_import_error_is_returned_then_fix_recovers(server: RunningServer, lambda_client: Any, fname: str, source: Path) -> None:
    _admin(server, "PUT", f"/lamina/v1/functions/{fname}/source",
           {"Directory": str(source), "Runtime": "python3.11", "Handler": "app.handler"})  # fmt: skip
    assert _invoke(lambda_client, fname)[0]["version"] == 1

    _write(source / "app.py", "def handler(event, context)\n    return 1\n")  # a syntax error
    _wait_generation(server, fname, 1)
    body, error = _invoke(lambda_client, fname)
    assert error == "Unhandled" and body["errorType"] == "Runtime.UserCodeSyntaxError", body

    _write(source / "app.py", "import no_such_module\n" + HANDLER.format(v=3))
    _wait_generation(server, fname, 2)
    body, error = _invoke(lambda_client, fname)
    assert error == "Unhandled" and body["errorType"] == "Runtime.ImportModuleError", body
    assert "no_such_module" in body["errorMessage"]

    _write(source / "app.py", HANDLER.format(v=4))
    _wait_generation(server, fname, 3)
    assert _invoke(lambda_client, fname) == ({"version": 4, "event": {}}, None)


def test_in_flight_invocation_finishes_on_old_code(server: RunningServer, lambda_client: Any, fname: str, source: Path) -> None:
    (source / "app.py").write_text(
        "import time\n\ndef handler(event, context):\n    print('working')\n    time.sleep(event.get('sleep', 0))\n    return 'old'\n"
    )
    _admin(server, "PUT", f"/lamina/v1/functions/{fname}/source",
           {"Directory": str(source), "Runtime": "python3.11", "Handler": "app.handler", "Timeout": 30})  # fmt: skip
    results: list[Any] = []
    slow = threading.Thread(target=lambda: results.append(_invoke(lambda_client, fname, {"sleep": 3})))
    slow.start()
    try:
        wait_for_log(server.endpoint, fname, "working")
        _write(source / "app.py", "def handler(event, context):\n    return 'new'\n")
        _wait_generation(server, fname, 1)
        assert _invoke(lambda_client, fname) == ("new", None)  # a new environment, while the old one works
    finally:
        slow.join(30)
    assert results == [("old", None)]


def test_nested_files_and_removal(server: RunningServer, lambda_client: Any, fname: str, source: Path) -> None:
    (source / "lib").mkdir()
    (source / "lib" / "__init__.py").write_text("")
    (source / "lib" / "greet.py").write_text("WORD = 'hello'\n")
    (source / "app.py").write_text("from lib.greet import WORD\n\ndef handler(event, context):\n    return WORD\n")
    _admin(server, "PUT", f"/lamina/v1/functions/{fname}/source",
           {"Directory": str(source), "Runtime": "python3.11", "Handler": "app.handler"})  # fmt: skip
    assert _invoke(lambda_client, fname) == ("hello", None)
    _write(source / "lib" / "greet.py", "WORD = 'bonjour'\n")
    state = _wait_generation(server, fname, 1)
    assert state["ChangedFiles"] == ["lib/greet.py"]
    assert _invoke(lambda_client, fname) == ("bonjour", None)
    (source / "lib" / "greet.py").unlink()
    state = _wait_generation(server, fname, 2)
    assert state["ChangedFiles"] == ["lib/greet.py"]
    body, error = _invoke(lambda_client, fname)
    assert error == "Unhandled" and body["errorType"] == "Runtime.ImportModuleError"


def test_old_snapshots_are_pruned_and_code_location_downloads(server: RunningServer, lambda_client: Any, fname: str,
                                                              source: Path) -> None:  # fmt: skip
    import io
    import zipfile

    first = _admin(server, "PUT", f"/lamina/v1/functions/{fname}/source",
                   {"Directory": str(source), "Runtime": "python3.11", "Handler": "app.handler"})  # fmt: skip
    unpacked = server.data_dir / "code" / "unpacked"
    assert (unpacked / first["CodeSha256"]).is_dir()
    for v in range(2, 7):
        _write(source / "app.py", HANDLER.format(v=v))
        last = _wait_generation(server, fname, v - 1)
    assert not (unpacked / first["CodeSha256"]).exists()  # more than 4 saves ago, run by no version
    assert (unpacked / last["CodeSha256"]).is_dir()

    location = lambda_client.get_function(FunctionName=fname)["Code"]["Location"]
    with urllib.request.urlopen(location, timeout=10) as resp:
        files = zipfile.ZipFile(io.BytesIO(resp.read())).namelist()
    assert files == ["app.py"]


def test_source_function_is_watched_again_after_a_restart(data_dir: Path, source: Path) -> None:
    from lamina.testing import running_server

    with running_server(data_dir) as srv:
        _admin(srv, "PUT", "/lamina/v1/functions/dev-restart/source",
               {"Directory": str(source), "Runtime": "python3.11", "Handler": "app.handler"})  # fmt: skip
        assert _invoke(srv.client(), "dev-restart")[0]["version"] == 1
    _write(source / "app.py", HANDLER.format(v=2))  # saved while the server was down
    with running_server(data_dir) as srv:
        client = srv.client()
        assert _invoke(client, "dev-restart")[0]["version"] == 2
        generation = _admin(srv, "GET", "/lamina/v1/functions/dev-restart/source")["Generation"]
        _write(source / "app.py", HANDLER.format(v=3))
        _wait_generation(srv, "dev-restart", generation)
        assert _invoke(client, "dev-restart")[0]["version"] == 3
