"""Memory-aware admission: environments never hold more MemorySize than the budget; idle ones
of other functions are evicted (least recently used) before anything is throttled."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from lamina.testing import deploy, running_server

APP = "import time\ndef handler(e, c):\n    time.sleep(e.get('sleep', 0))\n    return c.function_name\n"


def stats(endpoint: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{endpoint}/lamina/v1/environments", timeout=10) as r:
        return dict(json.loads(r.read()))


def call(c: Any, name: str, event: dict[str, Any] | None = None) -> Any:
    return json.loads(c.invoke(FunctionName=name, Payload=json.dumps(event or {}))["Payload"].read())


def test_least_recently_used_idle_environment_is_evicted(data_dir: Path) -> None:
    with running_server(data_dir, extra_args=("--memory-budget", "300")) as srv:
        c = srv.client()
        for name in ("first", "second", "third"):
            deploy(c, name, {"app.py": APP}, MemorySize=128)
        assert call(c, "first") == "first"
        assert call(c, "second") == "second"
        assert stats(srv.endpoint)["memoryCommittedMb"] == 256
        # A third 128 MB environment does not fit in 300 MB: "first" (least recently used) goes.
        assert call(c, "third") == "third"
        after = stats(srv.endpoint)
        assert sorted(d["function"] for d in after["details"]) == ["second", "third"]
        assert after["memoryCommittedMb"] == 256 and after["evictions"] == 1
        assert after["memoryBudgetMb"] == 300


def test_throttled_only_when_nothing_can_be_evicted(data_dir: Path) -> None:
    with running_server(data_dir, extra_args=("--memory-budget", "300")) as srv:
        c = srv.client()
        for name in ("busy-a", "busy-b", "late"):
            deploy(c, name, {"app.py": APP}, MemorySize=128)
        started = threading.Barrier(3)
        results: list[Any] = []

        def slow(name: str) -> None:
            started.wait(10)
            results.append(call(c, name, {"sleep": 2}))

        threads = [threading.Thread(target=slow, args=(n,)) for n in ("busy-a", "busy-b")]
        for t in threads:
            t.start()
        started.wait(10)
        # Wait (bounded) until both hold their environments, then ask for a third. The server
        # shows that state only through its statistics, so this polls them.
        deadline = time.monotonic() + 10
        while stats(srv.endpoint)["busy"] != 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(c.exceptions.TooManyRequestsException):
            c.invoke(FunctionName="late")
        for t in threads:
            t.join(30)
        assert sorted(results) == ["busy-a", "busy-b"]
        assert call(c, "late") == "late"  # room again once they are idle (one is evicted)
