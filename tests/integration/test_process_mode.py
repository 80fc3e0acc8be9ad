"""The `process` isolation mode end to end: the Sandbox seam's second real implementation.

The rest of the suite runs in sandbox mode; this module runs the core flows against a server
started with `--isolation process`, including every python3.X interpreter the host has (sandbox
mode only offers interpreters that sandbox uids can reach).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from lamina.runtimes.catalog import RuntimeCatalog
from lamina.testing import RunningServer, data_directory, deploy, running_server

APP = """
import os, sys, tempfile
count = 0
def handler(event, context):
    global count
    count += 1
    if event.get("exit"):
        os._exit(4)
    path = os.path.join(tempfile.gettempdir(), "kept")
    if event.get("write"):
        open(path, "w").write("yes")
    if event.get("sleep"):
        import time
        time.sleep(event["sleep"])
    return {"count": count, "version": "%d.%d" % sys.version_info[:2], "tmp": os.path.exists(path),
            "task_root": os.environ["LAMBDA_TASK_ROOT"]}
"""


@pytest.fixture(scope="module")
def process_server() -> Iterator[RunningServer]:
    with data_directory() as data_dir, running_server(data_dir, isolation="process") as srv:
        yield srv


def call(client: Any, name: str, event: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    resp = client.invoke(FunctionName=name, Payload=json.dumps(event), LogType="Tail")
    return resp, json.loads(resp["Payload"].read())


def test_start_line_names_the_mode(process_server: RunningServer) -> None:
    assert "isolation: process, asked for with --isolation process" in "".join(process_server.output)


def test_invoke_reset_and_tmp(process_server: RunningServer) -> None:
    c = process_server.client()
    deploy(c, "proc-basic", {"app.py": APP}, Timeout=1)
    _, first = call(c, "proc-basic", {"write": True})
    assert first["count"] == 1 and first["tmp"] is True
    assert first["task_root"] != "/var/task"  # process mode shows host paths
    resp, body = call(c, "proc-basic", {"sleep": 3})
    assert body["errorType"] == "Sandbox.Timedout"
    resp, body = call(c, "proc-basic", {"exit": True})
    assert body["errorType"] == "Runtime.ExitError" and body["errorMessage"].endswith("exit status 4")
    resp, after = call(c, "proc-basic", {})
    assert after["count"] == 1 and after["tmp"] is True  # reset, /tmp kept
    assert "Init Duration" in base64.b64decode(resp["LogResult"]).decode()


@pytest.mark.parametrize(
    "runtime", [r for r in RuntimeCatalog.discover().available if r.startswith("python3.")], ids=lambda r: r.replace(".", "")
)
def test_every_host_python(process_server: RunningServer, runtime: str) -> None:
    c = process_server.client()
    name = "proc-" + runtime.replace(".", "")
    deploy(c, name, {"app.py": APP}, runtime=runtime)
    _, body = call(c, name, {})
    assert body["version"] == runtime.removeprefix("python")


NODE_APP = """
exports.handler = async () => ({
  version: process.versions.node,
  sdk: require('@aws-sdk/client-s3/package.json').version,
  nodePath: process.env.NODE_PATH.split(':'),
});
"""


@pytest.mark.parametrize(
    "runtime", [r for r in RuntimeCatalog.discover().available if r.startswith("nodejs")], ids=lambda r: r.replace(".", "")
)
def test_every_host_node(process_server: RunningServer, runtime: str) -> None:
    """Without a mapped root, NODE_PATH names the host's SDK and runtime directories."""
    c = process_server.client()
    name = "proc-" + runtime.replace(".", "")
    deploy(c, name, {"index.js": NODE_APP}, runtime=runtime, handler="index.handler")
    _, body = call(c, name, {})
    assert body["version"].split(".")[0] == runtime.removeprefix("nodejs").split(".")[0]
    assert body["nodePath"][2].endswith("lamina/runtimes/sdk/nodejs/node_modules")
    assert body["sdk"]
