"""Runtime identifiers Lambda knows (spec 10), and which of them this host can run.

Managed Python runtimes run the host's own `python3.X` with Lamina's runtime client, managed
Node.js runtimes (`nodejsNN.x`) the host's `node` of that major version with Lamina's JavaScript
client; `provided*` runtimes run the function's own `bootstrap`.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# Every identifier in botocore's Runtime enum (spec 10).
LAMBDA_RUNTIMES: tuple[str, ...] = (
    "nodejs", "nodejs4.3", "nodejs6.10", "nodejs8.10", "nodejs10.x", "nodejs12.x", "nodejs14.x",
    "nodejs16.x", "nodejs18.x", "nodejs20.x", "nodejs22.x", "nodejs24.x", "nodejs26.x",
    "java8", "java8.al2", "java11", "java17", "java21", "java25", "java8.al2023", "java11.al2023",
    "java17.al2023", "python2.7", "python3.6", "python3.7", "python3.8", "python3.9", "python3.10",
    "python3.11", "python3.12", "python3.13", "python3.14", "python3.15", "dotnetcore1.0",
    "dotnetcore2.0", "dotnetcore2.1", "dotnetcore3.1", "dotnet6", "dotnet8", "dotnet10",
    "nodejs4.3-edge", "go1.x", "ruby2.5", "ruby2.7", "ruby3.2", "ruby3.3", "ruby3.4", "ruby4.0",
    "provided", "provided.al2", "provided.al2023",
)  # fmt: skip

CUSTOM_RUNTIMES = ("provided", "provided.al2", "provided.al2023")
BOOTSTRAP_DIR = Path(__file__).parent / "bootstraps"
PYTHON_BOOTSTRAP = BOOTSTRAP_DIR / "python" / "bootstrap.py"
RUNTIME_DIR_INSIDE = "/var/runtime"  # where sandboxes see PYTHON_BOOTSTRAP's directory (spec 5.2)
NODEJS_BOOTSTRAP = BOOTSTRAP_DIR / "nodejs" / "index.mjs"
# The AWS SDK for JavaScript v3 clients the Node.js runtimes carry (scripts/setup.sh installs
# them from sdk/nodejs/package-lock.json); sandboxes see them at /var/runtime/node_modules.
NODEJS_SDK = Path(__file__).parent / "sdk" / "nodejs" / "node_modules"
# Pins every SDK package: the SDK versions are part of a Node.js runtime's version (issue #6).
NODEJS_SDK_LOCK = NODEJS_SDK.parent / "package-lock.json"


def nodejs_argv(node: str, script: str, memory_mb: int) -> list[str]:
    """How Lambda's Node.js bootstrap starts node: a tenth of the memory for the young
    generation (half of it per semi-space), the rest for the old one."""
    new_space = memory_mb // 10
    return [node, "--expose-gc", "--max-http-header-size", "81920",
            f"--max-semi-space-size={new_space // 2}", f"--max-old-space-size={memory_mb - new_space}", script]  # fmt: skip


def nodejs_path(identifier: str, *, sdk: str, runtime_dir: str, task_root: str, opt: str = "/opt") -> str:
    """NODE_PATH as Lambda sets it (spec 5.3): layers first, then the runtime's SDK, the runtime
    and the function's code (its own node_modules win anyway: node looks there before NODE_PATH).
    `opt` is where the layers are seen (a host directory in process mode)."""
    major = identifier.removeprefix("nodejs").split(".")[0]
    return f"{opt}/nodejs/node{major}/node_modules:{opt}/nodejs/node_modules:{sdk}:{runtime_dir}:{task_root}"


def python_argv(interpreter: str, script: str) -> list[str]:
    """How a Python runtime client is started: isolated, no site (no .pth hooks: +30 ms)."""
    return [interpreter, "-I", "-S", script]


def python_argv_inside(interpreter: Path) -> list[str] | None:
    """The argv a sandbox runs for a Python runtime whose interpreter it sees at its host path
    (under /usr); None if the sandbox maps it elsewhere (/var/lang)."""
    if not interpreter.is_relative_to("/usr"):
        return None
    return python_argv(str(interpreter), f"{RUNTIME_DIR_INSIDE}/{PYTHON_BOOTSTRAP.name}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeInfo:
    identifier: str
    # The interpreter for a managed runtime; None for custom runtimes (the zip's bootstrap runs).
    interpreter: Path | None

    @property
    def is_custom(self) -> bool:
        return self.interpreter is None

    @property
    def is_nodejs(self) -> bool:
        return self.identifier.startswith("nodejs")


class RuntimeCatalog:
    """Which runtimes exist (for validation) and which run here (for execution)."""

    def __init__(self, available: dict[str, RuntimeInfo]) -> None:
        self._available = available

    @classmethod
    def discover(cls, *, shared_paths_only: bool = False) -> RuntimeCatalog:
        """Runtimes this host can run. `shared_paths_only`: only interpreters that other uids can
        reach (sandboxes run as uids of their own and bind the interpreter from its host path)."""
        available = {rid: RuntimeInfo(identifier=rid, interpreter=None) for rid in CUSTOM_RUNTIMES}
        for rid in LAMBDA_RUNTIMES:
            # python3.6-3.8 can no longer be created on Lambda (spec 10); our runtime client needs 3.9+.
            if rid.startswith("python3.") and int(rid.split(".")[1]) >= 9:
                interp = _find_python(rid.removeprefix("python"), shared_paths_only=shared_paths_only)
                if interp is not None:
                    available[rid] = RuntimeInfo(identifier=rid, interpreter=interp)
        for major, node in _find_nodes(shared_paths_only=shared_paths_only).items():
            rid = f"nodejs{major}.x"
            # Our runtime client needs Node 18+ (the oldest nodejsNN.x Lambda still lists).
            if rid in LAMBDA_RUNTIMES and major >= 18:
                available[rid] = RuntimeInfo(identifier=rid, interpreter=node)
        return cls(available)

    def get(self, identifier: str) -> RuntimeInfo | None:
        return self._available.get(identifier)

    @property
    def available(self) -> list[str]:
        return sorted(self._available, key=_sort_key)


def _sort_key(rid: str) -> tuple[str, int]:
    head = rid.rstrip("0123456789.x")
    tail = rid[len(head):].split(".")
    return (head, int(tail[-1]) if tail and tail[-1].isdigit() else 0)


def reachable_by_others(path: Path) -> bool:
    """Every directory above `path` is searchable by other uids, and the file is readable."""
    for parent in path.parents:
        if not parent.stat().st_mode & 0o001:
            return False
    return bool(path.stat().st_mode & 0o004)


def _find_python(version: str, *, shared_paths_only: bool = False) -> Path | None:
    """A real interpreter binary for `3.X`: never a pyenv shim (+100 ms per start)."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        base = getattr(sys, "_base_executable", None) or sys.executable
        real = Path(os.path.realpath(base))
        if real.is_file() and (not shared_paths_only or reachable_by_others(real)):
            return real
    candidates = [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    candidates += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")))
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if "shims" not in entry:
            candidates.append(os.path.join(entry, f"python{version}"))
    for c in candidates:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            real = Path(os.path.realpath(c))
            if not shared_paths_only or reachable_by_others(real):
                return real
    return None


def _find_nodes(*, shared_paths_only: bool = False) -> dict[int, Path]:
    """Real node binaries by major version; the first found of a major wins (PATH order, then
    the usual install places and nvm's)."""
    candidates = [os.path.join(entry, name) for entry in os.environ.get("PATH", "").split(os.pathsep)
                  if "shims" not in entry for name in ("node", "nodejs")]  # fmt: skip
    candidates += ["/usr/bin/node", "/usr/local/bin/node"]
    candidates += sorted(glob.glob(os.path.expanduser("~/.nvm/versions/node/v*/bin/node")))
    found: dict[int, Path] = {}
    seen: set[Path] = set()
    for c in candidates:
        if not (os.path.isfile(c) and os.access(c, os.X_OK)):
            continue
        real = Path(os.path.realpath(c))
        if real in seen or (shared_paths_only and not reachable_by_others(real)):
            continue
        seen.add(real)
        major = _node_major(real)
        if major is not None:
            found.setdefault(major, real)
    return found


def _node_major(node: Path) -> int | None:
    try:
        out = subprocess.run([str(node), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.match(r"v(\d+)\.", out)
    return int(match.group(1)) if match else None
