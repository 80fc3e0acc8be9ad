"""Numbered progress lines on stderr: what runs now, then how long it took and its headline.

A step either must succeed (`run`: the run stops on an error) or may fail (`attempt`: the error
and its traceback are logged, the step's figures are missing with the reason recorded, and the
run goes on, so one broken measurement still leaves every other figure and the tables). Long
steps show rich progress bars (`with_progress`) instead of a spinner.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

T = TypeVar("T")
Advance = Callable[[int], None]


class Steps:
    def __init__(self, console: Console, total: int) -> None:
        self._console = console
        self._total = total
        self._done = 0
        self.failures: dict[str, str] = {}  # step title → the error it ended with

    def run(self, title: str, fn: Callable[[], T], summary: Callable[[T], str] = lambda _: "") -> T:
        prefix = self._next(title)
        t0 = time.monotonic()
        with self._console.status(prefix + " …"):
            result = fn()
        self._log(prefix, escape(summary(result)), t0)
        return result

    def attempt(self, title: str, fn: Callable[[], T], summary: Callable[[T], str] = lambda _: "") -> T | None:
        """`run`, except that an error is logged and recorded, and None returned."""
        prefix = self._next(title)
        t0 = time.monotonic()
        try:
            with self._console.status(prefix + " …"):
                result = fn()
        except Exception as exc:
            self._console.print_exception(max_frames=4)
            self.failures[title] = f"{type(exc).__name__}: {exc}"
            self._log(prefix, f"[red]failed[/]: {escape(self.failures[title][:300])}", t0)
            return None
        self._log(prefix, escape(summary(result)), t0)
        return result

    def with_progress(
        self,
        title: str,
        totals: Mapping[str, int],
        fn: Callable[[dict[str, Advance]], T],
        summary: Callable[[T], str] = lambda _: "",
    ) -> T | None:
        """`attempt` with one progress bar per entry of `totals`; `fn` gets an advance callable for each."""
        prefix = self._next(title)
        t0 = time.monotonic()
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        try:
            with Progress(*columns, console=self._console, transient=True) as progress:
                tasks = {k: progress.add_task(f"{prefix}: {escape(k)}", total=n) for k, n in totals.items()}
                result = fn({k: functools.partial(progress.advance, task) for k, task in tasks.items()})
        except Exception as exc:
            self._console.print_exception(max_frames=4)
            self.failures[title] = f"{type(exc).__name__}: {exc}"
            self._log(prefix, f"[red]failed[/]: {escape(self.failures[title][:300])}", t0)
            return None
        self._log(prefix, escape(summary(result)), t0)
        return result

    def _next(self, title: str) -> str:
        self._done += 1
        return escape(f"[{self._done}/{self._total}] {title}")

    def _log(self, prefix: str, detail: str, t0: float) -> None:
        self._console.log(f"{prefix}: {detail + ' ' if detail else ''}[dim]({time.monotonic() - t0:.2f} s)[/]")
