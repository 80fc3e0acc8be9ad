"""The composition root: builds every part in dependency order, runs, and stops in reverse.

Start: data directory → SQLite → code and log stores → runtime catalog → environments →
functions (loaded from the store) → source-directory watchers (issue #7) → invoker → event queue
and dispatcher → scheduler → HTTP. The listening socket is bound before the "listening" line is
printed, so a client that reads that line can connect at once.

Stop (SIGINT/SIGTERM, handled by uvicorn): stop accepting HTTP and finish open requests (Event
invokes waiting for their commit included); stop the scheduler (fires under way are
recorded with their events); stop claiming events and give running ones the grace
period (the rest stay leased and run again at the next start); commit what the queue's writer
holds; stop the source watchers; cancel code unpacking; kill every environment; close log files
and the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import uvicorn

from lamina.api.app import build_app
from lamina.api.common import Services
from lamina.api.http import LambdaHttpProtocol
from lamina.api.url_gateway import Credentials, UrlAddressing, UrlGateway, localhost_names_resolve
from lamina.asyncq.dispatcher import Dispatcher
from lamina.config import Settings
from lamina.envs.environment import EnvironmentContext
from lamina.envs.manager import EnvironmentManager
from lamina.functions.event_configs import EventConfigs
from lamina.functions.layers import LayerService
from lamina.functions.runtime_management import RuntimeManagementConfigs
from lamina.functions.policies import Policies
from lamina.functions.urls import FunctionUrls
from lamina.functions.service import FunctionService
from lamina.functions.sources import SourceFunctions
from lamina.invoke.concurrency import ConcurrencyLimiter
from lamina.invoke.debug import DebugSessions
from lamina.invoke.invoker import Invoker
from lamina.logs.store import LogStore
from lamina.model.ids import Arns
from lamina.runtimes.catalog import NODEJS_SDK, PYTHON_BOOTSTRAP, RuntimeCatalog, python_argv_inside
from lamina.runtimes.lifecycle import RuntimeCalendar, RuntimePhase
from lamina.runtimes.sdk import SDK_ROOT, SdkCatalog
from lamina.runtimes.versions import RuntimeVersions
from lamina.sandbox import cgroups, probe, rootfs
from lamina.sandbox.base import Sandbox, SandboxSetup
from lamina.sandbox.linux import BwrapHost, BwrapSandbox
from lamina.sandbox.network import NetworkError, OutboundNetwork
from lamina.sandbox.process import ProcessSandbox
from lamina.sandbox.zygote import Preload, ZygoteHost, ZygoteSandbox
from lamina.schedules.scheduler import Scheduler
from lamina.store.code import CodeStore
from lamina.store.db import Database
from lamina.store.functions import FunctionRepo
from lamina.store.layers import LayerRepo
from lamina.store.queue import EventQueue
from lamina.store.snapshots import SourceSnapshots
from lamina.store.schedules import ScheduleRepo
from lamina.store.urls import UrlRepo

log = logging.getLogger("lamina")
SHUTDOWN_GRACE_S = 5


class _HttpServer(uvicorn.Server):
    """uvicorn without its signal capture: it re-raises the signal after serving, which would kill
    the process before environments are stopped. `run` handles SIGINT/SIGTERM itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def request_exit(self) -> None:
        if self.should_exit:
            self.force_exit = True  # a second Ctrl-C stops waiting for open requests
        self.should_exit = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Isolation:
    """The isolation backend chosen at start (ARCHITECTURE rule 10: by name, once)."""

    mode: str
    reason: str
    launcher: str  # how sandboxes start: "zygote", "bwrap" or "process"
    sandboxes: Callable[[SandboxSetup], Sandbox]
    open: Callable[[], Awaitable[None]]
    close: Callable[[], Awaitable[None]]


async def _nothing() -> None:
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class IsolationDecision:
    mode: str  # "sandbox" or "process"
    reason: str
    report: probe.HostReport | None  # the host's checks, when they were looked at


def decide_isolation(settings: Settings, data: Path) -> IsolationDecision:
    """`sandbox` if asked for or (with `auto`) if the host supports it; never a silent downgrade.

    Only looks (probes the host once); creates nothing. Raises SystemExit with the reason when
    `sandbox`, or outbound network, was asked for and cannot work.
    """
    if settings.isolation == "process":
        return IsolationDecision(mode="process", reason="asked for with --isolation process", report=None)
    report = probe.inspect_host()
    blocked = probe.unreachable_ancestor(data.parent)
    if blocked is not None:
        report = probe.HostReport(checks=[*report.checks, probe.Check(
            name="data directory", ok=False,
            detail=f"{blocked} is not searchable by other users, so sandbox uids cannot reach {data} "
                   "(use a --data-dir whose parents are world-searchable, e.g. chmod o+x)",
        )])  # fmt: skip
    if not report.sandbox_ok:
        if settings.isolation == "sandbox":
            raise SystemExit(f"lamina: --isolation sandbox cannot work on this host: {report.reason} (see `lamina doctor`)")
        return IsolationDecision(mode="process", reason=f"sandboxing unavailable ({report.reason})", report=report)
    if settings.network == "outbound":
        try:
            OutboundNetwork.check()
        except NetworkError as exc:
            raise SystemExit(f"lamina: --network outbound cannot work on this host: {exc}") from exc
    reason = "asked for" if settings.isolation == "sandbox" else "the host supports it"
    return IsolationDecision(mode="sandbox", reason=reason, report=report)


def build_isolation(decision: IsolationDecision, data: Path, settings: Settings, catalog: RuntimeCatalog) -> Isolation:
    """The backend the decision names (ARCHITECTURE rule 10: by name, once, at start)."""
    if decision.mode == "process":
        return Isolation(mode="process", reason=decision.reason, launcher="process", sandboxes=ProcessSandbox,
                         open=_nothing, close=_nothing)  # fmt: skip
    if settings.sandbox_launcher == "zygote" or (settings.sandbox_launcher == "auto" and os.geteuid() == 0):
        if os.geteuid() != 0:
            raise SystemExit("lamina: the zygote sandbox launcher needs root (use LAMINA_SANDBOX_LAUNCHER=bwrap)")
        interpreter, preload = zygote_runtime(catalog)
        zhost = ZygoteHost.create(cgroups.detect(), data / "sandbox", data / "envs", interpreter, preload, settings.sandbox_pool)

        async def close_zygote() -> None:
            await zhost.close()

        return Isolation(mode="sandbox", reason=decision.reason, launcher="zygote",
                         sandboxes=lambda setup: ZygoteSandbox(setup, zhost), open=zhost.open, close=close_zygote)  # fmt: skip
    host = BwrapHost.create(cgroups.detect(), data / "sandbox")

    async def close_bwrap() -> None:
        host.close()

    return Isolation(mode="sandbox", reason=decision.reason, launcher="bwrap",
                     sandboxes=lambda setup: BwrapSandbox(setup, host), open=_nothing, close=close_bwrap)  # fmt: skip


def zygote_runtime(catalog: RuntimeCatalog) -> tuple[Path, Preload | None]:
    """The interpreter the zygote runs and the runtime it preloads: the newest managed Python the
    sandboxes see at its host path (so the zygote's imports are valid inside). Without one, the
    server's own interpreter runs the zygote and every runtime is exec'd."""
    for rid in reversed([r for r in catalog.available if r.startswith("python")]):
        info = catalog.get(rid)
        if info is None or info.interpreter is None:
            continue
        argv = python_argv_inside(info.interpreter)
        if argv is not None:
            return info.interpreter, Preload(argv=tuple(argv), script=PYTHON_BOOTSTRAP)
    return Path(os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)), None


def diagnose(settings: Settings) -> tuple[probe.HostReport, str]:
    """For `lamina doctor`: the host's checks and a sentence saying which mode will run, and why."""
    data = settings.data_dir.resolve()
    try:
        decision = decide_isolation(settings, data)
    except SystemExit as exc:
        return probe.inspect_host(), f"lamina up would refuse to start: {exc.code}"
    report = decision.report or probe.inspect_host()
    return report, f"lamina up will run with isolation {decision.mode}: {decision.reason}."


def _prepare_data_dir(data: Path, sandboxed: bool) -> None:
    """Sandbox uids must reach code and /tmp directories (only by exact path: 0711), and nothing else."""
    data.mkdir(parents=True, exist_ok=True)
    for sub in ("code", "code/unpacked", "code/merged", "envs", "sandbox"):
        (data / sub).mkdir(parents=True, exist_ok=True)
    for sub in ("code/zips", "logs"):
        (data / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(data / sub, 0o700)
    for path in (data, data / "code", data / "code/unpacked", data / "code/merged", data / "envs", data / "sandbox"):
        os.chmod(path, 0o711 if sandboxed else 0o700)


async def run(settings: Settings) -> None:
    if not settings.async_time_scale > 0:
        raise SystemExit(f"lamina: LAMINA_ASYNC_TIME_SCALE must be a positive number, not {settings.async_time_scale}")
    if not settings.schedule_time_scale > 0:
        raise SystemExit(f"lamina: LAMINA_SCHEDULE_TIME_SCALE must be a positive number, not {settings.schedule_time_scale}")
    if settings.function_url_style not in ("auto", "host", "path"):
        raise SystemExit(f"lamina: LAMINA_FUNCTION_URL_STYLE must be auto, host or path, not {settings.function_url_style}")
    memory_budget = settings.memory_budget or host_memory_budget_mb()
    concurrency = settings.max_concurrency or max(1, min(1000, memory_budget // 128))
    settings = replace(settings, memory_budget=memory_budget, max_concurrency=concurrency)
    data = settings.data_dir.resolve()
    decision = decide_isolation(settings, data)
    _prepare_data_dir(data, decision.mode == "sandbox")
    catalog = RuntimeCatalog.discover(shared_paths_only=decision.mode == "sandbox")
    if any(r.startswith("nodejs") for r in catalog.available) and not NODEJS_SDK.is_dir():
        print(f"lamina: warning: no AWS SDK for the Node.js runtimes at {NODEJS_SDK} "
              "(scripts/setup.sh installs it with npm); functions must package their own", flush=True)  # fmt: skip
    python_sdks = SdkCatalog.discover(SDK_ROOT if settings.sdk_dir == Path() else settings.sdk_dir.resolve())
    no_sdk = python_sdks.missing(catalog.available)
    if no_sdk:
        log.warning(
            "lamina: no AWS SDK installed for %s (run scripts/setup.sh): their functions must package boto3 themselves",
            ", ".join(no_sdk),
        )
    calendar = RuntimeCalendar.load(today=_today(settings.today))
    versions = RuntimeVersions(
        catalog,
        region=settings.region,
        builds_dir=Path(settings.runtime_builds) if settings.runtime_builds else None,
        shared_paths_only=decision.mode == "sandbox",
        python_sdks=python_sdks,
    )
    isolation = build_isolation(decision, data, settings, catalog)
    rootfs.remove_stale(data / "envs")  # environments of a server that died without cleaning up
    db = Database(data / "lamina.db")
    await db.open()
    code = CodeStore(data / "code")
    logs = LogStore(data / "logs")
    manager = EnvironmentManager(
        ctx=EnvironmentContext(
            region=settings.region,
            init_timeout=settings.init_timeout,
            logs=logs,
            work_root=data / "envs",
            sandboxes=isolation.sandboxes,
            network=settings.network,
            python_sdks=python_sdks,
            account_id=settings.account_id,
        ),
        versions=versions,
        code=code,
        idle_timeout=settings.idle_timeout,
        memory_budget_mb=settings.memory_budget,
    )
    repo = FunctionRepo(db)
    arns = Arns(region=settings.region, account_id=settings.account_id)
    layers = LayerService(repo=LayerRepo(db), code=code, arns=arns)
    functions = FunctionService(
        repo=repo,
        code=code,
        versions=versions,
        calendar=calendar,
        arns=arns,
        retirer=manager,
        layers=layers,
        account_concurrency=settings.max_concurrency,
    )
    sources = SourceFunctions(
        functions=functions,
        snapshots=SourceSnapshots(code),
        on_reload=lambda config: manager.prewarm(config, network=functions.network_of(config.name)),
    )
    debug = DebugSessions(functions=functions, manager=manager, root=data / "debug")
    invoker = Invoker(functions=functions, manager=manager, limiter=ConcurrencyLimiter(settings.max_concurrency), sources=sources)
    queue = EventQueue(db)
    event_configs = EventConfigs(functions=functions, repo=repo)
    runtime_configs = RuntimeManagementConfigs(functions=functions, versions=versions)
    url_repo = UrlRepo(db)
    function_urls = FunctionUrls(functions=functions, repo=url_repo)
    policies = Policies(functions=functions, repo=url_repo)
    dispatcher = Dispatcher(
        queue=queue,
        invoker=invoker,
        functions=functions,
        configs=event_configs,
        max_in_flight=settings.max_concurrency,
        time_scale=settings.async_time_scale,
    )
    scheduler = Scheduler(
        repo=ScheduleRepo(db, queue),
        functions=functions,
        dispatcher=dispatcher,
        time_scale=settings.schedule_time_scale,
    )
    try:
        await isolation.open()
        await layers.load()  # before functions, which reference layer versions
        await functions.load()
        await sources.load()
        await scheduler.load()
        warn_deprecated_runtimes(functions, calendar)
        await function_urls.load()
        await policies.load()
        app = build_app(
            Services(
                functions=functions,
                invoker=invoker,
                dispatcher=dispatcher,
                event_configs=event_configs,
                layers=layers,
                runtime_configs=runtime_configs,
                runtimes=versions,
                calendar=calendar,
                queue=queue,
                scheduler=scheduler,
                environments=manager,
                logs=logs,
                code=code,
                account_id=settings.account_id,
                region=settings.region,
                concurrency_limit=settings.max_concurrency,
                sources=sources,
                debug=debug,
                function_urls=function_urls,
                policies=policies,
                url_gateway=UrlGateway(
                    urls=function_urls,
                    policies=policies,
                    invoker=invoker,
                    addressing=await url_addressing(settings),
                    credentials=Credentials(
                        access_key_id=settings.access_key_id,
                        secret_access_key=settings.secret_access_key,
                        account_id=settings.account_id,
                        region=settings.region,
                    ),
                ),
                strict=settings.strict,
            )
        )
        server = _HttpServer(
            uvicorn.Config(
                app,
                http=LambdaHttpProtocol,  # uvicorn's httptools protocol, serving Invoke itself
                loop="none",
                lifespan="off",
                access_log=False,
                log_level="warning",
                # Lambda's responses carry Date but no Server header; and no proxy sits in front
                # whose X-Forwarded-* headers should be trusted (that middleware wraps every request).
                proxy_headers=False,
                server_header=False,
                # In-flight requests get this long to finish after SIGTERM; then environments are killed.
                timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
            )
        )
        def stop() -> None:
            server.request_exit()
            logs.release_waiters()  # long-polls (`lamina logs --follow`) would hold shutdown up

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        sock = _listen(settings.host, settings.port)
        launched = f", sandboxes from the {isolation.launcher}" if isolation.mode == "sandbox" else ""
        print(
            f"Lamina listening on {settings.endpoint} (data: {data}; isolation: {isolation.mode}, {isolation.reason}{launched}; "
            f"runtimes: {', '.join(catalog.available)})",
            flush=True,
        )
        async with asyncio.TaskGroup() as tg:
            reaper = tg.create_task(manager.run())
            writer = tg.create_task(queue.run())
            dispatching = tg.create_task(dispatcher.run())
            watching = tg.create_task(sources.run())
            scheduling = tg.create_task(scheduler.run())
            try:
                await server.serve(sockets=[sock])
            finally:
                reaper.cancel()
                # The scheduler stops first: its fires under way are recorded, with their events.
                scheduler.stop()
                await scheduling
                sources.close()
                watching.cancel()
                # Running events get the grace period; their settlements need the writer, which
                # stops last, once everything queued for it is committed.
                await dispatcher.stop(SHUTDOWN_GRACE_S)
                await dispatching
                queue.close()
                await writer
    finally:
        await functions.close()
        await manager.close()
        await isolation.close()
        logs.close()
        await db.close()
        print("Lamina stopped.", flush=True)


def _today(raw: str) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise SystemExit(f"lamina: LAMINA_TODAY must be a date like 2027-01-31, not {raw!r}") from exc


def warn_deprecated_runtimes(functions: FunctionService, calendar: RuntimeCalendar) -> None:
    """One warning per function whose $LATEST or a published version is on a deprecated runtime
    (spec 10): invocations keep working, but creates and then updates will be refused."""
    for rec in functions.list_functions():
        runtimes = sorted({rec.latest.runtime, *(v.runtime for v in rec.versions.values())})
        for rid in runtimes:
            phase = calendar.phase(rid)
            entry = calendar.get(rid)
            if phase is RuntimePhase.SUPPORTED or entry is None:
                continue
            log.warning(
                "function %s uses runtime %s, deprecated since %s (create blocked from %s, update blocked from "
                "%s; invocations keep working): move it to a supported runtime",
                rec.name, rid, entry.deprecation, entry.block_create, entry.block_update,
            )  # fmt: skip


async def url_addressing(settings: Settings) -> UrlAddressing:
    """How FunctionUrl is written: by host name where *.localhost resolves here (or if asked), else
    by path; an all-addresses listener is reached at loopback."""
    host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(settings.host, settings.host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    style = settings.function_url_style
    by_host = style == "host" or (style == "auto" and await localhost_names_resolve(settings.region))
    return UrlAddressing(region=settings.region, host=host, port=settings.port, by_host=by_host)


def host_memory_budget_mb() -> int:
    """80 % of the host's memory (MemTotal), the default room for environments."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 8 // 10 // 1024
    return 4096


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(f"lamina: cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _raise_open_file_limit() -> None:
    """Every connection and environment holds descriptors (an environment 2-4: its listener,
    cgroup and /proc files), and the usual soft limit of 1,024 is reached at a few hundred
    environments; the hard limit is what the administrator allows, so take all of it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            logging.getLogger("lamina").warning("could not raise the open-file limit from %d: %s", soft, exc)


def serve(settings: Settings) -> None:
    """Run in the foreground until SIGINT or SIGTERM."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    _raise_open_file_limit()
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # uvloop is optional on platforms without wheels
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(run(settings))
