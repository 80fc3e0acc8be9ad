"""Runtime lifecycle (spec 10) against a real server and boto3: deprecation dates that block
create, then update, never invoke (LAMINA_TODAY moves the server's today); runtime versions and
their update modes, with a second interpreter build installed while the server runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

import lamina
from lamina.runtimes.catalog import RuntimeCatalog
from lamina.testing import RunningServer, deploy, isolation_for_tests, running_server, wait_for_log

RUNTIME = "python3.11"
HOST_PYTHON = RuntimeCatalog.discover(shared_paths_only=isolation_for_tests() == "sandbox").get(RUNTIME)
pytestmark = pytest.mark.skipif(HOST_PYTHON is None, reason=f"{RUNTIME} is not installed on this host")

# Reports which interpreter runs it; with "hold" it keeps its environment busy that long.
HANDLER = """\
import sys, time

def handler(event, context):
    if event.get("hold"):
        time.sleep(event["hold"])
    return {"exe": sys.executable}
"""
BLOCKED = (
    "The runtime parameter of python3.11 is no longer supported for creating or updating AWS Lambda functions. "
    "We recommend you use a supported runtime while creating or updating functions."
)
ARN = re.compile(r"^arn:aws:lambda:us-east-1::runtime:[0-9a-f]{64}$")
_CLI_ENV = {**os.environ, "PYTHONPATH": str(Path(lamina.__file__).resolve().parents[1])}


def lamina_cli(endpoint: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "lamina", "--endpoint", endpoint, *args],
                          capture_output=True, text=True, timeout=60, env=_CLI_ENV)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def invoke(client: Any, name: str, event: dict[str, Any] | None = None) -> dict[str, Any]:
    resp = client.invoke(FunctionName=name, Payload=json.dumps(event or {}))
    body = json.loads(resp["Payload"].read())
    assert "FunctionError" not in resp, body
    return dict(body)


def version_arn(client: Any, name: str) -> str:
    return str(client.get_function(FunctionName=name)["Configuration"]["RuntimeVersionConfig"]["RuntimeVersionArn"])


def wait_updated(client: Any, name: str) -> None:
    client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.05, "MaxAttempts": 400})


def error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


# --- deprecation dates ---------------------------------------------------------------------------


def test_dates_block_create_then_update_never_invoke(data_dir: Path) -> None:
    name, other = "aging", "latecomer"
    with running_server(data_dir, env={"LAMINA_TODAY": "2027-07-01"}) as srv:  # deprecated only
        client = srv.client()
        deploy(client, name, {"app.py": HANDLER})  # Lambda still creates on a deprecated runtime
        assert invoke(client, name)["exe"]
        table = lamina_cli(srv.endpoint, "ls")
        assert re.search(rf"{name}\s+python3\.11 \(deprecated\)", table), table

    with running_server(data_dir, env={"LAMINA_TODAY": "2027-08-01"}) as srv:  # create blocked
        log = "".join(srv.output)
        assert f"function {name} uses runtime python3.11, deprecated since 2027-06-30" in log, log
        client = srv.client()
        with pytest.raises(ClientError) as exc:
            deploy(client, other, {"app.py": HANDLER})
        assert error(exc) == ("InvalidParameterValueException", BLOCKED)
        client.update_function_configuration(FunctionName=name, Timeout=5)  # updates still work
        wait_updated(client, name)
        assert invoke(client, name)["exe"]

    with running_server(data_dir, env={"LAMINA_TODAY": "2027-09-01"}) as srv:  # update blocked
        client = srv.client()
        with pytest.raises(ClientError) as exc:
            client.update_function_code(FunctionName=name, ZipFile=b"PK\x05\x06" + b"\0" * 18)
        assert error(exc) == ("InvalidParameterValueException", BLOCKED)
        with pytest.raises(ClientError) as exc:
            client.update_function_configuration(FunctionName=name, Timeout=7)
        assert error(exc) == ("InvalidParameterValueException", BLOCKED)
        assert client.get_function_configuration(FunctionName=name)["Timeout"] == 5
        assert invoke(client, name)["exe"]  # invocations are never blocked
        table = lamina_cli(srv.endpoint, "ls")
        assert re.search(rf"{name}\s+python3\.11 \(update-blocked\)", table), table
        catalog = lamina_cli(srv.endpoint, "runtimes")
        assert "runtimes on 2027-09-01" in catalog
        row = next(line for line in catalog.splitlines() if line.startswith("python3.11 "))
        assert row.split()[1:5] == ["update-blocked", "2027-06-30", "2027-07-31", "2027-08-31"], row
        assert str(HOST_PYTHON.interpreter) in row and version_arn(client, name) in row  # type: ignore[union-attr]
        python39 = next(line for line in catalog.splitlines() if line.startswith("python3.9 "))
        assert python39.split()[1:5] == ["update-blocked", "2025-12-15", "2027-02-01", "2027-03-03"], python39


# --- runtime versions ----------------------------------------------------------------------------


@pytest.fixture
def builds() -> Iterator[Path]:
    """A directory of extra interpreter builds that sandbox uids can read."""
    root = Path(tempfile.mkdtemp(prefix="lamina-builds-", dir="/tmp"))
    os.chmod(root, 0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def install_patched_python(builds: Path, build: str) -> Path:
    """A "patched" python3.11: the host's binary with bytes appended (another build that behaves
    the same), its standard library linked from the host's. Returns the build's interpreter."""
    home = builds / RUNTIME / build
    (home / "lib").mkdir(parents=True)
    os.symlink(f"/usr/lib/{RUNTIME}", home / "lib" / RUNTIME)
    tmp = home / "bin.partial"
    tmp.mkdir()
    exe = tmp / RUNTIME
    shutil.copyfile(HOST_PYTHON.interpreter, exe)  # type: ignore[union-attr]
    with exe.open("ab") as f:
        f.write(f"\0lamina test build {build}\0".encode())
    exe.chmod(0o755)
    for d in (builds / RUNTIME, home, home / "lib", tmp):
        d.chmod(0o755)
    tmp.rename(home / "bin")  # appears whole
    return home / "bin" / RUNTIME


def cold_start_beside_busy(srv: RunningServer, client: Any, name: str) -> tuple[str, str]:
    """Invoke `name` twice at once: the first holds its (warm) environment busy for a few seconds,
    so the second needs a cold start. Returns (interpreter of the held warm one, of the new one)."""
    held: dict[str, Any] = {}
    t = threading.Thread(target=lambda: held.update(invoke(client, name, {"hold": 3})))
    t.start()
    try:
        wait_busy(srv, name)
        fresh = invoke(client, name)["exe"]
    finally:
        t.join(30)
    return held["exe"], fresh


def wait_busy(srv: RunningServer, name: str, timeout: float = 20.0) -> None:
    """Until an environment of `name` is busy. Polled: the admin API is the only place that says
    so while it lasts (log lines are written when the invocation ends)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        details = admin(srv, "/lamina/v1/environments")["details"]
        if any(d["function"] == name and d["state"] == "busy" for d in details):
            return
        time.sleep(0.01)
    raise TimeoutError(f"no environment of {name} became busy in {timeout} s")


def admin(srv: RunningServer, path: str) -> Any:
    with urllib.request.urlopen(srv.endpoint + path, timeout=30) as r:
        return json.loads(r.read())


def test_runtime_versions_and_update_modes(data_dir: Path, builds: Path) -> None:
    with running_server(data_dir, env={"LAMINA_RUNTIME_BUILDS": str(builds)}) as srv:
        client = srv.client()
        for fn in ("auto", "onupdate", "pinned"):
            deploy(client, fn, {"app.py": HANDLER}, Timeout=15)
        v1 = version_arn(client, "auto")
        assert ARN.match(v1), v1
        host_exe = invoke(client, "auto")["exe"]
        start = wait_for_log(srv.endpoint, "auto", "INIT_START")
        line = next(text for text in start if text.startswith("INIT_START"))
        assert re.fullmatch(rf"INIT_START Runtime Version: python:3\.11\.\d+-{v1[-64:][:8]}\tRuntime Version ARN: {v1}\n?", line), line

        # Modes: Get says Auto by default; RuntimeVersionArn is only ever returned for Manual.
        assert client.get_runtime_management_config(FunctionName="auto")["UpdateRuntimeOn"] == "Auto"
        put = client.put_runtime_management_config(FunctionName="onupdate", UpdateRuntimeOn="FunctionUpdate")
        assert (put["UpdateRuntimeOn"], put.get("RuntimeVersionArn")) == ("FunctionUpdate", None)
        put = client.put_runtime_management_config(FunctionName="pinned", UpdateRuntimeOn="Manual", RuntimeVersionArn=v1)
        assert put["RuntimeVersionArn"] == v1
        assert put["FunctionArn"] == "arn:aws:lambda:us-east-1:000000000000:function:pinned"
        with pytest.raises(ClientError) as exc:
            client.put_runtime_management_config(FunctionName="pinned", UpdateRuntimeOn="Manual")
        assert error(exc)[0] == "InvalidParameterValueException"
        with pytest.raises(ClientError) as exc:
            client.put_runtime_management_config(FunctionName="pinned", UpdateRuntimeOn="Manual",
                                                 RuntimeVersionArn="arn:aws:lambda:us-east-1::runtime:" + "0" * 64)  # fmt: skip
        assert error(exc)[0] == "InvalidParameterValueException" and "is not installed" in error(exc)[1]
        for fn in ("onupdate", "pinned"):
            assert invoke(client, fn)["exe"] == host_exe

        # The host's Python is patched: a second build appears while the server runs.
        patched = install_patched_python(builds, "patch1")
        catalog = admin(srv, "/lamina/v1/runtimes")
        row = next(r for r in catalog["runtimes"] if r["identifier"] == RUNTIME)
        v2 = row["versions"][0]["arn"]
        assert row["versions"][0]["interpreter"] == str(patched) and ARN.match(v2) and v2 != v1
        assert [v["arn"] for v in row["versions"]] == [v2, v1]

        # Auto: the next cold start takes the new build; the warm environment keeps its own.
        warm, cold = cold_start_beside_busy(srv, client, "auto")
        assert warm == host_exe and cold != host_exe and cold.endswith("/bin/python3.11"), (warm, cold)
        assert version_arn(client, "auto") == v2
        lines = wait_for_log(srv.endpoint, "auto", v2)
        assert sum("INIT_START" in line and v2 in line for line in lines) == 1
        envs = admin(srv, "/lamina/v1/environments")["details"]
        assert sorted(e["runtimeVersionArn"] for e in envs if e["function"] == "auto") == sorted([v1, v2])

        # FunctionUpdate: a cold start stays on the old build; the next update moves it.
        warm, cold = cold_start_beside_busy(srv, client, "onupdate")
        assert warm == cold == host_exe
        assert version_arn(client, "onupdate") == v1
        client.update_function_configuration(FunctionName="onupdate", Environment={"Variables": {"STEP": "2"}})
        wait_updated(client, "onupdate")
        assert version_arn(client, "onupdate") == v2
        assert invoke(client, "onupdate")["exe"] == cold_exe_of(v2, srv)

        # Manual: stays pinned through cold starts and updates; moves only when pinned elsewhere.
        client.update_function_configuration(FunctionName="pinned", Environment={"Variables": {"STEP": "2"}})
        wait_updated(client, "pinned")
        assert version_arn(client, "pinned") == v1
        assert invoke(client, "pinned")["exe"] == host_exe
        client.put_runtime_management_config(FunctionName="pinned", UpdateRuntimeOn="Manual", RuntimeVersionArn=v2)
        assert client.get_runtime_management_config(FunctionName="pinned")["RuntimeVersionArn"] == v2
        assert invoke(client, "pinned")["exe"] == cold_exe_of(v2, srv)

        # The pinned build is removed: the next cold start fails clearly, nothing else runs.
        shutil.rmtree(builds / RUNTIME / "patch1")
        client.update_function_configuration(FunctionName="pinned", Environment={"Variables": {"STEP": "3"}})
        wait_updated(client, "pinned")
        with pytest.raises(ClientError) as exc:
            client.invoke(FunctionName="pinned", Payload=b"{}")
        code, message = error(exc)
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 502
        assert code == "InvalidRuntimeException"
        assert f"The runtime version {v2} that function pinned is pinned to (UpdateRuntimeOn Manual) is no longer installed" in message
        assert v1 in message  # and it names what could be pinned instead
        rvc = client.get_function_configuration(FunctionName="pinned")["RuntimeVersionConfig"]
        assert rvc["RuntimeVersionArn"] == v2 and rvc["Error"]["ErrorCode"] == "RuntimeVersionNotInstalled"
        # Auto falls back to what is installed: the host's build again.
        assert version_arn(client, "auto") == v1


def cold_exe_of(arn: str, srv: RunningServer) -> str:
    """The interpreter path a function running runtime version `arn` reports (as it sees it)."""
    row = next(r for r in admin(srv, "/lamina/v1/runtimes")["runtimes"] if r["identifier"] == RUNTIME)
    interpreter = next(v["interpreter"] for v in row["versions"] if v["arn"] == arn)
    if isolation_for_tests() == "sandbox" and not interpreter.startswith("/usr/"):
        return f"/var/lang/bin/{RUNTIME}"  # builds outside /usr are mapped where Lambda keeps its language
    return str(interpreter)


def test_runtime_management_config_api(lambda_client: Any, fname: str) -> None:
    client = lambda_client
    deploy(client, fname, {"app.py": HANDLER})
    current = client.get_function_configuration(FunctionName=fname)["RuntimeVersionConfig"]["RuntimeVersionArn"]
    assert ARN.match(current)
    pages = client.get_paginator("list_functions").paginate()
    listed = next(f for page in pages for f in page["Functions"] if f["FunctionName"] == fname)
    assert "RuntimeVersionConfig" not in listed  # ListFunctions items omit it (spec 2.1)
    got = client.get_runtime_management_config(FunctionName=fname)
    assert (got["UpdateRuntimeOn"], got["FunctionArn"], got.get("RuntimeVersionArn")) == (
        "Auto", f"arn:aws:lambda:us-east-1:000000000000:function:{fname}", None)  # fmt: skip

    # A published version has a setting of its own, kept apart from $LATEST's.
    client.publish_version(FunctionName=fname)
    put = client.put_runtime_management_config(FunctionName=fname, Qualifier="1", UpdateRuntimeOn="Manual", RuntimeVersionArn=current)
    assert (put["FunctionArn"], put["RuntimeVersionArn"]) == (f"arn:aws:lambda:us-east-1:000000000000:function:{fname}:1", current)
    assert client.get_runtime_management_config(FunctionName=f"{fname}:1")["UpdateRuntimeOn"] == "Manual"
    assert client.get_runtime_management_config(FunctionName=fname)["UpdateRuntimeOn"] == "Auto"
    assert invoke(client, f"{fname}:1")["exe"]

    client.create_alias(FunctionName=fname, Name="live", FunctionVersion="1")
    with pytest.raises(ClientError) as exc:
        client.get_runtime_management_config(FunctionName=fname, Qualifier="live")
    assert error(exc)[0] == "InvalidParameterValueException"
    with pytest.raises(ClientError) as exc:
        client.put_runtime_management_config(FunctionName=fname, UpdateRuntimeOn="Auto", RuntimeVersionArn=current)
    assert error(exc)[0] == "InvalidParameterValueException"
    with pytest.raises(ClientError) as exc:
        client.put_runtime_management_config(FunctionName=fname, UpdateRuntimeOn="Manual", RuntimeVersionArn="arn:aws:lambda:us-east-1::runtime")
    assert error(exc)[0] == "ValidationException"
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_runtime_management_config(FunctionName=fname + "-missing")
