"""G4's function: a `provided.al2023` runtime whose `bootstrap` is a small Python script.

A custom runtime cannot be forked from a template: its cold start is a fresh process in a fresh
sandbox, so G4 holds it to L_py. The bootstrap is the smallest honest runtime: the interpreter
sandboxes can reach (/usr/bin/python3.11, the only one on their read-only /usr), `-IS` as one
shebang argument (Linux passes everything after the interpreter path as a single argument, so
`-I -S` would reach Python as the one option "-I -S" and fail), and a raw-socket HTTP/1.1 client
for the Runtime API: GET /next, then POST the event back as the response (the no-op handler).
"""

from __future__ import annotations

from typing import Any

from lamina.testing import deploy

RUNTIME = "provided.al2023"
BOOTSTRAP_SOURCE = r'''#!/usr/bin/python3.11 -IS
"""A no-op custom runtime: each event comes back as its response."""
import os
import socket

host, _, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rpartition(":")
PREFIX = "/2018-06-01/runtime/invocation/"
sock = socket.create_connection((host, int(port)))
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
buf = b""


def request(method, path, body=b""):
    """One exchange on the persistent connection: (lower-cased headers, body)."""
    global buf
    sock.sendall(b"%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n%s"
                 % (method, path.encode(), host.encode(), len(body), body))
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("runtime API closed the connection")
        buf += chunk
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].split()[1].startswith("2"):
        raise SystemExit("runtime API answered " + lines[0])
    headers = dict((k.strip().lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:]))
    length = int(headers.get("content-length", "0"))
    while len(buf) < length:
        chunk = sock.recv(max(65536, length - len(buf)))
        if not chunk:
            raise SystemExit("runtime API closed the connection inside a body")
        buf += chunk
    data, buf = buf[:length], buf[length:]
    return headers, data


while True:
    headers, event = request(b"GET", PREFIX + "next")
    request(b"POST", PREFIX + headers["lambda-runtime-aws-request-id"] + "/response", event)
'''


def deploy_custom(client: Any, name: str, memory_size: int) -> None:
    """create_function with the bootstrap above (mode 0755), then wait until it is Active."""
    deploy(client, name, {"bootstrap": BOOTSTRAP_SOURCE}, runtime=RUNTIME, handler="function.handler",
           executable=("bootstrap",), MemorySize=memory_size, Timeout=30)  # fmt: skip
