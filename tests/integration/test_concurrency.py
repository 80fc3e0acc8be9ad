"""Reserved concurrency: the API, the account figures, and the throttling it implies (spec 8)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from lamina.testing import deploy, running_server

SLOW = "import time\ndef handler(e, c):\n    time.sleep(e.get('sleep', 0))\n    return 'done'\n"


def test_reserved_concurrency_api(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": SLOW})
    assert "ReservedConcurrentExecutions" not in lambda_client.get_function_concurrency(FunctionName=fname)
    before = lambda_client.get_account_settings()["AccountLimit"]
    assert lambda_client.put_function_concurrency(FunctionName=fname, ReservedConcurrentExecutions=5)["ReservedConcurrentExecutions"] == 5
    assert lambda_client.get_function_concurrency(FunctionName=fname)["ReservedConcurrentExecutions"] == 5
    assert lambda_client.get_function(FunctionName=fname)["Concurrency"] == {"ReservedConcurrentExecutions": 5}
    after = lambda_client.get_account_settings()["AccountLimit"]
    assert after["UnreservedConcurrentExecutions"] == before["UnreservedConcurrentExecutions"] - 5
    with pytest.raises(ClientError) as exc:
        lambda_client.put_function_concurrency(FunctionName=fname, ReservedConcurrentExecutions=after["ConcurrentExecutions"])
    assert exc.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert "below its minimum value of [100]" in exc.value.response["Error"]["Message"]
    lambda_client.delete_function_concurrency(FunctionName=fname)
    assert "Concurrency" not in lambda_client.get_function(FunctionName=fname)
    assert lambda_client.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == before["UnreservedConcurrentExecutions"]


def test_reserved_zero_throttles(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": SLOW})
    lambda_client.put_function_concurrency(FunctionName=fname, ReservedConcurrentExecutions=0)
    with pytest.raises(lambda_client.exceptions.TooManyRequestsException) as exc:
        lambda_client.invoke(FunctionName=fname)
    assert exc.value.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    lambda_client.delete_function_concurrency(FunctionName=fname)
    assert json.loads(lambda_client.invoke(FunctionName=fname)["Payload"].read()) == "done"


def test_reserved_two_with_three_parallel_gives_one_429(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": SLOW})
    lambda_client.put_function_concurrency(FunctionName=fname, ReservedConcurrentExecutions=2)
    outcomes: list[str] = []
    barrier = threading.Barrier(3)

    def one() -> None:
        barrier.wait(10)
        try:
            resp = lambda_client.invoke(FunctionName=fname, Payload=b'{"sleep": 1.5}')
            outcomes.append(json.loads(resp["Payload"].read()))
        except lambda_client.exceptions.TooManyRequestsException as exc:
            outcomes.append(exc.response["Reason"])

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["ReservedFunctionConcurrentInvocationLimitExceeded", "done", "done"]


def test_reservation_survives_restart(data_dir: Path) -> None:
    with running_server(data_dir) as srv:
        c = srv.client()
        deploy(c, "kept", {"app.py": SLOW})
        c.put_function_concurrency(FunctionName="kept", ReservedConcurrentExecutions=3)
    with running_server(data_dir) as srv:
        c = srv.client()
        assert c.get_function_concurrency(FunctionName="kept")["ReservedConcurrentExecutions"] == 3
        limit = c.get_account_settings()["AccountLimit"]
        assert limit["UnreservedConcurrentExecutions"] == limit["ConcurrentExecutions"] - 3


def test_account_limit_is_derived_from_memory(data_dir: Path) -> None:
    with running_server(data_dir, extra_args=("--memory-budget", "1280")) as srv:
        limit = srv.client().get_account_settings()["AccountLimit"]
        assert limit["ConcurrentExecutions"] == 10  # 1,280 MB holds ten 128 MB environments
    with running_server(data_dir, extra_args=("--memory-budget", "1280", "--max-concurrency", "50")) as srv:
        assert srv.client().get_account_settings()["AccountLimit"]["ConcurrentExecutions"] == 50
