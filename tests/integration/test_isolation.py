"""Escape attempts by real functions: each must fail, and Lamina must keep serving others.

Every test deploys an attacker (python3.11, code as strings) that tries one escape from inside
its sandbox, and an innocent function that must still work afterwards (`_still_serving`). The
attacks carry positive controls wherever "not found" could mean "did not look": the file search
must find the attacker's own canary, the port scan must reach the attacker's own Runtime API, the
frozen ticker must be seen ticking while thawed, and so on. Host-side checks run as root from the
test (`processes_with_env` finds a function's runtime by a marker variable).

Every attack is bounded so that a broken sandbox fails the test instead of harming the machine it
runs on: SIGKILL goes only to processes the test owns (arbitrary pids are only probed with signal
0), the fork bomb stops at 1,500 children, /tmp filling at 768 MB, and mount/chroot only target
the attacker's own /tmp. (Run unsandboxed as root, a "kill every pid" sweep kills the host's.)

These tests are about sandbox mode (what CI runs); in process mode they are skipped, since that
mode documents that it isolates nothing between environments.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lamina.testing import RunningServer, deploy, isolation_for_tests, processes_with_env

pytestmark = pytest.mark.skipif(isolation_for_tests() != "sandbox", reason="escape tests need --isolation sandbox")

MARKER = "LAMINA_ISOLATION_TEST_MARK"
BIG = 1769  # MB: one full vCPU, for attackers that do a lot of work in one invoke

INNOCENT = """
import os, json
def handler(event, context):
    path = "/tmp/innocent-" + context.aws_request_id
    with open(path, "w") as f:
        f.write(json.dumps(event))
    with open(path) as f:
        back = json.loads(f.read())
    os.remove(path)
    return {"echo": back, "pid": os.getpid()}
"""

# A file search shared by the attackers that hunt for another function's data. It walks the
# whole visible tree except /proc and /sys and reads every regular file, except under /usr: the
# host's read-only OS tree (117k files here) is too big to read within a test, so there it reads
# only files that could be a copy of what is hunted (same size as a hunted file, or a hunted name).
SEARCH_PY = """
import os, stat, time

def search(needles, names, sizes, budget=40.0):
    needles = [n.encode() for n in needles]
    hits, files, read = [], 0, 0
    t0 = time.monotonic()
    complete = True
    for root, dirs, entries in os.walk("/"):
        if root == "/":
            dirs[:] = [d for d in dirs if d not in ("proc", "sys")]
        for name in dirs + entries:
            if any(n in name for n in names):
                hits.append(["name", os.path.join(root, name)])
        for name in entries:
            if time.monotonic() - t0 > budget:
                complete = False
                break
            path = os.path.join(root, name)
            files += 1
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            if path.startswith("/usr/") and st.st_size not in sizes and name not in names:
                continue
            try:
                with open(path, "rb") as f:
                    data = f.read(64 << 20)
            except OSError:
                continue
            read += 1
            for needle in needles:
                if needle in data:
                    hits.append([needle.decode(), path])
        if not complete:
            break
    return {"hits": hits, "files": files, "read": read, "complete": complete,
            "seconds": round(time.monotonic() - t0, 2)}

def try_paths(paths):
    out = {}
    for path in paths:
        try:
            with open(path, "rb") as f:
                out[path] = "read:" + f.read(200).decode("utf-8", "replace")
        except OSError as exc:
            out[path] = errno_name(exc.errno)
    return out

def try_listdirs(paths):
    out = {}
    for path in paths:
        try:
            out[path] = "listed:" + ",".join(sorted(os.listdir(path))[:20])
        except OSError as exc:
            out[path] = errno_name(exc.errno)
    return out

def errno_name(n):
    import errno
    return errno.errorcode.get(n, str(n))
"""


# --- helpers -----------------------------------------------------------------------------------


def _invoke(client: Any, name: str, event: Any = None) -> tuple[dict[str, Any], Any]:
    resp = client.invoke(FunctionName=name, Payload=json.dumps(event if event is not None else {}).encode())
    body = json.loads(resp["Payload"].read())
    return resp, body


def _ok(client: Any, name: str, event: Any = None) -> Any:
    resp, body = _invoke(client, name, event)
    assert resp["StatusCode"] == 200, body
    assert "FunctionError" not in resp, body
    return body


@pytest.fixture
def names(request: pytest.FixtureRequest, lambda_client: Any) -> Iterator[Any]:
    """names(role) → a unique function name; every function named is deleted after the test,
    which stops its environments (and whatever the attacker left running in them)."""
    made: list[str] = []
    test = request.node.name.removeprefix("test_").replace("_", "-")[:36]

    def make(role: str) -> str:
        name = f"{role}-{uuid.uuid4().hex[:6]}-{test}"[:64]
        made.append(name)
        return name

    yield make
    for name in made:
        try:
            lambda_client.delete_function(FunctionName=name)
        except lambda_client.exceptions.ResourceNotFoundException:
            pass


def _innocent(client: Any, name: str) -> str:
    """Deploy the bystander and invoke it once, so it has a live (frozen) environment during the attack."""
    deploy(client, name, {"app.py": INNOCENT})
    assert _ok(client, name, {"before": True})["echo"] == {"before": True}
    return name


def _still_serving(server: RunningServer, client: Any, innocent: str) -> None:
    """The server process is alive and answers; the bystander's warm environment still works."""
    assert server.process.poll() is None, "the Lamina server died"
    token = uuid.uuid4().hex
    assert _ok(client, innocent, {"after": token})["echo"] == {"after": token}
    assert innocent in [f["FunctionName"] for f in client.list_functions(MaxItems=1000)["Functions"]]


def _runtime_pids(marker: str) -> list[int]:
    """Host pids of the runtime processes of the function deployed with MARKER=marker."""
    pids = processes_with_env(MARKER, marker)
    assert pids, f"no runtime process carries {MARKER}={marker}"
    return pids


def _host_uids(pid: int) -> tuple[int, ...]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return tuple(int(x) for x in line.split()[1:])
    raise AssertionError(f"no Uid line for pid {pid}")


def _as_uid(uid: int, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run argv on the host as `uid` (no groups): what a process that broke out of its mount
    namespace, keeping its host uid, could do."""
    return subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", *argv],
        capture_output=True, text=True, timeout=10,
    )  # fmt: skip


def _code_sha_hex(create_response: dict[str, Any]) -> str:
    return base64.b64decode(create_response["CodeSha256"]).hex()


def _host_addresses() -> list[str]:
    """This host's IPv4 addresses other than loopback (the kernel's LOCAL routes)."""
    lines = Path("/proc/net/fib_trie").read_text().splitlines()
    found = {lines[i - 1].split()[-1] for i, line in enumerate(lines) if "/32 host LOCAL" in line}
    return sorted(a for a in found if not a.startswith("127."))


# --- another function's code -------------------------------------------------------------------


def test_cannot_read_another_functions_code(server: RunningServer, lambda_client: Any, names: Any) -> None:
    secret = f"victim-code-secret-{uuid.uuid4().hex}"
    canary = f"attacker-own-canary-{uuid.uuid4().hex}"
    victim_code = f"SECRET = {secret!r}\ndef handler(event, context):\n    return {{'secret': SECRET}}\n"
    victim = names("victim")
    created = deploy(lambda_client, victim, {"app.py": victim_code})
    assert _ok(lambda_client, victim)["secret"] == secret
    sha = _code_sha_hex(created)
    unpacked = server.data_dir.resolve() / "code" / "unpacked"
    victim_host = unpacked / sha / "app.py"
    assert secret in victim_host.read_text()  # where the attacker would have to reach
    innocent = _innocent(lambda_client, names("innocent"))

    attacker = names("attacker")
    attacker_code = (
        f"CANARY = {canary!r}\n"
        "from search import search, try_paths, try_listdirs\n"
        "def handler(event, context):\n"
        "    found = search(event['needles'], event['names'], set(event['sizes']))\n"
        "    found['paths'] = try_paths(event['paths'])\n"
        "    found['dirs'] = try_listdirs(event['dirs'])\n"
        "    return found\n"
    )
    deploy(lambda_client, attacker, {"app.py": attacker_code, "search.py": SEARCH_PY}, MemorySize=BIG, Timeout=60)
    zip_path = server.data_dir.resolve() / "code" / "zips" / f"{sha}.zip"
    result = _ok(
        lambda_client,
        attacker,
        {
            "needles": [secret, canary],
            "names": [sha, f"{sha}.zip"],
            "sizes": [len(victim_code.encode()), zip_path.stat().st_size],
            "paths": [str(victim_host), str(zip_path), f"/var/task/../../{victim_host}"],
            "dirs": [str(unpacked), str(server.data_dir.resolve())],
        },
    )
    assert result["complete"], result  # it looked everywhere it could, within its budget
    # The control: the search does find what is visible (the attacker's own code).
    assert [canary, "/var/task/app.py"] in result["hits"]
    assert [h for h in result["hits"] if h[0] != canary] == []
    assert all(not r.startswith(("read:", "listed:")) for r in result["paths"].values()), result["paths"]
    assert all(not r.startswith(("read:", "listed:")) for r in result["dirs"].values()), result["dirs"]
    _still_serving(server, lambda_client, innocent)
    assert _ok(lambda_client, victim)["secret"] == secret


# --- another environment's /tmp ----------------------------------------------------------------

TMP_VICTIM = """
import os
def handler(event, context):
    with open("/tmp/victim-secret.txt", "w") as f:
        f.write(event["secret"])
    return {"tmp": sorted(os.listdir("/tmp"))}
"""

TMP_ATTACKER = """
import os
from search import search, try_paths, try_listdirs
def handler(event, context):
    with open("/tmp/own-canary.txt", "w") as f:
        f.write(event["canary"])
    found = search([event["secret"], event["canary"]], ["victim-secret"], set())
    found["paths"] = try_paths(event["paths"])
    found["dirs"] = try_listdirs(event["dirs"])
    found["tmp"] = sorted(os.listdir("/tmp"))
    return found
"""


def test_cannot_read_another_environments_tmp(server: RunningServer, lambda_client: Any, names: Any) -> None:
    secret = f"victim-tmp-secret-{uuid.uuid4().hex}"
    canary = f"attacker-tmp-canary-{uuid.uuid4().hex}"
    victim_mark, attacker_mark = uuid.uuid4().hex, uuid.uuid4().hex
    victim = names("victim")
    deploy(lambda_client, victim, {"app.py": TMP_VICTIM}, Environment={"Variables": {MARKER: victim_mark}})
    assert _ok(lambda_client, victim, {"secret": secret})["tmp"] == ["victim-secret.txt"]
    envs = server.data_dir.resolve() / "envs"
    victim_files = [p for p in envs.glob("*/tmp/victim-secret.txt") if p.read_text() == secret]
    assert len(victim_files) == 1, victim_files
    victim_file = victim_files[0]
    innocent = _innocent(lambda_client, names("innocent"))

    attacker = names("attacker")
    deploy(
        lambda_client, attacker, {"app.py": TMP_ATTACKER, "search.py": SEARCH_PY},
        MemorySize=BIG, Timeout=60, Environment={"Variables": {MARKER: attacker_mark}},
    )  # fmt: skip
    result = _ok(
        lambda_client,
        attacker,
        {
            "secret": secret,
            "canary": canary,
            "paths": [str(victim_file), "/proc/1/root" + str(victim_file)],
            "dirs": [str(envs), str(victim_file.parent), "/proc/1/root/tmp"],
        },
    )
    assert result["complete"], result
    assert result["tmp"] == ["own-canary.txt"]  # its /tmp is its own, and holds nothing of the victim's
    assert [canary, "/tmp/own-canary.txt"] in result["hits"]  # the control: the search sees its own /tmp
    assert [h for h in result["hits"] if h[0] != canary] == []
    assert all(not r.startswith("read:") for r in result["paths"].values()), result["paths"]
    listed = {p: r for p, r in result["dirs"].items() if r.startswith("listed:")}
    assert listed in ({}, {"/proc/1/root/tmp": "listed:own-canary.txt"}), listed

    # Defence in depth: even outside its mount namespace, the attacker's host uid could not read the
    # victim's /tmp (while it can read its own: the control).
    attacker_uid = _host_uids(_runtime_pids(attacker_mark)[0])[0]
    assert attacker_uid != _host_uids(_runtime_pids(victim_mark)[0])[0]
    own_files = [p for p in envs.glob("*/tmp/own-canary.txt") if p.read_text() == canary]
    assert len(own_files) == 1
    assert _as_uid(attacker_uid, ["cat", str(own_files[0])]).stdout == canary
    stolen = _as_uid(attacker_uid, ["cat", str(victim_file)])
    assert stolen.returncode != 0 and secret not in stolen.stdout
    assert "Permission denied" in stolen.stderr
    listing = _as_uid(attacker_uid, ["ls", str(envs)])
    assert listing.returncode != 0 and "Permission denied" in listing.stderr

    _still_serving(server, lambda_client, innocent)
    assert _ok(lambda_client, victim, {"secret": secret})["tmp"] == ["victim-secret.txt"]


# --- host processes and Lamina itself ----------------------------------------------------------

PROC_ATTACKER = """
import os, signal, errno
def name(n):
    return errno.errorcode.get(n, str(n))
def handler(event, context):
    procs = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    procs[entry] = f.read().replace(b"\\0", b" ").decode("utf-8", "replace").strip()
            except OSError as exc:
                procs[entry] = name(exc.errno)
    # Every pid it can signal at all (signal 0 checks without delivering anything).
    with open("/proc/sys/kernel/pid_max") as f:
        top = min(int(f.read()), 1 << 16)
    alive = []
    for pid in range(1, top + 1):
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except OSError as exc:
            if exc.errno != errno.ESRCH:
                alive.append(pid)
    killed = {}
    for pid in event["targets"]:
        try:
            os.kill(pid, signal.SIGKILL)
            killed[pid] = "sent"
        except OSError as exc:
            killed[pid] = name(exc.errno)
    return {"own": os.getpid(), "procs": procs, "alive": alive, "killed": killed}
"""


def test_cannot_see_or_signal_host_processes(server: RunningServer, lambda_client: Any, names: Any) -> None:
    """The attacker may only *probe* arbitrary pids (signal 0). It sends SIGKILL only to host
    processes this test owns (the test's server, its victim's runtime, a `sleep` it started), so
    that if the pid namespace ever broke, the test fails instead of killing the machine's processes."""
    victim_mark = uuid.uuid4().hex
    victim = names("victim")
    deploy(lambda_client, victim, {"app.py": INNOCENT}, Environment={"Variables": {MARKER: victim_mark}})
    _ok(lambda_client, victim)
    victim_pids = _runtime_pids(victim_mark)
    innocent = _innocent(lambda_client, names("innocent"))
    attacker = names("attacker")
    deploy(lambda_client, attacker, {"app.py": PROC_ATTACKER}, MemorySize=BIG, Timeout=30)

    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        targets = [server.process.pid, bystander.pid, *victim_pids]
        assert all(pid > 3 for pid in targets)  # none can be mistaken for a pid of its own namespace
        result = _ok(lambda_client, attacker, {"targets": targets})
        assert bystander.poll() is None, "the attacker killed a host process"
    finally:
        bystander.kill()
        bystander.wait()
    procs = {int(k): v for k, v in result["procs"].items()}
    # Its own pid namespace: the launcher's pid 1 (bwrap, or the zygote's "init"), its runtime,
    # nothing of the host's or Lamina's.
    assert procs[1].split()[0].endswith("bwrap") or procs[1] == "init", procs
    assert result["own"] in procs and len(procs) <= 3, procs
    assert not any("lamina" in cmd or victim in cmd for cmd in procs.values()), procs
    assert sorted(result["alive"]) == sorted(procs), result["alive"]  # nothing else to signal
    assert set(result["killed"].values()) == {"ESRCH"}, result["killed"]

    assert server.process.poll() is None
    assert processes_with_env(MARKER, victim_mark) == victim_pids  # the victim's runtime survived
    _still_serving(server, lambda_client, innocent)
    _ok(lambda_client, victim)
    _ok(lambda_client, attacker, {"targets": []})


# --- Runtime APIs and the network --------------------------------------------------------------

NET_ATTACKER = """
import json, socket, errno, threading, time, http.client
def name(n):
    return errno.errorcode.get(n, str(n))
def connect(host, port, timeout=0.5):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        # Scanning the ephemeral range, a connect can meet itself (TCP simultaneous open).
        return "self" if s.getsockname() == s.getpeername() else "connected"
    except socket.timeout:
        return "timeout"
    except OSError as exc:
        return name(exc.errno)
    finally:
        s.close()
def handler(event, context):
    if event.get("warm"):
        return {}
    out = {"own_request_id": context.aws_request_id}
    out["targets"] = {f"{h}:{p}": connect(h, p) for h, p in event["targets"]}
    # Hammer its own Runtime API for the next event while the victim is being invoked.
    seen, bodies, statuses = set(), [], set()
    out["hammer_start"] = time.time()
    while time.time() < out["hammer_start"] + event["hammer_seconds"]:
        conn = http.client.HTTPConnection("127.0.0.1", 9001, timeout=0.5)
        try:
            conn.request("GET", "/2018-06-01/runtime/invocation/next")
            resp = conn.getresponse()
            body = resp.read()
            statuses.add(resp.status)
            seen.add(resp.getheader("Lambda-Runtime-Aws-Request-Id"))
            if body not in bodies:
                bodies.append(body)
        except (OSError, http.client.HTTPException) as exc:
            statuses.add(type(exc).__name__)
        finally:
            conn.close()
    out["hammer_end"] = time.time()
    out["seen"] = sorted(str(s) for s in seen)
    out["bodies"] = [b.decode("utf-8", "replace") for b in bodies[:5]]
    out["statuses"] = sorted(str(s) for s in statuses)
    t0 = time.monotonic()
    open_ports = []
    for port in range(1, 65536):
        if time.monotonic() - t0 > 10:
            break
        if connect("127.0.0.1", port) == "connected":
            open_ports.append(port)
    out["scanned_to"] = port
    out["open_ports"] = open_ports
    out["scan_seconds"] = round(time.monotonic() - t0, 2)
    return out
"""

NET_VICTIM = """
import time
def handler(event, context):
    start = time.time()
    time.sleep(event.get("sleep", 0))
    return {"token": event.get("token"), "start": start, "end": time.time()}
"""


def test_cannot_reach_other_runtime_apis_lamina_or_the_host(
    server: RunningServer, lambda_client: Any, names: Any
) -> None:
    victim = names("victim")
    deploy(lambda_client, victim, {"app.py": NET_VICTIM}, Timeout=30)
    _ok(lambda_client, victim)  # warm: its environment (and Runtime API) is live during the attack
    innocent = _innocent(lambda_client, names("innocent"))
    attacker = names("attacker")
    deploy(lambda_client, attacker, {"app.py": NET_ATTACKER}, MemorySize=BIG, Timeout=60)
    _ok(lambda_client, attacker, {"warm": True})  # warm, so the attack starts at once

    lamina_port = int(server.endpoint.rsplit(":", 1)[1])
    # A host service on every interface: the attacker must not reach it either.
    host_service = socket.socket()
    host_service.bind(("0.0.0.0", 0))
    host_service.listen(16)
    host_service.setblocking(False)
    try:
        service_port = host_service.getsockname()[1]
        addresses = ["127.0.0.1", *_host_addresses()]
        targets = [[a, p] for a in addresses for p in (lamina_port, service_port)] + [["127.0.0.1", 9001]]
        victim_token = uuid.uuid4().hex
        victim_result: dict[str, Any] = {}

        def run_victim() -> None:
            victim_result.update(_ok(lambda_client, victim, {"sleep": 1.5, "token": victim_token}))

        attack_result: dict[str, Any] = {}

        def run_attacker() -> None:
            resp, body = _invoke(lambda_client, attacker, {"targets": targets, "hammer_seconds": 2.5})
            attack_result.update(body, status=resp["StatusCode"], error=resp.get("FunctionError"))

        attack = threading.Thread(target=run_attacker)
        attack.start()
        # The victim's invocation (1.5 s) runs while the attacker hammers its own /next for 2.5 s
        # (that the two overlapped is asserted below rather than assumed), then port-scans.
        run_victim()
        attack.join(60)
        assert not attack.is_alive()
        with pytest.raises(BlockingIOError):
            host_service.accept()[0].close()  # nobody from the sandbox got through
    finally:
        host_service.close()

    assert attack_result["status"] == 200 and attack_result["error"] is None, attack_result
    assert victim_result["token"] == victim_token  # the victim got its own event and answered it
    assert attack_result["hammer_start"] < victim_result["end"] and victim_result["start"] < attack_result["hammer_end"]
    results = attack_result["targets"]
    assert results.pop("127.0.0.1:9001") == "connected"  # the control: its own Runtime API
    for target, outcome in results.items():
        assert outcome in ("ECONNREFUSED", "ENETUNREACH", "EHOSTUNREACH"), (target, outcome)
    assert attack_result["scanned_to"] == 65535, "the port scan ran out of time"
    assert attack_result["open_ports"] == [9001]  # nothing but its own Runtime API on its loopback
    assert attack_result["seen"] == [attack_result["own_request_id"]]  # only ever its own event
    assert attack_result["statuses"] == ["200"]
    assert victim_token not in "".join(attack_result["bodies"])
    _still_serving(server, lambda_client, innocent)


# --- fork bomb ---------------------------------------------------------------------------------

FORK_BOMB = """
import os, time, errno, threading
def handler(event, context):
    if not event.get("bomb"):
        return {"ok": True}
    kids, err, t0 = 0, None, time.monotonic()
    while kids < 1500 and time.monotonic() - t0 < 5:
        try:
            pid = os.fork()
        except OSError as exc:
            err = errno.errorcode.get(exc.errno, str(exc.errno))
            break
        if pid == 0:
            try:
                os.execv("/usr/bin/sleep", ["sleep", "30"])
            finally:
                os._exit(0)
        kids += 1
    threads, thread_error = 0, None
    stop = threading.Event()
    while threads < 1500 and time.monotonic() - t0 < 6:
        try:
            threading.Thread(target=stop.wait, daemon=True).start()
            threads += 1
        except RuntimeError as exc:
            thread_error = str(exc)
            break
    stop.set()
    return {"kids": kids, "fork_error": err, "threads": threads, "thread_error": thread_error,
            "seconds": round(time.monotonic() - t0, 2)}
"""


def test_fork_bomb_is_contained(server: RunningServer, lambda_client: Any, names: Any) -> None:
    innocent = _innocent(lambda_client, names("innocent"))
    mark = uuid.uuid4().hex
    attacker = names("attacker")
    deploy(lambda_client, attacker, {"app.py": FORK_BOMB}, MemorySize=BIG, Timeout=30, Environment={"Variables": {MARKER: mark}})
    result = _ok(lambda_client, attacker, {"bomb": True})
    # The pids cgroup (1,024 tasks, bwrap and the runtime included) stopped it, not the time bound.
    assert result["fork_error"] == "EAGAIN", result
    assert 900 <= result["kids"] < 1024, result
    assert result["threads"] < 10 and result["thread_error"], result
    assert 900 <= len(processes_with_env(MARKER, mark)) <= 1024  # the host's view agrees
    # The host can still start processes: a new function's sandbox comes up and works.
    _still_serving(server, lambda_client, innocent)
    fresh = names("fresh")
    deploy(lambda_client, fresh, {"app.py": INNOCENT})
    assert _ok(lambda_client, fresh, {"x": 1})["echo"] == {"x": 1}
    assert _ok(lambda_client, attacker, {}) == {"ok": True}  # its own environment still answers


# --- memory ------------------------------------------------------------------------------------

MEMORY_HOG = """
def handler(event, context):
    if not event.get("hog"):
        return {"ok": True}
    chunks = []
    for _ in range(event["chunks"]):
        chunks.append(b"\\x01" * (32 << 20))  # touched pages, not lazily zeroed ones
    return {"survived_mb": 32 * len(chunks)}
"""


def test_allocating_past_memory_size_is_out_of_memory(server: RunningServer, lambda_client: Any, names: Any) -> None:
    innocent = _innocent(lambda_client, names("innocent"))
    attacker = names("attacker")
    deploy(lambda_client, attacker, {"app.py": MEMORY_HOG}, MemorySize=128, Timeout=30)
    # The control: within its MemorySize it allocates fine.
    assert _ok(lambda_client, attacker, {"hog": True, "chunks": 1}) == {"survived_mb": 32}
    resp, body = _invoke(lambda_client, attacker, {"hog": True, "chunks": 10})  # 320 MB
    assert resp["StatusCode"] == 200
    assert resp.get("FunctionError") == "Unhandled", body
    assert body["errorType"] == "Runtime.OutOfMemory", body
    assert _ok(lambda_client, attacker, {}) == {"ok": True}  # the next invoke re-inits and works
    _still_serving(server, lambda_client, innocent)


# --- /tmp past its size ------------------------------------------------------------------------

TMP_FILLER = """
import os, errno
def handler(event, context):
    if event["action"] == "fill":
        written, err = 0, None
        chunk = b"\\xab" * (1 << 20)
        fd = os.open("/tmp/fill", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            while written < (768 << 20):
                written += os.write(fd, chunk)
            os.fsync(fd)
        except OSError as exc:
            err = errno.errorcode.get(exc.errno, str(exc.errno))
        finally:
            os.close(fd)
        st = os.statvfs("/tmp")
        return {"written_mb": written >> 20, "errno": err, "free_mb": st.f_bavail * st.f_frsize >> 20,
                "size_mb": st.f_blocks * st.f_frsize >> 20}
    os.remove("/tmp/fill")
    with open("/tmp/after", "wb") as f:
        f.write(b"y" * (8 << 20))
    with open("/tmp/after", "rb") as f:
        ok = f.read() == b"y" * (8 << 20)
    os.remove("/tmp/after")
    return {"usable": ok, "tmp": sorted(os.listdir("/tmp"))}
"""


def _allocated_outside_images(root: Path) -> int:
    """Bytes allocated on disk under `root`, on its own filesystem, without the /tmp images (other
    tests' environments may come and go meanwhile: whatever vanishes is skipped)."""
    dev = root.stat().st_dev
    total = 0
    for dirpath, dirs, files in os.walk(root):
        kept = []
        for d in dirs:
            try:
                if (Path(dirpath) / d).lstat().st_dev == dev:
                    kept.append(d)
            except FileNotFoundError:
                pass
        dirs[:] = kept
        for f in files:
            if f == "tmp.img":
                continue
            try:
                total += (Path(dirpath) / f).lstat().st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def test_filling_tmp_stops_at_its_size(server: RunningServer, lambda_client: Any, names: Any) -> None:
    innocent = _innocent(lambda_client, names("innocent"))
    attacker = names("attacker")
    deploy(lambda_client, attacker, {"app.py": TMP_FILLER}, MemorySize=BIG, Timeout=60, EphemeralStorage={"Size": 512})
    data = server.data_dir.resolve()
    before = _allocated_outside_images(data)
    result = _ok(lambda_client, attacker, {"action": "fill"})
    assert result["errno"] == "ENOSPC", result
    assert result["size_mb"] <= 512 and 400 <= result["written_mb"] <= 512, result
    images = [p for p in (data / "envs").glob("*/tmp.img") if (p.parent / "tmp" / "fill").exists()]
    assert len(images) == 1
    st = images[0].stat()
    assert st.st_size == 512 << 20 and st.st_blocks * 512 <= st.st_size  # the image holds it all
    assert _allocated_outside_images(data) - before < 32 << 20  # nothing spilled onto the server's disk
    # Nothing else harmed: the bystander's /tmp still works; the attacker's own recovers.
    _still_serving(server, lambda_client, innocent)
    assert _ok(lambda_client, attacker, {"action": "clean"}) == {"usable": True, "tmp": []}


# --- forbidden syscalls ------------------------------------------------------------------------

SYSCALLS = """
import ctypes, errno, os, platform, time
libc = ctypes.CDLL(None, use_errno=True)
def call(fn, *args):
    ctypes.set_errno(0)
    rc = fn(*args)
    return [rc, errno.errorcode.get(ctypes.get_errno(), "0")] if rc == -1 else [rc, "0"]
def handler(event, context):
    # Only ever inside its own /tmp (TMPDIR), so even where these succeed nothing of the host's
    # is mounted over or exposed to whoever later removes that directory.
    mnt = os.path.join(os.environ.get("TMPDIR", "/tmp"), "mnt")
    src = os.path.join(os.environ.get("TMPDIR", "/tmp"), "src")
    os.makedirs(mnt, exist_ok=True)
    os.makedirs(src, exist_ok=True)
    out = {}
    out["mount"] = call(libc.mount, b"none", mnt.encode(), b"tmpfs", 0, None)
    out["mount_bind"] = call(libc.mount, src.encode(), mnt.encode(), None, 4096, None)  # MS_BIND
    out["umount2"] = call(libc.umount2, b"/var/task", 2)
    out["ptrace_traceme"] = call(libc.ptrace, 0, 0, None, None)
    # PTRACE_ATTACH to its own child, which ptrace's own rules would allow: only seccomp stops it.
    child = os.fork()
    if child == 0:
        time.sleep(30)
        os._exit(0)
    try:
        out["ptrace_attach_child"] = call(libc.ptrace, 16, child, None, None)
    finally:
        os.kill(child, 9)
        os.waitpid(child, 0)
    out["unshare_user"] = call(libc.unshare, 0x10000000)
    out["unshare_net"] = call(libc.unshare, 0x40000000)
    out["unshare_mount"] = call(libc.unshare, 0x00020000)
    fd = os.open("/proc/self/ns/net", os.O_RDONLY)  # its own: only the seccomp filter can refuse
    try:
        out["setns"] = call(libc.setns, fd, 0)
    finally:
        os.close(fd)
    out["chroot"] = call(libc.chroot, mnt.encode())
    if platform.machine() == "x86_64":
        # clone(CLONE_NEWUSER | SIGCHLD) as a raw syscall, the path glibc's fork would not take.
        libc.syscall.restype = ctypes.c_long
        rc = call(libc.syscall, 56, 0x10000000 | 17, 0, 0, 0, 0)
        if rc[0] == 0:
            os._exit(0)
        out["clone_newuser"] = rc
        out["clone3"] = call(libc.syscall, 435, 0, 0)
    for what, fn in (("setuid", lambda: os.setuid(0)), ("setgid", lambda: os.setgid(0))):
        try:
            fn()
            out[what] = "succeeded"
        except OSError as exc:
            out[what] = errno.errorcode.get(exc.errno, str(exc.errno))
    with open("/proc/self/status") as f:
        out["status"] = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
    out["status"] = {k: v.strip() for k, v in out["status"].items()}
    out["ids"] = [os.getuid(), os.getgid()]
    out["mnt"] = os.listdir(mnt)
    return out
"""


def test_privileged_syscalls_are_denied(server: RunningServer, lambda_client: Any, names: Any) -> None:
    innocent = _innocent(lambda_client, names("innocent"))
    attacker = names("attacker")
    mark = uuid.uuid4().hex
    deploy(lambda_client, attacker, {"app.py": SYSCALLS}, Environment={"Variables": {MARKER: mark}})
    result = _ok(lambda_client, attacker)
    for call in ("mount", "mount_bind", "umount2", "ptrace_traceme", "ptrace_attach_child", "unshare_user",
                 "unshare_net", "unshare_mount", "setns", "chroot"):  # fmt: skip
        assert result[call] == [-1, "EPERM"], (call, result[call])
    if "clone_newuser" in result:
        assert result["clone_newuser"] == [-1, "EPERM"]
        assert result["clone3"] == [-1, "ENOSYS"]  # so libc falls back to clone(), which is filtered
    # Root is not even mapped in its user namespace (EINVAL); without CAP_SETUID it could not
    # switch to it anyway (EPERM). Either way it is still 993 afterwards (`ids` is read after).
    assert result["setuid"] in ("EINVAL", "EPERM") and result["setgid"] in ("EINVAL", "EPERM"), result
    assert result["mnt"] == []  # nothing got mounted
    status = result["status"]
    assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0, status
    assert int(status["CapBnd"], 16) == 0 and int(status["CapAmb"], 16) == 0, status
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2", status
    assert result["ids"] == [993, 990]
    # Inside it is uid 993; outside, an unprivileged host uid of its own (not root, not the server's).
    host_uid = _host_uids(_runtime_pids(mark)[0])
    assert len(set(host_uid)) == 1 and host_uid[0] not in (0, os.getuid()), host_uid
    _still_serving(server, lambda_client, innocent)


# --- threads while frozen ----------------------------------------------------------------------

TICKER = """
import threading, time
count = 0
started = False
def tick():
    global count
    while True:
        time.sleep(0.01)
        count += 1
def handler(event, context):
    global started
    if not started:
        threading.Thread(target=tick, daemon=True).start()
        started = True
    before = count
    time.sleep(event.get("watch", 0))
    return {"before": before, "after": count}
"""


def test_background_thread_does_not_run_while_frozen(server: RunningServer, lambda_client: Any, names: Any) -> None:
    innocent = _innocent(lambda_client, names("innocent"))
    attacker = names("attacker")
    deploy(lambda_client, attacker, {"app.py": TICKER}, Timeout=10)
    _ok(lambda_client, attacker)
    # The control: while an invocation runs, the ticker does tick (~30 in 0.3 s).
    watched = _ok(lambda_client, attacker, {"watch": 0.3})
    assert watched["after"] - watched["before"] >= 15, watched
    # This test is about wall-clock time passing while the environment is idle, so a bounded wait
    # is the thing under test, not a synchronisation: nothing in the sandbox may run during it.
    threading.Event().wait(1.0)
    later = _ok(lambda_client, attacker)
    # Unfrozen, the ticker would have advanced ~100; frozen, only in the instants around the
    # invocations (before the freeze lands and after the thaw).
    assert later["before"] - watched["after"] < 20, (watched, later)
    _still_serving(server, lambda_client, innocent)


# --- host uids ---------------------------------------------------------------------------------


def test_each_live_environment_has_its_own_unprivileged_host_uid(
    server: RunningServer, lambda_client: Any, names: Any
) -> None:
    marks = {names("first"): uuid.uuid4().hex, names("second"): uuid.uuid4().hex}
    uids = {}
    for name, mark in marks.items():
        deploy(lambda_client, name, {"app.py": INNOCENT}, Environment={"Variables": {MARKER: mark}})
        _ok(lambda_client, name)
    for name, mark in marks.items():  # both environments are live (frozen) at once
        pids = _runtime_pids(mark)
        uids[name] = {uid for pid in pids for uid in _host_uids(pid)}
        assert len(uids[name]) == 1, uids  # real, effective, saved and fs uid all the same
    first, second = uids.values()
    assert first.isdisjoint(second), uids
    assert not (first | second) & {0, os.getuid(), _host_uids(server.process.pid)[0]}, uids
    # A function's environment would still answer with its uid: they are not in each other's way.
    for name in marks:
        _ok(lambda_client, name)


# --- defence in depth: what a sandbox's host uid could read outside its mount namespace --------


def test_a_sandbox_uid_cannot_read_lamina_state(server: RunningServer, lambda_client: Any, names: Any) -> None:
    secret = f"victim-env-secret-{uuid.uuid4().hex}"
    code_secret = f"victim-code-secret-{uuid.uuid4().hex}"
    victim = names("victim")
    created = deploy(
        lambda_client, victim, {"app.py": f"S = {code_secret!r}\n" + INNOCENT},
        Environment={"Variables": {"API_TOKEN": secret}},
    )  # fmt: skip
    mark = uuid.uuid4().hex
    attacker = names("attacker")
    deploy(lambda_client, attacker, {"app.py": INNOCENT}, Environment={"Variables": {MARKER: mark}})
    _ok(lambda_client, attacker)
    uid = _host_uids(_runtime_pids(mark)[0])[0]
    data = server.data_dir.resolve()
    # The database's name is fixed, so it must be closed to sandbox uids (defence in depth, for a
    # function that escaped its mount namespace).
    readable = []
    for path in (data / "lamina.db", data / "lamina.db-wal"):
        got = _as_uid(uid, ["grep", "-a", "-c", "-e", secret, "-e", code_secret, str(path)])
        if got.returncode == 0:
            readable.append(path.name)
    assert readable == []
    # Code directories are named by their SHA-256, which only the database (and the API) tell:
    # sandbox uids may pass through code/unpacked (bwrap resolves the path) but not list it.
    listing = _as_uid(uid, ["ls", str(data / "code" / "unpacked")])
    assert listing.returncode != 0 and "Permission denied" in listing.stderr
    own = _as_uid(uid, ["cat", str(data / "code" / "unpacked" / _code_sha_hex(created) / "app.py")])
    assert code_secret in own.stdout  # control: the path itself works, so the denials above are real


ETC_READER = """
import os
def handler(event, context):
    return {"entries": sorted(os.listdir("/etc")), "passwd": open("/etc/passwd").read(),
            "certs": os.path.isdir("/etc/ssl/certs") and len(os.listdir("/etc/ssl/certs")) > 0,
            "hostname": open("/etc/hostname").read().strip()}
"""


def test_etc_holds_only_what_a_runtime_needs(lambda_client: Any, names: Any) -> None:
    reader = names("etc")
    deploy(lambda_client, reader, {"app.py": ETC_READER})
    seen = _ok(lambda_client, reader)
    assert "sbx_user1051:x:993:990" in seen["passwd"]
    host_users = {line.split(":")[0] for line in Path("/etc/passwd").read_text().splitlines()} - {"root", "nobody"}
    assert not any(f"\n{user}:" in "\n" + seen["passwd"] for user in host_users)
    for private in ("shadow", "gshadow", "machine-id", "ssh", "sudoers", "environment", "crontab"):
        assert private not in seen["entries"], seen["entries"]
    assert seen["certs"]  # TLS roots for outbound clients
    assert seen["hostname"] == "sandbox"
