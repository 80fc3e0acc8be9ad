"""L_fork (G3) and L_pss (G9): what forking from a warm Python template costs, in time and memory.

Both run fork_probe.py in a process of its own, under the interpreter the environments run and
with their flags (`-I -S`), so the bench's own size (rich, boto3, ...) never enters the figure:

- L_fork: p50 from fork() to the parent reading the child's json.dumps result, the parent being a
  ~25 MB Python that imported json, urllib.request, asyncio and http.client (PERFORMANCE 2b).
- L_pss: PSS of each forked child of a template that loaded Lamina's runtime client (its imports
  and definitions) and froze its GC, with `children` children alive at once (PERFORMANCE 2b
  measured 8): the memory an environment forked from a template could cost at best.
"""

from __future__ import annotations

import json
import select
import subprocess
from pathlib import Path

import procs
from stats import Figure, latency_figure, size_figure

from lamina.runtimes.catalog import PYTHON_BOOTSTRAP

PROBE = Path(__file__).with_name("fork_probe.py")
READY_TIMEOUT_S = 30.0


def l_fork(interpreter: str, *, count: int, warmup: int, seconds: float) -> Figure:
    result = subprocess.run(
        [interpreter, "-I", "-S", str(PROBE), "fork", str(count), str(warmup)],
        capture_output=True,
        text=True,
        timeout=seconds + READY_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"fork_probe fork exited {result.returncode}: {result.stderr[-500:]}")
    data = json.loads(result.stdout)
    return latency_figure(
        "l_fork",
        "L_fork: fork → result, ~25 MB Python parent",
        data["samples_ms"],
        interpreter=interpreter,
        parent_rss_mb=data["rss_kb"] / 1024,
    )


def l_pss(interpreter: str, *, children: int) -> Figure:
    """PSS of each of `children` forked children of a runtime-client template, all alive at once."""
    proc = subprocess.Popen(
        [interpreter, "-I", "-S", str(PROBE), "template", str(children), str(PYTHON_BOOTSTRAP)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT_S)
        line = proc.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"fork_probe template gave no answer (exit code {proc.poll()})")
        info = json.loads(line)
        sizes = [procs.pss_kb(pid) for pid in info["children"]]
        template_pss = procs.pss_kb(info["template"])
    finally:
        proc.stdin.close()  # EOF: the children and then the template exit
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()  # its children read the same closed pipe, so they are gone or going
            proc.wait(5)
        proc.stdout.close()
    measured = [s / 1024 for s in sizes if s is not None]
    if not measured:
        raise RuntimeError("no PSS could be read for the template's children")
    return size_figure(
        "l_pss",
        "L_pss: forked child of a runtime-client template",
        measured,
        interpreter=interpreter,
        children=children,
        template_pss_mb=(template_pss or 0) / 1024,
        template_rss_mb=info["rss_kb"] / 1024,
    )
