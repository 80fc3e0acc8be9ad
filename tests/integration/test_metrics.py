"""GET /lamina/v1/metrics: Prometheus counters and histograms move with real invokes."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lamina.testing import RunningServer, deploy

SLEEPY = "import time\ndef handler(e, c):\n    time.sleep(e.get('sleep', 0))\n    if e.get('fail'):\n        raise ValueError('no')\n    return 'ok'\n"


def scrape(server: RunningServer) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample as {(name, labels): value}."""
    with urllib.request.urlopen(f"{server.endpoint}/lamina/v1/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value for family in text_string_to_metric_families(text) for s in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def invocations(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], function: str, start: str, outcome: str) -> float:
    return value(samples, "lamina_invocations_total", function=function, start=start, outcome=outcome)


def test_cold_then_warm_invoke(server: RunningServer, lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": SLEEPY})
    before = scrape(server)
    lambda_client.invoke(FunctionName=fname, Payload=b"{}")["Payload"].read()
    cold = scrape(server)
    assert invocations(cold, fname, "cold", "success") == 1
    assert invocations(cold, fname, "warm", "success") == 0
    # Histograms are per start kind, shared by every function: other tests may add to them, never take away.
    count = "lamina_invocation_duration_seconds_count"
    assert value(cold, count, start="cold") >= value(before, count, start="cold") + 1
    assert value(cold, "lamina_init_duration_seconds_count") >= value(before, "lamina_init_duration_seconds_count") + 1

    lambda_client.invoke(FunctionName=fname, Payload=b"{}")["Payload"].read()
    warm = scrape(server)
    assert invocations(warm, fname, "cold", "success") == 1
    assert invocations(warm, fname, "warm", "success") == 1
    assert value(warm, count, start="warm") >= value(cold, count, start="warm") + 1


def test_outcomes(server: RunningServer, lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": SLEEPY}, Timeout=1)
    assert lambda_client.invoke(FunctionName=fname, Payload=b'{"fail": true}')["FunctionError"] == "Unhandled"
    assert lambda_client.invoke(FunctionName=fname, Payload=b'{"sleep": 3}')["FunctionError"] == "Unhandled"
    samples = scrape(server)
    assert invocations(samples, fname, "cold", "error") == 1
    assert invocations(samples, fname, "warm", "timeout") == 1


def test_provisioned_invoke(server: RunningServer, lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": SLEEPY})
    version = lambda_client.publish_version(FunctionName=fname)["Version"]
    lambda_client.put_provisioned_concurrency_config(FunctionName=fname, Qualifier=version, ProvisionedConcurrentExecutions=1)
    deadline = time.monotonic() + 30
    while lambda_client.get_provisioned_concurrency_config(FunctionName=fname, Qualifier=version)["Status"] != "READY":
        assert time.monotonic() < deadline, "provisioned concurrency never became READY"
        time.sleep(0.05)  # polling the API, as a client must (there is no waiter)
    lambda_client.invoke(FunctionName=fname, Qualifier=version, Payload=b"{}")["Payload"].read()
    samples = scrape(server)
    assert invocations(samples, fname, "provisioned", "success") == 1
    assert invocations(samples, fname, "cold", "success") == 0


def test_throttles(server: RunningServer, lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": SLEEPY})
    lambda_client.put_function_concurrency(FunctionName=fname, ReservedConcurrentExecutions=0)
    # One raw request: boto3 would retry a 429, and each attempt is a throttle of its own.
    request = urllib.request.Request(f"{server.endpoint}/2015-03-31/functions/{fname}/invocations", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(request, timeout=10)
    assert exc.value.code == 429
    exc.value.close()
    samples = scrape(server)
    reason = "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert value(samples, "lamina_throttles_total", function=fname, reason=reason) == 1
    assert invocations(samples, fname, "none", "throttled") == 1


def test_concurrent_executions_gauge(server: RunningServer, lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": SLEEPY})
    lambda_client.invoke(FunctionName=fname, Payload=b"{}")["Payload"].read()  # warm, so the next one runs at once
    worker = threading.Thread(target=lambda: lambda_client.invoke(FunctionName=fname, Payload=b'{"sleep": 2}')["Payload"].read())
    worker.start()
    try:
        deadline = time.monotonic() + 10
        seen = 0.0
        while seen < 1 and time.monotonic() < deadline:  # each scrape is a round trip: no sleep needed
            seen = value(scrape(server), "lamina_concurrent_executions")
        assert seen >= 1
    finally:
        worker.join(30)
