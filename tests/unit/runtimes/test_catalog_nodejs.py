"""The catalog's Node.js runtimes: discovery of the host's node, and how node is started."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from lamina.runtimes.catalog import RuntimeCatalog, nodejs_argv, nodejs_path


def test_memory_options_follow_lambdas_bootstrap() -> None:
    # A tenth of the memory is the young generation (half of it per semi-space), the rest old.
    assert nodejs_argv("/usr/bin/node", "/var/runtime/index.mjs", 1024) == [
        "/usr/bin/node", "--expose-gc", "--max-http-header-size", "81920",
        "--max-semi-space-size=51", "--max-old-space-size=922", "/var/runtime/index.mjs",
    ]  # fmt: skip


def test_node_path_puts_layers_first() -> None:
    assert nodejs_path("nodejs22.x", sdk="/var/runtime/node_modules", runtime_dir="/var/runtime", task_root="/var/task") == (
        "/opt/nodejs/node22/node_modules:/opt/nodejs/node_modules:/var/runtime/node_modules:/var/runtime:/var/task"
    )


@pytest.mark.skipif(shutil.which("node") is None, reason="no node on PATH")
def test_host_node_is_offered_under_its_major_version() -> None:
    node = shutil.which("node")
    assert node is not None
    major = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()[1:].split(".")[0]
    info = RuntimeCatalog.discover().get(f"nodejs{major}.x")
    assert info is not None and info.is_nodejs and not info.is_custom
    assert info.interpreter is not None and info.interpreter.name.startswith("node")
    assert RuntimeCatalog.discover().get("nodejs4.3") is None  # never offered: too old for the client
