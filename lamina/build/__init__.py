"""Builds with dependencies: a function's or layer's directory plus what its requirements.txt
(Python) or package.json (Node) installs, laid out as Lambda expects, ready to zip.

Dependencies are installed once per cache key (requirements, runtime version, host platform;
see `cache.py`) and linked into the build directory, so a build with unchanged requirements runs
neither pip nor npm. The build directory is `<source>/.lamina-build/<function|layer>/`: rebuilt
each time from the source files and the cached entry.

Installers' output goes to `on_output` line by line (the CLI shows it as progress). Failures are
`BuildError`s carrying the installer's last lines.
"""

from __future__ import annotations

import enum
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lamina.build import node, python
from lamina.build.cache import DependencyCache, cache_key, link_tree
from lamina.build.tool import BuildError, OutputSink

__all__ = ["BUILD_DIR", "BuildError", "BuildResult", "Ecosystem", "build_function", "build_layer", "build_layer_result", "ecosystem_of"]

BUILD_DIR = ".lamina-build"
# Never copied from the source into a build: earlier builds, and what the installer replaces.
_SKIPPED = (BUILD_DIR, "__pycache__")


class Ecosystem(enum.Enum):
    PYTHON = "python"
    NODE = "node"

    @property
    def manifest(self) -> str:
        return python.REQUIREMENTS if self is Ecosystem.PYTHON else node.PACKAGE_JSON

    @property
    def installer(self) -> str:
        return "pip" if self is Ecosystem.PYTHON else "npm"


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildResult:
    output: Path  # the directory to zip
    ecosystem: Ecosystem
    cache_key: str
    cached: bool  # True: the installer did not run
    seconds: float


def ecosystem_of(source: Path, runtime: str) -> Ecosystem | None:
    """What a build of `source` for `runtime` installs; None when there is nothing to install
    (no manifest for the runtime's language, or a custom runtime)."""
    if runtime.startswith("python") and (source / python.REQUIREMENTS).is_file():
        return Ecosystem.PYTHON
    if runtime.startswith("nodejs") and (source / node.PACKAGE_JSON).is_file():
        return Ecosystem.NODE
    return None


def build_function(source: Path, runtime: str, *, cache_dir: Path, on_output: OutputSink = lambda _: None) -> BuildResult:
    """Build a function package: the source files with the dependencies at the root (Python,
    where /var/task is on sys.path) or in node_modules/ (Node). Raises BuildError when `source`
    has nothing to install for `runtime`, or the installer fails."""
    return _build(source, runtime, "function", cache_dir, on_output)


def build_layer(source: Path, runtime: str, *, cache_dir: Path, on_output: OutputSink = lambda _: None) -> Path:
    """Build a layer's content and return its directory (`<source>/.lamina-build/layer`): the
    source files as they are, with the dependencies under python/ (Python) or
    nodejs/node_modules/ (Node), the paths Lambda puts on sys.path and NODE_PATH from /opt."""
    return build_layer_result(source, runtime, cache_dir=cache_dir, on_output=on_output).output


def build_layer_result(source: Path, runtime: str, *, cache_dir: Path, on_output: OutputSink = lambda _: None) -> BuildResult:
    """`build_layer`, with the whole BuildResult (for the CLI's summary)."""
    return _build(source, runtime, "layer", cache_dir, on_output)


def _build(source: Path, runtime: str, kind: Literal["function", "layer"], cache_dir: Path, on_output: OutputSink) -> BuildResult:
    started = time.monotonic()
    ecosystem = ecosystem_of(source, runtime)
    if ecosystem is None:
        wanted = "requirements.txt" if runtime.startswith("python") else "package.json" if runtime.startswith("nodejs") else None
        if wanted is None:
            raise BuildError(f"{runtime} has no dependency manager to run: builds are for python* and nodejs* runtimes")
        raise BuildError(f"{source} has no {wanted} to install")
    cache = DependencyCache(cache_dir)
    parts = python.key_parts(source, runtime) if ecosystem is Ecosystem.PYTHON else node.key_parts(source)
    key = cache_key([runtime.encode(), *parts])
    entry = cache.get(key)
    cached = entry is not None
    if entry is None:
        with cache.filling(key) as scratch:
            if ecosystem is Ecosystem.PYTHON:
                python.install(source, scratch, runtime, on_output)
            else:
                node.install(source, scratch, on_output, skip=_SKIPPED)
        entry = cache.get(key)
        if entry is None:
            raise BuildError(f"the dependency cache lost entry {key[:12]} under {cache.root}")
    output = source / BUILD_DIR / kind
    shutil.rmtree(output, ignore_errors=True)
    skipped = (*_SKIPPED, node.NODE_MODULES) if ecosystem is Ecosystem.NODE else _SKIPPED
    shutil.copytree(source, output, symlinks=True, ignore=shutil.ignore_patterns(*skipped))
    # An entry holds packages (Python) or node_modules/ (Node); layers nest them where /opt needs.
    deps_at = output if kind == "function" else output / ("python" if ecosystem is Ecosystem.PYTHON else "nodejs")
    link_tree(entry, deps_at)
    return BuildResult(output=output, ecosystem=ecosystem, cache_key=key, cached=cached, seconds=time.monotonic() - started)
