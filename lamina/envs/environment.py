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
from dataclasses import dataclass
from pathlib import Path

from lamina.logs import format as logfmt
from lamina.logs.store import LogStore
from lamina.model.function import FunctionConfig
from lamina.model.invocation import Invocation, InvokeOutcome, InvokeResult, InvokeTimings
from lamina.runtimeapi.server import start_listener
from lamina.runtimeapi.session import InitError, InvocationExpired, NextEvent, RuntimeGone, RuntimeReply, RuntimeSession
from lamina.runtimeapi.wire import MAX_RESPONSE_BYTES
from lamina.runtimes.catalog import PYTHON_BOOTSTRAP, RUNTIME_DIR_INSIDE, python_argv, python_argv_inside
from lamina.runtimes.versions import RuntimeVersion
from lamina.sandbox.base import Limits, Mount, NetworkMode, Sandbox, SandboxExit, SandboxSetup, SandboxSpec

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
        network: NetworkMode | None = None,
        provisioned: bool = False,
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
        self._ctx = ctx
        self._on_dead = on_dead
        self._sandbox = ctx.sandboxes(
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
        self._pending: list[tuple[int, str | Callable[[], str]]] = []
        self._after: asyncio.Handle | None = None  # the post-invocation step, while scheduled
        # The watchdog: one timer for the freeze after FREEZE_GRACE_S idle and the deadline.
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._idle_at = 0.0  # loop time the environment last became idle
        self._deadline_at: float | None = None  # loop time the invocation in flight times out
        self._tail: list[str] | None = None  # this invocation's lines, when a tail is wanted
        self._start_kind = "cold"  # of the invocation in flight: cold, warm or provisioned

    # --- lifecycle ---------------------------------------------------------------------------

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
        else:
            self._log(logfmt.init_report_line(init_ms, "init", failure.status, failure.error_type))
        self._flush_logs()
        if self.state is EnvState.STARTING:
            self.state = EnvState.IDLE
        self._became_idle()

    async def _launch(self, budget: float, limit_s: float) -> InitFailure | None:
        """Start the runtime and wait (up to `budget` s) until it first calls /next.

        Returns a failure if it cannot; `limit_s` is the limit a timeout message names.
        """
        await self._stop_runtime()
        self._needs_launch = True
        layout = self._layout()
        if isinstance(layout, InitFailure):
            return layout
        argv, mounts, task_root, runtime_dir = layout
        self._log(logfmt.init_start_line(self.version.name, self.version.arn))
        self._thaw()  # a frozen cgroup would freeze the new runtime as it enters
        self._sandbox.limit_cpu(False)  # init runs unthrottled; the function's CPU share applies after
        spec = SandboxSpec(
            argv=argv,
            env=self._runtime_env(task_root, runtime_dir),
            cwd=task_root,
            mounts=mounts,
            service_address_env="AWS_LAMBDA_RUNTIME_API",
        )
        try:
            sock = await self._sandbox.start(spec)
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
            return InitFailure(error_type="Runtime.InvalidEntrypoint", detail=f"fork/exec {argv[0]}: {reason}")
        session = RuntimeSession()
        self._session = session
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
        if self._runtime.is_custom:
            # Custom runtime: /var/task/bootstrap, then /opt/bootstrap (spec 5.2). Layers come later.
            bootstrap = self._code_dir / "bootstrap"
            if not bootstrap.is_file():
                return InitFailure(
                    error_type="Runtime.InvalidEntrypoint",
                    detail="Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]",
                )
            if not os.access(bootstrap, os.X_OK):
                return InitFailure(error_type="Runtime.InvalidEntrypoint", detail="fork/exec /var/task/bootstrap: permission denied")
            return [f"{task_root}/bootstrap"], tuple(mounts), task_root, "/var/runtime"
        interpreter = self._runtime.interpreter
        assert interpreter is not None
        if not mapped:
            return python_argv(str(interpreter), str(PYTHON_BOOTSTRAP)), tuple(mounts), task_root, str(PYTHON_BOOTSTRAP.parent)
        mounts.append(Mount(host=PYTHON_BOOTSTRAP.parent, inside=RUNTIME_DIR_INSIDE))
        argv = python_argv_inside(interpreter)
        if argv is None:
            mounts.append(Mount(host=interpreter.parent.parent, inside="/var/lang"))
            argv = python_argv(f"/var/lang/bin/{interpreter.name}", f"{RUNTIME_DIR_INSIDE}/{PYTHON_BOOTSTRAP.name}")
        return argv, tuple(mounts), task_root, RUNTIME_DIR_INSIDE

    def _runtime_env(self, task_root: str, runtime_dir: str) -> dict[str, str]:
        """Lambda's variables (spec 5.3); the sandbox adds AWS_LAMBDA_RUNTIME_API and TMPDIR."""
        c = self.config
        env = dict(c.environment)
        env.update(
            {
                "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
                "LANG": "en_US.UTF-8",
                "LD_LIBRARY_PATH": "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
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
        if not self._runtime.is_custom:
            env["AWS_EXECUTION_ENV"] = f"AWS_Lambda_{c.runtime}"
        if c.logging.log_format == "JSON":
            env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
            if c.logging.application_log_level:
                env["AWS_LAMBDA_LOG_LEVEL"] = c.logging.application_log_level
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
        await self._stop_runtime()
        self._flush_logs()
        await self._sandbox.destroy()
        if self._on_dead is not None:
            self._on_dead(self)

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
        deadline = t_start + c.timeout
        init_ms = self._init_ms
        self._init_ms = None
        cold = init_ms is not None or self._needs_launch
        self._start_kind = "cold" if cold else ("provisioned" if self.provisioned else "warm")
        if self._needs_launch:
            # Suppressed init or a reset: init again inside this invoke, within its timeout.
            t0 = time.perf_counter()
            failure = await self._launch(max(0.001, deadline - time.perf_counter()), c.timeout)
            init_ms = (time.perf_counter() - t0) * 1000
            if failure is not None:
                self._log(logfmt.init_report_line(init_ms, "invoke", failure.status, failure.error_type))
                self._log(logfmt.start_line(rid, c.version))
                return self._finish(inv, t_start, None, InvokeOutcome.INIT_ERROR, failure.body(rid), failure.error_type, status="error")
        self._log(logfmt.start_line(rid, c.version))
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
        reply_future = self._session.deliver(event)
        self._deadline_at = due = self._loop.time() + max(0.0, deadline - t_start)
        self._watch(due)
        try:
            # The session's future: it resolves with the reply, fails with RuntimeGone, or with
            # InvocationExpired when the watchdog finds the deadline passed. Awaited directly (no
            # shield, no timeout scope), the reply wakes this task with one callback, not three.
            reply: RuntimeReply = await reply_future
        except asyncio.CancelledError:
            # Abandoned mid-invocation (e.g. shutdown): the runtime's state is unknown, so reset it.
            self._sandbox.kill()
            self._needs_launch = True
            raise
        except InvocationExpired:
            await self._stop_runtime()
            self._log(logfmt.timeout_line(rid, c.timeout))
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
            billed_ms=logfmt.billed_ms(duration),
            max_memory_mb=math.ceil(peak / 1048576),
            init_ms=init_ms,
            start=self._start_kind,
        )
        report = functools.partial(
            logfmt.report_line,
            inv.request_id, timings, self.config.memory_size, status=status, error_type=error_type if status else None,
        )  # fmt: skip
        tail = None
        if self._tail is not None:
            # Both lines are part of the answer: format them now.
            self._log(logfmt.end_line(inv.request_id))
            self._log(report())
            tail = ("\n".join(self._tail) + "\n").encode()[-TAIL_BYTES:]
        else:
            now = int(time.time() * 1000)
            self._pending += ((now, functools.partial(logfmt.end_line, inv.request_id)), (now, report))
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
        for raw in lines:
            self._log(raw.decode("utf-8", "replace"))

    def _log(self, message: str) -> None:
        self._pending.append((int(time.time() * 1000), message))
        if self._tail is not None:
            self._tail.append(message)

    def _flush_logs(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            self._ctx.logs.write(self.config.name, self.stream, [(t, m if isinstance(m, str) else m()) for t, m in pending])

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
            runtime_version_arn=self.version.arn,
        )


def _exit_detail(exit_info: SandboxExit) -> str:
    if exit_info.returncode == 0:
        return "Runtime exited without providing a reason"
    return f"Runtime exited with error: {exit_info.describe()}"
