"""Concurrency: per-request scale-out, reserved concurrency (its API, the account figures, the
throttling it implies) (spec 8)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from lamina.testing import RunningServer, deploy, running_server

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


def test_eight_parallel_one_second_invokes_take_about_a_second(server: RunningServer, fname: str) -> None:
    """Per-request scale-out (spec 8): each concurrent request gets an environment of its own."""
    client = server.client(max_pool_connections=16)  # at least 8: no request waits for a pooled connection
    code = "import time, uuid\nTOKEN = uuid.uuid4().hex\ndef handler(e, c):\n    time.sleep(1)\n    return TOKEN\n"
    deploy(client, fname, {"app.py": code}, Timeout=10)
    tokens: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def one() -> None:
        try:
            barrier.wait(10)
            resp = client.invoke(FunctionName=fname, Payload=b"{}")
            assert resp["StatusCode"] == 200 and "FunctionError" not in resp, resp.get("FunctionError")
            tokens.append(json.loads(resp["Payload"].read()))
        except BaseException as exc:  # reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    for t in threads:
        t.join(30)
    elapsed = time.monotonic() - t0
    assert not errors, errors
    assert len(tokens) == 8
    assert len(set(tokens)) == 8  # eight environments (one module-level token per runtime process)
    # Eight 1 s sleeps, one after another, would take 8 s; in parallel the cold starts add well under 1 s.
    assert elapsed < 1.9, f"8 parallel 1-second invokes took {elapsed:.2f} s"
