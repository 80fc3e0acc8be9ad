"""SourceFunctions: functions whose code is a host directory, reloaded when it changes (issue #7).

`deploy` points a function (new or existing) at a directory: the directory is snapshotted into
the code store (store/snapshots.py) and the snapshot becomes $LATEST's code. From then on one
watcher per function (watchfiles: inotify, batched over `STEP_MS`) takes a new snapshot after
every change and swaps it in (`FunctionService.swap_code`), which retires the environments on the
old code: idle ones at once, busy ones once their invocation ends. There is no build step: Python
and Node import the files as they are.

Consistency: while a reload is under way, invokes of the function wait for it (`wait_settled`,
called by the invoker), so an invoke that arrives after the watcher saw a write runs the new code,
never the old. A snapshot that fails to import is not skipped: the next invoke gets the import
error (it runs in a fresh environment), and the last good code is not served in its place.

The watcher lives in the server, not in `lamina dev`: the reload costs no HTTP round trip, and a
function deployed from a directory keeps reloading whoever deployed it. It ends when the function
is deleted or its code is replaced by a zip (checked on every change and every `IDLE_CHECK_MS`).

`wait_reload` serves `lamina dev`'s long-poll of reloads (generation numbers, files changed,
timings). Watchers are tasks in `run()`'s TaskGroup, started by `server.py`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from concurrent.futures import ThreadPoolExecutor

# watchfiles' own Rust watcher, used directly rather than through `awatch`: it starts watching when
# it is made, so it can be made before the first snapshot (no write between the two is missed), and
# it keeps changes that arrive while a reload is under way for its next `watch` call.
from watchfiles._rust_notify import RustNotify

from lamina.functions.service import FunctionService
from lamina.model.errors import InvalidParameterValueException, ResourceNotFoundException
from lamina.model.function import CodeRef, ConfigChanges, CreateFunctionInput, FunctionConfig
from lamina.store.snapshots import SourceSnapshots, ignored

log = logging.getLogger("lamina.functions.sources")

# RustNotify.watch returns a batch once no new change came for STEP_MS (an editor's save is a burst of
# events), or after DEBOUNCE_MS of steady changes. Both bound the reload latency (budget 100 ms).
STEP_MS = 5
DEBOUNCE_MS = 50
IDLE_CHECK_MS = 1000
# Snapshots kept per watched directory (the current one included): environments retired by a
# reload finish their invocation on the files they started with. Older ones are deleted unless
# a version of some function still runs them.
KEEP_SNAPSHOTS = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class Reload:
    """The latest snapshot a source function runs, as `lamina dev` prints it."""

    generation: int  # 1 for the deploy's snapshot, +1 for each reload that changed the code
    code: CodeRef
    changed: tuple[str, ...]
    snapshot_ms: float
    live_at: float  # epoch seconds the code became what invokes run
    write_to_live_ms: float | None  # from the newest changed file's modification time to live_at
    write_to_seen_ms: float | None = None  # from that modification time to the watcher's batch
    error: str | None = None  # a reload that could not take a snapshot (the previous code stays)


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceDeploy:
    name: str
    directory: Path
    changes: ConfigChanges  # runtime, handler, memory, timeout, environment (None: keep / default)


@dataclass(slots=True)
class _Watch:
    source: Path
    notify: RustNotify  # watching since before the watch's first snapshot
    started: bool = False  # a task runs `_watch` for it (it then owns closing `notify`)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # set while no reload is under way
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # set (and replaced) on each reload
    last: Reload | None = None
    history: list[CodeRef] = field(default_factory=list)  # snapshots this watch made, oldest first


class SourceFunctions:
    def __init__(
        self,
        *,
        functions: FunctionService,
        snapshots: SourceSnapshots,
        on_reload: Callable[[FunctionConfig], None] | None = None,
    ) -> None:
        self._functions = functions
        # Called with $LATEST's new configuration after each swap (server.py: start an environment
        # of it ahead of the next invoke).
        self._on_reload = on_reload
        self._snapshots = snapshots
        self._watches: dict[str, _Watch] = {}
        self._start: asyncio.Queue[str] = asyncio.Queue()
        # Each watcher blocks one of these threads in RustNotify.watch (up to IDLE_CHECK_MS at a time).
        self._threads = ThreadPoolExecutor(max_workers=256, thread_name_prefix="lamina-watch")

    # --- control ---------------------------------------------------------------------------------

    async def deploy(self, req: SourceDeploy) -> tuple[FunctionConfig, Reload]:
        """Create the function from the directory, or point an existing one at it; then watch it."""
        directory = req.directory
        if not directory.is_absolute():
            raise InvalidParameterValueException(f"The source directory must be an absolute path, not {directory}.")
        if not directory.is_dir():
            raise InvalidParameterValueException(f"The source directory {directory} does not exist or is not a directory.")
        notify = await self._start_notify(directory)
        self._snapshots.forget(directory)  # first snapshot reads every file
        try:
            snap = await asyncio.to_thread(self._snapshots.take, directory)
            config = await self._deploy_snapshot(req, snap.code)
        except BaseException:
            notify.close()  # nothing watches it: the deploy failed (Lambda's error goes to the caller)
            raise
        if self._on_reload is not None:
            self._on_reload(config)
        old = self._watches.pop(req.name, None)
        if old is not None:
            old.stop.set()
            if not old.started:
                old.notify.close()
        watch = _Watch(source=directory, notify=notify, history=[snap.code])
        watch.settled.set()
        watch.last = Reload(generation=1, code=snap.code, changed=snap.changed, snapshot_ms=snap.took_ms,
                            live_at=time.time(), write_to_live_ms=None)  # fmt: skip
        self._watches[req.name] = watch
        self._start.put_nowait(req.name)
        return config, watch.last

    async def _deploy_snapshot(self, req: SourceDeploy, code: CodeRef) -> FunctionConfig:
        if self._functions.find(req.name) is None:
            await self._functions.create(CreateFunctionInput(name=req.name, changes=req.changes, zip_file=None, code=code))
            await self._functions.finish_pending(req.name)
            return self._functions.record(req.name).latest
        c = req.changes
        if any(v is not None for v in (c.runtime, c.handler, c.memory_size, c.timeout, c.environment)):
            await self._functions.finish_pending(req.name)
            await self._functions.update_configuration(req.name, replace(c, role=None))
        return await self._functions.swap_code(req.name, code)

    def current(self, name: str) -> Reload:
        watch = self._watches.get(name)
        if watch is None or watch.last is None:
            raise ResourceNotFoundException(f"Function {name} is not deployed from a source directory.")
        return watch.last

    async def wait_reload(self, name: str, after: int, timeout: float) -> Reload:
        """The current Reload once its generation passes `after`, or after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            last = self.current(name)
            remaining = deadline - time.monotonic()
            if last.generation > after or remaining <= 0:
                return last
            watch = self._watches[name]
            try:
                await asyncio.wait_for(watch.changed.wait(), remaining)
            except TimeoutError:
                pass

    def reloading(self, name: str) -> asyncio.Event | None:
        """An event to await before invoking `name`, while a reload of it is under way; else None."""
        watch = self._watches.get(name)
        if watch is None or watch.settled.is_set():
            return None
        return watch.settled

    # --- watching --------------------------------------------------------------------------------

    async def load(self) -> None:
        """Watch every function whose $LATEST runs a source snapshot (after a restart), taking a new
        snapshot first: the directory may have changed while the server was down."""
        for rec in self._functions.list_functions():
            source = rec.latest.code.source
            if source is None:
                continue
            try:
                notify = await self._start_notify(Path(source))
            except OSError as exc:
                log.warning("cannot watch %s for %s: %s", source, rec.name, exc)
                continue  # the function keeps its last snapshot; deploying the directory again resumes
            watch = _Watch(source=Path(source), notify=notify)
            self._watches[rec.name] = watch
            await self._reload(rec.name, watch, first=True)
            self._start.put_nowait(rec.name)

    async def run(self) -> None:
        """Run one watcher per source function until cancelled (each ends with its function)."""
        async with asyncio.TaskGroup() as tg:
            while True:
                name = await self._start.get()
                watch = self._watches.get(name)
                if watch is not None and not watch.stop.is_set() and not watch.started:
                    watch.started = True
                    tg.create_task(self._watch(name, watch))

    def _still_watched(self, name: str, watch: _Watch) -> bool:
        rec = self._functions.find(name)
        return (
            not watch.stop.is_set()
            and self._watches.get(name) is watch
            and rec is not None
            and rec.latest.code.source == str(watch.source)
        )

    async def _start_notify(self, directory: Path) -> RustNotify:
        """A Rust watcher of `directory`, watching when this returns (FileNotFoundError if gone)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, RustNotify, [str(directory)], False, False, 300, True, False)

    async def _watch(self, name: str, watch: _Watch) -> None:
        loop = asyncio.get_running_loop()
        prefix = str(watch.source) + "/"
        cancelled = False
        try:
            while self._still_watched(name, watch):
                # Blocks a thread of this class's own pool (never the default executor's few) for up
                # to IDLE_CHECK_MS; the stop event is read by that thread on every step.
                raw = await loop.run_in_executor(self._threads, watch.notify.watch, DEBOUNCE_MS, STEP_MS, IDLE_CHECK_MS, watch.stop)
                if raw == "stop" or not isinstance(raw, set):
                    continue  # stop, timeout (or a signal): the loop condition decides
                if any(path.startswith(prefix) and not ignored(tuple(path[len(prefix):].split("/"))) for _, path in raw):
                    if self._still_watched(name, watch):
                        await self._reload(name, watch, seen=time.time())
        except asyncio.CancelledError:
            cancelled = True
            raise
        except Exception as exc:  # noqa: BLE001 - the watcher's boundary: it ends this watch, not the server
            log.error("watching %s for %s stopped", watch.source, name, exc_info=exc)
            self._fail(name, watch, f"Watching {watch.source} stopped: {exc}. Deploy the directory again to resume.")
        finally:
            if not cancelled:  # (cancelled at shutdown: its thread may still be in watch(); left to exit)
                watch.notify.close()
            if self._watches.get(name) is watch and not self._still_watched(name, watch):
                del self._watches[name]
            watch.settled.set()

    async def _reload(self, name: str, watch: _Watch, *, first: bool = False, seen: float | None = None) -> None:
        watch.settled.clear()
        try:
            try:
                snap = await asyncio.to_thread(self._snapshots.take, watch.source)
            except OSError:
                # A file vanished between the walk and the link (an editor's rename dance): again,
                # reading every file.
                self._snapshots.forget(watch.source)
                snap = await asyncio.to_thread(self._snapshots.take, watch.source)
        except (OSError, InvalidParameterValueException) as exc:
            log.warning("snapshot of %s for %s failed: %s", watch.source, name, exc)
            self._fail(name, watch, str(exc))
            watch.settled.set()
            return
        previous = watch.last
        try:
            if previous is None or snap.code != previous.code:
                config = await self._functions.swap_code(name, snap.code)
                if self._on_reload is not None:
                    self._on_reload(config)
        except ResourceNotFoundException:
            watch.stop.set()  # deleted meanwhile
            watch.settled.set()
            return
        now = time.time()
        if previous is None or snap.code != previous.code:
            await self._prune(watch, snap.code)
        if previous is None or snap.code != previous.code or first or previous.error is not None:
            watch.last = Reload(
                generation=(previous.generation + 1) if previous is not None else 1,
                code=snap.code,
                changed=snap.changed,
                snapshot_ms=snap.took_ms,
                live_at=now,
                write_to_live_ms=(now - snap.newest_write) * 1000 if snap.newest_write and not first else None,
                write_to_seen_ms=(seen - snap.newest_write) * 1000 if snap.newest_write and seen else None,
            )
            self._notify(watch)
        watch.settled.set()

    async def _prune(self, watch: _Watch, current: CodeRef) -> None:
        if current in watch.history:
            watch.history.remove(current)  # back to an earlier tree (an undo): it is the newest again
        watch.history.append(current)
        while len(watch.history) > KEEP_SNAPSHOTS:
            old = watch.history.pop(0)
            if not self._referenced(old.sha256_hex):
                await asyncio.to_thread(self._snapshots.remove, old)

    def _referenced(self, sha256_hex: str) -> bool:
        for rec in self._functions.list_functions():
            configs = [rec.latest, *rec.versions.values(), *([rec.runnable] if rec.runnable is not None else [])]
            if any(c.code.sha256_hex == sha256_hex for c in configs):
                return True
        return False

    def _fail(self, name: str, watch: _Watch, message: str) -> None:
        """Record why the latest reload (or the watch) failed; the function keeps its last code."""
        rec = self._functions.find(name)
        base = watch.last
        if base is None:
            if rec is None:
                return
            base = Reload(generation=1, code=rec.latest.code, changed=(), snapshot_ms=0.0, live_at=time.time(),
                          write_to_live_ms=None)  # fmt: skip
        watch.last = replace(base, error=message)
        self._notify(watch)

    def _notify(self, watch: _Watch) -> None:
        event, watch.changed = watch.changed, asyncio.Event()
        event.set()

    def close(self) -> None:
        """Stop every watcher (each returns within one step) and release the threads."""
        for watch in self._watches.values():
            watch.stop.set()
        self._threads.shutdown(wait=False, cancel_futures=True)
