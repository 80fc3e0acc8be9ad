"""The server as a process: restart on the same data directory, limits, idle reaping, shutdown."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from lamina.testing import deploy, processes_with_env, read_logs, running_server, zip_files

# TOKEN is new in every runtime process (pids are namespaced inside sandboxes, so not comparable).
PID_APP = (
    "import os, time, uuid\nTOKEN = uuid.uuid4().hex\n"
    "def handler(e, c):\n    time.sleep(e.get('sleep', 0))\n    return {'token': TOKEN, 'v': 1}\n"
)


def marked() -> dict[str, Any]:
    """Environment with a unique marker, to find the function's processes on the host."""
    return {"Variables": {"TEST_MARKER": uuid.uuid4().hex}}


def runtime_processes(env: dict[str, Any]) -> list[int]:
    return processes_with_env("TEST_MARKER", env["Variables"]["TEST_MARKER"])


def payload(resp: dict[str, Any]) -> Any:
    return json.loads(resp["Payload"].read())


def environments(endpoint: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{endpoint}/lamina/v1/environments", timeout=10) as r:
        return dict(json.loads(r.read()))


def test_state_survives_restart(data_dir: Path) -> None:
    data = data_dir
    with running_server(data) as srv:
        c = srv.client()
        env = {"Variables": {"KEY": "v", **marked()["Variables"]}}
        arn = deploy(c, "keeper", {"app.py": PID_APP}, Tags={"team": "x"}, Environment=env)["FunctionArn"]
        c.publish_version(FunctionName="keeper")
        c.create_alias(FunctionName="keeper", Name="prod", FunctionVersion="1")
        payload(c.invoke(FunctionName="keeper"))
        assert runtime_processes(env)
        sha = c.get_function(FunctionName="keeper")["Configuration"]["CodeSha256"]
    assert runtime_processes(env) == []  # the runtime died with the server
    with running_server(data) as srv:
        c = srv.client()
        conf = c.get_function(FunctionName="keeper")
        assert conf["Configuration"]["State"] == "Active"
        assert conf["Configuration"]["CodeSha256"] == sha
        assert conf["Configuration"]["Environment"] == env
        assert c.list_tags(Resource=arn)["Tags"] == {"team": "x"}
        assert [v["Version"] for v in c.list_versions_by_function(FunctionName="keeper")["Versions"]] == ["$LATEST", "1"]
        assert c.get_alias(FunctionName="keeper", Name="prod")["FunctionVersion"] == "1"
        assert payload(c.invoke(FunctionName="keeper", Qualifier="prod"))["v"] == 1
        events, _ = read_logs(srv.endpoint, "keeper")
        assert sum(1 for e in events if e["message"].startswith("REPORT")) == 2  # logs were kept too
    # Code is stored once by hash and unpacked once per hash.
    assert len(list((data / "code" / "zips").glob("*.zip"))) == 1
    assert len([p for p in (data / "code" / "unpacked").iterdir() if not p.name.startswith(".")]) == 1


def test_update_while_pending_recovers_after_crash(data_dir: Path) -> None:
    """A function created just before a crash is Active after the restart, not stuck Pending."""
    data = data_dir
    with running_server(data) as srv:
        c = srv.client()
        c.create_function(FunctionName="early", Runtime="python3.11", Role="arn:aws:iam::000000000000:role/x",
                          Handler="app.handler", Code={"ZipFile": zip_files({"app.py": PID_APP})})  # fmt: skip
        srv.process.kill()  # SIGKILL: no clean shutdown
        srv.process.wait(10)
    with running_server(data) as srv:
        c = srv.client()
        c.get_waiter("function_active_v2").wait(FunctionName="early", WaiterConfig={"Delay": 1, "MaxAttempts": 20})
        assert payload(c.invoke(FunctionName="early"))["v"] == 1


def test_account_concurrency_limit_throttles(data_dir: Path) -> None:
    with running_server(data_dir, extra_args=("--max-concurrency", "1")) as srv:
        c = srv.client()
        deploy(c, "slow", {"app.py": PID_APP})
        started = threading.Event()
        results: list[Any] = []

        def slow_call() -> None:
            started.set()
            results.append(payload(c.invoke(FunctionName="slow", Payload=b'{"sleep": 2}')))

        t = threading.Thread(target=slow_call)
        t.start()
        started.wait(5)
        # Wait until the slow call holds the only unit of concurrency.
        deadline = time.monotonic() + 10
        while environments(srv.endpoint)["busy"] != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(c.exceptions.TooManyRequestsException) as exc:
            c.invoke(FunctionName="slow")
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert exc.value.response["Reason"] == "ConcurrentInvocationLimitExceeded"
        t.join(30)
        assert results and results[0]["v"] == 1


def test_idle_environments_are_reaped(data_dir: Path) -> None:
    with running_server(data_dir, extra_args=("--idle-timeout", "0.3")) as srv:
        c = srv.client()
        env = marked()
        deploy(c, "idler", {"app.py": PID_APP}, Environment=env)
        token = payload(c.invoke(FunctionName="idler"))["token"]
        assert runtime_processes(env)
        assert environments(srv.endpoint)["environments"] == 1
        deadline = time.monotonic() + 15
        while environments(srv.endpoint)["environments"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert environments(srv.endpoint)["environments"] == 0
        assert runtime_processes(env) == []
        resp = c.invoke(FunctionName="idler", LogType="Tail")
        assert payload(resp)["token"] != token
        assert "Init Duration" in __import__("base64").b64decode(resp["LogResult"]).decode()


def test_sigterm_stops_cleanly(data_dir: Path) -> None:
    with running_server(data_dir) as srv:
        c = srv.client()
        env = marked()
        deploy(c, "term", {"app.py": PID_APP}, Environment=env)
        payload(c.invoke(FunctionName="term"))
        assert runtime_processes(env)
        srv.process.terminate()
        assert srv.process.wait(15) == 0
        assert "Lamina stopped." in "".join(srv.output)
        assert runtime_processes(env) == []
        assert os.path.exists(data_dir / "lamina.db")


def test_init_longer_than_the_init_limit(data_dir: Path) -> None:
    """Init past the limit is retried inside the invoke; past the function timeout it is a timeout."""
    slow_import = "import time\ntime.sleep(float(open('delay').read()))\ndef handler(e, c):\n    return 'ready'\n"
    with running_server(data_dir, env={"LAMINA_INIT_TIMEOUT": "0.5"}) as srv:
        c = srv.client()
        deploy(c, "slowinit", {"app.py": slow_import, "delay": "3"}, Timeout=1)
        resp = c.invoke(FunctionName="slowinit", LogType="Tail")
        rid = resp["ResponseMetadata"]["RequestId"]
        assert resp["FunctionError"] == "Unhandled"
        assert payload(resp) == {"errorType": "Sandbox.Timedout", "errorMessage": f"RequestId: {rid} Error: Task timed out after 1.00 seconds"}
        events, _ = read_logs(srv.endpoint, "slowinit")
        reports = [e["message"] for e in events if e["message"].startswith("INIT_REPORT")]
        assert any("Phase: init\tStatus: timeout" in r for r in reports)
        assert any("Phase: invoke\tStatus: timeout" in r for r in reports)
        # Init slower than the init limit but within the function timeout succeeds in the invoke.
        deploy(c, "slowinit2", {"app.py": slow_import, "delay": "0.8"}, Timeout=5)
        assert payload(c.invoke(FunctionName="slowinit2")) == "ready"


def test_shutdown_does_not_wait_for_log_long_polls(data_dir: Path) -> None:
    with running_server(data_dir) as srv:
        c = srv.client()
        deploy(c, "quiet", {"app.py": PID_APP})
        c.invoke(FunctionName="quiet")["Payload"].read()
        _, cursor = read_logs(srv.endpoint, "quiet")
        outcome: list[object] = []

        def long_poll() -> None:
            try:
                outcome.append(read_logs(srv.endpoint, "quiet", cursor=cursor, wait=30))
            except OSError as exc:  # connected only after shutdown began: refused or reset
                outcome.append(exc)

        poll = threading.Thread(target=long_poll)
        poll.start()
        deadline = time.monotonic() + 10
        started = time.monotonic()
        srv.process.terminate()
        assert srv.process.wait(max(0.1, deadline - time.monotonic())) == 0
        assert time.monotonic() - started < 5  # well before the 30 s long-poll would have ended
        poll.join(10)
        assert outcome  # the long-poll ended (answered or cut off), it did not hang
