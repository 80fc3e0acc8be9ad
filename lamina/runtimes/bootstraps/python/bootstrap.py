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
  ``/opt/python`` (layers) when they exist, then ``PYTHONPATH``. Everything the client itself needs
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
- All Runtime API calls share one persistent HTTP/1.1 connection with TCP_NODELAY. The connection
  class keeps its own copies of http.client's methods, so libraries that patch http.client (X-Ray,
  Sentry, OpenTelemetry) neither trace nor break the runtime's own calls.
- If a Runtime API call fails (no connection, non-200 on ``/next``, non-2xx on a POST), one line
  starting with ``LAMBDA_RUNTIME`` goes to stderr and the process exits with status 1.
"""

import os
import sys

# Everything the client needs, imported before the task root goes on sys.path (see above).
import http.client
import importlib
import json
import logging
import socket
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

_THIS_FILE = __file__

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


class _RapiResponse(http.client.HTTPResponse):
    read = http.client.HTTPResponse.read


class _RapiConnection(http.client.HTTPConnection):
    """http.client.HTTPConnection with private copies of the methods instrumentation patches."""

    response_class = _RapiResponse
    putrequest = http.client.HTTPConnection.putrequest
    putheader = http.client.HTTPConnection.putheader
    endheaders = http.client.HTTPConnection.endheaders
    getresponse = http.client.HTTPConnection.getresponse
    send = http.client.HTTPConnection.send
    _base_connect = http.client.HTTPConnection.connect
    _base_send_output = http.client.HTTPConnection._send_output

    def connect(self):
        self._base_connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send_output(self, message_body=None, encode_chunked=False):
        # http.client sends the head and the body with two send() calls; a small body goes out
        # with its head in one (one syscall, one segment). `_buffer` holds the head's lines in
        # every CPython 3.x.
        if message_body is None or len(message_body) > 65536:
            return self._base_send_output(message_body, encode_chunked)
        self._buffer.extend((b"", b""))
        head = b"\r\n".join(self._buffer)
        del self._buffer[:]
        self.send(head + message_body)


class RuntimeApiError(Exception):
    pass


class _RuntimeApi(object):
    def __init__(self, address):
        self.address = address
        # timeout=None: blocking, whatever socket.setdefaulttimeout() user code sets; /next may
        # legitimately wait for a long time (the environment can be frozen while parked).
        self._conn = _RapiConnection(address, timeout=None)
        self._agent = "lamina-python/%d.%d.%d" % sys.version_info[:3]

    def _call(self, method, path, body=None, headers=()):
        conn = self._conn
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            conn.putheader("User-Agent", self._agent)
            for name, value in headers:
                conn.putheader(name, value)
            conn.endheaders(body)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise RuntimeApiError("%s %s failed: %s: %s" % (method, path, type(exc).__name__, exc))
        return resp, data

    def next(self):
        """(headers with lower-cased names, body) of the next invocation."""
        resp, body = self._call("GET", _NEXT_PATH)
        if resp.status != 200:
            raise RuntimeApiError("Failed to get next invocation. Http response code: %d." % resp.status)
        return {name.lower(): value for name, value in resp.headers.items()}, body

    def _post(self, path, body, first_header):
        resp, _ = self._call("POST", path, body, (first_header, ("Content-Length", str(len(body)))))
        return resp.status

    def post_response(self, request_id, body, content_type):
        status = self._post(_INVOCATION_PATH + request_id + "/response", body, ("Content-Type", content_type))
        if not 200 <= status < 300:
            raise RuntimeApiError("Failed to post handler success response. Http response code: %d." % status)

    def post_error(self, request_id, body):
        status = self._post(_INVOCATION_PATH + request_id + "/error", body, ("Content-Type", "application/json"))
        if not 200 <= status < 300:
            raise RuntimeApiError("Failed to post handler error response. Http response code: %d." % status)

    def post_init_error(self, error_type, body):
        # Like awslambdaric: the error type in a header, no Content-Type.
        status = self._post(_INIT_ERROR_PATH, body, ("Lambda-Runtime-Function-Error-Type", error_type))
        if status != 202:
            raise RuntimeApiError("Failed to post init error. Http response code: %d." % status)

    def close(self):
        self._conn.close()


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
    for layer_dir in ("/opt/python/lib/%s/site-packages" % minor, "/opt/python"):
        if os.path.isdir(layer_dir):
            entries.append(layer_dir)
    entries += [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    front = []
    for entry in entries:
        if entry not in front:
            front.append(entry)
    sys.path[:] = front + [p for p in sys.path if p not in front]


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
    """http.client decodes header values as latin-1; the platform sends UTF-8 JSON."""
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
    api = _RuntimeApi(address)
    encoder = _Encoder(_ensure_ascii())
    _context_statics()
    _setup_sys_path(env)

    handler = error = None
    try:
        handler = _load_handler(env.get("_HANDLER", ""))
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
