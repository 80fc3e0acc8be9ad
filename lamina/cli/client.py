"""What the CLI sends and receives: boto3's Lambda client pointed at Lamina, and the admin API.

The CLI talks to a running server exactly as a user's tools would (ARCHITECTURE.md 3.5), so this
module is the only place that knows the wire. Every failure leaves it as a `CliError` carrying one
line for the user; `main.main` prints that line and exits 1. boto3 is imported inside
`LambdaClient.__init__` because it costs about 0.2 s, which `lamina --help` and `lamina up` should
not pay; the stdlib's HTTP and zip modules are imported where used for the same reason (`main`
imports this module on every run to catch `CliError`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import urllib.error

# Lamina does not check credentials, but botocore refuses to sign without some; fixed ones also
# spare it the credential chain (which probes instance metadata for seconds on a plain host).
_ACCESS_KEY = "lamina"
_SECRET_KEY = "lamina"
# Longer than Lambda's largest function timeout (900 s), so a slow invoke is not cut off here.
_READ_TIMEOUT = 960.0
_CONNECT_TIMEOUT = 5.0
# Waiter polling: GetFunction is cheap on loopback; 0.25 s x 480 gives a deploy two minutes.
_WAIT_DELAY = 0.25
_WAIT_ATTEMPTS = 480
_ZIP_DATE = (2024, 1, 1, 0, 0, 0)


class CliError(Exception):
    """A failure the user should read as one line; the CLI prints it in red and exits 1.

    `code` is the wire error type when the server named one (ResourceNotFoundException, ...).
    """

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


def unreachable(endpoint: str) -> CliError:
    return CliError(f"cannot reach Lamina at {endpoint}: is `lamina up` running?")


# --- values ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DeploySpec:
    """What `lamina deploy` asks for. None means "Lambda's default" on create, "unchanged" on update."""

    name: str
    runtime: str
    handler: str
    role: str
    memory_mb: int | None = None
    timeout_s: int | None = None
    environment: Mapping[str, str] | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionSummary:
    name: str
    runtime: str
    handler: str
    memory_mb: int
    timeout_s: int
    last_modified: str
    code_size: int
    code_sha256: str
    version: str
    state: str
    state_reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class InvokeOutput:
    status: int
    request_id: str
    payload: bytes = b""
    function_error: str | None = None
    log_tail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class LogEvent:
    timestamp_ms: int
    stream: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LogPage:
    events: tuple[LogEvent, ...] = field(default_factory=tuple)
    next_cursor: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class FailedEvent:
    """An event in the failed-events store, as `lamina events failed` lists it."""

    request_id: str
    function_arn: str
    condition: str
    attempts: int
    failed_at: float
    payload: str  # its first 1 KB
    error: str  # "<errorType>: <errorMessage>" of the last attempt, "" if none ran


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeVersionInfo:
    name: str
    arn: str
    interpreter: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeRow:
    """One runtime of the server's catalog, as `lamina runtimes` lists it."""

    identifier: str
    name: str
    phase: str  # supported, deprecated, create-blocked, update-blocked (on the server's today)
    deprecation: str | None
    block_create: str | None
    block_update: str | None
    versions: tuple[RuntimeVersionInfo, ...]  # installed here, newest (current) first

    @property
    def deprecated(self) -> bool:
        return self.phase != "supported"


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeCatalogView:
    today: str
    runtimes: tuple[RuntimeRow, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class FailedPage:
    events: tuple[FailedEvent, ...] = field(default_factory=tuple)
    next_marker: str | None = None


# --- deployment package ---------------------------------------------------------------------


def zip_directory(root: Path) -> bytes:
    """A deterministic deployment zip of `root`: sorted names, fixed dates, normalised modes.

    Executable files get 0755 and the rest 0644, so `bootstrap` stays executable and the same tree
    always gives the same CodeSha256. `__pycache__` directories and `.pyc` files are skipped.
    Raises CliError when the directory holds no files.
    """
    import io
    import zipfile

    buf = io.BytesIO()
    count = 0
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if path.is_dir() or "__pycache__" in rel.parts or path.suffix == ".pyc":
                continue
            mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            info = zipfile.ZipInfo(rel.as_posix(), date_time=_ZIP_DATE)
            info.create_system = 3  # Unix, so unzip tools honour the mode bits below.
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
            count += 1
    if count == 0:
        raise CliError(f"{root} holds no files to deploy")
    return buf.getvalue()


# --- Lambda API -----------------------------------------------------------------------------


class LambdaClient:
    """boto3's Lambda client pointed at `endpoint`; every botocore failure leaves as CliError.

    Retries are off: against a local server a retry only delays the error the user must see.
    """

    def __init__(self, endpoint: str, *, region: str) -> None:
        import boto3
        from botocore.config import Config

        self.endpoint = endpoint
        self._client: Any = boto3.client(
            "lambda",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id=_ACCESS_KEY,
            aws_secret_access_key=_SECRET_KEY,
            config=Config(
                retries={"max_attempts": 1, "mode": "standard"},
                connect_timeout=_CONNECT_TIMEOUT,
                read_timeout=_READ_TIMEOUT,
            ),
        )

    @contextmanager
    def _translated(self) -> Iterator[None]:
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
            WaiterError,
        )

        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code") or "Error"
            message = error.get("Message") or str(exc)
            raise CliError(f"{code}: {message}", code=code) from exc
        except (EndpointConnectionError, ConnectTimeoutError) as exc:
            raise unreachable(self.endpoint) from exc
        except ConnectionClosedError as exc:
            raise CliError(f"Lamina at {self.endpoint} closed the connection: {exc}") from exc
        except ReadTimeoutError as exc:
            raise CliError(f"Lamina at {self.endpoint} did not answer in time: {exc}") from exc
        except WaiterError as exc:
            raise CliError(_waiter_failure(exc.last_response, str(exc))) from exc

    def get(self, name: str) -> FunctionSummary | None:
        """The function's $LATEST configuration, or None when it does not exist."""
        from botocore.exceptions import ClientError

        with self._translated():
            try:
                resp = self._client.get_function_configuration(FunctionName=name)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    return None
                raise
        return _summary(resp)

    def create(self, spec: DeploySpec, code: bytes) -> None:
        params: dict[str, Any] = {
            "FunctionName": spec.name,
            "Runtime": spec.runtime,
            "Handler": spec.handler,
            "Role": spec.role,
            "Code": {"ZipFile": code},
            **_optional_configuration(spec),
        }
        with self._translated():
            self._client.create_function(**params)

    def update_code(self, name: str, code: bytes) -> None:
        with self._translated():
            self._client.update_function_code(FunctionName=name, ZipFile=code)

    def update_configuration(self, spec: DeploySpec) -> None:
        with self._translated():
            self._client.update_function_configuration(
                FunctionName=spec.name,
                Runtime=spec.runtime,
                Handler=spec.handler,
                **_optional_configuration(spec),
            )

    def wait_active(self, name: str) -> None:
        """Block until State is Active; CliError carrying StateReason if it becomes Failed."""
        self._wait("function_active_v2", name)

    def wait_updated(self, name: str) -> None:
        """Block until LastUpdateStatus is Successful; CliError with the reason if it Failed."""
        self._wait("function_updated_v2", name)

    def _wait(self, waiter: str, name: str) -> None:
        with self._translated():
            self._client.get_waiter(waiter).wait(
                FunctionName=name, WaiterConfig={"Delay": _WAIT_DELAY, "MaxAttempts": _WAIT_ATTEMPTS}
            )

    def invoke(self, name: str, payload: bytes | None, *, qualifier: str | None, event: bool) -> InvokeOutput:
        """Invoke synchronously with LogType=Tail, or queue it (InvocationType=Event) if `event`."""
        import base64

        params: dict[str, Any] = {"FunctionName": name}
        if payload is not None:
            params["Payload"] = payload
        if qualifier is not None:
            params["Qualifier"] = qualifier
        if event:
            params["InvocationType"] = "Event"
        else:
            params["LogType"] = "Tail"
        with self._translated():
            resp = self._client.invoke(**params)
            body = resp["Payload"].read() if "Payload" in resp else b""
        tail = resp.get("LogResult")
        return InvokeOutput(
            status=int(resp.get("StatusCode", 0)),
            request_id=str(resp.get("ResponseMetadata", {}).get("RequestId", "")),
            payload=body,
            function_error=resp.get("FunctionError"),
            log_tail=base64.b64decode(tail).decode("utf-8", "replace") if tail else "",
        )

    def list(self) -> list[FunctionSummary]:
        """Every function ($LATEST), following ListFunctions' Marker through all pages."""
        with self._translated():
            pages = self._client.get_paginator("list_functions").paginate()
            return [_summary(fn) for page in pages for fn in page.get("Functions", [])]

    def delete(self, name: str) -> None:
        with self._translated():
            self._client.delete_function(FunctionName=name)


def _optional_configuration(spec: DeploySpec) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if spec.memory_mb is not None:
        params["MemorySize"] = spec.memory_mb
    if spec.timeout_s is not None:
        params["Timeout"] = spec.timeout_s
    if spec.environment is not None:
        params["Environment"] = {"Variables": dict(spec.environment)}
    if spec.description is not None:
        params["Description"] = spec.description
    return params


def _summary(config: Mapping[str, Any]) -> FunctionSummary:
    return FunctionSummary(
        name=str(config.get("FunctionName", "")),
        runtime=str(config.get("Runtime", "")),
        handler=str(config.get("Handler", "")),
        memory_mb=int(config.get("MemorySize", 0)),
        timeout_s=int(config.get("Timeout", 0)),
        last_modified=str(config.get("LastModified", "")),
        code_size=int(config.get("CodeSize", 0)),
        code_sha256=str(config.get("CodeSha256", "")),
        version=str(config.get("Version", "")),
        state=str(config.get("State", "")),
        state_reason=str(config.get("StateReason", "")),
    )


def _waiter_failure(last_response: Mapping[str, Any] | None, fallback: str) -> str:
    response = last_response or {}
    error = response.get("Error")
    if error:
        return f"{error.get('Code', 'Error')}: {error.get('Message', fallback)}"
    config = response.get("Configuration", {})
    if config.get("State") == "Failed":
        return f"{config.get('StateReasonCode', 'Failed')}: {config.get('StateReason', fallback)}"
    if config.get("LastUpdateStatus") == "Failed":
        reason = config.get("LastUpdateStatusReason", fallback)
        return f"{config.get('LastUpdateStatusReasonCode', 'Failed')}: {reason}"
    return fallback


# --- admin API ------------------------------------------------------------------------------


class AdminClient:
    """Lamina's own endpoints under /lamina/v1, over urllib (no boto3 needed)."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint.rstrip("/")

    def logs(self, name: str, *, cursor: int, limit: int = 1000, wait: int = 0) -> LogPage:
        """One page of the function's log events from `cursor`.

        With `wait` > 0 (whole seconds) the server long-polls: it answers when events arrive or
        the wait ends.
        Raises CliError (ResourceNotFoundException) when the function has no logs yet.
        """
        import urllib.parse

        query = urllib.parse.urlencode({"cursor": cursor, "limit": limit, "wait": wait})
        path = f"/lamina/v1/logs/{urllib.parse.quote(name, safe='')}?{query}"
        body = self._get(path, timeout=wait + 30.0)
        return LogPage(
            events=tuple(
                LogEvent(
                    timestamp_ms=int(e.get("timestamp", 0)),
                    stream=str(e.get("logStreamName", "")),
                    message=str(e.get("message", "")),
                )
                for e in body.get("events", [])
            ),
            next_cursor=int(body.get("nextCursor", cursor)),
        )

    def failed_events(self, name: str, *, marker: str | None = None, limit: int = 100) -> FailedPage:
        """One page of `name`'s failed events, oldest first. Raises CliError
        (ResourceNotFoundException) when there is no such function."""
        import urllib.parse

        query = {"function": name, "limit": limit, **({"marker": marker} if marker else {})}
        body = self._get(f"/lamina/v1/events/failed?{urllib.parse.urlencode(query)}", timeout=30.0)
        return FailedPage(
            events=tuple(_failed_event(e) for e in body.get("FailedEvents", [])),
            next_marker=body.get("NextMarker"),
        )

    def replay(self, request_id: str) -> str:
        """Put a failed event back in the queue; returns the ARN it was invoked on."""
        import urllib.parse

        body = self._get(f"/lamina/v1/events/failed/{urllib.parse.quote(request_id, safe='')}/replay", timeout=30.0, method="POST")
        return str(body.get("FunctionArn", ""))

    def runtimes(self) -> RuntimeCatalogView:
        """The server's runtime catalog: lifecycle phase on its today, versions installed there."""
        body = self._get("/lamina/v1/runtimes", timeout=30.0)
        rows = tuple(
            RuntimeRow(
                identifier=str(r["identifier"]),
                name=str(r.get("name", "")),
                phase=str(r.get("phase", "supported")),
                deprecation=r.get("deprecation"),
                block_create=r.get("blockCreate"),
                block_update=r.get("blockUpdate"),
                versions=tuple(
                    RuntimeVersionInfo(name=str(v["name"]), arn=str(v["arn"]), interpreter=v.get("interpreter"))
                    for v in r.get("versions", [])
                ),
            )
            for r in body.get("runtimes", [])
        )
        return RuntimeCatalogView(today=str(body.get("today", "")), runtimes=rows)

    def _get(self, path: str, *, timeout: float, method: str = "GET") -> dict[str, Any]:
        import http.client
        import json
        import urllib.error
        import urllib.request

        request = urllib.request.Request(self.endpoint + path, headers={"Accept": "application/json"}, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise _admin_error(exc) from exc
        except urllib.error.URLError as exc:
            raise unreachable(self.endpoint) from exc
        except TimeoutError as exc:
            raise CliError(f"Lamina at {self.endpoint} did not answer in {timeout:g} s") from exc
        except (ConnectionError, http.client.HTTPException) as exc:
            raise CliError(f"Lamina at {self.endpoint} dropped the connection: {exc!r}") from exc
        try:
            decoded = json.loads(raw)
        except ValueError as exc:
            raise CliError(f"Lamina at {self.endpoint} sent a response that is not JSON") from exc
        if not isinstance(decoded, dict):
            raise CliError(f"Lamina at {self.endpoint} sent an unexpected response")
        return decoded


def _failed_event(e: dict[str, Any]) -> FailedEvent:
    response = e.get("Response") or {}
    error = ""
    if response:
        import json

        try:
            doc = json.loads(response.get("Payload") or "")
        except ValueError:
            doc = None
        kind = response.get("ErrorType") or ""
        message = doc.get("errorMessage", "") if isinstance(doc, dict) else ""
        error = f"{kind}: {message}" if kind and message else kind or message
    return FailedEvent(
        request_id=str(e.get("RequestId", "")),
        function_arn=str(e.get("FunctionArn", "")),
        condition=str(e.get("Condition", "")),
        attempts=int(e.get("ApproximateInvokeCount", 0)),
        failed_at=float(e.get("FailedAt", 0)),
        payload=str(e.get("RequestPayload", "")),
        error=error,
    )


def _admin_error(exc: urllib.error.HTTPError) -> CliError:
    """HTTPError → CliError "<x-amzn-ErrorType>: <message>", as Lambda's own errors read."""
    import json

    kind = (exc.headers.get("x-amzn-ErrorType") or "").split(":")[0] or f"HTTP {exc.code}"
    message = exc.reason
    try:
        body = json.loads(exc.read())
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = body.get("message") or body.get("Message") or message
    return CliError(f"{kind}: {message}", code=kind)
