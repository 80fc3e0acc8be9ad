"""What the CLI sends and receives: boto3's Lambda client pointed at Lamina, and the admin API.

The CLI talks to a running server exactly as a user's tools would (ARCHITECTURE.md 3.5), so this
module is the only place that knows the wire. Every failure leaves it as a `CliError` carrying one
line for the user; `main.main` prints that line and exits 1. boto3 is imported inside
`LambdaClient.__init__` because it costs about 0.2 s, which `lamina --help` and `lamina up` should
not pay; the stdlib's HTTP and zip modules are imported where used for the same reason (`main`
imports this module on every run to catch `CliError`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
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
    layers: tuple[str, ...] | None = None  # layer version ARNs, in order
    # Further CreateFunction members in the API's own shape (a template's TracingConfig, VpcConfig...).
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerSpec:
    """What `lamina layer publish` asks for."""

    name: str
    runtimes: tuple[str, ...] = ()
    description: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerSummary:
    """A layer version as `lamina layer` shows it."""

    name: str
    version: int
    arn: str
    created: str
    runtimes: tuple[str, ...]
    description: str
    code_size: int | None = None  # ListLayers does not report it
    code_sha256: str = ""


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
class SourceState:
    """A source-directory function's current snapshot, as `lamina dev` prints its reloads."""

    generation: int
    code_sha256: str
    changed: tuple[str, ...]
    snapshot_ms: float
    write_to_live_ms: float | None
    error: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DebugInfo:
    """Where a function's debug session listens, and the paths a debugger must map."""

    host: str
    port: int
    remote_root: str
    source_directory: str | None
    timeout_s: int
    runtime: str = "python"


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


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleSummary:
    """A schedule, as `lamina schedule ls` shows it."""

    name: str
    expression: str
    function_arn: str
    state: str
    input: str | None
    created_at: float
    last_fire_at: float | None
    next_fire_at: float | None


# --- deployment package ---------------------------------------------------------------------


def package_files(root: Path) -> list[Path]:
    """The files `zip_directory` packs, in order: `__pycache__`, `.pyc` and the build directory
    `.lamina-build` are skipped."""
    from lamina.build import BUILD_DIR

    files = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_dir() or "__pycache__" in rel.parts or path.suffix == ".pyc" or rel.parts[0] == BUILD_DIR:
            continue
        files.append(path)
    return files


def zip_directory(root: Path, *, progress: Callable[[int], None] | None = None) -> bytes:
    """A deterministic deployment zip of `root`: sorted names, fixed dates, normalised modes.

    Executable files get 0755 and the rest 0644, so `bootstrap` stays executable and the same tree
    always gives the same CodeSha256. `__pycache__` directories, `.pyc` files and the build
    directory `.lamina-build` (whose output `deploy` zips instead) are skipped.
    `progress` is called with each file's size once it is packed. Raises CliError when the
    directory holds no files.
    """
    import io
    import zipfile

    buf = io.BytesIO()
    files = package_files(root)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            st = path.stat()
            mode = 0o755 if st.st_mode & 0o111 else 0o644
            info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=_ZIP_DATE)
            info.create_system = 3  # Unix, so unzip tools honour the mode bits below.
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
            if progress is not None:
                progress(st.st_size)
    if not files:
        raise CliError(f"{root} holds no files to deploy")
    return buf.getvalue()


def zip_text(name: str, text: str) -> bytes:
    """A deterministic deployment zip of one file (a template's inline code)."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
        info.create_system = 3
        info.external_attr = (0o100644) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, text)
    return buf.getvalue()


# --- Lambda API -----------------------------------------------------------------------------


class LambdaClient:
    """boto3's Lambda client pointed at `endpoint`; every botocore failure leaves as CliError.

    Retries are off: against a local server a retry only delays the error the user must see.
    """

    def __init__(self, endpoint: str, *, region: str, read_timeout: float = _READ_TIMEOUT) -> None:
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
                read_timeout=read_timeout,
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

    # --- what `lamina tune` needs (lamina.tune.runner.TuneTarget) ---

    def memory_size(self, name: str) -> int:
        summary = self.get(name)
        if summary is None:
            raise CliError(f"ResourceNotFoundException: Function not found: {name}", code="ResourceNotFoundException")
        return summary.memory_mb

    def set_memory_size(self, name: str, memory_mb: int) -> None:
        """Change MemorySize alone and wait until the update is done."""
        with self._translated():
            self._client.update_function_configuration(FunctionName=name, MemorySize=memory_mb)
        self.wait_updated(name)

    def publish_version(self, name: str, description: str) -> str:
        with self._translated():
            return str(self._client.publish_version(FunctionName=name, Description=description)["Version"])

    def version_numbers(self, name: str) -> list[str]:
        """Published versions ($LATEST left out), through every page."""
        with self._translated():
            pages = self._client.get_paginator("list_versions_by_function").paginate(FunctionName=name)
            return [str(v["Version"]) for page in pages for v in page.get("Versions", []) if v["Version"] != "$LATEST"]

    def create_alias(self, name: str, alias: str, version: str) -> None:
        with self._translated():
            self._client.create_alias(FunctionName=name, Name=alias, FunctionVersion=version)

    def delete_alias(self, name: str, alias: str) -> None:
        with self._translated():
            self._client.delete_alias(FunctionName=name, Name=alias)

    def delete_version(self, name: str, version: str) -> None:
        with self._translated():
            self._client.delete_function(FunctionName=name, Qualifier=version)

    def list(self) -> list[FunctionSummary]:
        """Every function ($LATEST), following ListFunctions' Marker through all pages."""
        with self._translated():
            pages = self._client.get_paginator("list_functions").paginate()
            return [_summary(fn) for page in pages for fn in page.get("Functions", [])]

    def delete(self, name: str) -> None:
        with self._translated():
            self._client.delete_function(FunctionName=name)

    def publish_layer(self, spec: LayerSpec, content: bytes) -> LayerSummary:
        params: dict[str, Any] = {"LayerName": spec.name, "Content": {"ZipFile": content}}
        if spec.runtimes:
            params["CompatibleRuntimes"] = list(spec.runtimes)
        if spec.description is not None:
            params["Description"] = spec.description
        with self._translated():
            resp = self._client.publish_layer_version(**params)
        return _layer_summary(spec.name, resp, resp.get("Content", {}))

    def latest_layer_sha256(self, name: str) -> tuple[str, str] | None:
        """(version ARN, CodeSha256) of the layer's newest version, or None when it has none."""
        with self._translated():
            versions = self._client.list_layer_versions(LayerName=name).get("LayerVersions", [])
            if not versions:
                return None
            arn = str(max(versions, key=lambda v: int(v["Version"]))["LayerVersionArn"])
            return arn, str(self._client.get_layer_version_by_arn(Arn=arn)["Content"]["CodeSha256"])

    def function_document(self, name: str) -> dict[str, Any]:
        """GetFunction's whole answer (Configuration, Tags, Concurrency)."""
        with self._translated():
            return dict(self._client.get_function(FunctionName=name))

    def tag(self, arn: str, tags: Mapping[str, str]) -> None:
        with self._translated():
            self._client.tag_resource(Resource=arn, Tags=dict(tags))

    def put_concurrency(self, name: str, reserved: int) -> None:
        with self._translated():
            self._client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=reserved)

    def put_url_config(self, name: str, config: Mapping[str, Any], *, qualifier: str | None = None) -> str:
        """Create the function URL (of an alias with `qualifier`), or update it to `config`
        (AuthType, Cors, InvokeMode); its URL."""
        from botocore.exceptions import ClientError

        target: dict[str, Any] = {"FunctionName": name, **({"Qualifier": qualifier} if qualifier else {})}
        with self._translated():
            try:
                self._client.get_function_url_config(**target)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                    raise
                return str(self._client.create_function_url_config(**target, **config)["FunctionUrl"])
            return str(self._client.update_function_url_config(**target, **config)["FunctionUrl"])

    def allow_public_url(self, name: str, *, qualifier: str | None = None) -> None:
        """The resource policy statement an AuthType NONE URL needs (SAM adds the same); kept when
        it is already there."""
        from botocore.exceptions import ClientError

        target: dict[str, Any] = {"FunctionName": name, **({"Qualifier": qualifier} if qualifier else {})}
        with self._translated():
            try:
                self._client.add_permission(**target, StatementId="FunctionURLAllowPublicAccess", Principal="*",
                                            Action="lambda:InvokeFunctionUrl", FunctionUrlAuthType="NONE")  # fmt: skip
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ResourceConflictException":
                    raise

    def point_alias(self, name: str, alias: str, version: str) -> str:
        """Create `alias` on `version`, or move it there; "created", "updated" or "unchanged"."""
        from botocore.exceptions import ClientError

        with self._translated():
            try:
                current = self._client.get_alias(FunctionName=name, Name=alias)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                    raise
                self._client.create_alias(FunctionName=name, Name=alias, FunctionVersion=version)
                return "created"
            if current["FunctionVersion"] == version:
                return "unchanged"
            self._client.update_alias(FunctionName=name, Name=alias, FunctionVersion=version)
            return "updated"

    def put_provisioned(self, name: str, qualifier: str, count: int) -> None:
        with self._translated():
            self._client.put_provisioned_concurrency_config(
                FunctionName=name, Qualifier=qualifier, ProvisionedConcurrentExecutions=count
            )

    def list_layers(self) -> tuple[LayerSummary, ...]:
        """Every layer with its newest version, following ListLayers' Marker through all pages."""
        with self._translated():
            pages = self._client.get_paginator("list_layers").paginate()
            return tuple(
                _layer_summary(str(layer.get("LayerName", "")), layer.get("LatestMatchingVersion", {}), None)
                for page in pages
                for layer in page.get("Layers", [])
            )


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
    if spec.layers is not None:
        params["Layers"] = list(spec.layers)
    params.update(spec.extra)
    return params


def _layer_summary(name: str, version: Mapping[str, Any], content: Mapping[str, Any] | None) -> LayerSummary:
    return LayerSummary(
        name=name,
        version=int(version.get("Version", 0)),
        arn=str(version.get("LayerVersionArn", "")),
        created=str(version.get("CreatedDate", "")),
        runtimes=tuple(version.get("CompatibleRuntimes", ())),
        description=str(version.get("Description", "")),
        code_size=int(content.get("CodeSize", 0)) if content is not None else None,
        code_sha256=str(content.get("CodeSha256", "")) if content is not None else "",
    )


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

    def healthy(self) -> bool:
        """Whether a Lamina server answers at the endpoint."""
        try:
            self._get("/lamina/v1/health", timeout=2.0)
        except CliError:
            return False
        return True

    def put_source(self, name: str, body: Mapping[str, Any]) -> SourceState:
        """Create `name` from a source directory, or point it at one (the server watches it)."""
        return _source_state(self._get(self._fn(name, "source"), timeout=60.0, method="PUT", body=body))

    def source(self, name: str, *, after: int, wait: int) -> SourceState:
        """The function's source state once a reload newer than `after` happened (or `wait` s passed)."""
        return _source_state(self._get(self._fn(name, "source") + f"?generation={after}&wait={wait}", timeout=wait + 30.0))

    def start_debug(self, name: str, port: int) -> DebugInfo:
        body = self._get(self._fn(name, "debug"), timeout=60.0, method="PUT", body={"Port": port})
        return DebugInfo(host=str(body.get("Host", "127.0.0.1")), port=int(body.get("Port", 0)),
                         remote_root=str(body.get("RemoteRoot", "")), source_directory=body.get("SourceDirectory"),
                         timeout_s=int(body.get("TimeoutSeconds", 0)), runtime=str(body.get("Runtime", "python")))  # fmt: skip

    def stop_debug(self, name: str) -> None:
        self._get(self._fn(name, "debug"), timeout=30.0, method="DELETE")

    @staticmethod
    def _fn(name: str, what: str) -> str:
        import urllib.parse

        return f"/lamina/v1/functions/{urllib.parse.quote(name, safe='')}/{what}"

    def add_schedule(self, *, name: str, expression: str, function: str, qualifier: str | None, input_json: str | None,
                     enabled: bool) -> ScheduleSummary:  # fmt: skip
        """Create a schedule; raises CliError with the server's reason (a bad expression says
        which field)."""
        body: dict[str, Any] = {"Name": name, "ScheduleExpression": expression, "FunctionName": function,
                                "State": "ENABLED" if enabled else "DISABLED"}  # fmt: skip
        if qualifier is not None:
            body["Qualifier"] = qualifier
        if input_json is not None:
            body["Input"] = input_json
        return _schedule(self._get("/lamina/v1/schedules", timeout=30.0, method="POST", body=body))

    def schedules(self, function: str | None = None) -> list[ScheduleSummary]:
        import urllib.parse

        query = f"?{urllib.parse.urlencode({'FunctionName': function})}" if function else ""
        body = self._get(f"/lamina/v1/schedules{query}", timeout=30.0)
        return [_schedule(x) for x in body.get("Schedules", [])]

    def set_schedule_state(self, name: str, *, enabled: bool) -> ScheduleSummary:
        import urllib.parse

        path = f"/lamina/v1/schedules/{urllib.parse.quote(name, safe='')}"
        return _schedule(self._get(path, timeout=30.0, method="POST", body={"State": "ENABLED" if enabled else "DISABLED"}))

    def remove_schedule(self, name: str) -> None:
        import urllib.parse

        self._get(f"/lamina/v1/schedules/{urllib.parse.quote(name, safe='')}", timeout=30.0, method="DELETE")

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

    def _get(self, path: str, *, timeout: float, method: str = "GET", body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        import http.client
        import json
        import urllib.error
        import urllib.request

        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json", **({"Content-Type": "application/json"} if data else {})}
        request = urllib.request.Request(self.endpoint + path, data=data, headers=headers, method=method)
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
        if not raw:
            return {}
        try:
            decoded = json.loads(raw)
        except ValueError as exc:
            raise CliError(f"Lamina at {self.endpoint} sent a response that is not JSON") from exc
        if not isinstance(decoded, dict):
            raise CliError(f"Lamina at {self.endpoint} sent an unexpected response")
        return decoded


def _source_state(body: dict[str, Any]) -> SourceState:
    live = body.get("WriteToLiveMs")
    return SourceState(
        generation=int(body.get("Generation", 0)),
        code_sha256=str(body.get("CodeSha256", "")),
        changed=tuple(str(f) for f in body.get("ChangedFiles") or ()),
        snapshot_ms=float(body.get("SnapshotMs") or 0.0),
        write_to_live_ms=float(live) if live is not None else None,
        error=body.get("Error"),
    )


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


def _schedule(x: dict[str, Any]) -> ScheduleSummary:
    last, nxt = x.get("LastFireAt"), x.get("NextFireAt")
    return ScheduleSummary(
        name=str(x.get("Name", "")),
        expression=str(x.get("ScheduleExpression", "")),
        function_arn=str(x.get("FunctionArn", "")),
        state=str(x.get("State", "")),
        input=x.get("Input"),
        created_at=float(x.get("CreatedAt", 0)),
        last_fire_at=None if last is None else float(last),
        next_fire_at=None if nxt is None else float(nxt),
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
