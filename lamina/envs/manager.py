"""EnvironmentManager: pools of execution environments per function version.

`acquire(config)` lends an idle environment that runs this exact configuration (warm start) or
builds a new one (cold start); on release it goes back to its pool, most recently used first, as
Lambda reuses environments. `run()` reaps environments idle for longer than the idle timeout.
`retire(name)` stops a function's environments after an update or delete: idle ones at once,
busy ones when their invocation ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from lamina.envs.debugging import DebugSetup
from lamina.envs.environment import EnvironmentContext, EnvironmentStatistics, EnvState, ExecutionEnvironment
from lamina.model.errors import InvalidRuntimeException, TooManyRequestsException
from lamina.model.function import FunctionConfig, ProvisionedState
from lamina.runtimes.versions import RuntimeVersions
from lamina.sandbox.base import NetworkMode
from lamina.store.code import CodeStore

log = logging.getLogger("lamina.envs")


@dataclass(slots=True)
class _Pool:
    idle: list[ExecutionEnvironment] = field(default_factory=list)
    busy: set[ExecutionEnvironment] = field(default_factory=set)
    retiring: set[ExecutionEnvironment] = field(default_factory=set)
    # Provisioned concurrency: how many environments to keep initialised, and why that failed.
    provisioned_target: int = 0
    provision_failure: str | None = None

    def provisioned(self) -> int:
        return sum(1 for e in (*self.idle, *self.busy) if e.provisioned and e not in self.retiring)




@dataclass(frozen=True, slots=True, kw_only=True)
class ManagerStatistics:
    environments: int
    idle: int
    busy: int
    cold_starts: int
    warm_starts: int
    memory_committed_mb: int
    memory_budget_mb: int
    evictions: int
    details: list[EnvironmentStatistics]


class EnvironmentManager:
    def __init__(
        self,
        *,
        ctx: EnvironmentContext,
        versions: RuntimeVersions,
        code: CodeStore,
        idle_timeout: float,
        memory_budget_mb: int = 1 << 30,
    ) -> None:
        self._ctx = ctx
        self._versions = versions
        self._code = code
        self._idle_timeout = idle_timeout
        # Σ MemorySize of live environments may not pass this (memory-aware admission).
        self._budget_mb = memory_budget_mb
        self._committed_mb = 0
        self._evictions = 0
        self._pools: dict[tuple[str, str], _Pool] = {}
        self._cold = 0
        self._warm = 0
        self._closed = False
        self._fills: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._returns: set[asyncio.Task[None]] = set()  # environments coming back after post-invoke
        # Functions in a debug session (envs/debugging.py): their environments run the debugger.
        self._debug: dict[str, DebugSetup] = {}
        # Background work close() waits for: stops (retire(wait=False)) and prewarms after a reload.
        self._stopping: set[asyncio.Future[None]] = set()
        # Prewarms under way, by (function, version): the configuration and when it is idle.
        self._warming: dict[tuple[str, str], tuple[FunctionConfig, asyncio.Future[None]]] = {}

    def acquire(self, config: FunctionConfig, *, network: str | None = None) -> _Loan:
        """An environment for `config`, lent for an `async with` block; `network` is the function's
        own setting (else the server's). On exit it goes back to its pool, or is stopped."""
        return _Loan(self, config, network)

    async def _lend(self, config: FunctionConfig, mode: NetworkMode) -> tuple[ExecutionEnvironment, _Pool]:
        if self._closed:
            raise RuntimeError("environment manager is closed")
        pool = self._pools.setdefault((config.name, config.version), _Pool())
        if config.name in self._debug and pool.busy:
            # One debugger port, so one environment: a second invoke would wait on a paused one.
            raise TooManyRequestsException(
                f"Rate Exceeded. {config.name} is in a debug session, which runs one invocation at a time.",
                reason="ReservedFunctionConcurrentInvocationLimitExceeded",
            )
        env = await self._take_idle(pool, config, mode)
        warming = self._warming.get((config.name, config.version)) if env is None else None
        if warming is not None and warming[0].runs_like(config):
            # A reload's environment is starting: wait for it rather than start a second one.
            await asyncio.shield(warming[1])
            pool = self._pools.setdefault((config.name, config.version), _Pool())
            env = await self._take_idle(pool, config, mode)
        if env is None:
            self._cold += 1
            env = await self._create(config, mode)
        else:
            self._warm += 1
        pool.busy.add(env)
        return env, pool

    async def _give_back(self, env: ExecutionEnvironment, pool: _Pool, config: FunctionConfig, mode: NetworkMode) -> None:
        post_invoke = env.post_invoke
        if post_invoke is not None:
            # Its extensions are still on the invocation: it stays busy and comes back after.
            def later(_: object) -> None:
                task = asyncio.ensure_future(self._give_back(env, pool, config, mode))
                self._returns.add(task)
                task.add_done_callback(self._returns.discard)

            post_invoke.add_done_callback(later)
            return
        pool.busy.discard(env)
        if env in pool.retiring or self._closed or not self._fits(env, config, mode):
            pool.retiring.discard(env)
            await env.stop()
        elif env.state is EnvState.IDLE:
            pool.idle.append(env)

    def _fits(self, env: ExecutionEnvironment, config: FunctionConfig, mode: NetworkMode) -> bool:
        """Whether `env` may serve `config` now: same code and settings, network and debug session."""
        return _runs_like(env, config) and env.network == mode and env.debug == self._debug.get(config.name)

    async def _take_idle(self, pool: _Pool, config: FunctionConfig, network: NetworkMode) -> ExecutionEnvironment | None:
        # Prefer the most recently used warm environment; one needing a reset is still reusable.
        stale = [e for e in pool.idle if e.state is not EnvState.IDLE or not self._fits(e, config, network)]
        for e in stale:
            pool.idle.remove(e)
            await e.stop()
        # Provisioned environments serve first (Lambda routes to them, then spills to on-demand).
        for want_provisioned in (True, False):
            for i in range(len(pool.idle) - 1, -1, -1):
                if pool.idle[i].warm and pool.idle[i].provisioned == want_provisioned:
                    return pool.idle.pop(i)
        return pool.idle.pop() if pool.idle else None

    async def _admit(self, memory_mb: int) -> None:
        """Make room for an environment of `memory_mb`: evict idle environments of any function,
        least recently used first (never provisioned ones); throttle (429) if that is not enough."""
        if self._committed_mb + memory_mb > self._budget_mb:
            idle = sorted(
                ((env, pool) for pool in self._pools.values() for env in pool.idle if not env.provisioned),
                key=lambda pair: pair[0].idle_since,
            )
            for env, pool in idle:
                if self._committed_mb + memory_mb <= self._budget_mb:
                    break
                if env in pool.idle:
                    pool.idle.remove(env)
                    self._evictions += 1
                    await env.stop()
        if self._committed_mb + memory_mb > self._budget_mb:
            raise TooManyRequestsException("Rate Exceeded.", reason="ConcurrentInvocationLimitExceeded")
        self._committed_mb += memory_mb

    def _released(self, env: ExecutionEnvironment) -> None:
        self._committed_mb -= env.config.memory_size

    async def _create(self, config: FunctionConfig, network: NetworkMode, *, provisioned: bool = False) -> ExecutionEnvironment:
        # Each cold start looks at the installed builds again, so a patched interpreter is picked
        # up by the next one (spec 10, Auto); warm environments keep the version they started with.
        await self._versions.look(config.runtime)
        version = self._versions.select(config)  # InvalidRuntimeException when there is none to run
        debug = self._debug.get(config.name)
        if debug is not None and config.code.source is not None:
            # A debug session of a source function runs the directory itself, so the debugger's
            # paths are the editor's (no path mapping); each reload still gets a new environment.
            code_dir = Path(config.code.source)
        else:
            code_dir = await self._code.unpack(config.code)
        # /opt: the function's layers merged in order, built once per distinct list (spec 5.2).
        opt_dir = await self._code.merged([layer.code for layer in config.layers]) if config.layers else None
        await self._admit(config.memory_size)
        try:
            env = ExecutionEnvironment(
                config=config,
                version=version,
                code_dir=code_dir,
                opt_dir=opt_dir,
                ctx=self._ctx,
                network=network,
                provisioned=provisioned,
                debug=debug,
                on_dead=self._released,  # gives its memory back to the budget
            )
        except BaseException:
            self._committed_mb -= config.memory_size
            raise
        try:
            await env.start()
        except BaseException:
            await env.stop()
            raise
        return env

    async def retire(self, name: str, version: str | None = None, *, wait: bool = True) -> None:
        """Stop the environments of a function (or one version): idle now, busy when they finish.

        With `wait` False, idle environments leave the pool at once and stop in the background
        (a hot reload must not wait for a sandbox's teardown); `close` waits for those stops.
        """
        for (fname, fversion), pool in list(self._pools.items()):
            if fname != name or (version is not None and fversion != version):
                continue
            idle, pool.idle = pool.idle, []
            pool.retiring |= pool.busy
            pool.provisioned_target = 0
            for env in idle:
                if wait or name in self._debug:  # a debug environment's port must be free again first
                    await env.stop()
                else:
                    task = asyncio.ensure_future(env.stop())
                    self._stopping.add(task)
                    task.add_done_callback(self._stopping.discard)
            if not pool.busy:
                del self._pools[(fname, fversion)]

    # --- hot reload ----------------------------------------------------------------------------

    def prewarm(self, config: FunctionConfig, *, network: str | None = None) -> None:
        """Start one environment of `config` in the background and leave it idle in its pool: a
        hot reload's next invoke then finds the new code initialised (a failed init included,
        which that invoke retries and reports). Not for functions in a debug session (one port,
        one environment: the invoke starts it). Returns at once; failures are only logged."""
        if self._closed or config.name in self._debug:
            return
        task = asyncio.ensure_future(self._prewarm(config, _network_mode(network, self._ctx.network)))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _prewarm(self, config: FunctionConfig, mode: NetworkMode) -> None:
        key = (config.name, config.version)
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._warming[key] = (config, ready)
        try:
            env = await self._create(config, mode)
            if self._closed:
                await env.stop()
                return
            # A newer reload may have overtaken it: the next acquire stops it as stale.
            self._pools.setdefault(key, _Pool()).idle.append(env)
        except (OSError, RuntimeError, TooManyRequestsException) as exc:  # no room, or no sandbox
            log.info("prewarming %s after a reload failed: %s", config.name, exc)
        finally:
            if self._warming.get(key, (None, None))[1] is ready:
                del self._warming[key]
            ready.set_result(None)

    # --- debug sessions ----------------------------------------------------------------------

    async def set_debug(self, name: str, setup: DebugSetup | None) -> None:
        """Start (or end, with None) a debug session of function `name`: its environments are
        replaced by debug ones (busy ones when their invocation ends)."""
        if setup is None:
            if self._debug.pop(name, None) is None:
                return
        else:
            self._debug[name] = setup
        await self.retire(name)

    def debug_setup(self, name: str) -> DebugSetup | None:
        return self._debug.get(name)

    async def prepare_debug(self, config: FunctionConfig, *, network: str | None = None) -> ExecutionEnvironment:
        """Start the debug environment of `config` ahead of its invoke, so its debugger listens
        before the port is printed; it waits in the pool (an init error included) for the invoke."""
        pool = self._pools.setdefault((config.name, config.version), _Pool())
        env = await self._create(config, _network_mode(network, self._ctx.network))
        pool.idle.append(env)
        return env

    # --- provisioned concurrency -----------------------------------------------------------

    def provision(self, config: FunctionConfig, count: int, *, network: str | None = None) -> None:
        """Keep `count` environments of this version initialised ahead of traffic (0 stops that).

        Returns at once; environments are built in the background (see `provisioned_state`).
        """
        key = (config.name, config.version)
        pool = self._pools.setdefault(key, _Pool())
        pool.provisioned_target = count
        pool.provision_failure = None
        # Fewer than before: surplus idle environments leave the pool now (stopped by the fill
        # task); busy ones become ordinary on-demand environments.
        keep = count
        for env in [e for e in (*pool.busy, *pool.idle) if e.provisioned]:
            if keep > 0:
                keep -= 1
            elif env in pool.busy:
                env.provisioned = False
            else:
                pool.idle.remove(env)
                pool.retiring.add(env)
        running = self._fills.get(key)
        if running is None or running.done():
            task = asyncio.ensure_future(self._fill(key, config, _network_mode(network, self._ctx.network)))
            self._fills[key] = task

    async def _fill(self, key: tuple[str, str], config: FunctionConfig, network: NetworkMode) -> None:
        while not self._closed:
            pool = self._pools.get(key)
            if pool is None:
                return
            for env in [e for e in pool.retiring if e.provisioned and e not in pool.busy]:
                pool.retiring.discard(env)
                await env.stop()
            if pool.provisioned() >= pool.provisioned_target:
                return
            try:
                env = await self._create(config, network, provisioned=True)
            except (OSError, RuntimeError, InvalidRuntimeException) as exc:  # no sandbox, or no runtime build to run
                log.error("provisioning %s:%s failed", *key, exc_info=exc)
                pool.provision_failure = f"INTERNAL_ERROR: {exc}"
                return
            if env.init_failed:
                await env.stop()
                pool.provision_failure = "FUNCTION_ERROR_INIT_FAILURE"
                return
            if self._pools.get(key) is not pool or pool.provisioned_target == 0:
                await env.stop()
                return
            pool.idle.append(env)

    def provisioned_state(self, name: str, version: str) -> ProvisionedState:
        pool = self._pools.get((name, version))
        if pool is None:
            return ProvisionedState(requested=0, allocated=0, failure=None)
        return ProvisionedState(requested=pool.provisioned_target, allocated=pool.provisioned(), failure=pool.provision_failure)

    async def reap_idle(self) -> int:
        """Stop environments idle longer than the idle timeout; returns how many."""
        cutoff = time.monotonic() - self._idle_timeout
        reaped = 0
        for pool in list(self._pools.values()):
            old = [e for e in pool.idle if e.idle_since < cutoff and not e.provisioned]
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
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)
        fills = [t for t in self._fills.values() if not t.done()]
        for t in fills:
            t.cancel()
        if fills:
            await asyncio.gather(*fills, return_exceptions=True)
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
            memory_committed_mb=self._committed_mb,
            memory_budget_mb=self._budget_mb,
            evictions=self._evictions,
            details=details,
        )


class _Loan:
    """`async with manager.acquire(config) as env`: a class, not @asynccontextmanager, whose
    generator machinery cost ~2.5 µs per invocation on the warm path."""

    __slots__ = ("_manager", "_config", "_mode", "_env", "_pool")

    def __init__(self, manager: EnvironmentManager, config: FunctionConfig, network: str | None) -> None:
        self._manager = manager
        self._config = config
        self._mode = _network_mode(network, manager._ctx.network)
        self._env: ExecutionEnvironment | None = None
        self._pool: _Pool | None = None

    async def __aenter__(self) -> ExecutionEnvironment:
        env, self._pool = await self._manager._lend(self._config, self._mode)
        self._env = env
        return env

    async def __aexit__(self, *exc_info: object) -> None:
        env, pool = self._env, self._pool
        if env is not None and pool is not None:
            self._env = self._pool = None
            await self._manager._give_back(env, pool, self._config, self._mode)


def _runs_like(env: ExecutionEnvironment, config: FunctionConfig) -> bool:
    # Warm invokes pass the very config the environment was built from: skip the field compare.
    return env.config is config or env.config.runs_like(config)


def _network_mode(own: str | None, default: NetworkMode) -> NetworkMode:
    if own == "outbound":
        return "outbound"
    if own == "none":
        return "none"
    return default
