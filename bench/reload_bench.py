"""Hot reload latency (issue #7): from a save to the new code running. `python bench/reload_bench.py
[--isolation sandbox|process] [--saves 30] [--files 1]`; runs on its own.

A function is deployed from a temporary directory with `--files` modules; each round saves one
module (rename over, as editors do) and measures, with the server's own clock where it has one:
- watcher: the file's modification time → the watcher's batch (server, WriteToSeenMs);
- live: the modification time → the snapshot being what invokes run (server, WriteToLiveMs);
- answered: the save → the first invoke answered by the new code (client; invokes sent back to
  back from the save on, so it includes a cold start of a new environment).
Percentiles are printed; the budget is 100 ms (live, and answered). Nothing fails on a slow host.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lamina.testing import data_directory, running_server  # noqa: E402

BODY = "from helpers import VALUE\n\ndef handler(event, context):\n    return {{'round': {r}, 'value': VALUE}}\n"


def _save(path: Path, text: str) -> float:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return time.time()


def _admin(endpoint: str, method: str, path: str, body: dict[str, object] | None = None) -> dict[str, object]:
    req = urllib.request.Request(endpoint + path, data=json.dumps(body).encode() if body else None, method=method,
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=70) as resp:
        doc: dict[str, object] = json.loads(resp.read())
        return doc


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--isolation", default="sandbox", choices=("sandbox", "process"))
    ap.add_argument("--saves", type=int, default=30)
    ap.add_argument("--files", type=int, default=1, help="extra modules in the tree (unchanged by the saves)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lamina-reload-") as tmp, data_directory() as data:
        src = Path(tmp) / "fn"
        src.mkdir()
        os.chmod(tmp, 0o755)
        (src / "helpers.py").write_text("VALUE = 1\n")
        for i in range(args.files):
            (src / f"mod{i}.py").write_text(f"X = {i}\n" * 50)
        (src / "app.py").write_text(BODY.format(r=0))
        with running_server(data, isolation=args.isolation) as srv:
            client = srv.client()
            _admin(srv.endpoint, "PUT", "/lamina/v1/functions/reload-bench/source",
                   {"Directory": str(src), "Runtime": "python3.11", "Handler": "app.handler"})  # fmt: skip
            client.invoke(FunctionName="reload-bench")
            seen, live, answered, snapshot = [], [], [], []
            for r in range(1, args.saves + 1):
                t0 = _save(src / "app.py", BODY.format(r=r))
                deadline = time.monotonic() + 20
                while True:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"round {r}: the new code never ran")
                    got = json.loads(client.invoke(FunctionName="reload-bench")["Payload"].read())
                    if isinstance(got, dict) and got.get("round") == r:
                        answered.append((time.time() - t0) * 1000)
                        break
                state = _admin(srv.endpoint, "GET", f"/lamina/v1/functions/reload-bench/source?generation={r}&wait=10")
                if state.get("WriteToLiveMs") is not None:
                    live.append(float(state["WriteToLiveMs"]))  # type: ignore[arg-type]
                    seen.append(float(state["WriteToSeenMs"]))  # type: ignore[arg-type]
                    snapshot.append(float(state["SnapshotMs"]))  # type: ignore[arg-type]
    print(f"{args.saves} saves, {args.files + 2} files, isolation {args.isolation}")
    for label, values in (("watcher", seen), ("snapshot", snapshot), ("live", live), ("answered", answered)):
        if values:
            print(f"  {label:9} p50 {statistics.median(values):7.1f} ms   p90 {_pct(values, 0.9):7.1f} ms   max {max(values):7.1f} ms")


if __name__ == "__main__":
    main()
