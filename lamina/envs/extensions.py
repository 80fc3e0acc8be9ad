"""External extensions of an execution environment (spec 4.7): finding and starting them.

External extensions are the executable files of `/opt/extensions` (from the function's layers).
Lambda starts them before the runtime, in their own processes of the same environment; here the
launch command becomes a small `/bin/sh` script that starts each one in the background, then
`exec`s the runtime, so every sandbox backend starts them the same way, inside the sandbox, with
no extra process left behind. The Extensions API itself is `lamina.runtimeapi.extensions`.
"""

from __future__ import annotations

import os
from pathlib import Path

from lamina.runtimeapi.extensions import Extension, ExtensionsHub, ExtensionState

# Lambda hides these from extensions (spec 4.7); `env -u` drops them for the extension only.
HIDDEN_FROM_EXTENSIONS = (
    "AWS_EXECUTION_ENV", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_XRAY_CONTEXT_MISSING",
    "AWS_XRAY_DAEMON_ADDRESS", "LAMBDA_RUNTIME_DIR", "LAMBDA_TASK_ROOT", "_AWS_XRAY_DAEMON_ADDRESS",
    "_AWS_XRAY_DAEMON_PORT", "_HANDLER",
)  # fmt: skip
# How long extensions get after SHUTDOWN (Lambda: 2,000 ms for the whole phase with external ones).
SHUTDOWN_GRACE_S = 2.0

# $1: the extensions directory as the sandbox sees it; then the runtime's argv.
_LAUNCH = (
    'dir="$1"; shift; '
    'for ext in "$dir"/*; do '
    '[ -f "$ext" ] && [ -x "$ext" ] || continue; '
    "env " + " ".join(f"-u {name}" for name in HIDDEN_FROM_EXTENSIONS) + ' "$ext" & '
    "done; "
    'exec "$@"'
)


def external_extensions(opt_dir: Path | None) -> list[str]:
    """The file names of the executables in `opt_dir`/extensions, in the order they start."""
    if opt_dir is None:
        return []
    directory = opt_dir / "extensions"
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return []
    return [e.name for e in entries if e.is_file() and os.access(e.path, os.X_OK)]


def launch_argv(extensions_dir: str, runtime_argv: list[str]) -> list[str]:
    """The command that starts the external extensions of `extensions_dir`, then the runtime."""
    return ["/bin/sh", "-c", _LAUNCH, "lamina-extensions", extensions_dir, *runtime_argv]


def registered(hub: ExtensionsHub, names: list[str]) -> bool:
    """Every external extension in `names` has registered, and every extension is ready."""
    have = {e.name for e in hub.extensions}
    return all(n in have for n in names) and hub.ready()


def not_ready(hub: ExtensionsHub, names: list[str]) -> list[str]:
    """Which extensions keep init from ending: external ones not registered, and registered ones
    that have not asked for their first event."""
    have = {e.name for e in hub.extensions}
    late = [e.name for e in hub.extensions if e.state is ExtensionState.REGISTERED]
    return [n for n in names if n not in have] + late


def state_line(ext: Extension) -> str:
    """The log line Lambda writes for each extension after init."""
    events = ",".join(sorted(e.value for e in ext.events))
    state = "Ready" if ext.error is None else "Failed"
    return f"EXTENSION\tName: {ext.name}\tState: {state}\tEvents: [{events}]"
