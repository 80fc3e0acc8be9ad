"""Layers inside execution environments: /opt merged in order, read-only in sandboxes, on
Python's path, /opt/bin on PATH, a custom runtime's bootstrap from /opt; and the same in process
mode, where the layers' host directory stands in for /opt."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from lamina.testing import RunningServer, deploy, running_server, zip_files

BIN_HELLO = "#!/bin/sh\necho \"hello from $0\"\n"

LAYER_A = {
    "python/shared.py": "WHO = 'a'\n",
    "python/only_a.py": "X = 'only in a'\n",
    "bin/hello": BIN_HELLO,
}
LAYER_B = {
    "python/shared.py": "WHO = 'b'\n",  # overrides layer a's file: b comes later
    "python/lib/python3.11/site-packages/sitepkg.py": "Y = 'from site-packages'\n",
}

HANDLER = """\
import os, subprocess, sys

def handler(event, context):
    import only_a, shared, sitepkg
    out = subprocess.run(["hello"], capture_output=True, text=True, timeout=10)
    opt = os.environ.get("LAMINA_OPT_DIR", "/opt")
    try:
        with open(os.path.join(opt, "written-by-function"), "w") as f:
            f.write("x")
        write = "allowed"
    except OSError as exc:
        write = type(exc).__name__ + ":" + str(exc.errno)
    return {"shared": shared.WHO, "only_a": only_a.X, "sitepkg": sitepkg.Y, "hello": out.stdout.strip(),
            "hello_rc": out.returncode, "write": write, "shared_file": shared.__file__,
            "path": os.environ["PATH"], "ld": os.environ["LD_LIBRARY_PATH"]}
"""


def publish(client: Any, name: str, files: dict[str, str], executable: tuple[str, ...] = ()) -> str:
    arn: str = client.publish_layer_version(LayerName=name, Content={"ZipFile": zip_files(files, executable=executable)})[
        "LayerVersionArn"
    ]
    return arn


def invoke(client: Any, name: str, event: Any = None) -> Any:
    resp = client.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode())
    body = resp["Payload"].read()
    assert "FunctionError" not in resp, body
    return json.loads(body)


def layered_function(client: Any, fname: str) -> Any:
    a = publish(client, f"{fname}-a", LAYER_A, executable=("bin/hello",))
    b = publish(client, f"{fname}-b", LAYER_B)
    deploy(client, fname, {"app.py": HANDLER}, Layers=[a, b])
    return invoke(client, fname)


def test_python_function_uses_layers_in_sandbox(lambda_client: Any, server: RunningServer, fname: str) -> None:
    out = layered_function(lambda_client, fname)
    assert (out["shared"], out["only_a"], out["sitepkg"]) == ("b", "only in a", "from site-packages")
    assert out["shared_file"] == "/opt/python/shared.py"
    assert (out["hello"], out["hello_rc"]) == ("hello from /opt/bin/hello", 0)
    assert out["path"].endswith(":/opt/bin") and out["ld"].endswith(":/opt/lib")
    assert out["write"] in ("OSError:30", "PermissionError:13")  # EROFS: /opt is read-only
    # Layers in the other order: a's file wins.
    a, b = (lambda_client.get_function_configuration(FunctionName=fname)["Layers"][i]["Arn"] for i in (0, 1))
    lambda_client.update_function_configuration(FunctionName=fname, Layers=[b, a])
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=fname, WaiterConfig={"Delay": 0.05, "MaxAttempts": 400})
    assert invoke(lambda_client, fname)["shared"] == "a"


def test_merged_tree_is_built_once_and_content_stored_once(lambda_client: Any, server: RunningServer, fname: str) -> None:
    files = {"python/same.py": f"NAME = {fname!r}\n"}
    first = lambda_client.publish_layer_version(LayerName=f"{fname}-1", Content={"ZipFile": zip_files(files)})
    second = lambda_client.publish_layer_version(LayerName=f"{fname}-2", Content={"ZipFile": zip_files(files)})
    assert first["Content"]["CodeSha256"] == second["Content"]["CodeSha256"]
    code = server.data_dir / "code"
    sha = first["Content"]["CodeSha256"]
    hex_sha = base64.b64decode(sha).hex()
    assert [p.name for p in (code / "zips").iterdir() if p.name.startswith(hex_sha)] == [f"{hex_sha}.zip"]
    other = publish(lambda_client, f"{fname}-3", {"python/other.py": "Z = 3\n"})
    handler = "import same, other\ndef handler(e, c):\n    return [same.NAME, other.Z]\n"
    for i in range(2):
        deploy(lambda_client, f"{fname}-f{i}", {"app.py": handler}, Layers=[first["LayerVersionArn"], other])
        assert invoke(lambda_client, f"{fname}-f{i}") == [fname, 3]
    # Two functions with the same ordered layer list share one merged tree.
    merged = [p for p in (code / "merged").iterdir() if (p / "python" / "same.py").exists()
              and (p / "python" / "same.py").read_text() == files["python/same.py"]]  # fmt: skip
    assert len(merged) == 1
    assert (merged[0] / "python" / "same.py").stat().st_nlink >= 2  # a hard link, not a copy


def test_custom_runtime_bootstrap_from_a_layer(lambda_client: Any, fname: str) -> None:
    bootstrap = (
        "#!/usr/bin/env python3\n"
        "import json, os, urllib.request\n"
        "api = 'http://' + os.environ['AWS_LAMBDA_RUNTIME_API'] + '/2018-06-01/runtime/invocation/'\n"
        "while True:\n"
        "    with urllib.request.urlopen(api + 'next') as r:\n"
        "        rid = r.headers['Lambda-Runtime-Aws-Request-Id']\n"
        "        event = json.loads(r.read())\n"
        "    body = json.dumps({'bootstrap': __file__, 'event': event, 'task': sorted(os.listdir('.'))}).encode()\n"
        "    urllib.request.urlopen(urllib.request.Request(api + rid + '/response', data=body, method='POST')).read()\n"
    )
    arn = publish(lambda_client, fname, {"bootstrap": bootstrap}, executable=("bootstrap",))
    deploy(lambda_client, fname, {"function.sh": "echo unused\n"}, runtime="provided.al2023", handler="function.handler",
           Layers=[arn])  # fmt: skip
    out = invoke(lambda_client, fname, {"n": 1})
    assert out == {"bootstrap": "/opt/bootstrap", "event": {"n": 1}, "task": ["function.sh"]}


def test_deleted_layer_version_keeps_working(lambda_client: Any, fname: str) -> None:
    arn = publish(lambda_client, fname, {"python/kept.py": "V = 'kept'\n"})
    deploy(lambda_client, fname, {"app.py": "import kept\ndef handler(e, c):\n    return kept.V\n"}, Layers=[arn])
    lambda_client.delete_layer_version(LayerName=fname, VersionNumber=1)
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_layer_version(LayerName=fname, VersionNumber=1)
    # A configuration change gives new environments: they still get the deleted version's content.
    lambda_client.update_function_configuration(FunctionName=fname, MemorySize=256)
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=fname, WaiterConfig={"Delay": 0.05, "MaxAttempts": 400})
    assert invoke(lambda_client, fname) == "kept"
    assert lambda_client.get_function_configuration(FunctionName=fname)["Layers"][0]["Arn"] == arn
    # But it can no longer be newly referenced.
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException):
        lambda_client.update_function_configuration(FunctionName=fname, Layers=[arn])


def test_layers_in_process_mode(data_dir: Path, fname: str) -> None:
    with running_server(data_dir, isolation="process") as srv:
        client = srv.client()
        out = layered_function(client, fname)
        opt = Path(out["shared_file"]).parent.parent
        assert opt.is_relative_to(data_dir / "code")  # the host directory stands in for /opt
        assert (out["shared"], out["only_a"], out["sitepkg"]) == ("b", "only in a", "from site-packages")
        assert (out["hello"], out["hello_rc"]) == (f"hello from {opt}/bin/hello", 0)
        assert out["path"].endswith(f":{opt}/bin") and out["ld"].endswith(f":{opt}/lib")


def test_layers_with_the_bwrap_launcher(data_dir: Path, fname: str) -> None:
    """The zygote binds /opt itself; bubblewrap (the launcher without root) gets it as an option."""
    with running_server(data_dir, env={"LAMINA_SANDBOX_LAUNCHER": "bwrap"}) as srv:
        assert "sandboxes from the bwrap" in "".join(srv.output)
        out = layered_function(srv.client(), fname)
        assert (out["shared"], out["shared_file"], out["hello"]) == ("b", "/opt/python/shared.py", "hello from /opt/bin/hello")
        assert out["write"] in ("OSError:30", "PermissionError:13")
