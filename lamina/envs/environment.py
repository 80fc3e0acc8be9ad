"""ExecutionEnvironment: one runtime process tree serving one invocation at a time (spec 5.1).

An environment owns a Sandbox, the RuntimeSession and listener its runtime talks to, a private
/tmp, and the capture of the runtime's output into its log stream. It outlives resets: after a
timeout or crash the runtime is killed and the next invoke re-runs init in the same environment,
keeping /tmp (spec 5.1 "Reset"). Init that fails in the init phase is retried inside the first
invoke (spec 4.4, "suppressed init").

States: STARTING → IDLE ⇄ BUSY → DEAD. `invoke` never raises for function faults: every outcome
is an InvokeResult. `stop` is idempotent and kills everything the environment started.

The warm path does only what the answer needs before it returns. Work the caller does not wait
for runs after the response is on its way:
- an idle environment is frozen once it has stayed idle for FREEZE_GRACE_S, not after every
  invocation, so back-to-back invocations pay no freeze and thaw (the runtime may run for those few
  ms after an invocation; after that nothing in it runs while idle, spec 5.1);
- the END and REPORT lines are formatted, and the invocation's log lines written to the store, in
  a step scheduled with `call_soon`: it runs after the task that returned the result has written
  the response (and before any later request's task starts), or at once when the next invocation
  or `stop` comes first. Lines keep their order; REPORT's Max Memory Used is read when the
  invocation ends, as before. With LogType=Tail, END and REPORT are part of the answer, so they are
  formatted before it.
- one timer per environment (the watchdog) serves both the freeze and the invocation's deadline; it
  is re-armed only when it fires early or must fire earlier, not once per invocation.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import json
import math
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lamina.envs import debugging
from lamina.logs import format as logfmt
from lamina.logs.store import LogStore
from lamina.model.function import FunctionConfig
from lamina.model.invocation import Invocation, InvokeOutcome, InvokeResult, InvokeTimings
from lamina.envs import extensions as ext
from lamina.runtimeapi.extensions import ExtensionEvent, ExtensionsHub, FunctionIdentity
from lamina.runtimeapi.server import start_listener
from lamina.runtimeapi.session import InitError, InvocationExpired, NextEvent, RuntimeGone, RuntimeReply, RuntimeSession
from lamina.runtimeapi.wire import MAX_RESPONSE_BYTES
from lamina.runtimes.catalog import (
    NODEJS_BOOTSTRAP, NODEJS_SDK, PYTHON_BOOTSTRAP, RUNTIME_DIR_INSIDE, RuntimeInfo, nodejs_argv, nodejs_path, python_argv,
    python_argv_inside,
)  # fmt: skip
from lamina.runtimes.sdk import SDK_DIR_INSIDE, SDK_PATH_ENV, SdkCatalog
from lamina.runtimes.versions import RuntimeVersion
from lamina.sandbox.base import Limits, Mount, NetworkMode, Sandbox, SandboxExit, SandboxSetup, SandboxSpec
from lamina.sandbox.process import ProcessSandbox

TAIL_BYTES = 4096
# How long an environment stays thawed after an invocation before it is frozen (see the module
# docstring). Short against anything a function could notice (a 10 ms ticker ticks at most once
# more), long against the gap between back-to-back invocations.
FREEZE_GRACE_S = 0.005


class EnvState(enum.Enum):
    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    DEAD = "dead"


@dataclass(frozen=True, slots=True, kw_only=True)
class InitFailure:
    """Why init failed: the runtime's own error body, or a platform error's detail text."""

    error_type: str
    posted_body: bytes | None = None  # what the runtime posted to /init/error, forwarded verbatim
    detail: str = ""  # for platform errors: "RequestId: <id> Error: <detail>"
    status: str = "error"  # INIT_REPORT Status: error | timeout

    def body(self, request_id: str) -> bytes:
        if self.posted_body is not None:
            return self.posted_body
        return _platform_error(request_id, self.error_type, self.detail).encode()


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvironmentContext:
    """What every environment of a server shares."""

    region: str
    init_timeout: float
    logs: LogStore
    work_root: Path
    # Builds the isolation for one environment (the backend chosen at start, ARCHITECTURE rule 10).
    sandboxes: Callable[[SandboxSetup], Sandbox]
    network: NetworkMode = "none"
    # The AWS SDK sets the managed Python runtimes carry (none: functions must package boto3).
    python_sdks: SdkCatalog = field(default_factory=lambda: SdkCatalog({}))
    account_id: str = "000000000000"  # what /extension/register answers with Accept-Feature accountId


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvironmentStatistics:
    id: str
    function: str
    version: str
    state: EnvState
    invocations: int
    warm: bool
    idle_since: float
    provisioned: bool
    code_sha256: str
    debug_port: int | None
    runtime_version_arn: str


def _platform_error(request_id: str, error_type: str, detail: str) -> str:
    return json.dumps({"errorType": error_type, "errorMessage": f"RequestId: {request_id} Error: {detail}"})


class ExecutionEnvironment:
    def __init__(
        self,
        *,
        config: FunctionConfig,
        version: RuntimeVersion,
        code_dir: Path,
        ctx: EnvironmentContext,
        opt_dir: Path | None = None,
        network: NetworkMode | None = None,
        provisioned: bool = False,
        debug: debugging.DebugSetup | None = None,
        on_dead: Callable[[ExecutionEnvironment], None] | None = None,
    ) -> None:
        self.id = uuid.uuid4().hex
        self._loop = asyncio.get_running_loop()  # made by the manager, inside the server's loop
        # Initialised ahead of traffic (provisioned concurrency): never reaped when idle, and its
        # init is not part of any invocation (no Init Duration on REPORT lines).
        self.provisioned = provisioned
        self.network: NetworkMode = network or ctx.network
        self.config = config
        self.state = EnvState.STARTING
        self.stream = time.strftime("%Y/%m/%d/", time.gmtime()) + f"[{config.version}]{self.id}"
        self.invocations = 0
        self.idle_since = time.monotonic()
        # The runtime build this environment runs for its whole life (spec 10: a newer version
        # reaches a function through new environments only).
        self.version = version
        self._runtime = version.info
        self._code_dir = code_dir
        self._opt_dir = opt_dir  # the merged layers, seen at /opt; None without layers
        self._ctx = ctx
        self._on_dead = on_dead
        # A debug session's environment: a plain process whose debugger the host can reach, and no
        # function timeout while it may be paused (envs/debugging.py).
        self.debug = debug
        # The code hash every REPORT line and log record of this environment carries (12 hex digits).
        self.code_hash = config.code.sha256_hex[:12]
        self._sandbox = (ProcessSandbox if debug is not None else ctx.sandboxes)(
            SandboxSetup(
                id=self.id,
                work_dir=ctx.work_root / self.id,
                limits=Limits(memory_mb=config.memory_size, tmp_mb=config.ephemeral_storage),
                network=self.network,
            )
        )
        self._running = False  # a runtime process tree exists in the sandbox
        self._oom_seen = 0  # the sandbox's OOM-kill count when its runtime last started
        self._frozen = False
        self._session: RuntimeSession | None = None
        self._listener: asyncio.Server | None = None
        self._exit_task: asyncio.Task[SandboxExit] | None = None
        self._needs_launch = True
        self._init_ms: float | None = None  # reported on the first REPORT after a successful init
        self._partial = b""
        # Log events not yet written; a callable is a line formatted when written (END, REPORT).
        self._pending: list[tuple[int, str | Callable[[], str | None]]] = []
        self._after: asyncio.Handle | None = None  # the post-invocation step, while scheduled
        # The watchdog: one timer for the freeze after FREEZE_GRACE_S idle and the deadline.
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._idle_at = 0.0  # loop time the environment last became idle
        self._deadline_at: float | None = None  # loop time the invocation in flight times out
        self._tail: list[str] | None = None  # this invocation's lines, when a tail is wanted
        self._start_kind = "cold"  # of the invocation in flight: cold, warm or provisioned
        self._hub: ExtensionsHub | None = None  # this launch's Extensions API, if extensions registered
        self._extensions_due = 0.0  # loop time the invocation in flight (and its extensions) must end
        # Extensions finishing the last invocation (post-invoke); the environment is lent again after.
        self.post_invoke: asyncio.Task[None] | None = None
        # The platform's lines in the function's log format, filtered by its log levels.
        self._plog = logfmt.PlatformLog.for_config(config.logging)
        self._init_info = logfmt.InitInfo(
            initialization_type="provisioned-concurrency" if provisioned else "on-demand",
            function_name=config.name,
            function_version=config.version,
            instance_id=self.stream.replace("[", f"{config.name}[", 1),
            memory_size=config.memory_size,
        )

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def code_dir(self) -> Path:
        """The code directory on the host (what a debugger sees, as debug environments are processes)."""
        return self._code_dir

    @property
    def warm(self) -> bool:
        return not self._needs_launch

    @property
    def init_failed(self) -> bool:
        """Init failed and was not retried yet (the first invoke would retry it)."""
        return self._needs_launch and self.state is EnvState.IDLE

    async def start(self) -> None:
        """Create the sandbox and run the init phase (bounded by the init timeout).

        A function's init failure is kept for the first invoke; a failure to build the sandbox
        itself raises (the caller stops the environment).
        """
        await self._sandbox.setup()
        t0 = time.perf_counter()
        failure = await self._launch(self._ctx.init_timeout, self._ctx.init_timeout)
        init_ms = (time.perf_counter() - t0) * 1000
        if failure is None:
            self._init_ms = None if self.provisioned else init_ms
        self._log_init_done("init", init_ms, failure)
        self._flush_logs()
        if self.state is EnvState.STARTING:
            self.state = EnvState.IDLE
        self._became_idle()

    async def _launch(self, budget: float, limit_s: float, phase: str = "init") -> InitFailure | None:
        """Start the runtime and wait (up to `budget` s) until it first calls /next.

        Returns a failure if it cannot; `limit_s` is the limit a timeout message names.
        """
        await self._stop_runtime()
        self._needs_launch = True
        layout = self._layout()
        if isinstance(layout, InitFailure):
            return layout
        argv, mounts, task_root, runtime_dir = layout
        externals = ext.external_extensions(self._opt_dir)
        if externals:  # started before the runtime, in the same sandbox (spec 4.7)
            assert self._opt_dir is not None
            ext_dir = "/opt/extensions" if self._sandbox.maps_paths else str(self._opt_dir / "extensions")
            argv = ext.launch_argv(ext_dir, argv)
        until = self._loop.time() + budget
        env = self._runtime_env(task_root, runtime_dir)
        mounts = self._with_sdk(mounts, env)
        self._log(self._plog.init_start(self._init_info, phase, self.version.name, self.version.arn))
        self._thaw()  # a frozen cgroup would freeze the new runtime as it enters
        self._sandbox.limit_cpu(False)  # init runs unthrottled; the function's CPU share applies after
        spec = SandboxSpec(
            argv=argv,
            env=env,
            cwd=task_root,
            mounts=mounts,
            service_address_env="AWS_LAMBDA_RUNTIME_API",
        )
        try:
            sock = await self._sandbox.start(spec)
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
            return InitFailure(error_type="Runtime.InvalidEntrypoint", detail=f"fork/exec {argv[0]}: {reason}")
        c = self.config
        hub = ExtensionsHub(
            FunctionIdentity(name=c.name, version=c.version, handler=c.handler, account_id=self._ctx.account_id),
            frozenset(externals),
        )
        session = RuntimeSession(extensions=hub)
        self._session = session
        self._hub = None
        self._listener = await start_listener(session, sock)
        self._running = True
        self._oom_seen = self._sandbox.oom_kills()
        asyncio.get_running_loop().add_reader(self._sandbox.output_fd, self._read_output)
        self._exit_task = asyncio.ensure_future(self._sandbox.wait_exit())
        self._exit_task.add_done_callback(self._on_exit)
        ready = asyncio.ensure_future(session.wait_ready())
        try:
            done, _ = await asyncio.wait({ready, self._exit_task}, timeout=budget, return_when=asyncio.FIRST_COMPLETED)
            if ready in done and ready.exception() is None:
                init_error = ready.result()
                if init_error is None:
                    failure = await self._extensions_ready(hub, externals, until, limit_s)
                    if failure is not None:
                        return failure
                    self._needs_launch = False
                    self._sandbox.limit_cpu(True)
                    return None
                return await self._after_init_error(init_error)
            if self._exit_task in done:
                self._drain_output()
                detail = _exit_detail(self._exit_task.result())
                return InitFailure(error_type="Runtime.ExitError", detail=detail)
            await self._stop_runtime()
            return InitFailure(error_type="Sandbox.Timedout", status="timeout", detail=f"Task timed out after {limit_s:.2f} seconds")
        finally:
            ready.cancel()

    async def _extensions_ready(self, hub: ExtensionsHub, externals: list[str], until: float, limit_s: float) -> InitFailure | None:
        """Init also waits for the extensions: every external one registered, and all of them
        asking for their first event (spec 4.7). None once they are; else why init failed."""
        if not externals and not hub.extensions:
            return None
        failed = hub.init_error
        try:
            await asyncio.wait_for(
                hub.wait(lambda: ext.registered(hub, externals) or failed() is not None), max(0.0, until - self._loop.time())
            )  # fmt: skip
        except TimeoutError:
            late = ", ".join(ext.not_ready(hub, externals))  # before the reset closes the hub
            await self._stop_runtime()
            return InitFailure(error_type="Extension.Crash", status="timeout",
                               detail=f"extension(s) {late} did not finish init within {limit_s:.2f} seconds")  # fmt: skip
        for e in hub.extensions:
            self._log(ext.state_line(e))
        bad = failed()
        if bad is not None:
            await self._stop_runtime()
            return InitFailure(error_type=bad.error or "Extension.InitError", detail=f"extension {bad.name} failed to initialise")
        self._hub = hub if hub.extensions else None
        return None

    async def _after_init_error(self, err: InitError) -> InitFailure:
        # The runtime exits right after posting /init/error (spec 4.4); give it a moment, then kill.
        assert self._exit_task is not None
        await asyncio.wait({self._exit_task}, timeout=1.0)
        await self._stop_runtime()
        return InitFailure(error_type=err.error_type, posted_body=err.body)

    def _layout(self) -> tuple[list[str], tuple[Mount, ...], str, str] | InitFailure:
        """argv, mounts, task root and runtime dir as the runtime will see them.

        Sandboxes that map paths get Lambda's layout (spec 5.2): code at /var/task, the runtime
        client at /var/runtime, an interpreter outside /usr at /var/lang. Others see host paths.
        """
        mapped = self._sandbox.maps_paths
        task_root = "/var/task" if mapped else str(self._code_dir)
        mounts = [Mount(host=self._code_dir, inside="/var/task")]
        if self._opt_dir is not None:
            mounts.append(Mount(host=self._opt_dir, inside="/opt"))  # read-only, as /var/task
        if self._runtime.is_custom:
            # Custom runtime: /var/task/bootstrap, then /opt/bootstrap (spec 5.2).
            found = [(inside, root / "bootstrap") for inside, root in (("/var/task", self._code_dir), ("/opt", self._opt_dir))
                     if root is not None and (root / "bootstrap").is_file()]  # fmt: skip
            if not found:
                return InitFailure(
                    error_type="Runtime.InvalidEntrypoint",
                    detail="Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]",
                )
            inside, bootstrap = found[0]
            if not os.access(bootstrap, os.X_OK):
                return InitFailure(error_type="Runtime.InvalidEntrypoint", detail=f"fork/exec {inside}/bootstrap: permission denied")
            return [f"{inside}/bootstrap" if mapped else str(bootstrap)], tuple(mounts), task_root, "/var/runtime"
        interpreter = self._runtime.interpreter
        assert interpreter is not None
        if self._runtime.is_nodejs:
            return self._nodejs_layout(interpreter, mounts, task_root)
        if not mapped:
            return python_argv(str(interpreter), str(PYTHON_BOOTSTRAP)), tuple(mounts), task_root, str(PYTHON_BOOTSTRAP.parent)
        mounts.append(Mount(host=PYTHON_BOOTSTRAP.parent, inside=RUNTIME_DIR_INSIDE))
        argv = python_argv_inside(interpreter)
        if argv is None:
            mounts.append(Mount(host=interpreter.parent.parent, inside="/var/lang"))
            argv = python_argv(f"/var/lang/bin/{interpreter.name}", f"{RUNTIME_DIR_INSIDE}/{PYTHON_BOOTSTRAP.name}")
        return argv, tuple(mounts), task_root, RUNTIME_DIR_INSIDE

    def _nodejs_layout(self, node: Path, mounts: list[Mount], task_root: str) -> tuple[list[str], tuple[Mount, ...], str, str]:
        """node cannot be forked from the (Python) zygote: it is exec'd, with the runtime client at
        /var/runtime and the SDK, when installed, at /var/runtime/node_modules (spec 5.2)."""
        memory = self.config.memory_size
        if not self._sandbox.maps_paths:
            return nodejs_argv(str(node), str(NODEJS_BOOTSTRAP), memory), tuple(mounts), task_root, str(NODEJS_BOOTSTRAP.parent)
        mounts.append(Mount(host=NODEJS_BOOTSTRAP.parent, inside=RUNTIME_DIR_INSIDE))
        if NODEJS_SDK.is_dir() and (NODEJS_BOOTSTRAP.parent / "node_modules").is_dir():
            # On the placeholder directory bootstraps/nodejs/node_modules (a read-only bind has no
            # room for a new mount point).
            mounts.append(Mount(host=NODEJS_SDK, inside=f"{RUNTIME_DIR_INSIDE}/node_modules"))
        inside = str(node)
        if not node.is_relative_to("/usr"):
            mounts.append(Mount(host=node.parent.parent, inside="/var/lang"))
            inside = f"/var/lang/bin/{node.name}"
        return nodejs_argv(inside, f"{RUNTIME_DIR_INSIDE}/{NODEJS_BOOTSTRAP.name}", memory), tuple(mounts), task_root, RUNTIME_DIR_INSIDE

    def _with_sdk(self, mounts: tuple[Mount, ...], env: dict[str, str]) -> tuple[Mount, ...]:
        """Give a managed Python runtime the AWS SDK it carries: `mounts` plus the SDK's (in
        sandboxes that map paths), and its path in `env` for the runtime client."""
        sdk = None if self._runtime.is_custom else self._ctx.python_sdks.for_runtime(self.config.runtime)
        if sdk is None:
            return mounts
        if not self._sandbox.maps_paths:
            env[SDK_PATH_ENV] = str(sdk.directory)
            return mounts
        env[SDK_PATH_ENV] = SDK_DIR_INSIDE
        return (*mounts, Mount(host=sdk.directory, inside=SDK_DIR_INSIDE))

    def _runtime_env(self, task_root: str, runtime_dir: str) -> dict[str, str]:
        """Lambda's variables (spec 5.3); the sandbox adds AWS_LAMBDA_RUNTIME_API and TMPDIR.

        Sandboxes that do not map paths (process mode) have no /opt of their own: the layers'
        host directory stands in for it in PATH and LD_LIBRARY_PATH, and LAMINA_OPT_DIR tells the
        Python runtime client where /opt/python is."""
        c = self.config
        env = dict(c.environment)
        opt = "/opt" if self._sandbox.maps_paths or self._opt_dir is None else str(self._opt_dir)
        env.update(
            {
                "PATH": f"/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:{opt}/bin",
                "LANG": "en_US.UTF-8",
                "LD_LIBRARY_PATH": f"/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:{opt}/lib",
                "TZ": ":UTC",
                "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            }
        )
        for key in ("PATH", "LANG", "LD_LIBRARY_PATH", "TZ"):
            if key in c.environment:
                env[key] = c.environment[key]  # unreserved defaults the function may override (spec 5.3)
        env.update(
            {
                "_HANDLER": c.handler,
                "AWS_REGION": self._ctx.region,
                "AWS_DEFAULT_REGION": self._ctx.region,
                "AWS_LAMBDA_FUNCTION_NAME": c.name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(c.memory_size),
                "AWS_LAMBDA_FUNCTION_VERSION": c.version,
                "AWS_LAMBDA_INITIALIZATION_TYPE": "provisioned-concurrency" if self.provisioned else "on-demand",
                "AWS_LAMBDA_LOG_GROUP_NAME": c.log_group,
                "AWS_LAMBDA_LOG_STREAM_NAME": self.stream,
                "LAMBDA_TASK_ROOT": task_root,
                "LAMBDA_RUNTIME_DIR": runtime_dir,
            }
        )
        if opt != "/opt":
            env["LAMINA_OPT_DIR"] = opt
        if not self._runtime.is_custom:
            env["AWS_EXECUTION_ENV"] = f"AWS_Lambda_{c.runtime}"
        if self._runtime.is_nodejs and "NODE_PATH" not in c.environment:  # unreserved (spec 5.3)
            sdk = f"{runtime_dir}/node_modules" if self._sandbox.maps_paths else str(NODEJS_SDK)
            env["NODE_PATH"] = nodejs_path(c.runtime, sdk=sdk, runtime_dir=runtime_dir, task_root=task_root, opt=opt)
        if self.debug is not None:
            env.update(debugging.runtime_env(self.debug, c.runtime))
        level = c.logging.application_level
        if level is not None:  # JSON format; Text sets neither variable
            env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
            env["AWS_LAMBDA_LOG_LEVEL"] = level.name
        return env

    def _on_exit(self, task: asyncio.Task[SandboxExit]) -> None:
        if self._session is not None:
            self._session.close("runtime exited")
        if self.state is EnvState.IDLE and self.warm:
            # Died while idle: the next invoke re-inits (a reset, keeping /tmp).
            self._needs_launch = True

    def _freeze(self) -> None:
        """Freeze an idle environment, as Lambda does between invocations (spec 5.1)."""
        if self._running and not self._frozen:
            self._sandbox.freeze()
            self._frozen = True

    def _became_idle(self) -> None:
        """Freeze after FREEZE_GRACE_S unless an invocation comes first."""
        self._idle_at = now = self._loop.time()
        self._watch(now + FREEZE_GRACE_S)

    def _watch(self, when: float) -> None:
        """Make sure the watchdog runs at loop time `when` or earlier."""
        timer = self._timer
        if timer is not None:
            if self._timer_at <= when:
                return
            timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._on_watchdog)

    def _on_watchdog(self) -> None:
        self._timer = None
        now = self._loop.time()
        if self.state is EnvState.BUSY:
            due = self._deadline_at
            if due is None:
                return
            if now < due:
                self._watch(due)
            elif self._session is not None:
                self._deadline_at = None
                self._session.expire()
        elif self.state is EnvState.IDLE and self._running and not self._frozen:
            due = self._idle_at + FREEZE_GRACE_S
            if now < due:
                self._watch(due)
            else:
                self._freeze()

    def _thaw(self) -> None:
        if self._frozen:
            self._sandbox.thaw()
            self._frozen = False

    async def _stop_runtime(self) -> None:
        """Kill the current runtime (if any) and release its listener; the environment stays."""
        if self._running:
            self._sandbox.kill()
            if self._exit_task is not None:
                await asyncio.wait({self._exit_task}, timeout=5.0)
            self._drain_output()
            asyncio.get_running_loop().remove_reader(self._sandbox.output_fd)
            self._sandbox.close_output()
            self._running = False
        self._thaw()
        self._exit_task = None
        if self._session is not None:
            self._session.close("environment reset")
            self._session = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self._needs_launch = True

    async def stop(self) -> None:
        """Stop for good: kill the runtime, release the sandbox (its /tmp too). Idempotent."""
        if self.state is EnvState.DEAD:
            return
        self.state = EnvState.DEAD
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._complete()
        await self._shut_down_extensions()
        await self._stop_runtime()
        self._flush_logs()
        await self._sandbox.destroy()
        if self._on_dead is not None:
            self._on_dead(self)

    async def _shut_down_extensions(self) -> None:
        """SHUTDOWN to the extensions registered for it; they get SHUTDOWN_GRACE_S to leave."""
        hub = self._hub
        if hub is None or not self._running or not any(ExtensionEvent.SHUTDOWN in e.events for e in hub.extensions):
            return
        self._thaw()
        hub.shutdown(reason="spindown", deadline_ms=int((time.time() + ext.SHUTDOWN_GRACE_S) * 1000))
        try:
            await asyncio.wait_for(hub.wait(hub.shut_down), ext.SHUTDOWN_GRACE_S)
        except TimeoutError:
            pass  # killed with the rest of the tree

    # --- invoke ------------------------------------------------------------------------------

    async def invoke(self, inv: Invocation) -> InvokeResult:
        if self.state is not EnvState.IDLE:
            raise RuntimeError(f"environment {self.id} is {self.state.value}, not idle")
        self._complete()  # the previous invocation's lines go first
        self.state = EnvState.BUSY
        self.invocations += 1
        self._tail = [] if inv.tail_log else None
        try:
            return await self._invoke(inv)
        finally:
            self._tail = None
            if self._after is None:
                self._after = self._loop.call_soon(self._complete)
            hub = self._hub
            if self.state is EnvState.BUSY and hub is not None and not hub.ready():
                # The answer goes out now; the environment stays busy until the extensions are
                # done with the invocation too (Lambda's post-invoke phase, spec 4.7).
                self.post_invoke = self._loop.create_task(self._wait_extensions(hub, self._extensions_due))
            elif self.state is EnvState.BUSY:
                self.state = EnvState.IDLE
                self.idle_since = time.monotonic()
                self._became_idle()

    async def _wait_extensions(self, hub: ExtensionsHub, due: float) -> None:
        """Post-invoke: until every extension asks for its next event, at most until the
        invocation's deadline; past it, the environment is reset, as after a timeout."""
        try:
            await asyncio.wait_for(hub.wait(hub.ready), max(0.0, due - self._loop.time()))
        except TimeoutError:
            self._log("Extensions did not finish the invocation before its deadline; resetting the environment")
            await self._stop_runtime()
        finally:
            self.post_invoke = None
            if self.state is EnvState.BUSY:
                self.state = EnvState.IDLE
                self.idle_since = time.monotonic()
                self._became_idle()

    def _complete(self) -> None:
        """The post-invocation step: write the lines of the invocation that ended (see module doc)."""
        after, self._after = self._after, None
        if after is not None:
            after.cancel()
        self._flush_logs()

    async def _invoke(self, inv: Invocation) -> InvokeResult:
        rid = inv.request_id
        c = self.config
        t_start = time.perf_counter()
        deadline = t_start + (c.timeout if self.debug is None else debugging.DEBUG_TIMEOUT_S)
        init_ms = self._init_ms
        self._init_ms = None
        cold = init_ms is not None or self._needs_launch
        self._start_kind = "cold" if cold else ("provisioned" if self.provisioned else "warm")
        if self._needs_launch:
            # Suppressed init or a reset: init again inside this invoke, within its timeout.
            t0 = time.perf_counter()
            failure = await self._launch(max(0.001, deadline - time.perf_counter()), c.timeout, "invoke")
            init_ms = (time.perf_counter() - t0) * 1000
            self._log_init_done("invoke", init_ms, failure)
            if failure is not None:
                self._log(self._plog.start(rid, c.version, inv.invoked_arn))
                return self._finish(inv, t_start, None, InvokeOutcome.INIT_ERROR, failure.body(rid), failure.error_type, status="error")
        self._log(self._plog.start(rid, c.version, inv.invoked_arn))
        assert self._session is not None
        event = NextEvent(
            request_id=rid,
            deadline_ms=int((time.time() + max(0.0, deadline - time.perf_counter())) * 1000),
            invoked_arn=inv.invoked_arn,
            payload=inv.payload,
            trace_id=inv.trace_id,
            client_context=inv.client_context,
        )
        t_start = time.perf_counter()
        self._thaw()
        session = self._session
        reply_future = session.deliver(event)
        self._deadline_at = due = self._loop.time() + max(0.0, deadline - t_start)
        if self._hub is not None:
            self._hub.invoke(request_id=rid, deadline_ms=event.deadline_ms, invoked_arn=inv.invoked_arn, trace_id=inv.trace_id)
            self._extensions_due = due
        self._watch(due)
        try:
            # The session's future: it resolves with the reply, fails with RuntimeGone, or with
            # InvocationExpired when the watchdog finds the deadline passed. Awaited directly (no
            # shield, no timeout scope), the reply wakes this task with one callback, not three.
            try:
                reply: RuntimeReply = await reply_future
            except RuntimeGone:
                if session.taken or self.state is EnvState.DEAD:
                    raise
                # It exited before taking the event (Lambda's Node.js runtime exits right after
                # reporting an uncaught error): Lambda would have re-initialised it before handing
                # the event over, so do that now, within the invocation's time (spec 5.1 "Reset").
                self._drain_output()
                self._start_kind = "cold"
                t0 = time.perf_counter()
                failure = await self._launch(max(0.001, deadline - t0), c.timeout, "invoke")
                init_ms = (time.perf_counter() - t0) * 1000
                self._log_init_done("invoke", init_ms, failure)
                if failure is not None:
                    return self._finish(inv, t_start, None, InvokeOutcome.INIT_ERROR, failure.body(rid), failure.error_type, status="error")
                assert self._session is not None
                self._watch(due)
                reply = await self._session.deliver(event)
        except asyncio.CancelledError:
            # Abandoned mid-invocation (e.g. shutdown): the runtime's state is unknown, so reset it.
            self._sandbox.kill()
            self._needs_launch = True
            raise
        except InvocationExpired:
            await self._stop_runtime()
            self._log(self._plog.timeout(rid, c.timeout))
            body = _platform_error(rid, "Sandbox.Timedout", f"Task timed out after {c.timeout:.2f} seconds")
            return self._finish(inv, t_start, init_ms, InvokeOutcome.TIMEOUT, body.encode(), "Sandbox.Timedout", status="timeout")
        except RuntimeGone:
            # The runtime died (or the environment was stopped under it, e.g. at shutdown).
            exit_task = self._exit_task
            exit_info = await exit_task if exit_task is not None else SandboxExit(returncode=None, signal=9)
            self._drain_output()
            await self._stop_runtime()
            detail = _exit_detail(exit_info)
            # The cgroup's OOM counter says whether the kernel killed it for memory (not a guess).
            oom_kills = self._sandbox.oom_kills()
            error_type = "Runtime.OutOfMemory" if oom_kills > self._oom_seen else "Runtime.ExitError"
            self._oom_seen = oom_kills
            body = _platform_error(rid, error_type, detail)
            return self._finish(inv, t_start, init_ms, InvokeOutcome.RUNTIME_EXIT, body.encode(), error_type, status="error")
        finally:
            self._deadline_at = None
        self._drain_output()
        if reply.too_large:
            # The runtime was answered 413 and (like awslambdaric) may exit: reset the environment.
            await self._stop_runtime()
            too_large = json.dumps(
                {
                    "errorMessage": f"Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
                    "errorType": "Function.ResponseSizeTooLarge",
                }
            ).encode()
            return self._finish(inv, t_start, init_ms, InvokeOutcome.RESPONSE_TOO_LARGE, too_large, "Function.ResponseSizeTooLarge", status="error")
        if reply.is_error:
            return self._finish(inv, t_start, init_ms, InvokeOutcome.FUNCTION_ERROR, reply.body, reply.error_type)
        return self._finish(inv, t_start, init_ms, InvokeOutcome.SUCCESS, reply.body, None, content_type=reply.content_type)

    def _finish(
        self,
        inv: Invocation,
        t_start: float,
        init_ms: float | None,
        outcome: InvokeOutcome,
        payload: bytes,
        error_type: str | None,
        *,
        status: str | None = None,
        content_type: str | None = None,
    ) -> InvokeResult:
        duration = (time.perf_counter() - t_start) * 1000
        peak = self._sandbox.peak_memory()
        timings = InvokeTimings(
            duration_ms=duration,
            # Since August 2025 Lambda bills an on-demand init with the invocation that ran it.
            billed_ms=logfmt.billed_ms(duration + (init_ms or 0.0)),
            max_memory_mb=math.ceil(peak / 1048576),
            init_ms=init_ms,
            start=self._start_kind,
        )
        plog = self._plog
        end = functools.partial(plog.end, inv.request_id, duration, len(payload), error_type, status)
        report = functools.partial(plog.report, inv.request_id, timings, self.config.memory_size, status=status, error_type=error_type,
                                   code=self.code_hash)
        tail = None
        if self._tail is not None:
            # Both lines are part of the answer: format them now.
            self._log(end())
            self._log(report())
            tail = ("\n".join(self._tail) + "\n").encode()[-TAIL_BYTES:]
        else:
            now = int(time.time() * 1000)
            self._pending += ((now, end), (now, report))
        return InvokeResult(
            request_id=inv.request_id,
            executed_version=self.config.version,
            outcome=outcome,
            payload=payload,
            content_type=content_type,
            error_type=error_type,
            timings=timings,
            log_tail=tail,
        )

    # --- output capture ----------------------------------------------------------------------

    def _read_output(self) -> None:
        """The loop's reader callback: take what the runtime wrote; at EOF stop watching."""
        self._read_available(end_of_invocation=False)

    def _drain_output(self) -> None:
        """Read everything the runtime has written so far (it flushes before posting a reply).

        Called when an invocation ends, so an unfinished last line is logged as its own event
        rather than glued to the next invocation's first line.
        """
        self._read_available(end_of_invocation=True)

    def _read_available(self, *, end_of_invocation: bool) -> None:
        sandbox = self._sandbox
        if not self._running or sandbox.output_fd < 0:
            return
        while True:
            try:
                chunk = os.read(sandbox.output_fd, 65536)
            except BlockingIOError:
                if end_of_invocation:
                    self._take_lines(b"", final=True)
                return
            if not chunk:
                asyncio.get_running_loop().remove_reader(sandbox.output_fd)
                self._take_lines(b"", final=True)
                return
            self._take_lines(chunk)

    def _take_lines(self, chunk: bytes, *, final: bool = False) -> None:
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()  # an unfinished line (b"" after a newline)
        if final and self._partial:
            lines.append(self._partial)
            self._partial = b""
        keeps = self._plog.keeps
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            if keeps(line):  # ApplicationLogLevel, in the JSON log format
                self._log(line)

    def _log(self, message: str | None) -> None:
        """Add a line to the stream; None is a platform line the function's log level dropped."""
        if message is None:
            return
        self._pending.append((int(time.time() * 1000), message))
        if self._tail is not None:
            self._tail.append(message)

    def _log_init_done(self, phase: str, init_ms: float, failure: InitFailure | None) -> None:
        status, error_type = ("success", None) if failure is None else (failure.status, failure.error_type)
        for line in self._plog.init_done(self._init_info, phase, init_ms, status, error_type):
            self._log(line)

    def _flush_logs(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            events: list[tuple[int, str]] = []
            for t, m in pending:
                line = m if isinstance(m, str) else m()
                if line is not None:  # a lazily formatted platform line that its level dropped
                    events.append((t, line))
            self._ctx.logs.write(self.config.name, self.stream, events, code=self.code_hash)

    def statistics(self) -> EnvironmentStatistics:
        return EnvironmentStatistics(
            id=self.id,
            function=self.config.name,
            version=self.config.version,
            state=self.state,
            invocations=self.invocations,
            warm=self.warm,
            idle_since=self.idle_since,
            provisioned=self.provisioned,
            code_sha256=self.config.code.sha256_hex,
            debug_port=self.debug.port if self.debug is not None else None,
            runtime_version_arn=self.version.arn,
        )


def _exit_detail(exit_info: SandboxExit) -> str:
    if exit_info.returncode == 0:
        return "Runtime exited without providing a reason"
    return f"Runtime exited with error: {exit_info.describe()}"
