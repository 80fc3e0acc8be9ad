"""Debug environments: a debugger listening inside the runtime, waiting for an attach (issue #7).

A function in a debug session (`lamina invoke --debug`, `lamina dev --debug`) gets environments
that differ from ordinary ones in three ways, all decided here and applied by environment.py:

- They run as plain processes (ProcessSandbox), whatever the server's isolation: the debugger's
  port must be reachable from the host, and a sandbox has a network namespace of its own. Debug
  sessions are for code you are writing, on your machine; the note is printed with the port.
- The runtime starts the debugger: for Python, debugpy listens on `DebugSetup.port` and the
  handler waits for a client before it runs (bootstraps/python/bootstrap.py, "debug mode");
  debugpy is imported from a directory that holds only it (`debugpy_dir`), put on sys.path in
  debug mode only. For Node (`nodejs*`) it is `--inspect` through NODE_OPTIONS plus
  `_LAMINA_DEBUG_PORT`, for which the Node runtime client calls `inspector.waitForDebugger()`
  before the first handler runs (as the Python one waits): not `--inspect-brk`, which would stop
  the runtime client itself during init and trip the init timeout.
- The function timeout does not run while the debugger may hold the handler: a debug
  invocation's deadline is DEBUG_TIMEOUT_S away.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

# The deadline of a debug invocation: the function's own timeout is suspended (12 hours).
DEBUG_TIMEOUT_S = 12 * 3600


@dataclass(frozen=True, slots=True, kw_only=True)
class DebugSetup:
    """One function's debug session: where its environments' debugger listens."""

    port: int
    host: str = "127.0.0.1"
    package_dir: Path  # holds only `debugpy`


def supported(runtime: str) -> bool:
    return runtime.startswith("python") or runtime.startswith("nodejs")


def debugpy_dir(root: Path) -> Path:
    """A directory under `root` whose only entry is the server's own `debugpy` package (a symlink),
    so debug environments import debugpy and nothing else of the server's packages."""
    spec = importlib.util.find_spec("debugpy")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("debugpy is not installed with this Lamina (pip install debugpy)")
    package = Path(list(spec.submodule_search_locations)[0])
    target = root / "debugpy-path"
    link = target / "debugpy"
    target.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink() or Path(os.readlink(link)) != package:
        tmp = target / ".debugpy.tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(package, target_is_directory=True)
        os.replace(tmp, link)
    return target


def runtime_env(setup: DebugSetup, runtime: str) -> dict[str, str]:
    """Variables that put a runtime in debug mode (the runtime client removes the _LAMINA ones)."""
    if runtime.startswith("nodejs"):
        return {"NODE_OPTIONS": f"--inspect={setup.host}:{setup.port}", "_LAMINA_DEBUG_PORT": str(setup.port)}
    return {
        "_LAMINA_DEBUG_HOST": setup.host,
        "_LAMINA_DEBUG_PORT": str(setup.port),
        "_LAMINA_DEBUG_PATH": str(setup.package_dir),
        # debugpy warns on every start that frozen stdlib modules may miss breakpoints: they are
        # the stdlib's, not the function's.
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
