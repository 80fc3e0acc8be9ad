"""Lamina's Lambda Runtime API client for the managed ``python3.X`` runtimes.

Launch contract
---------------
The platform starts one process per execution environment as::

    <host python3.X binary> -I -S /path/to/bootstrap.py

with the working directory set to the function's code directory, and a clean environment that holds
Lambda's reserved variables. This file must run unchanged on CPython 3.9 to 3.13 and uses only the
standard library. It is one file on purpose (past the usual 500-line guide): it is launched as a
script with ``-I -S``, so a package beside it would have to be put on ``sys.path`` before the user's
code is, and every extra module is another file to read on each cold start.

What it reads
-------------
- ``_HANDLER``: ``module.function``, where the module may contain ``/`` (``dir/app.handler``).
- ``AWS_LAMBDA_RUNTIME_API``: ``host:port`` of the Runtime API, without a scheme (required).
- ``LAMBDA_TASK_ROOT``: the code directory (defaults to the working directory).
- ``AWS_LAMBDA_FUNCTION_NAME``, ``AWS_LAMBDA_FUNCTION_VERSION``, ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``,
  ``AWS_LAMBDA_LOG_GROUP_NAME``, ``AWS_LAMBDA_LOG_STREAM_NAME``: copied onto the context object.
- ``AWS_LAMBDA_LOG_FORMAT`` (``JSON`` or text) and ``AWS_LAMBDA_LOG_LEVEL`` (``TRACE`` means DEBUG):
  how the root logger is set up. Without a level the root logger stays at WARNING, as on Lambda.
- ``AWS_EXECUTION_ENV``: ``AWS_Lambda_python3.12`` and later emit non-ASCII results unescaped
  (without the variable the interpreter's own version decides).
- ``PYTHONPATH``: ``-I`` makes the interpreter ignore it, so its entries are added here.

What it guarantees
------------------
- ``sys.path`` starts with the task root, then ``/opt/python/lib/python3.X/site-packages`` and
  ``/opt/python`` (layers) when they exist, then ``PYTHONPATH``; it ends with the AWS SDK the
  runtime carries (boto3), at the path in ``_LAMINA_SDK_PATH`` (a variable removed at start-up). Everything the client itself needs
  is imported before that, so user files named ``json.py`` or ``logging.py`` cannot break it.
- Init: the handler is resolved once. On failure the error is logged to stdout the way Lambda
  logs it, POSTed to ``/runtime/init/error`` with ``Lambda-Runtime-Function-Error-Type``, and the
  process exits with status 1 without ever calling ``/next``. Error types and messages follow
  awslambdaric: ``Runtime.MalformedHandlerName``, ``Runtime.BuiltInModuleConflict``,
  ``Runtime.ImportModuleError``, ``Runtime.UserCodeSyntaxError``, ``Runtime.HandlerNotFound``, or
  the exception's class name.
- Loop: ``GET /next`` (no timeout) → ``handler(event, context)`` → ``POST /response`` or
  ``POST /error``. The event is JSON-decoded only when the Content-Type is exactly
  ``application/json``. A ``bytes`` result is sent raw as ``application/unknown``; anything else as
  JSON (``Decimal`` as a number, NaN allowed). Per-invoke faults: ``Runtime.UnmarshalError``,
  ``Runtime.MarshalError``, ``Runtime.LambdaContextUnmarshalError``. Handler exceptions are posted
  as ``{"errorMessage","errorType","requestId","stackTrace"}`` with the user's frames only.
- ``_X_AMZN_TRACE_ID`` is set from ``Lambda-Runtime-Trace-Id`` for each invoke, or removed.
- Logging: the root logger writes ``[LEVEL]\\t<UTC time>Z\\t<request id>\\t<message>\\n`` to
  stdout (or one JSON object per line in JSON mode); uncaught errors are logged as
  ``[ERROR] Type: message`` plus the traceback, joined by ``\\r`` so they stay one line.
- stdout and stderr are line-buffered, write-through and flushed before every POST, so everything
  an invocation printed is in the pipe before the platform sees its result.
- All Runtime API calls share one persistent HTTP/1.1 connection with TCP_NODELAY, spoken by a
  small client of this file's own on the ``_socket`` functions it bound at import (no
  ``http.client``: its imports cost more than the rest of start-up). Libraries that patch
  ``socket`` or ``http.client`` (gevent, X-Ray, Sentry, OpenTelemetry) neither trace nor break the
  runtime's own calls, and ``socket.setdefaulttimeout()`` does not apply to them. A keep-alive
  connection the server closed while idle is reopened once, transparently.
- If a Runtime API call fails (no connection, non-200 on ``/next``, non-2xx on a POST), one line
  starting with ``LAMBDA_RUNTIME`` goes to stderr and the process exits with status 1.
"""

import os
import sys

# Everything the client needs, imported before the task root goes on sys.path (see above), and
# nothing more: these imports are most of a cold start's own cost (see ``-X importtime``), so each
# must be needed before the first invoke. `json` (events) and `logging` (the root logger must be
# set up before user code is imported) are; `http.client` is not: it pulls in `email.*` and `ssl`,
# more than everything else together, so the transport below speaks HTTP itself. `_socket` is the
# C module under `socket`, whose Python wrapper would add `selectors` and its enums for nothing
# used here. Anything else is imported where it is used (`re` for Decimals, `traceback` for JSON
# logs; both are in sys.modules already, loaded by `json` and `logging`).
import _socket
import importlib
import json
import logging
import time

_PREFIX = "/2018-06-01/runtime"
_NEXT_PATH = _PREFIX + "/invocation/next"
_INIT_ERROR_PATH = _PREFIX + "/init/error"
_INVOCATION_PATH = _PREFIX + "/invocation/"

_ERROR_LINE_SEPARATOR = "\r"
_NBSP = "\u00a0"

_MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
_BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
_IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
_USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
_HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
_UNMARSHAL_ERROR = "Runtime.UnmarshalError"
_MARSHAL_ERROR = "Runtime.MarshalError"
_CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"

# Logged (at WARNING, through the root logger) before an init error, as Lambda does.
_UNHANDLED_EXCEPTION_WARNING = (
    "LAMBDA_WARNING: Unhandled exception. The most likely cause is an issue in the function code. "
    "However, in rare cases, a Lambda runtime update can cause unexpected function behavior. "
    "For functions using managed runtimes, runtime updates can be triggered by a function change, "
    "or can be applied automatically. To determine if the runtime has been updated, check the "
    "runtime version in the INIT_START log entry. If this error correlates with a change in the "
    "runtime version, you may be able to mitigate this error by temporarily rolling back to the "
    "previous runtime version. For more information, see "
    "https://docs.aws.amazon.com/lambda/latest/dg/runtimes-update.html\r"
)

# This code's file name as tracebacks show it (also right if the client is ever run from a .pyc).
_THIS_FILE = sys._getframe().f_code.co_filename

# The invocation being served; the logging filter stamps it on every record. Like Lambda, it keeps
# the last id after the invocation ends (background threads log under it until the next one).
_request_id = None
_tenant_id = None


class _Fault(Exception):
    """A runtime-detected failure with a Lambda error type (never raised by user code)."""

    def __init__(self, error_type, message, trace=None):
        Exception.__init__(self, message)
        self.error_type = error_type
        self.message = message
        self.trace = trace


# ---------------------------------------------------------------------------------------------
# The context object (same attributes and reprs as Lambda's)
# ---------------------------------------------------------------------------------------------

_W3C_FIELDS = ("traceparent", "tracestate", "baggage")


class CognitoIdentity(object):
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, identity_id=None, pool_id=None):
        self.cognito_identity_id = identity_id
        self.cognito_identity_pool_id = pool_id

    def __repr__(self):
        return "CognitoIdentity([cognito_identity_id=%s,cognito_identity_pool_id=%s])" % (
            self.cognito_identity_id,
            self.cognito_identity_pool_id,
        )


class Client(object):
    __slots__ = ("installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name")

    def __repr__(self):
        return (
            "Client([installation_id=%s,app_title=%s,app_version_name=%s,app_version_code=%s,app_package_name=%s])"
            % (self.installation_id, self.app_title, self.app_version_name, self.app_version_code, self.app_package_name)
        )


class ClientContext(object):
    __slots__ = ("custom", "env", "client")

    def __repr__(self):
        return "ClientContext([custom=%s,env=%s,client=%s])" % (self.custom, self.env, self.client)


def _from_mapping(cls, mapping):
    """An instance of a __slots__ class with every slot taken from `mapping` (None when absent)."""
    obj = cls()
    for name in cls.__slots__:
        setattr(obj, name, mapping.get(name))
    return obj


def _parse_json_header(value, what):
    try:
        return json.loads(value)
    except Exception as exc:
        raise _Fault(_CONTEXT_UNMARSHAL_ERROR, "Unable to parse %s JSON: %s" % (what, exc))


class LambdaContext(object):
    """The `context` argument of a handler."""

    # Read once at start-up; set on each instance so they show in vars(context), as on Lambda.
    _static = None

    def __init__(self, request_id, deadline_ms, invoked_function_arn, client_context_json=None, cognito_json=None, tenant_id=None):
        self.aws_request_id = request_id
        (
            self.log_group_name,
            self.log_stream_name,
            self.function_name,
            self.memory_limit_in_mb,
            self.function_version,
        ) = LambdaContext._static or _context_statics()
        self.invoked_function_arn = invoked_function_arn
        self.tenant_id = tenant_id

        client_context = None
        w3c = {}
        if client_context_json:
            raw = _parse_json_header(client_context_json, "Client Context")
            if isinstance(raw, dict) and "w3c" in raw:
                fields = raw.pop("w3c")
                if isinstance(fields, dict):
                    w3c = {k: fields[k] for k in _W3C_FIELDS if isinstance(fields.get(k), str)}
            client_context = _from_mapping(ClientContext, raw)
            if client_context.client is not None:
                client_context.client = _from_mapping(Client, client_context.client)
        self.client_context = client_context
        self._w3c_fields = w3c

        identity = CognitoIdentity()
        if cognito_json:
            raw = _parse_json_header(cognito_json, "Cognito Identity")
            identity.cognito_identity_id = raw.get("cognitoIdentityId")
            identity.cognito_identity_pool_id = raw.get("cognitoIdentityPoolId")
        self.identity = identity

        self._epoch_deadline_time_in_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        remaining = self._epoch_deadline_time_in_ms - int(time.time() * 1000)
        return remaining if remaining > 0 else 0

    def w3c(self):
        """The W3C trace-context fields (traceparent, tracestate, baggage) the caller sent."""
        return dict(self._w3c_fields)

    def log(self, msg):
        sys.stdout.write(str(msg))

    def __repr__(self):
        return (
            "LambdaContext([aws_request_id=%s,log_group_name=%s,log_stream_name=%s,function_name=%s,"
            "memory_limit_in_mb=%s,function_version=%s,invoked_function_arn=%s,client_context=%s,"
            "identity=%s,tenant_id=%s])"
            % (
                self.aws_request_id,
                self.log_group_name,
                self.log_stream_name,
                self.function_name,
                self.memory_limit_in_mb,
                self.function_version,
                self.invoked_function_arn,
                self.client_context,
                self.identity,
                self.tenant_id,
            )
        )


def _context_statics():
    env = os.environ
    LambdaContext._static = (
        env.get("AWS_LAMBDA_LOG_GROUP_NAME"),
        env.get("AWS_LAMBDA_LOG_STREAM_NAME"),
        env.get("AWS_LAMBDA_FUNCTION_NAME"),
        env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),  # a string, as on Lambda
        env.get("AWS_LAMBDA_FUNCTION_VERSION"),
    )
    return LambdaContext._static


# ---------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------


def _ensure_ascii():
    """Lambda's python3.12+ runtimes send non-ASCII characters unescaped; older ones escape them."""
    env = os.environ.get("AWS_EXECUTION_ENV", "")
    if env.startswith("AWS_Lambda_python3."):
        minor = env[len("AWS_Lambda_python3."):]
        if minor.isdigit():
            return int(minor) < 12
    return sys.version_info < (3, 12)


class _Encoder(object):
    """json.dumps as Lambda's runtime does it, including Decimal written as a bare number.

    The C encoder cannot emit raw text, so each Decimal becomes a placeholder string carrying a
    per-process random token, and one regex pass swaps the placeholders for str(Decimal) afterwards.
    Results without Decimals take the plain C-encoder path.
    """

    def __init__(self, ensure_ascii):
        self._json = json.JSONEncoder(ensure_ascii=ensure_ascii, allow_nan=True, default=self._default)
        self._raw = []
        self._token = None
        self._pattern = None

    def _default(self, obj):
        decimal = sys.modules.get("decimal")  # a Decimal exists only if its module was imported
        if decimal is not None and isinstance(obj, decimal.Decimal):
            if obj.is_nan():
                return float("nan")
            if self._token is None:
                import re

                self._token = "lamina-decimal-" + os.urandom(8).hex() + "-"
                self._pattern = re.compile('"\\\\u0000' + self._token + '([0-9]+)\\\\u0000"')
            self._raw.append(str(obj))
            return "\x00%s%d\x00" % (self._token, len(self._raw) - 1)
        return json.JSONEncoder.default(self._json, obj)  # raises the usual TypeError

    def encode(self, obj):
        try:
            text = self._json.encode(obj)
            if self._raw:
                raw = self._raw
                text = self._pattern.sub(lambda m: raw[int(m.group(1))], text)
            return text
        finally:
            if self._raw:
                self._raw = []


def _to_bytes(text):
    # Lone surrogates cannot be UTF-8; inside a JSON string "\udxxx" is a valid escape for them.
    return text.encode("utf-8", "backslashreplace")


# ---------------------------------------------------------------------------------------------
# Logging
# ---------------------------------------------------------------------------------------------

_TEXT_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"
_TEXT_DATEFMT = "%Y-%m-%dT%H:%M:%S"
_JSON_DATEFMT = "%Y-%m-%dT%H:%M:%SZ"
_JSON_RESERVED = frozenset(
    (
        "name", "msg", "args", "levelname", "levelno", "pathname", "filename", "module", "exc_info",
        "exc_text", "stack_info", "lineno", "funcName", "created", "msecs", "relativeCreated",
        "thread", "threadName", "processName", "process", "aws_request_id", "tenant_id", "_frame_type",
    )
)  # fmt: skip


class _RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.aws_request_id = _request_id or ""
        record.tenant_id = _tenant_id
        return True


class _StdoutHandler(logging.Handler):
    """Writes each formatted record to the current sys.stdout.

    Like Lambda's handler, errors while formatting propagate to the logging call.
    """

    def emit(self, record):
        msg = self.format(record)
        if not msg.endswith("\n"):  # records with exc_info end without one; keep lines whole
            msg += "\n"
        sys.stdout.write(msg)


class _JsonFormatter(logging.Formatter):
    """Lambda's JSON application-log format: one object per line."""

    def __init__(self):
        logging.Formatter.__init__(self, datefmt=_JSON_DATEFMT)
        self._dumps = json.JSONEncoder(ensure_ascii=False, default=str).encode

    def format(self, record):
        level = min(50, max(0, record.levelno)) // 10 * 10
        record.levelno = level
        record.levelname = logging.getLevelName(level)
        msg = record.msg
        out = {
            "timestamp": self.formatTime(record, self.datefmt),
            "level": record.levelname,
            "message": msg if isinstance(msg, dict) and not record.args else record.getMessage(),
            "logger": record.name,
        }
        exc = record.exc_info
        if exc and exc[0] is not None:
            import traceback

            out["stackTrace"] = traceback.format_tb(exc[2])
            out["errorType"] = exc[0].__name__
            out["errorMessage"] = str(exc[1])
        out["requestId"] = getattr(record, "aws_request_id", None)
        if exc and exc[0] is not None:
            out["location"] = "%s:%s:%s" % (record.pathname, record.funcName, record.lineno)
        tenant = getattr(record, "tenant_id", None)
        if tenant is not None:
            out["tenantId"] = tenant
        for key, value in record.__dict__.items():
            if key not in _JSON_RESERVED and key not in out:
                out[key] = value
        return self._dumps({k: v for k, v in out.items() if v is not None}) + "\n"


def _setup_logging(json_format, level_name):
    logging.Formatter.converter = time.gmtime  # Lambda's log times are UTC
    handler = _StdoutHandler()
    handler.setFormatter(_JsonFormatter() if json_format else logging.Formatter(_TEXT_FORMAT, _TEXT_DATEFMT))
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    if level_name and isinstance(logging.getLevelName(level_name), int):
        root.setLevel(level_name)
    root.addHandler(handler)


def _error_log_text(error):
    """An error the way Lambda's text format logs it: one line, parts separated by \\r."""
    head = "[ERROR]"
    etype = error["errorType"]
    emsg = error["errorMessage"]
    if etype:
        head += " " + etype
    if emsg:
        if etype:
            head += ":"
        head += " " + emsg
    lines = [head, "Traceback (most recent call last):"]
    for entry in error["stackTrace"]:
        if entry == "":
            lines.append("")
            continue
        for line in entry.splitlines():
            stripped = line.lstrip(" ")
            lines.append(_NBSP * (len(line) - len(stripped)) + stripped)
    return _ERROR_LINE_SEPARATOR.join(lines) + "\n"


def _write_log(text):
    """Write one of the runtime's own log lines; never let stdout's encoding or state break the loop."""
    try:
        sys.stdout.write(text)
    except UnicodeEncodeError:
        sys.stdout.write(text.encode("utf-8", "backslashreplace").decode("utf-8"))
    except Exception:
        pass


def _error_log_json(error):
    record = {"timestamp": time.strftime(_JSON_DATEFMT, time.gmtime()), "level": "ERROR"}
    record.update(error)
    return json.dumps(record, ensure_ascii=_ensure_ascii()) + "\n"


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def _safe_str(value):
    try:
        return str(value)
    except Exception:
        return "<exception str() failed>"


def _user_frames(tb):
    """Formatted frames of `tb`, without this file's own leading frames (like Lambda's)."""
    import linecache

    while tb is not None and tb.tb_frame.f_code.co_filename == _THIS_FILE:
        tb = tb.tb_next
    frames = []
    while tb is not None:
        code = tb.tb_frame.f_code
        filename, lineno = code.co_filename, tb.tb_lineno
        linecache.lazycache(filename, tb.tb_frame.f_globals)
        line = linecache.getline(filename, lineno).strip()
        entry = '  File "%s", line %d, in %s\n' % (filename, lineno, code.co_name)
        if line:
            entry += "    %s\n" % line
        frames.append(entry)
        tb = tb.tb_next
    return frames


def _error_body(message, error_type, trace, request_id):
    return {
        "errorMessage": message or "",
        "errorType": error_type or "",
        "requestId": request_id or "",
        "stackTrace": trace or [],
    }


def _error_from_exception(exc, request_id):
    if isinstance(exc, _Fault):
        return _error_body(exc.message, exc.error_type, exc.trace, request_id)
    return _error_body(_safe_str(exc), type(exc).__name__, _user_frames(exc.__traceback__), request_id)


# ---------------------------------------------------------------------------------------------
# Runtime API transport
# ---------------------------------------------------------------------------------------------

# Bound once at import: user code that patches or wraps `socket` (gevent, X-Ray, Sentry,
# OpenTelemetry) or its module functions later cannot reach the runtime's own connection. The
# methods of `_socket.socket` belong to a C type and cannot be patched at all.
_Socket = _socket.socket
_getaddrinfo = _socket.getaddrinfo
_SOCK_STREAM = _socket.SOCK_STREAM
_NODELAY = (_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)

_MAX_LINE = 65536  # longest status or header line accepted (http.client's limit)
_SEND_IN_ONE = 65536  # bodies up to this size go out in the same send as their head
_HEX_DIGITS = b"0123456789abcdefABCDEF"


class RuntimeApiError(Exception):
    pass


class HttpProtocolError(Exception):
    """The Runtime API's reply was not well-formed HTTP, or the connection ended inside it."""


class RemoteDisconnected(HttpProtocolError):
    """The connection ended before the first byte of a reply (named as http.client names it)."""


def _split_address(address):
    """(host, port, Host header) of AWS_LAMBDA_RUNTIME_API (`host:port`, `[v6]:port`, or a host
    alone for port 80), as http.client splits and renders it."""
    host, port = address, 80
    colon, bracket = address.rfind(":"), address.rfind("]")
    if colon > bracket:
        digits = address[colon + 1:]
        if digits:
            if not (digits.isascii() and digits.isdigit()):
                raise RuntimeApiError("Invalid AWS_LAMBDA_RUNTIME_API %r: nonnumeric port" % address)
            port = int(digits)
        host = address[:colon]
    if host[:1] == "[" and host[-1:] == "]":
        host = host[1:-1]
    shown = "[%s]" % host if ":" in host else host
    return host, port, shown if port == 80 else "%s:%d" % (shown, port)


def _header_bytes(value):
    # A value can hold an exception's class name (the init error type): keep it on one line and
    # encodable, where http.client raised and the runtime died without reporting the error.
    return value.replace("\r", " ").replace("\n", " ").encode("latin-1", "backslashreplace")


class _RuntimeApi(object):
    """A minimal HTTP/1.1 client for the Runtime API over one persistent connection.

    Requests carry a Content-Length (never chunked) and go out in one send with their head.
    Replies may be delimited by Content-Length, chunked, or (Connection: close / HTTP/1.0) the end
    of the connection; header names are case-insensitive and values are decoded as latin-1, as
    http.client does. The socket is blocking with no timeout whatever socket.setdefaulttimeout()
    user code sets: /next may legitimately wait for a long time (the environment can be frozen while
    parked). A reply that closes the connection makes the next call open a new one.
    """

    def __init__(self, address):
        self._host, self._port, host_header = _split_address(address)
        self._sock = None
        self._buf = bytearray()  # received bytes not parsed yet
        self._received = False  # whether any byte of the current reply has arrived
        # The headers every request starts with, as http.client sent them (no Accept-Encoding).
        agent = "lamina-python/%d.%d.%d" % sys.version_info[:3]
        self._head = b"Host: " + _header_bytes(host_header) + b"\r\nUser-Agent: " + agent.encode("ascii") + b"\r\n"
        self._next_request = b"GET " + _NEXT_PATH.encode("ascii") + b" HTTP/1.1\r\n" + self._head + b"\r\n"

    # -- connection

    def _connect(self):
        host = self._host
        try:
            host = host.encode("ascii")  # a str would make getaddrinfo import the idna codec
        except UnicodeEncodeError:
            pass
        error = None
        for family, kind, proto, _, address in _getaddrinfo(host, self._port, 0, _SOCK_STREAM):
            sock = _Socket(family, kind, proto)
            try:
                sock.settimeout(None)  # new sockets start with socket.getdefaulttimeout()
                sock.setsockopt(*_NODELAY)
                sock.connect(address)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            self._sock = sock
            return
        raise error or OSError("getaddrinfo returned no address for %r" % self._host)

    def close(self):
        sock, self._sock = self._sock, None
        del self._buf[:]
        if sock is not None:
            sock.close()

    # -- reading

    def _fill(self):
        """Receive more bytes into the buffer; False at the end of the connection."""
        data = self._sock.recv(65536)
        if not data:
            return False
        self._buf += data
        self._received = True
        return True

    def _readline(self):
        """The next line without its line ending (CRLF, or a bare LF as http.client allows)."""
        buf = self._buf
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end >= 0:
                line = bytes(buf[:end])
                del buf[: end + 1]
                return line[:-1] if line[-1:] == b"\r" else line
            if len(buf) > _MAX_LINE:
                raise HttpProtocolError("header line longer than %d bytes" % _MAX_LINE)
            start = len(buf)
            if not self._fill():
                if self._received:
                    raise HttpProtocolError("connection closed inside the response head")
                raise RemoteDisconnected("Remote end closed connection without response")

    def _read_exact(self, size):
        buf = self._buf
        if len(buf) >= size:
            data = bytes(buf[:size])
            del buf[:size]
            return data
        # Large bodies (events up to 6 MiB) are received straight into place.
        out = bytearray(size)
        view = memoryview(out)
        have = len(buf)
        view[:have] = buf
        del buf[:]
        while have < size:
            got = self._sock.recv_into(view[have:])
            if not got:
                raise HttpProtocolError("connection closed after %d of %d body bytes" % (have, size))
            have += got
        return bytes(out)

    def _read_until_close(self):
        while self._fill():
            pass
        data = bytes(self._buf)
        del self._buf[:]
        return data

    def _read_chunked(self):
        parts = []
        while True:
            size = self._readline().split(b";", 1)[0].strip()  # chunk extensions are ignored
            if not size or len(size) > 16 or size.strip(_HEX_DIGITS):
                raise HttpProtocolError("bad chunk size line %r" % size[:40])
            size = int(size, 16)
            if size == 0:
                break
            parts.append(self._read_exact(size))
            if self._readline():
                raise HttpProtocolError("chunk not followed by CRLF")
        while self._readline():  # trailer fields, ignored like http.client does
            pass
        return b"".join(parts)

    def _read_response(self):
        """(status, {lower-cased name: value}, body) of the next reply on the connection."""
        while True:
            line = self._readline()
            parts = line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or len(parts[1]) != 3 or not parts[1].isdigit():
                raise HttpProtocolError("bad status line %r" % line[:80])
            status = int(parts[1])
            headers = {}
            name = None
            while True:
                line = self._readline()
                if not line:
                    break
                if line[:1] in (b" ", b"\t") and name is not None:  # obsolete line folding
                    headers[name] += " " + line.strip(b" \t").decode("latin-1")
                    continue
                raw_name, colon, value = line.partition(b":")
                if not colon:
                    continue  # not a header line; skipped, as http.client's parser does
                # Repeated names keep the last value, as the dict built from http.client did.
                name = raw_name.strip(b" \t").decode("latin-1").lower()
                headers[name] = value.strip(b" \t").decode("latin-1")
            if not 100 <= status < 200:
                break
            # An interim reply (100 Continue, 103 Early Hints) has no body; the real one follows.

        connection = [token.strip() for token in headers.get("connection", "").lower().split(",")]
        will_close = "close" in connection or (parts[0] == b"HTTP/1.0" and "keep-alive" not in connection)
        encoding = headers.get("transfer-encoding")
        length = headers.get("content-length")
        if status == 204 or status == 304:
            body = b""
        elif encoding is not None and encoding.lower().rsplit(",", 1)[-1].strip() == "chunked":
            body = self._read_chunked()
        elif length is not None:
            if not (length.isascii() and length.isdigit()):
                raise HttpProtocolError("bad Content-Length %r" % length[:40])
            body = self._read_exact(int(length))
        else:
            body = self._read_until_close()
            will_close = True
        if will_close:
            self.close()
        return status, headers, body

    # -- requests

    def _call(self, method, path, request, body=b""):
        """Send one request (`request` is its head, blank line included) and read the reply.

        A keep-alive connection the server closed while it sat idle only shows that when it is
        used: the send fails, or the reply is the end of the connection. If nothing of a reply
        came back on a reused connection, the server never handled the request, so it is sent
        once more on a new connection; any other failure is a RuntimeApiError.
        """
        for attempt in (1, 2):
            reused = self._sock is not None
            self._received = False
            try:
                if self._sock is None:
                    self._connect()
                sock = self._sock
                if len(body) <= _SEND_IN_ONE:
                    sock.sendall(request + body)  # one syscall and, mostly, one segment
                else:  # not worth copying a large body to save one send
                    sock.sendall(request)
                    sock.sendall(body)
                return self._read_response()
            except (OSError, HttpProtocolError) as exc:
                self.close()
                if attempt == 1 and reused and not self._received:
                    continue
                raise RuntimeApiError("%s %s failed: %s: %s" % (method, path, type(exc).__name__, exc))

    def next(self):
        """(headers with lower-cased names, body) of the next invocation."""
        status, headers, body = self._call("GET", _NEXT_PATH, self._next_request)
        if status != 200:
            raise RuntimeApiError("Failed to get next invocation. Http response code: %d." % status)
        return headers, body

    def _post(self, path, body, name, value):
        # Paths hold request ids from /next: refuse anything that could break the request line.
        if not (path.isascii() and path.isprintable()) or " " in path:
            raise RuntimeApiError("POST %r failed: invalid characters in the path" % path)
        request = b"".join((
            b"POST ", path.encode("ascii"), b" HTTP/1.1\r\n", self._head,
            name, b": ", _header_bytes(value), b"\r\nContent-Length: %d\r\n\r\n" % len(body),
        ))  # fmt: skip
        return self._call("POST", path, request, body)[0]

    def post_response(self, request_id, body, content_type):
        status = self._post(_INVOCATION_PATH + request_id + "/response", body, b"Content-Type", content_type)
        if not 200 <= status < 300:
            raise RuntimeApiError("Failed to post handler success response. Http response code: %d." % status)

    def post_error(self, request_id, body):
        status = self._post(_INVOCATION_PATH + request_id + "/error", body, b"Content-Type", "application/json")
        if not 200 <= status < 300:
            raise RuntimeApiError("Failed to post handler error response. Http response code: %d." % status)

    def post_init_error(self, error_type, body):
        # Like awslambdaric: the error type in a header, no Content-Type.
        status = self._post(_INIT_ERROR_PATH, body, b"Lambda-Runtime-Function-Error-Type", error_type)
        if status != 202:
            raise RuntimeApiError("Failed to post init error. Http response code: %d." % status)


# ---------------------------------------------------------------------------------------------
# Start-up
# ---------------------------------------------------------------------------------------------

_stdout = _stderr = None  # the process's own streams, even if user code swaps sys.stdout


def _setup_streams():
    """Line-buffered, write-through stdout/stderr in UTF-8 (Lambda's LANG is en_US.UTF-8)."""
    global _stdout, _stderr
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(encoding="utf-8", errors=stream.errors, line_buffering=True, write_through=True)
        except (AttributeError, ValueError, OSError):
            pass
    _stdout, _stderr = sys.stdout, sys.stderr


def _flush():
    """Push everything printed so far into the pipe (before each POST and before exiting)."""
    for stream in (sys.stdout, sys.stderr, _stdout, _stderr):
        if stream is not None:
            try:
                stream.flush()
            except Exception:
                pass


def _setup_sys_path(env):
    task_root = env.get("LAMBDA_TASK_ROOT") or os.getcwd()
    minor = "python%d.%d" % sys.version_info[:2]
    entries = [task_root]
    # Layers are at /opt; in process mode (no mount namespace) at the host path Lamina gives.
    opt = env.get("LAMINA_OPT_DIR") or "/opt"
    for layer_dir in ("%s/python/lib/%s/site-packages" % (opt, minor), opt + "/python"):
        if os.path.isdir(layer_dir):
            entries.append(layer_dir)
    entries += [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    front = []
    for entry in entries:
        if entry not in front:
            front.append(entry)
    sys.path[:] = front + [p for p in sys.path if p not in front]
    # The AWS SDK the runtime carries goes last, as on Lambda: a copy in the zip or a layer wins.
    # The platform's variable is removed so that user code (and its child processes) never see it.
    sdk = env.pop("_LAMINA_SDK_PATH", None)
    if sdk and sdk not in sys.path:
        sys.path.append(sdk)


def _load_handler(spec):
    try:
        module_name, function_name = spec.rsplit(".", 1)
    except ValueError as exc:
        raise _Fault(_MALFORMED_HANDLER_NAME, "Bad handler '%s': %s" % (spec, exc))
    try:
        if module_name.split(".")[0] in sys.builtin_module_names:
            raise _Fault(_BUILT_IN_MODULE_CONFLICT, "Cannot use built-in module %s as a handler module" % module_name)
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise _Fault(_IMPORT_MODULE_ERROR, "Unable to import module '%s': %s" % (module_name, exc))
    except SyntaxError as exc:
        trace = ['  File "%s" Line %s\n    %s' % (exc.filename, exc.lineno, exc.text)]
        raise _Fault(_USER_CODE_SYNTAX_ERROR, "Syntax error in module '%s': %s" % (module_name, exc), trace)
    try:
        return getattr(module, function_name)
    except AttributeError:
        raise _Fault(_HANDLER_NOT_FOUND, "Handler '%s' missing on module '%s'" % (function_name, module_name))


def _fatal(api, message):
    """Leave after a Runtime API failure: one line on stderr, exit status 1."""
    if api is not None:
        api.close()  # the platform sees the connection drop even if exiting is slow
    _flush()
    try:
        os.write(2, ("LAMBDA_RUNTIME %s\n" % message).encode("utf-8", "backslashreplace"))
    except OSError:
        pass
    sys.exit(1)


def _reencode_header(value):
    """Header values are decoded as latin-1 (as http.client did); the platform sends UTF-8 JSON."""
    if value is not None and not value.isascii():
        try:
            return value.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return value


def _serve(api, handler, encoder, log_error):
    """The invoke loop; returns only by raising SystemExit."""
    global _request_id, _tenant_id
    environ = os.environ
    while True:
        try:
            headers, body = api.next()
        except RuntimeApiError as exc:
            _fatal(api, str(exc))
        get = headers.get
        request_id = get("lambda-runtime-aws-request-id")
        if not request_id:
            _fatal(api, "Failed to get next invocation: no Lambda-Runtime-Aws-Request-Id header.")
        tenant_id = get("lambda-runtime-aws-tenant-id")
        _request_id, _tenant_id = request_id, tenant_id

        trace_id = get("lambda-runtime-trace-id")
        if trace_id is not None:
            environ["_X_AMZN_TRACE_ID"] = trace_id
        elif "_X_AMZN_TRACE_ID" in environ:
            del environ["_X_AMZN_TRACE_ID"]

        try:
            deadline_ms = int(get("lambda-runtime-deadline-ms") or 0)
        except ValueError:
            deadline_ms = 0

        error = None
        try:
            context = LambdaContext(
                request_id,
                deadline_ms,
                get("lambda-runtime-invoked-function-arn"),
                _reencode_header(get("lambda-runtime-client-context")),
                _reencode_header(get("lambda-runtime-cognito-identity")),
                tenant_id,
            )
            if get("content-type") == "application/json":
                try:
                    event = json.loads(body)
                except Exception as exc:
                    raise _Fault(_UNMARSHAL_ERROR, "Unable to unmarshal input: %s" % exc)
            else:
                event = body
            result = handler(event, context)
            if isinstance(result, bytes):
                payload, content_type = result, "application/unknown"
            else:
                try:
                    payload = _to_bytes(encoder.encode(result))
                except Exception as exc:
                    raise _Fault(_MARSHAL_ERROR, "Unable to marshal response: %s" % exc)
                content_type = "application/json"
        except Exception as exc:
            error = _error_from_exception(exc, request_id)
        # Drop references to the invocation's objects before the environment parks in /next.
        context = event = result = None

        try:
            if error is None:
                _flush()
                api.post_response(request_id, payload, content_type)
            else:
                _write_log(log_error(error))
                _flush()
                api.post_error(request_id, _to_bytes(encoder.encode(error)))
        except RuntimeApiError as exc:
            _fatal(api, str(exc))
        payload = None


# --- debug mode (Lamina's, issue #7: `lamina invoke --debug`) --------------------------------------
# Only with _LAMINA_DEBUG_PORT set (envs/debugging.py): debugpy, from a directory holding only it,
# listens on that port, and the handler waits for a debugger to attach before it runs.


def _debug_mode(env, handler):
    port = env.pop("_LAMINA_DEBUG_PORT", None)
    host = env.pop("_LAMINA_DEBUG_HOST", "127.0.0.1")
    path = env.pop("_LAMINA_DEBUG_PATH", None)
    if not port:
        return handler
    if path:
        sys.path.append(path)
    import debugpy

    # The adapter in this process: it dies with the environment, freeing the port at once (a
    # separate adapter daemonizes and holds the port after a reload kills the runtime).
    debugpy.listen((host, int(port)), in_process_debug_adapter=True)

    def attached(event, context):
        if not debugpy.is_client_connected():
            _write_log("LAMINA_DEBUG waiting for a debugger on %s:%s\n" % (host, port))
            debugpy.wait_for_client()
        return handler(event, context)

    return attached


# --- end of debug mode ------------------------------------------------------------------------------


def main():
    env = os.environ
    _setup_streams()
    json_logs = (env.get("AWS_LAMBDA_LOG_FORMAT") or "").upper() == "JSON"
    level = (env.get("AWS_LAMBDA_LOG_LEVEL") or "").upper()
    _setup_logging(json_logs, "DEBUG" if level == "TRACE" else level)
    log_error = _error_log_json if json_logs else _error_log_text

    address = env.get("AWS_LAMBDA_RUNTIME_API")
    if not address:
        _fatal(None, "AWS_LAMBDA_RUNTIME_API is not set.")
    try:
        api = _RuntimeApi(address)
    except RuntimeApiError as exc:
        _fatal(None, str(exc))
    encoder = _Encoder(_ensure_ascii())
    _context_statics()
    _setup_sys_path(env)

    if env.get("_LAMINA_DEBUG_PORT"):
        # A debug environment runs the source directory itself: write no __pycache__ into it (a
        # .pyc of a file saved again within the same second, at the same size, passes as current).
        sys.dont_write_bytecode = True
    handler = error = None
    try:
        handler = _debug_mode(env, _load_handler(env.get("_HANDLER", "")))
    except Exception as exc:
        error = _error_from_exception(exc, "")
    if error is not None:
        logging.warning(_UNHANDLED_EXCEPTION_WARNING)
        _write_log(log_error(error))
        _flush()
        try:
            api.post_init_error(error["errorType"], _to_bytes(encoder.encode(error)))
        except RuntimeApiError as post_exc:
            _fatal(api, str(post_exc))
        api.close()
        sys.exit(1)

    _serve(api, handler, encoder, log_error)


if __name__ == "__main__":
    main()
