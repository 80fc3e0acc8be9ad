"""DebugSessions: start and end a function's debug session (issue #7); no HTTP.

A session makes every environment of the function a debug environment (envs/debugging.py): the
environments on other code are retired, one debug environment is started at once so that its
debugger listens before the port is handed out, and the function's invokes (through the ordinary
Invoke API) run there, one at a time, with the function timeout suspended. Ending the session
retires the debug environment; ordinary ones come back with the next invoke.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from pathlib import Path

from lamina.envs import debugging
from lamina.envs.manager import EnvironmentManager
from lamina.functions.service import FunctionService
from lamina.model.errors import InvalidParameterValueException, ResourceConflictException


@dataclass(frozen=True, slots=True, kw_only=True)
class DebugSession:
    function: str
    runtime: str
    host: str
    port: int
    remote_root: str  # the code directory as the environment sees it (VS Code's remoteRoot)
    source: str | None  # the function's source directory, if it has one (VS Code's localRoot)
    timeout_s: int  # what the function's timeout is while debugging


class DebugSessions:
    def __init__(self, *, functions: FunctionService, manager: EnvironmentManager, root: Path) -> None:
        self._functions = functions
        self._manager = manager
        self._root = root  # where the directory holding debugpy is made

    async def start(self, name: str, port: int = 0) -> DebugSession:
        """Begin (or restart) a session; `port` 0 picks a free one. Raises InvalidParameterValue for
        a runtime Lamina cannot debug, ResourceConflict if the port is taken."""
        rec = self._functions.record(name)
        config = rec.runnable
        if config is None:
            raise ResourceConflictException(f"The function {name} is not Active yet; debug it once it is.")
        if not debugging.supported(config.runtime):
            raise InvalidParameterValueException(
                f"Lamina can debug Python and Node.js functions; {name} runs {config.runtime}, which has no debugger support."
            )
        current = self._manager.debug_setup(name)
        if current is None or current.port != port:
            port = _free_port(port, keep=current.port if current is not None else None)
        setup = debugging.DebugSetup(port=port, package_dir=debugging.debugpy_dir(self._root))
        await self._manager.set_debug(name, setup)
        env = await self._manager.prepare_debug(config, network=self._functions.network_of(name))
        return DebugSession(function=name, runtime=config.runtime, host=setup.host, port=port,
                            remote_root=str(env.code_dir), source=config.code.source,
                            timeout_s=debugging.DEBUG_TIMEOUT_S)  # fmt: skip

    async def stop(self, name: str) -> None:
        self._functions.record(name)
        await self._manager.set_debug(name, None)


def _free_port(port: int, *, keep: int | None) -> int:
    """`port` if it can be listened on (or is the session's own), a free one for 0."""
    if port and port == keep:
        return port
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ResourceConflictException(f"Port {port} is in use on 127.0.0.1; pick another debug port.") from exc
            raise
        return int(s.getsockname()[1])
