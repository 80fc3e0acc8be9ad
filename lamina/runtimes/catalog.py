"""Runtime identifiers Lambda knows (spec 10), and which of them this host can run.

Managed Python runtimes run the host's own `python3.X` with Lamina's runtime client; `provided*`
runtimes run the function's own `bootstrap`.
"""

from __future__ import annotations

import glob
import os
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


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeInfo:
    identifier: str
    # The interpreter for a managed runtime; None for custom runtimes (the zip's bootstrap runs).
    interpreter: Path | None

    @property
    def is_custom(self) -> bool:
        return self.interpreter is None

    @property
    def runtime_dir(self) -> Path:
        """LAMBDA_RUNTIME_DIR: where the runtime's implementation lives."""
        return Path("/var/runtime") if self.interpreter is None else PYTHON_BOOTSTRAP.parent

    def launch_argv(self, bootstrap: Path | None = None) -> list[str]:
        """argv that starts this runtime; `bootstrap` is the custom runtime's executable."""
        if self.interpreter is None:
            assert bootstrap is not None
            return [str(bootstrap)]
        # -I -S: no user site, no site-packages, no .pth hooks (PERFORMANCE G11); the runtime
        # client puts the task root on sys.path itself.
        return [str(self.interpreter), "-I", "-S", str(PYTHON_BOOTSTRAP)]


class RuntimeCatalog:
    """Which runtimes exist (for validation) and which run here (for execution)."""

    def __init__(self, available: dict[str, RuntimeInfo]) -> None:
        self._available = available

    @classmethod
    def discover(cls) -> RuntimeCatalog:
        available = {rid: RuntimeInfo(identifier=rid, interpreter=None) for rid in CUSTOM_RUNTIMES}
        for rid in LAMBDA_RUNTIMES:
            # python3.6-3.8 can no longer be created on Lambda (spec 10); our runtime client needs 3.9+.
            if rid.startswith("python3.") and int(rid.split(".")[1]) >= 9:
                interp = _find_python(rid.removeprefix("python"))
                if interp is not None:
                    available[rid] = RuntimeInfo(identifier=rid, interpreter=interp)
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


def _find_python(version: str) -> Path | None:
    """A real interpreter binary for `3.X`: never a pyenv shim (+100 ms per start)."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        base = getattr(sys, "_base_executable", None) or sys.executable
        real = Path(os.path.realpath(base))
        if real.is_file():
            return real
    candidates = [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    candidates += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")))
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if "shims" not in entry:
            candidates.append(os.path.join(entry, f"python{version}"))
    for c in candidates:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return Path(os.path.realpath(c))
    return None
