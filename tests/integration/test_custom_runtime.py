"""Custom runtimes (`provided*`) against a real server: the official awslambdaric, a shell+curl
bootstrap as in the Lambda custom-runtime tutorial, and the platform errors of spec 3.1 / 5.2."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from lamina.testing import deploy

# The PATH a custom runtime's bootstrap sees (lamina/envs/environment.py).
RUNTIME_PATH = "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin"
RIC_DISTRIBUTIONS = ("awslambdaric", "simplejson", "snapshot-restore-py")


# --- helpers --------------------------------------------------------------------------------


def invoke(client: Any, name: str, event: Any) -> tuple[dict[str, Any], bytes]:
    resp = client.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    return resp, resp["Payload"].read()


def request_id(resp: dict[str, Any]) -> str:
    rid = resp["ResponseMetadata"]["RequestId"]
    assert rid
    return str(rid)


def assert_ok(resp: dict[str, Any], body: bytes) -> Any:
    assert resp["StatusCode"] == 200
    assert "FunctionError" not in resp, body
    return json.loads(body)


def assert_unhandled(resp: dict[str, Any], body: bytes) -> dict[str, Any]:
    assert resp["StatusCode"] == 200
    assert resp.get("FunctionError") == "Unhandled", body
    err = json.loads(body)
    assert isinstance(err, dict)
    return err


def deploy_custom(
    client: Any,
    name: str,
    files: Mapping[str, str | bytes],
    *,
    runtime: str = "provided.al2023",
    handler: str = "function.handler",
    executable: tuple[str, ...] = ("bootstrap",),
) -> None:
    """Deploy a custom-runtime function; 30 s timeout because a re-init runs inside the invoke."""
    deploy(client, name, files, runtime=runtime, handler=handler, executable=executable, Timeout=30)


def runtime_python3() -> Path | None:
    found = shutil.which("python3", path=RUNTIME_PATH)
    return Path(found) if found else None


def _require_runtime_python311() -> None:
    py = runtime_python3()
    if py is None:
        pytest.skip(f"no python3 on the custom-runtime PATH {RUNTIME_PATH}")
    out = subprocess.run(
        [str(py), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    version = out.stdout.strip()
    if out.returncode != 0 or version != "3.11":
        pytest.skip(f"{py} is Python {version or '?'}, but the installed awslambdaric wheel is for CPython 3.11")


def _distribution_files(name: str) -> dict[str, bytes]:
    """Every file of an installed distribution (code, native .so, dist-info), keyed by its
    path relative to site-packages; byte-compiled caches are left out."""
    dist = importlib.metadata.distribution(name)
    root = Path(str(dist.locate_file(""))).resolve()
    files: dict[str, bytes] = {}
    for entry in dist.files or ():
        path = Path(str(dist.locate_file(entry))).resolve()
        if "__pycache__" in path.parts:
            continue
        rel = path.relative_to(root)  # raises if a distribution installs outside site-packages
        files[rel.as_posix()] = path.read_bytes()
    return files


@pytest.fixture(scope="module")
def ric_files() -> dict[str, bytes]:
    """The real awslambdaric and its dependencies, unmodified, ready to go into a function zip."""
    _require_runtime_python311()
    files: dict[str, bytes] = {}
    for name in RIC_DISTRIBUTIONS:
        try:
            files.update(_distribution_files(name))
        except importlib.metadata.PackageNotFoundError:
            pytest.skip(f"{name} is not installed in the test venv")
    assert any(p.startswith("runtime_client") and p.endswith(".so") for p in files), sorted(files)
    assert "awslambdaric/__main__.py" in files
    return files


RIC_BOOTSTRAP = """\
#!/bin/sh
cd "$LAMBDA_TASK_ROOT" || exit 1
exec python3 -m awslambdaric "$_HANDLER"
"""

RIC_APP = """\
import os
import sys

COUNT = 0


def handler(event, context):
    global COUNT
    COUNT += 1
    return {
        "echo": event,
        "count": COUNT,
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "pid": os.getpid(),
        "task_root": os.environ["LAMBDA_TASK_ROOT"],
        "ric_modules": [sys.modules[m].__file__ for m in ("awslambdaric", "runtime_client", "simplejson")],
    }


def boom(event, context):
    raise ValueError("bad thing: " + event["why"])
"""

RIC_BROKEN_APP = """\
import module_that_does_not_exist_xyz


def handler(event, context):
    return "unreachable"
"""


def deploy_ric(client: Any, name: str, ric_files: dict[str, bytes], app: str, handler: str) -> None:
    deploy_custom(client, name, {**ric_files, "bootstrap": RIC_BOOTSTRAP, "app.py": app}, handler=handler)


# --- the official runtime interface client -------------------------------------------------


def test_awslambdaric_returns_handler_result(lambda_client: Any, fname: str, ric_files: dict[str, bytes]) -> None:
    deploy_ric(lambda_client, fname, ric_files, RIC_APP, "app.handler")
    event = {"hello": "world", "n": [1, 2, 3]}
    resp, body = invoke(lambda_client, fname, event)
    result = assert_ok(resp, body)
    assert result["echo"] == event
    assert result["count"] == 1
    assert result["function_name"] == fname
    assert 0 < result["remaining_ms"] <= 30_000
    assert resp["ExecutedVersion"] == "$LATEST"
    # The runtime client really is the zipped awslambdaric, with its native extension.
    task_root = Path(result["task_root"])
    ric, native, sj = (Path(p) for p in result["ric_modules"])
    assert ric == task_root / "awslambdaric" / "__init__.py"
    assert native.parent == task_root and native.name.startswith("runtime_client") and native.suffix == ".so"
    assert sj == task_root / "simplejson" / "__init__.py"


def test_awslambdaric_request_id_matches_invoke(lambda_client: Any, fname: str, ric_files: dict[str, bytes]) -> None:
    deploy_ric(lambda_client, fname, ric_files, RIC_APP, "app.handler")
    ids = []
    for i in range(2):
        resp, body = invoke(lambda_client, fname, {"i": i})
        result = assert_ok(resp, body)
        assert result["request_id"] == request_id(resp)
        ids.append(result["request_id"])
    assert ids[0] != ids[1]


def test_awslambdaric_warm_invokes_share_the_environment(
    lambda_client: Any, fname: str, ric_files: dict[str, bytes]
) -> None:
    deploy_ric(lambda_client, fname, ric_files, RIC_APP, "app.handler")
    results = [assert_ok(*invoke(lambda_client, fname, {"i": i})) for i in range(5)]
    assert [r["count"] for r in results] == [1, 2, 3, 4, 5]
    assert len({r["pid"] for r in results}) == 1
    assert [r["echo"] for r in results] == [{"i": i} for i in range(5)]


def test_awslambdaric_handler_exception(lambda_client: Any, fname: str, ric_files: dict[str, bytes]) -> None:
    deploy_ric(lambda_client, fname, ric_files, RIC_APP, "app.boom")
    resp, body = invoke(lambda_client, fname, {"why": "no reason"})
    err = assert_unhandled(resp, body)
    assert err["errorType"] == "ValueError"
    assert err["errorMessage"] == "bad thing: no reason"
    assert err["requestId"] == request_id(resp)
    trace = err["stackTrace"]
    assert isinstance(trace, list) and trace
    assert any("app.py" in frame and "in boom" in frame for frame in trace), trace
    # The runtime survives a handler exception: the next invoke is served by it again.
    resp2, body2 = invoke(lambda_client, fname, {"why": "again"})
    assert json.loads(body2)["errorMessage"] == "bad thing: again"
    assert resp2.get("FunctionError") == "Unhandled"


def test_awslambdaric_import_error(lambda_client: Any, fname: str, ric_files: dict[str, bytes]) -> None:
    deploy_ric(lambda_client, fname, ric_files, RIC_BROKEN_APP, "app.handler")
    for _ in range(2):  # every invoke retries init and fails the same way
        resp, body = invoke(lambda_client, fname, {})
        err = assert_unhandled(resp, body)
        assert err["errorType"] == "Runtime.ImportModuleError"
        assert err["errorMessage"] == "Unable to import module 'app': No module named 'module_that_does_not_exist_xyz'"
        assert err["requestId"] == ""
        assert err["stackTrace"] == []


# --- the tutorial's shell bootstrap --------------------------------------------------------

TUTORIAL_BOOTSTRAP = r"""#!/bin/bash
set -euo pipefail

API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"

while true
do
  HEADERS="$(mktemp)"
  # Get an event. The HTTP request blocks until one is received.
  EVENT_DATA=$(curl -sS -LD "$HEADERS" "$API/invocation/next")
  # Extract the request id from the response headers (case-insensitive, CR stripped).
  REQUEST_ID=$(grep -i '^lambda-runtime-aws-request-id:' "$HEADERS" | tr -d '\r' | cut -d: -f2 | tr -d ' ')
  rm -f "$HEADERS"
  RESPONSE="{\"handler\":\"$_HANDLER\",\"requestId\":\"$REQUEST_ID\",\"event\":$EVENT_DATA}"
  curl -sS -o /dev/null -X POST "$API/invocation/$REQUEST_ID/response" -d "$RESPONSE"
done
"""


def test_shell_bootstrap_from_the_tutorial(lambda_client: Any, fname: str) -> None:
    if shutil.which("curl", path=RUNTIME_PATH) is None or shutil.which("bash", path=RUNTIME_PATH) is None:
        pytest.skip("curl and bash are needed on the custom-runtime PATH (scripts/setup.sh installs curl)")
    deploy_custom(lambda_client, fname, {"bootstrap": TUTORIAL_BOOTSTRAP}, runtime="provided.al2")
    seen = []
    for event in ({"msg": "first", "n": 1}, {"msg": "second", "nested": {"ok": True}}):
        resp, body = invoke(lambda_client, fname, event)
        result = assert_ok(resp, body)
        rid = request_id(resp)
        assert result == {"handler": "function.handler", "requestId": rid, "event": event}
        seen.append(rid)
    assert seen[0] != seen[1]


# --- platform errors -----------------------------------------------------------------------

PY_BOOTSTRAP = r"""#!/usr/bin/env python3
import json, os, sys, urllib.request

API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
count = 0
while True:
    with urllib.request.urlopen(API + "/invocation/next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read())
    count += 1
    if event.get("crash"):
        print("crashing on purpose", flush=True)
        sys.exit(2)
    if event.get("fail"):
        req = urllib.request.Request(
            API + "/invocation/" + rid + "/error",
            data=event["fail"].encode(),
            headers={"Lambda-Runtime-Function-Error-Type": "Function.Custom", "Content-Type": "application/json"},
            method="POST",
        )
    else:
        req = urllib.request.Request(
            API + "/invocation/" + rid + "/response",
            data=json.dumps({"count": count, "pid": os.getpid(), "event": event}).encode(),
            method="POST",
        )
    urllib.request.urlopen(req).read()
"""


def test_missing_bootstrap_is_invalid_entrypoint(lambda_client: Any, fname: str) -> None:
    deploy_custom(lambda_client, fname, {"function.sh": "echo hi\n"}, runtime="provided.al2", executable=())
    resp, body = invoke(lambda_client, fname, {})
    err = assert_unhandled(resp, body)
    assert err["errorType"] == "Runtime.InvalidEntrypoint"
    assert err["errorMessage"] == (
        f"RequestId: {request_id(resp)} Error: Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]"
    )


def test_non_executable_bootstrap_is_invalid_entrypoint(lambda_client: Any, fname: str) -> None:
    # A working bootstrap, but zipped with mode 0644.
    deploy_custom(lambda_client, fname, {"bootstrap": PY_BOOTSTRAP}, runtime="provided.al2", executable=())
    resp, body = invoke(lambda_client, fname, {})
    err = assert_unhandled(resp, body)
    assert err["errorType"] == "Runtime.InvalidEntrypoint"
    rid = request_id(resp)
    assert err["errorMessage"] == f"RequestId: {rid} Error: fork/exec /var/task/bootstrap: permission denied"


def test_bootstrap_exiting_before_next_is_exit_error(lambda_client: Any, fname: str) -> None:
    bootstrap = "#!/bin/sh\necho 'giving up before /next'\nexit 3\n"
    deploy_custom(lambda_client, fname, {"bootstrap": bootstrap})
    resp, body = invoke(lambda_client, fname, {})
    err = assert_unhandled(resp, body)
    assert err["errorType"] == "Runtime.ExitError"
    assert err["errorMessage"] == f"RequestId: {request_id(resp)} Error: Runtime exited with error: exit status 3"


def test_runtime_crash_mid_invoke_resets_the_environment(lambda_client: Any, fname: str) -> None:
    deploy_custom(lambda_client, fname, {"bootstrap": PY_BOOTSTRAP})
    first = assert_ok(*invoke(lambda_client, fname, {"n": 1}))
    second = assert_ok(*invoke(lambda_client, fname, {"n": 2}))
    assert (first["count"], second["count"]) == (1, 2)  # warm: the same runtime process
    assert first["pid"] == second["pid"]

    resp, body = invoke(lambda_client, fname, {"crash": True})
    err = assert_unhandled(resp, body)
    assert err["errorType"] == "Runtime.ExitError"
    assert err["errorMessage"] == f"RequestId: {request_id(resp)} Error: Runtime exited with error: exit status 2"

    after = assert_ok(*invoke(lambda_client, fname, {"n": 3}))
    assert after["event"] == {"n": 3}
    assert after["count"] == 1  # a fresh runtime process: init ran again


def test_runtime_posted_error_reaches_caller_verbatim(lambda_client: Any, fname: str) -> None:
    deploy_custom(lambda_client, fname, {"bootstrap": PY_BOOTSTRAP})
    posted = '{"errorType":"Function.Custom","errorMessage":"custom failure","details":[1,2,{"k":"v"}]}'
    resp, body = invoke(lambda_client, fname, {"fail": posted})
    assert resp["StatusCode"] == 200
    assert resp.get("FunctionError") == "Unhandled"
    assert body == posted.encode()
    # Posting /error is not a crash: the same runtime serves the next invoke.
    ok = assert_ok(*invoke(lambda_client, fname, {"n": 1}))
    assert ok["count"] == 2
