"""Shared fixtures: a real `lamina up` on a free loopback port, and boto3 pointed at it."""

from __future__ import annotations

import gc
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lamina.testing import RunningServer, data_directory, running_server

_names = itertools.count()


@pytest.fixture(autouse=True)
def _collect_garbage_after_each_test() -> Iterator[None]:
    """Collect garbage after every test, so an unclosed socket or file warns in the test that
    leaked it (filterwarnings=error makes that a failure) instead of in a later one by chance."""
    yield
    gc.collect()


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (marked anyio) run on asyncio, the loop Lamina runs on."""
    return "asyncio"


@pytest.fixture(scope="session")
def server() -> Iterator[RunningServer]:
    """One server for the whole session; tests use unique function names (see `fname`)."""
    with data_directory() as data_dir, running_server(data_dir, extra_args=("--idle-timeout", "30")) as srv:
        yield srv


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data directory of the test's own that sandbox uids can reach."""
    with data_directory() as path:
        yield path


@pytest.fixture(scope="session")
def lambda_client(server: RunningServer) -> Any:
    return server.client()


@pytest.fixture(scope="session")
def unvalidated_client(server: RunningServer) -> Any:
    """boto3 without its client-side checks, so the server's own validation is what answers."""
    return server.client(parameter_validation=False)


@pytest.fixture
def fname(request: pytest.FixtureRequest) -> str:
    """A function name unique in this session, readable in logs."""
    base = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[:50]
    return f"{base}-{next(_names)}"


@pytest.fixture
def private_server(data_dir: Path) -> Iterator[RunningServer]:
    """A server of the test's own, for tests that restart it or change its settings."""
    with running_server(data_dir) as srv:
        yield srv
