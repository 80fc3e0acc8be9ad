"""Running an installer (pip, npm) as a child process: its output streamed line by line, its
failure turned into a `BuildError` that carries the tail of what it printed."""

from __future__ import annotations

import subprocess
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

# Lines of the tool's output kept for the error message: pip and npm put the cause at the end.
TAIL_LINES = 15

OutputSink = Callable[[str], None]


class BuildError(Exception):
    """A build that cannot finish; `tail` holds the installer's last output lines, if one ran."""

    def __init__(self, message: str, *, tail: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.tail = tuple(tail)


def run_tool(
    name: str,
    argv: Sequence[str],
    *,
    cwd: Path,
    on_output: OutputSink,
    env: Mapping[str, str] | None = None,
    missing_hint: str = "",
) -> None:
    """Run `argv` (the tool called `name` in messages) in `cwd`, passing each output line (stdout and stderr merged) to `on_output`.

    Raises BuildError when the tool is missing or exits non-zero.
    """
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except FileNotFoundError as exc:
        raise BuildError(f"{name} is not installed{': ' + missing_hint if missing_hint else ''}") from exc
    assert proc.stdout is not None
    with proc:
        for raw in proc.stdout:
            line = raw.rstrip()
            if line:
                tail.append(line)
                on_output(line)
    if proc.returncode != 0:
        raise BuildError(f"{name} failed (exit {proc.returncode})", tail=tail)

