"""The real AWS CLI (awscli v1, run as a subprocess) against a real server on loopback."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lamina.testing import DEFAULT_ROLE, RunningServer, zip_files

CLI_TIMEOUT = 120.0
# AWS CLI v2 base64-decodes blob arguments unless told `--cli-binary-format raw-in-base64-out`;
# v1 (the pinned awscli 1.x) takes them raw and rejects that option as unknown.
_AWSCLI_MAJOR = int(importlib.metadata.version("awscli").split(".")[0])
RAW_PAYLOAD: tuple[str, ...] = ("--cli-binary-format", "raw-in-base64-out") if _AWSCLI_MAJOR >= 2 else ()
APP = """\
def handler(event, context):
    return {"got": event, "request_id": context.aws_request_id, "name": context.function_name}


def boom(event, context):
    raise RuntimeError("cli saw this: " + str(event.get("why")))
"""


def _cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_PAGER": "",
            "HOME": str(tmp_path),  # no ~/.aws cache or config from the machine
        }
    )
    return env


class AwsCli:
    def __init__(self, server: RunningServer, tmp_path: Path) -> None:
        self.endpoint = server.endpoint
        self.env = _cli_env(tmp_path)
        self.cwd = tmp_path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [
            sys.executable,
            "-m",
            "awscli",
            *args,
            "--endpoint-url",
            self.endpoint,
            "--region",
            "us-east-1",
            "--output",
            "json",
        ]
        return subprocess.run(argv, capture_output=True, text=True, timeout=CLI_TIMEOUT, env=self.env, cwd=self.cwd)

    def ok(self, *args: str) -> Any:
        result = self.run(*args)
        detail = f"aws {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        assert result.returncode == 0, detail
        return json.loads(result.stdout) if result.stdout.strip() else None


@pytest.fixture
def aws(server: RunningServer, tmp_path: Path) -> AwsCli:
    return AwsCli(server, tmp_path)


def _create(aws: AwsCli, tmp_path: Path, name: str, handler: str = "app.handler") -> dict[str, Any]:
    zip_path = tmp_path / "fn.zip"
    zip_path.write_bytes(zip_files({"app.py": APP}))
    created: dict[str, Any] = aws.ok(
        "lambda",
        "create-function",
        "--function-name",
        name,
        "--runtime",
        "python3.11",
        "--role",
        DEFAULT_ROLE,
        "--handler",
        handler,
        "--zip-file",
        f"fileb://{zip_path}",
    )
    aws.ok("lambda", "wait", "function-active-v2", "--function-name", name)
    return created


def test_function_lifecycle(aws: AwsCli, fname: str, tmp_path: Path) -> None:
    created = _create(aws, tmp_path, fname)
    assert created["FunctionName"] == fname
    assert created["FunctionArn"].endswith(f":function:{fname}")
    assert created["Runtime"] == "python3.11"
    assert created["Handler"] == "app.handler"
    assert created["CodeSize"] == (tmp_path / "fn.zip").stat().st_size

    listed = aws.ok("lambda", "list-functions")
    names = [f["FunctionName"] for f in listed["Functions"]]
    assert fname in names

    payload = {"hello": "cli", "n": 42}
    out_file = tmp_path / "out.json"
    meta = aws.ok(
        "lambda",
        "invoke",
        "--function-name",
        fname,
        "--payload",
        json.dumps(payload),
        *RAW_PAYLOAD,
        str(out_file),
    )
    assert meta["StatusCode"] == 200
    assert meta["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in meta
    result = json.loads(out_file.read_text())
    assert result["got"] == payload
    assert result["name"] == fname
    assert result["request_id"]

    got = aws.ok("lambda", "get-function", "--function-name", fname)
    assert got["Configuration"]["FunctionName"] == fname
    assert got["Configuration"]["State"] == "Active"
    assert got["Configuration"]["CodeSha256"] == created["CodeSha256"]
    assert got["Code"]["RepositoryType"] == "S3"
    assert got["Code"]["Location"]

    # DeleteFunction's output shape is just the HTTP status; AWS answers 204 (spec 2.2).
    assert aws.ok("lambda", "delete-function", "--function-name", fname) == {"StatusCode": 204}
    gone = aws.run("lambda", "get-function", "--function-name", fname)
    assert gone.returncode != 0
    assert "ResourceNotFoundException" in gone.stderr
    assert fname not in [f["FunctionName"] for f in aws.ok("lambda", "list-functions")["Functions"]]


def test_invoke_function_error(aws: AwsCli, fname: str, tmp_path: Path) -> None:
    _create(aws, tmp_path, fname, handler="app.boom")
    out_file = tmp_path / "err.json"
    meta = aws.ok(
        "lambda",
        "invoke",
        "--function-name",
        fname,
        "--payload",
        '{"why": "testing"}',
        *RAW_PAYLOAD,
        str(out_file),
    )
    assert meta["StatusCode"] == 200
    assert meta["FunctionError"] == "Unhandled"
    err = json.loads(out_file.read_text())
    assert err["errorType"] == "RuntimeError"
    assert err["errorMessage"] == "cli saw this: testing"


def test_get_missing_function_fails(aws: AwsCli, fname: str) -> None:
    result = aws.run("lambda", "get-function", "--function-name", f"missing-{fname}")
    assert result.returncode != 0
    assert "ResourceNotFoundException" in result.stderr
    assert f"missing-{fname}" in result.stderr
    assert result.stdout.strip() == ""
