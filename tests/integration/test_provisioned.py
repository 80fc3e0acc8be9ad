"""Provisioned concurrency: environments initialised ahead of traffic (spec 2.2, 8)."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from lamina.testing import RunningServer, deploy, running_server

APP = """
import os, time, uuid
TOKEN = uuid.uuid4().hex
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"init": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"], "token": TOKEN}
"""


def wait_status(client: Any, name: str, qualifier: str, want: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll GetProvisionedConcurrencyConfig, as a client of the API must (there is no waiter)."""
    deadline = time.monotonic() + timeout
    while True:
        conf: dict[str, Any] = client.get_provisioned_concurrency_config(FunctionName=name, Qualifier=qualifier)
        if conf["Status"] == want or time.monotonic() > deadline:
            return conf
        time.sleep(0.05)


def environments(endpoint: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{endpoint}/lamina/v1/environments", timeout=10) as r:
        return list(json.loads(r.read())["details"])


def invoke(client: Any, name: str, qualifier: str, event: dict[str, Any] | None = None) -> tuple[Any, str]:
    resp = client.invoke(FunctionName=name, Qualifier=qualifier, Payload=json.dumps(event or {}), LogType="Tail")
    return json.loads(resp["Payload"].read()), base64.b64decode(resp["LogResult"]).decode()


def test_provisioned_environments_serve_warm(server: RunningServer, lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": APP})
    version = lambda_client.publish_version(FunctionName=fname)["Version"]
    put = lambda_client.put_provisioned_concurrency_config(FunctionName=fname, Qualifier=version, ProvisionedConcurrentExecutions=2)
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert put["RequestedProvisionedConcurrentExecutions"] == 2
    assert put["Status"] in ("IN_PROGRESS", "READY")
    conf = wait_status(lambda_client, fname, version, "READY")
    assert conf["Status"] == "READY" and conf["AllocatedProvisionedConcurrentExecutions"] == 2
    mine = [e for e in environments(server.endpoint) if e["function"] == fname]
    assert len(mine) == 2 and all(e["provisioned"] for e in mine)

    # Two at once: both served by the provisioned environments, warm (no Init Duration).
    results: list[tuple[Any, str]] = []
    threads = [threading.Thread(target=lambda: results.append(invoke(lambda_client, fname, version, {"sleep": 0.5}))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [r[0]["init"] for r in results] == ["provisioned-concurrency"] * 2
    assert len({r[0]["token"] for r in results}) == 2
    assert not any("Init Duration" in tail for _, tail in results)
    assert all("\tStart: provisioned\t" in tail for _, tail in results)
    listed = lambda_client.list_provisioned_concurrency_configs(FunctionName=fname)["ProvisionedConcurrencyConfigs"]
    assert [c["FunctionArn"] for c in listed] == [f"arn:aws:lambda:us-east-1:000000000000:function:{fname}:{version}"]

    lambda_client.delete_provisioned_concurrency_config(FunctionName=fname, Qualifier=version)
    with pytest.raises(lambda_client.exceptions.ProvisionedConcurrencyConfigNotFoundException):
        lambda_client.get_provisioned_concurrency_config(FunctionName=fname, Qualifier=version)
    assert not [e for e in environments(server.endpoint) if e["function"] == fname and e["provisioned"]]


def test_provisioned_on_an_alias(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": APP})
    version = lambda_client.publish_version(FunctionName=fname)["Version"]
    lambda_client.create_alias(FunctionName=fname, Name="live", FunctionVersion=version)
    lambda_client.put_provisioned_concurrency_config(FunctionName=fname, Qualifier="live", ProvisionedConcurrentExecutions=1)
    assert wait_status(lambda_client, fname, "live", "READY")["Status"] == "READY"
    body, tail = invoke(lambda_client, fname, "live")
    assert body["init"] == "provisioned-concurrency" and "Init Duration" not in tail
    lambda_client.delete_alias(FunctionName=fname, Name="live")
    with pytest.raises(lambda_client.exceptions.ProvisionedConcurrencyConfigNotFoundException):
        lambda_client.get_provisioned_concurrency_config(FunctionName=fname, Qualifier="live")


def test_provisioned_validation(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": APP})
    with pytest.raises(ClientError) as exc:
        lambda_client.put_provisioned_concurrency_config(FunctionName=fname, Qualifier="$LATEST", ProvisionedConcurrentExecutions=1)
    assert exc.value.response["Error"]["Message"] == "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
    version = lambda_client.publish_version(FunctionName=fname)["Version"]
    with pytest.raises(lambda_client.exceptions.ProvisionedConcurrencyConfigNotFoundException) as nf:
        lambda_client.get_provisioned_concurrency_config(FunctionName=fname, Qualifier=version)
    assert nf.value.response["Error"]["Message"] == "No Provisioned Concurrency Config found for this function"
    lambda_client.put_function_concurrency(FunctionName=fname, ReservedConcurrentExecutions=1)
    with pytest.raises(ClientError) as exc:
        lambda_client.put_provisioned_concurrency_config(FunctionName=fname, Qualifier=version, ProvisionedConcurrentExecutions=2)
    assert "should not be greater than the reservedConcurrentExecution" in exc.value.response["Error"]["Message"]


def test_init_failure_is_reported(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": "raise RuntimeError('no')\n"})
    version = lambda_client.publish_version(FunctionName=fname)["Version"]
    lambda_client.put_provisioned_concurrency_config(FunctionName=fname, Qualifier=version, ProvisionedConcurrentExecutions=1)
    conf = wait_status(lambda_client, fname, version, "FAILED")
    assert conf["Status"] == "FAILED" and conf["StatusReason"] == "FUNCTION_ERROR_INIT_FAILURE"


def test_provisioned_survive_idle_reaping_and_restart(data_dir: Path) -> None:
    with running_server(data_dir, extra_args=("--idle-timeout", "0.2")) as srv:
        c = srv.client()
        deploy(c, "prov", {"app.py": APP})
        version = c.publish_version(FunctionName="prov")["Version"]
        c.put_provisioned_concurrency_config(FunctionName="prov", Qualifier=version, ProvisionedConcurrentExecutions=1)
        assert wait_status(c, "prov", version, "READY")["Status"] == "READY"
        first, _ = invoke(c, "prov", version)
        c.invoke(FunctionName="prov")["Payload"].read()  # an on-demand $LATEST environment, reaped soon
        deadline = time.monotonic() + 10
        while any(not e["provisioned"] for e in environments(srv.endpoint)) and time.monotonic() < deadline:
            time.sleep(0.05)  # the reaper runs on its own clock
        envs = environments(srv.endpoint)
        assert [e["provisioned"] for e in envs] == [True]  # on-demand reaped, provisioned kept
        again, tail = invoke(c, "prov", version)
        assert again["token"] == first["token"] and "Init Duration" not in tail
    with running_server(data_dir) as srv:
        c = srv.client()
        assert wait_status(c, "prov", version, "READY")["Status"] == "READY"
        body, tail = invoke(c, "prov", version)
        assert body["init"] == "provisioned-concurrency" and "Init Duration" not in tail
