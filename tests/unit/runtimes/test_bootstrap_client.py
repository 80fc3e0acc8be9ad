"""The Python runtime client's own HTTP/1.1 transport (bootstrap.py's `_RuntimeApi`), against a
real loopback server that answers with scripted bytes, and the whole client on every python3.X.

The server reads real requests off a real socket; each connection follows its own script, so
keep-alive reuse, idle closes, chunked and fragmented replies are exactly what the client sees.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Union

import pytest

from lamina.runtimes.catalog import PYTHON_BOOTSTRAP, RuntimeCatalog


def _load_bootstrap() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lamina_bootstrap_under_test", PYTHON_BOOTSTRAP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # main() only runs as __main__
    return module


bootstrap: Any = _load_bootstrap()
NEXT = "/2018-06-01/runtime/invocation/next"

# One step of a connection's script, taken after reading one request: bytes to send, a list of
# (delay in seconds, bytes) pieces sent one by one, or None to close without answering.
Step = Union[bytes, list[tuple[float, bytes]], None]


class ScriptedServer:
    """A loopback HTTP server on a thread. Connection i (in accept order) follows `scripts[i]`;
    after its last step the server closes it. Requests are recorded as (connection, raw bytes)."""

    def __init__(self, *scripts: list[Step]) -> None:
        self.scripts = scripts
        self.requests: list[tuple[int, bytes]] = []
        self.closed = [threading.Event() for _ in scripts]
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._stop = False
        self.address = "127.0.0.1:%d" % self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for index, steps in enumerate(self.scripts):
            conn = None
            while conn is None and not self._stop:
                try:
                    conn, _ = self._listener.accept()
                except TimeoutError:
                    continue
            if conn is None:
                return
            with conn, conn.makefile("rb") as reader:
                conn.settimeout(10)
                for step in steps:
                    request = _read_request(reader)
                    if request is None:
                        break
                    self.requests.append((index, request))
                    if step is None:
                        break
                    for delay, piece in [(0.0, step)] if isinstance(step, bytes) else step:
                        time.sleep(delay)
                        conn.sendall(piece)
            self.closed[index].set()

    def stop(self) -> None:
        self._stop = True
        self._thread.join(10)
        self._listener.close()


def _read_request(reader: Any) -> bytes | None:
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = reader.readline()
        if not line:
            return None
        head += line
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + reader.read(length)


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[ScriptedServer] = []

    def start(*scripts: list[Step]) -> ScriptedServer:
        servers.append(ScriptedServer(*scripts))
        return servers[-1]

    yield start
    for srv in servers:
        srv.stop()


@pytest.fixture
def apis() -> Iterator[Any]:
    made: list[Any] = []

    def make(address: str) -> Any:
        made.append(bootstrap._RuntimeApi(address))
        return made[-1]

    yield make
    for api in made:
        api.close()


def reply(status: int = 200, body: bytes = b"", headers: tuple[str, ...] = ()) -> bytes:
    lines = ["HTTP/1.1 %d X" % status, *headers, "Content-Length: %d" % len(body)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


ACCEPTED = reply(202, b'{"status":"OK"}', ("Content-Type: application/json",))


def chunked(body: bytes, size: int) -> bytes:
    out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nLambda-Runtime-Aws-Request-Id: rid\r\n\r\n"
    for i in range(0, len(body), size):
        part = body[i : i + size]
        out += b"%x;ext=1\r\n%s\r\n" % (len(part), part)
    return out + b"0\r\nX-Trailer: t\r\n\r\n"


def test_header_names_are_case_insensitive(serve: Any, apis: Any) -> None:
    head = (
        "HTTP/1.1 200 OK",
        "lambda-runtime-aws-request-id: rid-1",
        "LAMBDA-RUNTIME-DEADLINE-MS:   1234  ",
        "Lambda-Runtime-Invoked-Function-Arn:arn:x",
        "X-Twice: first",
        "x-twice: second",
        "Content-Type: application/json",
        "content-length: 8",
    )
    srv = serve([("\r\n".join(head) + "\r\n\r\n").encode() + b'{"a": 1}'])
    headers, body = apis(srv.address).next()
    assert body == b'{"a": 1}'
    assert headers == {
        "lambda-runtime-aws-request-id": "rid-1",
        "lambda-runtime-deadline-ms": "1234",
        "lambda-runtime-invoked-function-arn": "arn:x",
        "x-twice": "second",  # the last of repeated names, as before
        "content-type": "application/json",
        "content-length": "8",
    }


def test_header_values_are_latin_1_as_http_client_decoded_them(serve: Any, apis: Any) -> None:
    context = json.dumps({"custom": {"user": "ünïcode"}}, ensure_ascii=False).encode()
    srv = serve([b"HTTP/1.1 200 OK\r\nLambda-Runtime-Client-Context: " + context + b"\r\nContent-Length: 0\r\n\r\n"])
    headers, _ = apis(srv.address).next()
    value = headers["lambda-runtime-client-context"]
    assert value == context.decode("latin-1")
    assert json.loads(bootstrap._reencode_header(value)) == {"custom": {"user": "ünïcode"}}


def test_chunked_reply_arriving_in_fragments(serve: Any, apis: Any) -> None:
    event = json.dumps({"text": "x" * 3000}).encode()
    raw = chunked(event, 1000)
    pieces = [(0.002, raw[i : i + 7]) for i in range(0, len(raw), 7)]  # splits every line and chunk
    srv = serve([pieces, chunked(b"second", 2)])
    api = apis(srv.address)
    assert api.next() == ({"transfer-encoding": "chunked", "lambda-runtime-aws-request-id": "rid"}, event)
    assert api.next()[1] == b"second"  # the trailer was consumed: the connection stays in step
    assert [conn for conn, _ in srv.requests] == [0, 0]


def test_requests_share_one_connection_and_are_sent_as_http_client_sent_them(serve: Any, apis: Any) -> None:
    srv = serve([reply(200, b"{}", ("Lambda-Runtime-Aws-Request-Id: r1",)), ACCEPTED, ACCEPTED, ACCEPTED])
    api = apis(srv.address)
    api.next()
    api.post_response("r1", b'"ok"', "application/json")
    api.post_error("r1", b"{}")
    api.post_init_error("Runtime.ImportModuleError", b"{}")
    agent = "lamina-python/%d.%d.%d" % sys.version_info[:3]
    host = "Host: %s\r\nUser-Agent: %s\r\n" % (srv.address, agent)
    prefix = "/2018-06-01/runtime"
    assert srv.requests == [
        (0, ("GET %s/invocation/next HTTP/1.1\r\n%s\r\n" % (prefix, host)).encode()),
        (0, ('POST %s/invocation/r1/response HTTP/1.1\r\n%sContent-Type: application/json\r\nContent-Length: 4\r\n\r\n"ok"' % (prefix, host)).encode()),
        (0, ("POST %s/invocation/r1/error HTTP/1.1\r\n%sContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}" % (prefix, host)).encode()),
        (0, ("POST %s/init/error HTTP/1.1\r\n%sLambda-Runtime-Function-Error-Type: Runtime.ImportModuleError\r\nContent-Length: 2\r\n\r\n{}" % (prefix, host)).encode()),
    ]  # fmt: skip


def test_idle_connection_closed_by_the_server_is_reopened_once(serve: Any, apis: Any) -> None:
    srv = serve([reply(200, b"{}")], [ACCEPTED])  # the first connection is closed after one reply
    api = apis(srv.address)
    api.next()
    assert srv.closed[0].wait(10)
    api.post_response("r1", b"1", "application/json")
    assert [(conn, raw.split(b" ")[0]) for conn, raw in srv.requests] == [(0, b"GET"), (1, b"POST")]


def test_request_is_sent_once_more_at_most(serve: Any, apis: Any) -> None:
    # The reused connection is closed, and so is the new one: the second failure is reported.
    srv = serve([reply(200, b"{}")], [None], [ACCEPTED])
    api = apis(srv.address)
    api.next()
    assert srv.closed[0].wait(10)
    with pytest.raises(bootstrap.RuntimeApiError, match=r"^POST /2018-06-01/runtime/invocation/r1/response failed: "):
        api.post_response("r1", b"1", "application/json")
    assert [conn for conn, _ in srv.requests] == [0, 1]


def test_new_connection_closed_without_reply_is_not_retried(serve: Any, apis: Any) -> None:
    srv = serve([None], [reply(200, b"{}")])
    with pytest.raises(bootstrap.RuntimeApiError, match="GET .* failed: RemoteDisconnected: Remote end closed connection without response"):
        apis(srv.address).next()
    assert [conn for conn, _ in srv.requests] == [0]


def test_reply_cut_short_is_not_retried(serve: Any, apis: Any) -> None:
    srv = serve([reply(200, b"{}"), b"HTTP/1.1 202 Accepted\r\nContent-Length: 10\r\n\r\n{"], [ACCEPTED])
    api = apis(srv.address)
    api.next()
    with pytest.raises(bootstrap.RuntimeApiError, match="after 1 of 10 body bytes"):
        api.post_response("r1", b"1", "application/json")
    assert [conn for conn, _ in srv.requests] == [0, 0]


def test_connection_close_reply_then_a_new_connection(serve: Any, apis: Any) -> None:
    srv = serve([reply(200, b"a", ("Connection: close",)), reply(200, b"never")], [reply(200, b"b")])
    api = apis(srv.address)
    assert api.next()[1] == b"a"
    assert api.next()[1] == b"b"
    assert [conn for conn, _ in srv.requests] == [0, 1]


def test_reply_delimited_by_the_end_of_the_connection(serve: Any, apis: Any) -> None:
    srv = serve([b"HTTP/1.0 200 OK\r\nLambda-Runtime-Aws-Request-Id: r\r\n\r\nuntil the end"], [reply(200, b"next")])
    api = apis(srv.address)
    assert api.next()[1] == b"until the end"
    assert api.next()[1] == b"next"


def test_interim_reply_is_skipped(serve: Any, apis: Any) -> None:
    srv = serve([b"HTTP/1.1 100 Continue\r\n\r\n" + ACCEPTED])
    apis(srv.address).post_response("r1", b"1", "application/json")


def test_large_bodies(serve: Any, apis: Any) -> None:
    big = os.urandom(6 * 1024 * 1024)
    srv = serve([reply(200, big), chunked(big, 1 << 20), ACCEPTED])
    api = apis(srv.address)
    assert api.next()[1] == big
    assert api.next()[1] == big
    api.post_response("r1", big, "application/unknown")
    assert srv.requests[-1][1].endswith(b"\r\nContent-Length: %d\r\n\r\n" % len(big) + big)


def test_statuses(serve: Any, apis: Any) -> None:
    error = b'{"errorType":"InvalidRequestID","errorMessage":"Invalid request ID"}'
    srv = serve([reply(500, b"{}"), reply(400, error), reply(403, b"{}"), ACCEPTED.replace(b"202", b"200")])
    api = apis(srv.address)
    with pytest.raises(bootstrap.RuntimeApiError, match=r"^Failed to get next invocation. Http response code: 500.$"):
        api.next()
    with pytest.raises(bootstrap.RuntimeApiError, match=r"success response. Http response code: 400.$"):
        api.post_response("r1", b"1", "application/json")
    with pytest.raises(bootstrap.RuntimeApiError, match=r"error response. Http response code: 403.$"):
        api.post_error("r1", b"{}")
    with pytest.raises(bootstrap.RuntimeApiError, match=r"init error. Http response code: 200.$"):
        api.post_init_error("Runtime.Unknown", b"{}")


def test_malformed_replies(serve: Any, apis: Any) -> None:
    for raw, message in [
        (b"NOT HTTP\r\n\r\n", "bad status line"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"),
    ]:
        srv = serve([raw])
        with pytest.raises(bootstrap.RuntimeApiError, match=message):
            apis(srv.address).next()


def test_no_server() -> None:
    port = socket.create_server(("127.0.0.1", 0))
    address = "127.0.0.1:%d" % port.getsockname()[1]
    port.close()
    api = bootstrap._RuntimeApi(address)
    with pytest.raises(bootstrap.RuntimeApiError, match="failed: ConnectionRefusedError: "):
        api.next()


def test_default_timeout_and_patched_socket_module_do_not_apply(serve: Any, apis: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """What user code does to `socket` (a default timeout, gevent-style replacement of the class
    and functions) leaves the runtime's connection alone."""
    created = []

    class Patched(socket.socket):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if kwargs.get("fileno") is None:  # accept() makes its sockets through the class too
                created.append(args)
            super().__init__(*args, **kwargs)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the runtime client used a patched socket function")

    srv = serve([[(0.3, reply(200, b"slow"))]], [[(0.3, reply(200, b"slow again"))]])
    api = apis(srv.address)
    monkeypatch.setattr(socket, "socket", Patched)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    socket.setdefaulttimeout(0.05)
    try:
        assert api.next()[1] == b"slow"
        assert srv.closed[0].wait(10)
        assert api.next()[1] == b"slow again"  # a new connection, made after the patches
    finally:
        socket.setdefaulttimeout(None)
    assert created == []


def test_address_forms() -> None:
    split = bootstrap._split_address
    assert split("127.0.0.1:9001") == ("127.0.0.1", 9001, "127.0.0.1:9001")
    assert split("[::1]:9001") == ("::1", 9001, "[::1]:9001")
    assert split("localhost") == ("localhost", 80, "localhost")
    assert split("localhost:") == ("localhost", 80, "localhost")
    with pytest.raises(bootstrap.RuntimeApiError, match="nonnumeric port"):
        split("localhost:x1")


HANDLER = """
import socket
socket.setdefaulttimeout(0.01)  # must not reach the runtime's connection
def handler(event, context):
    return {"event": event, "request_id": context.aws_request_id}
"""


@pytest.mark.parametrize("runtime", [r for r in RuntimeCatalog.discover().available if r.startswith("python3.")])
def test_whole_client_on_every_interpreter(runtime: str, serve: Any, tmp_path: Path) -> None:
    """bootstrap.py run as the platform runs it, against a chunked, slow /next; the next /next
    fails, so the client reports it and exits 1."""
    interpreter = RuntimeCatalog.discover().get(runtime).interpreter  # type: ignore[union-attr]
    (tmp_path / "app.py").write_text(HANDLER)
    event = json.dumps({"text": "café"}).encode()
    first = chunked(event, 5).replace(b"\r\n\r\n", b"\r\nContent-Type: application/json\r\n\r\n", 1)
    srv = serve([[(0.2, first)], ACCEPTED, reply(500, b"{}", ("Connection: close",))])
    env = {"AWS_LAMBDA_RUNTIME_API": srv.address, "_HANDLER": "app.handler", "LAMBDA_TASK_ROOT": str(tmp_path)}
    done = subprocess.run(
        [str(interpreter), "-I", "-S", str(PYTHON_BOOTSTRAP)], env=env, cwd=tmp_path, capture_output=True, timeout=60
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.decode().endswith("LAMBDA_RUNTIME Failed to get next invocation. Http response code: 500.\n")
    posted = srv.requests[1][1]
    assert posted.startswith(b"POST /2018-06-01/runtime/invocation/rid/response HTTP/1.1\r\n")
    assert json.loads(posted.split(b"\r\n\r\n", 1)[1]) == {"event": {"text": "café"}, "request_id": "rid"}
