"""The fork baselines' own process, run as `<interpreter> -I -S fork_probe.py MODE ...` (stdlib only).

It runs under the interpreter the environments run (a sandbox's is /usr/bin/python3.11), with the
flags they run with, so the forking parent is the size and kind a template (Zygote) would be:

- `fork COUNT WARMUP` (L_fork, PERFORMANCE 2b): a parent that imported json, urllib.request,
  asyncio and http.client (~25 MB) forks a child that json.dumps a small dict and writes it to a
  pipe; the time from fork() to the parent holding the result. Prints one JSON line:
  {"samples_ms": [...], "rss_kb": ..., "python": ...}.
- `template CHILDREN BOOTSTRAP` (L_pss, PERFORMANCE 2b "Memory per environment"): loads Lamina's
  runtime client (BOOTSTRAP, as a module: its imports and definitions, not its main()), freezes
  the GC as a template would before forking, and forks CHILDREN children that each json.dumps,
  then wait. Prints {"template": pid, "children": [pids]} once all are ready, then waits until
  its stdin closes (the children wait on the same pipe) and reaps them.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time

CHILD_PAYLOAD = {"statusCode": 200, "body": "ok", "headers": {"content-type": "application/json"}}


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fork_times(count: int, warmup: int) -> None:
    # The parent of PERFORMANCE 2b: these imports make it ~25 MB (fork cost grows with RSS).
    import asyncio  # noqa: F401
    import http.client  # noqa: F401
    import urllib.request  # noqa: F401

    samples: list[float] = []
    clock = time.perf_counter
    for i in range(warmup + count):
        r, w = os.pipe()
        t0 = clock()
        pid = os.fork()
        if pid == 0:  # the child: one small result, then gone without running any cleanup
            os.close(r)
            os.write(w, json.dumps(CHILD_PAYLOAD).encode())
            os._exit(0)
        os.close(w)
        data = os.read(r, 65536)
        elapsed = (clock() - t0) * 1000
        os.close(r)
        os.waitpid(pid, 0)
        if not data:
            raise SystemExit("fork_probe: a child wrote nothing")
        if i >= warmup:
            samples.append(elapsed)
    print(json.dumps({"samples_ms": samples, "rss_kb": _rss_kb(), "python": sys.version.split()[0]}), flush=True)


def template(children: int, bootstrap: str) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("lamina_runtime_client", bootstrap)
    if spec is None or spec.loader is None:
        raise SystemExit(f"fork_probe: cannot load {bootstrap}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # __name__ is not "__main__": imports and definitions only
    gc.collect()
    gc.freeze()  # as a template does, so the children's collections do not copy its pages
    pids: list[int] = []
    ready_r, ready_w = os.pipe()
    for _ in range(children):
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            os.write(ready_w, json.dumps(CHILD_PAYLOAD).encode()[:1])
            os.close(ready_w)
            try:
                while os.read(0, 4096):  # until the driver closes the shared stdin pipe
                    pass
            finally:
                os._exit(0)
        pids.append(pid)
    os.close(ready_w)
    got = 0
    while got < children:
        chunk = os.read(ready_r, 64)
        if not chunk:
            raise SystemExit("fork_probe: a child died before it was ready")
        got += len(chunk)
    os.close(ready_r)
    print(json.dumps({"template": os.getpid(), "children": pids, "rss_kb": _rss_kb()}), flush=True)
    while os.read(0, 4096):
        pass
    for pid in pids:
        os.waitpid(pid, 0)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "fork":
        fork_times(int(sys.argv[2]), int(sys.argv[3]))
    elif mode == "template":
        template(int(sys.argv[2]), sys.argv[3])
    else:
        raise SystemExit(f"fork_probe: unknown mode {mode!r}")
