"""Sandbox networking: `none` reaches nothing; `outbound` reaches the world through the host, but
never the host itself (Lamina's port included) nor another sandbox.

"The world" is a test host of our own: a network namespace this test creates, joined to the host
by a veth pair on 198.18.77.0/30 (RFC 2544's benchmarking range), serving HTTP. Nothing leaves
the machine.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from lamina.testing import RunningServer, deploy, isolation_for_tests

pytestmark = pytest.mark.skipif(
    isolation_for_tests() != "sandbox" or shutil.which("nft") is None or shutil.which("ip") is None,
    reason="sandbox networking needs sandbox mode, nft and ip",
)

HOST_ADDR, OUTSIDE_ADDR, OUTSIDE_PORT = "198.18.77.1", "198.18.77.2", 8077
SECRET = uuid.uuid4().hex


@pytest.fixture(scope="module")
def outside() -> Iterator[str]:
    """A test host in its own network namespace, serving SECRET over HTTP; its URL."""
    tag = uuid.uuid4().hex[:6]
    ns, host_if, peer_if = f"lamina-test-{tag}", f"ltoh{tag}", f"ltop{tag}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    server = None
    try:
        for cmd in (
            ["ip", "link", "add", host_if, "type", "veth", "peer", "name", peer_if],
            ["ip", "link", "set", peer_if, "netns", ns],
            ["ip", "addr", "add", f"{HOST_ADDR}/30", "dev", host_if],
            ["ip", "link", "set", host_if, "up"],
            ["ip", "-n", ns, "addr", "add", f"{OUTSIDE_ADDR}/30", "dev", peer_if],
            ["ip", "-n", ns, "link", "set", peer_if, "up"],
            ["ip", "-n", ns, "link", "set", "lo", "up"],
        ):
            subprocess.run(cmd, check=True)
        code = (
            "import http.server, sys\n"
            "class H(http.server.BaseHTTPRequestHandler):\n"
            "    def do_GET(self):\n"
            f"        body = b'{SECRET}'\n"
            "        self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers()\n"
            "        self.wfile.write(body)\n"
            "    def log_message(self, *a): pass\n"
            f"s = http.server.HTTPServer(('{OUTSIDE_ADDR}', {OUTSIDE_PORT}), H)\n"
            "print('ready', flush=True)\n"
            "s.serve_forever()\n"
        )
        server = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        yield f"http://{OUTSIDE_ADDR}:{OUTSIDE_PORT}/"
    finally:
        if server is not None:
            server.kill()
            server.wait(10)
            if server.stdout is not None:
                server.stdout.close()
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


PROBE = """
import json, socket, threading, time, urllib.request
def reach(host, port, timeout=1.0):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return "connected"
    except OSError as exc:
        return type(exc).__name__ + ":" + str(exc.errno)
def handler(event, context):
    out = {}
    time.sleep(event.get("sleep", 0))
    if "url" in event:
        try:
            out["get"] = urllib.request.urlopen(event["url"], timeout=3).read().decode()
        except OSError as exc:
            out["get"] = "failed: " + str(exc)
    out["reach"] = {f"{h}:{p}": reach(h, p) for h, p in event.get("targets", [])}
    return out
"""

# Listens on 7777 from init on, in a thread, so it is listening whenever an invocation runs.
LISTENER = """
import socket, threading, time
accepted = []
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 7777)); srv.listen(8)
threading.Thread(target=lambda: [accepted.append(srv.accept()[1][0]) for _ in iter(int, 1)], daemon=True).start()
def own_address(peer):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect((peer, 9)); addr = s.getsockname()[0]; s.close()
    return addr
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    addr = own_address(event["peer"])
    with socket.create_connection((addr, 7777), timeout=2):
        pass  # control: it is listening and reachable from itself
    return {"address": addr, "accepted": list(accepted)}
"""


def call(client: Any, name: str, event: dict[str, Any]) -> Any:
    resp = client.invoke(FunctionName=name, Payload=json.dumps(event))
    body = json.loads(resp["Payload"].read())
    assert "FunctionError" not in resp, body
    return body


def lamina_port(server: RunningServer) -> int:
    return int(server.endpoint.rsplit(":", 1)[1])


def test_none_reaches_nothing(server: RunningServer, lambda_client: Any, fname: str, outside: str) -> None:
    deploy(lambda_client, fname, {"app.py": PROBE}, Timeout=10)
    out = call(lambda_client, fname, {"url": outside, "targets": [[OUTSIDE_ADDR, OUTSIDE_PORT], ["127.0.0.1", lamina_port(server)]]})
    assert out["get"].startswith("failed"), out
    assert all(v != "connected" for v in out["reach"].values()), out


def test_outbound_reaches_the_world_but_not_the_host(server: RunningServer, lambda_client: Any, fname: str, outside: str) -> None:
    # A listener on every host address: the sandbox must not reach it through any of them.
    bait = socket.socket()
    bait.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    bait.bind(("0.0.0.0", 0))
    bait.listen(8)
    bait_port = bait.getsockname()[1]
    host_addrs = [HOST_ADDR, *_host_addresses()]
    try:
        deploy(lambda_client, fname, {"app.py": PROBE}, Timeout=20, Tags={"lamina:network": "outbound"})
        targets = [[addr, bait_port] for addr in host_addrs] + [[addr, lamina_port(server)] for addr in host_addrs]
        out = call(lambda_client, fname, {"url": outside, "targets": targets})
    finally:
        bait.close()
    assert out["get"] == SECRET, out  # egress through the host works
    assert all(v != "connected" for v in out["reach"].values()), out


def test_outbound_sandboxes_cannot_reach_each_other(lambda_client: Any, fname: str, outside: str) -> None:
    listener, prober = f"{fname}-l", f"{fname}-p"
    deploy(lambda_client, listener, {"app.py": LISTENER}, Timeout=20, Tags={"lamina:network": "outbound"})
    deploy(lambda_client, prober, {"app.py": PROBE}, Timeout=20, Tags={"lamina:network": "outbound"})
    address = call(lambda_client, listener, {"peer": OUTSIDE_ADDR})["address"]  # warm, and its address
    results: dict[str, Any] = {}
    # The listener's second invocation keeps it thawed (listening) for 3 s; the prober waits 0.5 s
    # into that window, then tries to connect to it.
    t = threading.Thread(target=lambda: results.update(listen=call(lambda_client, listener, {"peer": OUTSIDE_ADDR, "sleep": 3})))
    t.start()
    probe = call(lambda_client, prober, {"sleep": 0.5, "targets": [[address, 7777]]})
    t.join(30)
    assert probe["reach"][f"{address}:7777"] != "connected", probe
    # Only the listener's own control connections ever arrived.
    assert set(results["listen"]["accepted"]) <= {address}, results


def test_network_tag_is_validated(lambda_client: Any, fname: str) -> None:
    arn = deploy(lambda_client, fname, {"app.py": PROBE})["FunctionArn"]
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException):
        lambda_client.tag_resource(Resource=arn, Tags={"lamina:network": "everything"})


def _host_addresses() -> list[str]:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True).stdout
    addrs = [line.split()[3].split("/")[0] for line in out.splitlines()]
    return [a for a in addrs if not a.startswith("127.")]
