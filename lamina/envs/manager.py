"""EnvironmentManager: pools of execution environments per function version.

`acquire(config)` lends an idle environment that runs this exact configuration (warm start) or
builds a new one (cold start); on release it goes back to its pool, most recently used first, as
Lambda reuses environments. `run()` reaps environments idle for longer than the idle timeout.
`retire(name)` stops a function's environments after an update or delete: idle ones at once,
busy ones when their invocation ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from lamina.envs.environment import EnvironmentContext, EnvironmentStatistics, EnvState, ExecutionEnvironment
from lamina.model.function import FunctionConfig
from lamina.runtimes.catalog import RuntimeCatalog
from lamina.sandbox.base import NetworkMode
from lamina.store.code import CodeStore


@dataclass(slots=True)
class _Pool:
    idle: list[ExecutionEnvironment] = field(default_factory=list)
    busy: set[ExecutionEnvironment] = field(default_factory=set)
    retiring: set[ExecutionEnvironment] = field(default_factory=set)


@dataclass(frozen=True, slots=True, kw_only=True)
class ManagerStatistics:
    environments: int
    idle: int
    busy: int
    cold_starts: int
    warm_starts: int
    details: list[EnvironmentStatistics]


class EnvironmentManager:
    def __init__(self, *, ctx: EnvironmentContext, catalog: RuntimeCatalog, code: CodeStore, idle_timeout: float) -> None:
        self._ctx = ctx
        self._catalog = catalog
        self._code = code
        self._idle_timeout = idle_timeout
        self._pools: dict[tuple[str, str], _Pool] = {}
        self._cold = 0
        self._warm = 0
        self._closed = False

    @asynccontextmanager
    async def acquire(self, config: FunctionConfig, *, network: str | None = None) -> AsyncIterator[ExecutionEnvironment]:
        """An environment for `config`; `network` is the function's own setting (else the server's)."""
        if self._closed:
            raise RuntimeError("environment manager is closed")
        mode = _network_mode(network, self._ctx.network)
        pool = self._pools.setdefault((config.name, config.version), _Pool())
        env = await self._take_idle(pool, config, mode)
        if env is None:
            self._cold += 1
            env = await self._create(config, mode)
        else:
            self._warm += 1
        pool.busy.add(env)
        try:
            yield env
        finally:
            pool.busy.discard(env)
            if env in pool.retiring or self._closed or not env.config.runs_like(config) or env.network != mode:
                pool.retiring.discard(env)
                await env.stop()
            elif env.state is EnvState.IDLE:
                pool.idle.append(env)

    async def _take_idle(self, pool: _Pool, config: FunctionConfig, network: NetworkMode) -> ExecutionEnvironment | None:
        # Prefer the most recently used warm environment; one needing a reset is still reusable.
        stale = [
            e for e in pool.idle if not e.config.runs_like(config) or e.state is not EnvState.IDLE or e.network != network
        ]
        for e in stale:
            pool.idle.remove(e)
            await e.stop()
        for i in range(len(pool.idle) - 1, -1, -1):
            if pool.idle[i].warm:
                return pool.idle.pop(i)
        return pool.idle.pop() if pool.idle else None

    async def _create(self, config: FunctionConfig, network: NetworkMode) -> ExecutionEnvironment:
        runtime = self._catalog.get(config.runtime)
        if runtime is None:
            raise RuntimeError(f"runtime {config.runtime} is not available on this host")
        code_dir = await self._code.unpack(config.code)
        env = ExecutionEnvironment(config=config, runtime=runtime, code_dir=code_dir, ctx=self._ctx, network=network)
        try:
            await env.start()
        except BaseException:
            await env.stop()
            raise
        return env

    async def retire(self, name: str, version: str | None = None) -> None:
        """Stop the environments of a function (or one version): idle now, busy when they finish."""
        for (fname, fversion), pool in list(self._pools.items()):
            if fname != name or (version is not None and fversion != version):
                continue
            idle, pool.idle = pool.idle, []
            pool.retiring |= pool.busy
            for env in idle:
                await env.stop()
            if not pool.busy:
                del self._pools[(fname, fversion)]

    async def reap_idle(self) -> int:
        """Stop environments idle longer than the idle timeout; returns how many."""
        cutoff = time.monotonic() - self._idle_timeout
        reaped = 0
        for pool in list(self._pools.values()):
            old = [e for e in pool.idle if e.idle_since < cutoff]
            for env in old:
                pool.idle.remove(env)
                await env.stop()
                reaped += 1
        return reaped

    async def run(self) -> None:
        """The reaper loop; runs until cancelled."""
        interval = min(max(self._idle_timeout / 4, 0.05), 5.0)
        while True:
            await asyncio.sleep(interval)
            await self.reap_idle()

    async def close(self) -> None:
        """Stop every environment (busy ones are killed; their invokes end as runtime exits)."""
        self._closed = True
        for pool in list(self._pools.values()):
            for env in [*pool.idle, *pool.busy]:
                await env.stop()
        self._pools.clear()

    def statistics(self) -> ManagerStatistics:
        details = [e.statistics() for p in self._pools.values() for e in (*p.idle, *p.busy)]
        return ManagerStatistics(
            environments=len(details),
            idle=sum(len(p.idle) for p in self._pools.values()),
            busy=sum(len(p.busy) for p in self._pools.values()),
            cold_starts=self._cold,
            warm_starts=self._warm,
            details=details,
        )


def _network_mode(own: str | None, default: NetworkMode) -> NetworkMode:
    if own == "outbound":
        return "outbound"
    if own == "none":
        return "none"
    return default
