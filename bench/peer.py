"""The peer run side by side: python-lambda-local, a fresh process per invoke, same handler.

`python-lambda-local -f handler -t 30 app.py event.json` (pinned in the `bench` extra) is how
many people run a Lambda handler locally: each invoke starts an interpreter, imports the tool
(and boto3, which it needs), loads the handler file and runs it in a multiprocessing child. The
figure is the wall time of that whole command, with the same no-op handler source and the same
~80-byte event as the platform's warm and cold invokes, so a user can read the three side by side.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import loadgen
import platform_bench
from stats import Figure, bounded, latency_figure

COMMAND = "python-lambda-local"
TIMEOUT_S = 60.0


def executable() -> str | None:
    """The console script installed beside the bench's interpreter (the venv's bin), else on PATH."""
    beside = Path(sys.executable).with_name(COMMAND)
    return str(beside) if beside.exists() else shutil.which(COMMAND)


def python_lambda_local(*, count: int, warmup: int, seconds: float) -> Figure | None:
    """Wall time of one `python-lambda-local` invoke; None when it is not installed."""
    exe = executable()
    if exe is None:
        return None
    samples: list[float] = []
    with tempfile.TemporaryDirectory(prefix="lamina-bench-peer-") as tmp:
        Path(tmp, "app.py").write_text(platform_bench.HANDLER_SOURCE)
        Path(tmp, "event.json").write_bytes(loadgen.BODY)
        argv = [exe, "-f", "handler", "-t", "30", "app.py", "event.json"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        for i in bounded(warmup + count, seconds):
            t0 = time.perf_counter()
            result = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
            elapsed = (time.perf_counter() - t0) * 1000
            if result.returncode != 0 or "RESULT:" not in result.stdout:
                raise RuntimeError(f"{COMMAND} exited {result.returncode}: {result.stdout[-300:]} {result.stderr[-300:]}")
            if i >= warmup:
                samples.append(elapsed)
    if not samples:
        return None
    return latency_figure("peer_python_lambda_local", f"{COMMAND}: one invoke (fresh process)", samples, argv=argv[1:])
