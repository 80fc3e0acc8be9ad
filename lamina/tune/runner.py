"""Drives a tuning run through the Lambda API, as AWS Lambda Power Tuning's state machine does.

Per memory size: set $LATEST's MemorySize, publish a version, point a temporary alias at it, and
invoke the alias N times (the first invocation is a cold start: a new version has no warm
environment). Afterwards, in a `finally` that Ctrl-C cannot interrupt, the aliases and the
versions the run created are deleted and $LATEST's MemorySize is put back. Version numbers are
not reused (as on Lambda), so the next `publish-version` skips the numbers the run took.

The API is reached through `TuneTarget`, a protocol the CLI's client implements; this module
holds the sequence and the cleanup, not the wire.
"""

from __future__ import annotations

import secrets
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

from lamina.tune.report import Measurement, Sample, parse_report_line

# Lambda's MemorySize bounds.
MIN_MEMORY_MB = 128
MAX_MEMORY_MB = 10240


class TuneError(Exception):
    """A run that cannot go on (the function fails, a size is invalid); cleanup has happened."""


class InvokeOutcome(Protocol):
    @property
    def function_error(self) -> str | None: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def log_tail(self) -> str: ...


class TuneTarget(Protocol):
    """The Lambda API operations a run needs (LambdaClient implements them)."""

    def wait_updated(self, name: str) -> None: ...  # until an update in progress is done
    def memory_size(self, name: str) -> int: ...
    def set_memory_size(self, name: str, memory_mb: int) -> None: ...  # returns once the update is done
    def publish_version(self, name: str, description: str) -> str: ...
    def version_numbers(self, name: str) -> list[str]: ...
    def create_alias(self, name: str, alias: str, version: str) -> None: ...
    def delete_alias(self, name: str, alias: str) -> None: ...
    def delete_version(self, name: str, version: str) -> None: ...
    def invoke(self, name: str, payload: bytes | None, *, qualifier: str | None, event: bool) -> InvokeOutcome: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class TunePlan:
    function: str
    memory_sizes: tuple[int, ...]
    invocations: int  # per size, the cold start included
    payload: bytes | None = None

    def __post_init__(self) -> None:
        if not self.memory_sizes:
            raise TuneError("give at least one memory size")
        if len(set(self.memory_sizes)) != len(self.memory_sizes):
            raise TuneError(f"memory sizes repeat: {list(self.memory_sizes)}")
        for mb in self.memory_sizes:
            if not MIN_MEMORY_MB <= mb <= MAX_MEMORY_MB:
                raise TuneError(f"memory size {mb} MB is outside Lambda's {MIN_MEMORY_MB}-{MAX_MEMORY_MB} MB")
        if self.invocations < 2:
            raise TuneError("--invocations must be at least 2: the first one at each size is a cold start")


@dataclass(slots=True)
class _Leftovers:
    """What the run created or changed, undone in reverse."""

    original_memory: int
    memory_changed: bool = False
    aliases: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)


def run(
    target: TuneTarget,
    plan: TunePlan,
    *,
    on_progress: Callable[[str], None] = lambda _: None,
    on_warning: Callable[[str], None] = lambda _: None,
) -> list[Measurement]:
    """Measure `plan.function` at each size, in the plan's order; the function's configuration and
    versions are as before when this returns or raises."""
    name = plan.function
    target.wait_updated(name)  # PublishVersion would conflict with an update still in progress
    left = _Leftovers(original_memory=target.memory_size(name))
    existing = set(target.version_numbers(name))
    run_id = secrets.token_hex(3)  # a stale alias from a killed run cannot collide with ours
    measurements: list[Measurement] = []
    try:
        current = left.original_memory
        for mb in plan.memory_sizes:
            if mb != current:
                on_progress(f"{mb} MB: updating the configuration")
                left.memory_changed = True
                target.set_memory_size(name, mb)
                current = mb
            on_progress(f"{mb} MB: publishing a version")
            version = target.publish_version(name, f"lamina tune {run_id} at {mb} MB")
            if version not in existing:  # an unchanged $LATEST gives back an existing version
                left.versions.append(version)
            alias = f"lamina-tune-{run_id}-{mb}"
            target.create_alias(name, alias, version)
            left.aliases.append(alias)
            measurements.append(_measure(target, plan, alias, mb, on_progress))
    finally:
        with _interrupts_deferred():
            on_progress("cleaning up")
            failures = _clean_up(target, name, left)
        for failure in failures:
            on_warning(failure)
    return measurements


def _measure(target: TuneTarget, plan: TunePlan, alias: str, mb: int, on_progress: Callable[[str], None]) -> Measurement:
    samples: list[Sample] = []
    for i in range(plan.invocations):
        on_progress(f"{mb} MB: invocation {i + 1}/{plan.invocations}")
        out = target.invoke(plan.function, plan.payload, qualifier=alias, event=False)
        if out.function_error is not None:
            detail = out.payload.decode("utf-8", "replace")[:300]
            raise TuneError(f"{plan.function} failed at {mb} MB ({out.function_error}): {detail}")
        try:
            samples.append(parse_report_line(out.log_tail))
        except ValueError as exc:
            raise TuneError(f"{plan.function} at {mb} MB: {exc}") from exc
    return Measurement(memory_mb=mb, samples=tuple(samples))


def _clean_up(target: TuneTarget, name: str, left: _Leftovers) -> list[str]:
    """Undo every change it can; returns one line per change it could not undo."""
    failures: list[str] = []
    steps: list[tuple[str, Callable[[], None]]] = []
    steps += [(f"delete alias {a}", partial(target.delete_alias, name, a)) for a in reversed(left.aliases)]
    steps += [(f"delete version {v}", partial(target.delete_version, name, v)) for v in reversed(left.versions)]
    if left.memory_changed:
        steps.append((f"restore MemorySize {left.original_memory} MB", partial(target.set_memory_size, name, left.original_memory)))
    for what, step in steps:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - one failed step must not skip the others
            failures.append(f"could not {what} of {name}: {exc}")
    return failures


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Ignore Ctrl-C while cleaning up (a second Ctrl-C would leave versions behind); in the main
    thread only, where Python delivers signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
