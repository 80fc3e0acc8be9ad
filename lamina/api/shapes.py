"""JSON ↔ model conversion for the Lambda API (shapes from botocore's Lambda model, spec 2.1).

Dicts live here and nowhere deeper: requests become typed values, typed values become JSON.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import re
from typing import Any, TypeVar

from lamina.model.errors import InvalidParameterValueException, InvalidRequestContentException
from lamina.model.events import DestinationConfig, EventConfigChanges, EventInvokeConfig
from lamina.model.function import (
    APPLICATION_LOG_LEVELS,
    SYSTEM_LOG_LEVELS,
    Alias,
    ConfigChanges,
    CreateFunctionInput,
    FunctionConfig,
    LoggingChanges,
    LogFormat,
    LogLevel,
    UpdateRuntimeOn,
    VpcConfig,
)
from lamina.model.ids import Arns, validation_error
from lamina.model.layers import LayerPermissionInput, LayerStatement, LayerVersion, PublishLayerInput
from lamina.model.urls import (
    Cors,
    FunctionUrlConfig,
    InvokeMode,
    PermissionInput,
    Policy,
    PolicyStatement,
    UrlAuthType,
    UrlConfigChanges,
)

Json = dict[str, Any]
E = TypeVar("E", bound=enum.Enum)
_LOG_GROUP = re.compile(r"[\.\-_/#A-Za-z0-9]+")


# --- request parsing -------------------------------------------------------------------------


def _int(body: Json, key: str, member: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise validation_error(str(value), member, "Member must be an integer")
    return int(value)


def _str(body: Json, key: str, member: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise validation_error(str(value), member, "Member must be a string")
    return value


def _obj(body: Json, key: str) -> Json | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequestContentException(f"{key} must be an object")
    return value


def config_changes(body: Json) -> ConfigChanges:
    env = _obj(body, "Environment")
    variables = None
    if env is not None:
        raw = env.get("Variables") or {}
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            raise InvalidRequestContentException("Environment.Variables must map strings to strings")
        variables = dict(raw)
    storage = _obj(body, "EphemeralStorage")
    tracing = _obj(body, "TracingConfig")
    logging_cfg = _obj(body, "LoggingConfig")
    dlq = _obj(body, "DeadLetterConfig")
    archs = body.get("Architectures")
    layers = body.get("Layers")
    if layers is not None and (not isinstance(layers, list) or not all(isinstance(a, str) for a in layers)):
        raise InvalidRequestContentException("Layers must be a list of layer version ARNs")
    return ConfigChanges(
        runtime=_str(body, "Runtime", "runtime"),
        handler=_str(body, "Handler", "handler"),
        role=_str(body, "Role", "role"),
        description=_str(body, "Description", "description"),
        memory_size=_int(body, "MemorySize", "memorySize"),
        timeout=_int(body, "Timeout", "timeout"),
        environment=variables,
        architectures=tuple(archs) if isinstance(archs, list) else None,
        ephemeral_storage=_int(storage, "Size", "ephemeralStorage.size") if storage else None,
        tracing_mode=_str(tracing, "Mode", "tracingConfig.mode") if tracing else None,
        logging=_logging_changes(logging_cfg) if logging_cfg is not None else None,
        layers=tuple(layers) if isinstance(layers, list) else None,
        dead_letter_target=dlq.get("TargetArn") if dlq else None,
        kms_key_arn=_str(body, "KMSKeyArn", "kMSKeyArn"),
        vpc=_vpc(_obj(body, "VpcConfig")),
    )


def _vpc(body: Json | None) -> VpcConfig | None:
    """VpcConfig is kept and returned so nothing is dropped silently; Lamina has no VPC (strict
    mode refuses it, model/parity.py)."""
    if body is None:
        return None
    lists = []
    for key in ("SubnetIds", "SecurityGroupIds"):
        value = body.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidRequestContentException(f"VpcConfig.{key} must be a list of strings")
        lists.append(tuple(value))
    return VpcConfig(subnet_ids=lists[0], security_group_ids=lists[1],
                     ipv6_allowed_for_dual_stack=bool(body.get("Ipv6AllowedForDualStack")))  # fmt: skip


def _enum_member(body: Json, key: str, member: str, allowed: tuple[str, ...]) -> str | None:
    value = _str(body, key, member)
    if value is not None and value not in allowed:
        raise validation_error(value, member, f"Member must satisfy enum value set: [{', '.join(allowed)}]")
    return value


def _logging_changes(body: Json) -> LoggingChanges:
    """LoggingConfig of a request: the model's enums and LogGroup's constraints (spec 2.1)."""
    fmt = _enum_member(body, "LogFormat", "loggingConfig.logFormat", tuple(f.value for f in LogFormat))
    app = _enum_member(body, "ApplicationLogLevel", "loggingConfig.applicationLogLevel", tuple(v.name for v in APPLICATION_LOG_LEVELS))
    system = _enum_member(body, "SystemLogLevel", "loggingConfig.systemLogLevel", tuple(v.name for v in SYSTEM_LOG_LEVELS))
    group = _str(body, "LogGroup", "loggingConfig.logGroup")
    if group is not None:
        if not 1 <= len(group) <= 512:
            bound = "greater than or equal to 1" if not group else "less than or equal to 512"
            raise validation_error(group, "loggingConfig.logGroup", f"Member must have length {bound}")
        if not _LOG_GROUP.fullmatch(group):
            raise validation_error(group, "loggingConfig.logGroup", f"Member must satisfy regular expression pattern: {_LOG_GROUP.pattern}")
    return LoggingChanges(
        log_format=LogFormat(fmt) if fmt is not None else None,
        application_log_level=LogLevel[app] if app is not None else None,
        system_log_level=LogLevel[system] if system is not None else None,
        log_group=group,
    )


def zip_bytes(code: Json | None) -> bytes | None:
    """The deployment zip from Code.ZipFile (base64 in JSON, spec 1.1)."""
    if not code:
        return None
    if code.get("S3Bucket") or code.get("ImageUri"):
        raise InvalidParameterValueException(
            "Lamina accepts code as Code.ZipFile only (there is no S3 here); upload the zip directly."
        )
    raw = code.get("ZipFile")
    if raw is None:
        return None
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidParameterValueException(
            "Could not unzip uploaded file. Please check your file, then try to upload again."
        ) from exc


def create_input(body: Json) -> CreateFunctionInput:
    name = _str(body, "FunctionName", "functionName")
    if name is None:
        raise validation_error("null", "functionName", "Member must not be null")
    tags = body.get("Tags") or {}
    if not isinstance(tags, dict):
        raise InvalidRequestContentException("Tags must be an object")
    return CreateFunctionInput(
        name=name,
        changes=config_changes(body),
        zip_file=zip_bytes(_obj(body, "Code")),
        package_type=body.get("PackageType") or "Zip",
        publish=bool(body.get("Publish")),
        tags={str(k): str(v) for k, v in tags.items()},
    )


def routing_weights(body: Json) -> dict[str, float] | None:
    routing = _obj(body, "RoutingConfig")
    if routing is None:
        return None
    weights = routing.get("AdditionalVersionWeights") or {}
    if not isinstance(weights, dict):
        raise InvalidRequestContentException("AdditionalVersionWeights must be an object")
    return {str(k): float(v) for k, v in weights.items()}


# --- responses -------------------------------------------------------------------------------


def function_configuration(
    c: FunctionConfig,
    arns: Arns,
    *,
    listing: bool = False,
    qualified_latest: bool = False,
    runtime_version_arn: str | None = None,
    runtime_version_error: str | None = None,
) -> Json:
    """FunctionConfiguration (spec 2.1). `listing`: ListFunctions items omit state members and
    RuntimeVersionConfig."""
    qualifier = None if c.is_latest and not qualified_latest else c.version
    out: Json = {
        "FunctionName": c.name,
        "FunctionArn": arns.function(c.name, qualifier),
        "Runtime": c.runtime,
        "Role": c.role,
        "Handler": c.handler,
        "CodeSize": c.code.size,
        "Description": c.description,
        "Timeout": c.timeout,
        "MemorySize": c.memory_size,
        "LastModified": c.last_modified,
        "CodeSha256": c.code.sha256_b64,
        "Version": c.version,
        "TracingConfig": {"Mode": c.tracing_mode},
        "RevisionId": c.revision_id,
        "PackageType": c.package_type,
        "Architectures": list(c.architectures),
        "EphemeralStorage": {"Size": c.ephemeral_storage},
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
        "LoggingConfig": logging_config(c),
    }
    if c.environment:
        out["Environment"] = {"Variables": dict(c.environment)}
    if c.dead_letter_target:
        out["DeadLetterConfig"] = {"TargetArn": c.dead_letter_target}
    if c.kms_key_arn:
        out["KMSKeyArn"] = c.kms_key_arn
    if c.vpc.is_set:
        # VpcId would come from the subnets, which Lamina does not have.
        out["VpcConfig"] = {"SubnetIds": list(c.vpc.subnet_ids), "SecurityGroupIds": list(c.vpc.security_group_ids),
                            "VpcId": "", "Ipv6AllowedForDualStack": c.vpc.ipv6_allowed_for_dual_stack}  # fmt: skip
    if c.layers:
        out["Layers"] = [{"Arn": ref.arn, "CodeSize": ref.code.size} for ref in c.layers]
    if listing:
        return out
    if runtime_version_arn is not None:
        out["RuntimeVersionConfig"] = {"RuntimeVersionArn": runtime_version_arn}
        if runtime_version_error is not None:
            out["RuntimeVersionConfig"]["Error"] = {"ErrorCode": "RuntimeVersionNotInstalled", "Message": runtime_version_error}
    s = c.status
    out["State"] = s.state.value
    if s.state_reason:
        out["StateReason"] = s.state_reason
    if s.state_reason_code:
        out["StateReasonCode"] = s.state_reason_code
    if s.last_update_status is not None:
        out["LastUpdateStatus"] = s.last_update_status.value
        if s.last_update_reason:
            out["LastUpdateStatusReason"] = s.last_update_reason
        if s.last_update_reason_code:
            out["LastUpdateStatusReasonCode"] = s.last_update_reason_code
    return out


def alias_configuration(a: Alias, arns: Arns) -> Json:
    out: Json = {
        "AliasArn": arns.function(a.function_name, a.name),
        "Name": a.name,
        "FunctionVersion": a.function_version,
        "Description": a.description,
        "RevisionId": a.revision_id,
    }
    if a.additional_weights:
        out["RoutingConfig"] = {"AdditionalVersionWeights": dict(a.additional_weights)}
    return out


def paginate(items: list[Json], marker: str | None, max_items: int | None, *, cap: int) -> tuple[list[Json], str | None]:
    """Marker is the opaque index of the next item (spec 1.5)."""
    start = 0
    if marker:
        try:
            start = int(base64.urlsafe_b64decode(marker.encode()).decode())
        except (ValueError, binascii.Error) as exc:
            raise InvalidParameterValueException("Invalid Marker.") from exc
    size = min(max_items or cap, cap)
    page = items[start : start + size]
    nxt = start + size
    next_marker = base64.urlsafe_b64encode(str(nxt).encode()).decode() if nxt < len(items) else None
    return page, next_marker



def runtime_management_input(body: Json) -> tuple[UpdateRuntimeOn, str | None]:
    """PutRuntimeManagementConfig's body: UpdateRuntimeOn (required), RuntimeVersionArn."""
    raw = _str(body, "UpdateRuntimeOn", "updateRuntimeOn")
    if raw is None:
        raise validation_error("null", "updateRuntimeOn", "Member must not be null")
    try:
        mode = UpdateRuntimeOn(raw)
    except ValueError as exc:
        allowed = ", ".join(m.value for m in UpdateRuntimeOn)
        raise validation_error(raw, "updateRuntimeOn", f"Member must satisfy enum value set: [{allowed}]") from exc
    return mode, _str(body, "RuntimeVersionArn", "runtimeVersionArn")


def runtime_management_config(c: FunctionConfig, arns: Arns) -> Json:
    """Put/GetRuntimeManagementConfig's answer: RuntimeVersionArn only for Manual, else null."""
    rm = c.runtime_management
    return {
        "UpdateRuntimeOn": rm.update_on.value,
        "FunctionArn": arns.function(c.name, None if c.is_latest else c.version),
        "RuntimeVersionArn": rm.version_arn if rm.update_on is UpdateRuntimeOn.MANUAL else None,
    }


# --- asynchronous invocation (spec 2.2 *EventInvokeConfig rows) --------------------------------


def event_config_changes(body: Json) -> EventConfigChanges:
    """Put/UpdateFunctionEventInvokeConfig's body. An empty OnSuccess/OnFailure clears that one."""
    raw = _obj(body, "DestinationConfig")
    destinations = None
    if raw is not None:
        destinations = DestinationConfig(
            on_success=_destination(raw, "OnSuccess", "destinationConfig.onSuccess.destination"),
            on_failure=_destination(raw, "OnFailure", "destinationConfig.onFailure.destination"),
        )
    return EventConfigChanges(
        maximum_retry_attempts=_int(body, "MaximumRetryAttempts", "maximumRetryAttempts"),
        maximum_event_age_s=_int(body, "MaximumEventAgeInSeconds", "maximumEventAgeInSeconds"),
        destinations=destinations,
    )


def _destination(config: Json, key: str, member: str) -> str | None:
    target = _obj(config, key)
    return (_str(target, "Destination", member) or None) if target else None


def event_invoke_config(c: EventInvokeConfig, arns: Arns) -> Json:
    """FunctionEventInvokeConfig: LastModified is a Date (epoch seconds, spec 1.1); both
    destinations are always present, empty when unset (observed)."""
    out: Json = {
        "LastModified": round(c.last_modified, 3),
        "FunctionArn": arns.function(c.function_name, c.qualifier),
        "DestinationConfig": {
            "OnSuccess": {"Destination": c.destinations.on_success} if c.destinations.on_success else {},
            "OnFailure": {"Destination": c.destinations.on_failure} if c.destinations.on_failure else {},
        },
    }
    if c.maximum_retry_attempts is not None:
        out["MaximumRetryAttempts"] = c.maximum_retry_attempts
    if c.maximum_event_age_s is not None:
        out["MaximumEventAgeInSeconds"] = c.maximum_event_age_s
    return out


# --- layers (spec 2.2 layer rows) -----------------------------------------------------------


def _str_list(body: Json, key: str) -> tuple[str, ...] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequestContentException(f"{key} must be a list of strings")
    return tuple(value)


def publish_layer_input(name: str, body: Json) -> PublishLayerInput:
    content = zip_bytes(_obj(body, "Content"))
    if content is None:
        raise InvalidParameterValueException("Please provide a source for layer content: Content.ZipFile.")
    return PublishLayerInput(
        name=name,
        zip_file=content,
        description=_str(body, "Description", "description") or "",
        compatible_runtimes=_str_list(body, "CompatibleRuntimes"),
        compatible_architectures=_str_list(body, "CompatibleArchitectures"),
        license_info=_str(body, "LicenseInfo", "licenseInfo"),
    )


def layer_permission_input(body: Json, revision_id: str | None) -> LayerPermissionInput:
    def required(key: str, member: str) -> str:
        value = _str(body, key, member)
        if value is None:
            raise validation_error("null", member, "Member must not be null")
        return value

    return LayerPermissionInput(
        statement=LayerStatement(
            sid=required("StatementId", "statementId"),
            action=required("Action", "action"),
            principal=required("Principal", "principal"),
            organization_id=_str(body, "OrganizationId", "organizationId"),
        ),
        revision_id=revision_id,
    )


def _layer_version_item(v: LayerVersion, arns: Arns) -> Json:
    """LayerVersionsListItem. Compatible* are absent unless given at publish (observed)."""
    out: Json = {
        "LayerVersionArn": arns.layer(v.name, v.version),
        "Version": v.version,
        "Description": v.description,
        "CreatedDate": v.created_date,
    }
    if v.compatible_runtimes is not None:
        out["CompatibleRuntimes"] = list(v.compatible_runtimes)
    if v.compatible_architectures is not None:
        out["CompatibleArchitectures"] = list(v.compatible_architectures)
    if v.license_info is not None:
        out["LicenseInfo"] = v.license_info
    return out


def layer_version(v: LayerVersion, arns: Arns, location: str) -> Json:
    """Publish/GetLayerVersion(ByArn)'s answer; `location` is where the zip can be downloaded."""
    return {
        **_layer_version_item(v, arns),
        "LayerArn": arns.layer(v.name),
        "Content": {"Location": location, "CodeSha256": v.code.sha256_b64, "CodeSize": v.code.size},
    }


def layer_version_list_item(v: LayerVersion, arns: Arns) -> Json:
    return _layer_version_item(v, arns)


def layers_list_item(v: LayerVersion, arns: Arns) -> Json:
    """A ListLayers item: the layer and its newest version matching the filter."""
    return {"LayerName": v.name, "LayerArn": arns.layer(v.name), "LatestMatchingVersion": _layer_version_item(v, arns)}


def layer_permission(v: LayerVersion, s: LayerStatement, arns: Arns) -> Json:
    """AddLayerVersionPermission's answer: Statement is a JSON string (spec 12)."""
    return {"Statement": json.dumps(layer_statement(s, arns.layer(v.name, v.version))), "RevisionId": v.policy_revision}


def layer_statement(s: LayerStatement, resource: str) -> Json:
    out: Json = {"Sid": s.sid, "Effect": "Allow", "Principal": s.principal, "Action": s.action, "Resource": resource}
    if s.organization_id is not None:
        out["Condition"] = {"StringEquals": {"aws:PrincipalOrgID": s.organization_id}}
    return out


def layer_policy(v: LayerVersion, arns: Arns) -> Json:
    """GetLayerVersionPolicy: Policy is a JSON string, as GetPolicy's is (spec 12)."""
    resource = arns.layer(v.name, v.version)
    policy = {"Version": "2012-10-17", "Id": "default", "Statement": [layer_statement(s, resource) for s in v.statements]}
    return {"Policy": json.dumps(policy), "RevisionId": v.policy_revision}


def logging_config(c: FunctionConfig) -> Json:
    """LoggingConfig as Lambda returns it: with both levels (defaults INFO) only in JSON format."""
    out: Json = {"LogFormat": c.logging.log_format.value, "LogGroup": c.log_group}
    app, system = c.logging.application_level, c.logging.system_level
    if app is not None and system is not None:
        out["ApplicationLogLevel"] = app.name
        out["SystemLogLevel"] = system.name
    return out


# --- function URLs and policies (spec 2.2, 9) ---------------------------------------------------

_URL_AUTH = {t.value: t for t in UrlAuthType}
_INVOKE_MODES = {m.value: m for m in InvokeMode}


def _enum(body: Json, key: str, member: str, values: dict[str, E]) -> E | None:
    raw = _str(body, key, member)
    if raw is None:
        return None
    if raw not in values:
        raise validation_error(raw, member, f"Member must satisfy enum value set: [{', '.join(sorted(values))}]")
    return values[raw]


def _strings(body: Json, key: str, member: str) -> tuple[str, ...] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise validation_error(str(value), member, "Member must be a list of strings")
    return tuple(value)


def url_config_changes(body: Json) -> UrlConfigChanges:
    raw = _obj(body, "Cors")
    cors = None
    if raw is not None:
        credentials = raw.get("AllowCredentials")
        if credentials is not None and not isinstance(credentials, bool):
            raise validation_error(str(credentials), "cors.allowCredentials", "Member must be a boolean")
        cors = Cors(
            allow_credentials=credentials,
            allow_headers=_strings(raw, "AllowHeaders", "cors.allowHeaders"),
            allow_methods=_strings(raw, "AllowMethods", "cors.allowMethods"),
            allow_origins=_strings(raw, "AllowOrigins", "cors.allowOrigins"),
            expose_headers=_strings(raw, "ExposeHeaders", "cors.exposeHeaders"),
            max_age=_int(raw, "MaxAge", "cors.maxAge"),
        )
    return UrlConfigChanges(
        auth_type=_enum(body, "AuthType", "authType", _URL_AUTH),
        cors=cors,
        invoke_mode=_enum(body, "InvokeMode", "invokeMode", _INVOKE_MODES),
    )


def _cors(c: Cors) -> Json:
    out: Json = {}
    for key, value in (("AllowCredentials", c.allow_credentials), ("AllowHeaders", c.allow_headers),
                       ("AllowMethods", c.allow_methods), ("AllowOrigins", c.allow_origins),
                       ("ExposeHeaders", c.expose_headers), ("MaxAge", c.max_age)):  # fmt: skip
        if value is not None:
            out[key] = list(value) if isinstance(value, tuple) else value
    return out


def function_url_config(c: FunctionUrlConfig, arns: Arns, url: str, *, created: bool = False) -> Json:
    """FunctionUrlConfig; Create's answer has no LastModifiedTime (botocore's model)."""
    out: Json = {
        "FunctionUrl": url,
        "FunctionArn": arns.function(c.function_name, c.qualifier),
        "AuthType": c.auth_type.value,
        "CreationTime": c.creation_time,
        "InvokeMode": c.invoke_mode.value,
    }
    if not created:
        out["LastModifiedTime"] = c.last_modified_time
    if c.cors is not None:
        out["Cors"] = _cors(c.cors)
    return out


_STATEMENT_ID = re.compile(r"^[a-zA-Z0-9_-]{1,100}$")
_ACTION = re.compile(r"^(lambda:[*]|lambda:[a-zA-Z]+|[*])$")
_SOURCE_ACCOUNT = re.compile(r"^\d{12}$")
_ORG_ID = re.compile(r"^o-[a-z0-9]{10,32}$")


def _required(body: Json, key: str, member: str) -> str:
    value = _str(body, key, member)
    if value is None:
        raise validation_error("null", member, "Member must not be null")
    return value


def _matching(value: str | None, pattern: re.Pattern[str], member: str) -> str | None:
    if value is not None and not pattern.match(value):
        raise validation_error(value, member, f"Member must satisfy regular expression pattern: {pattern.pattern[1:-1]}")
    return value


def permission_input(body: Json) -> PermissionInput:
    via_url = body.get("InvokedViaFunctionUrl")
    if via_url is not None and not isinstance(via_url, bool):
        raise validation_error(str(via_url), "invokedViaFunctionUrl", "Member must be a boolean")
    return PermissionInput(
        statement_id=_matching(_required(body, "StatementId", "statementId"), _STATEMENT_ID, "statementId") or "",
        action=_matching(_required(body, "Action", "action"), _ACTION, "action") or "",
        principal=_required(body, "Principal", "principal"),
        source_arn=_str(body, "SourceArn", "sourceArn"),
        source_account=_matching(_str(body, "SourceAccount", "sourceAccount"), _SOURCE_ACCOUNT, "sourceAccount"),
        principal_org_id=_matching(_str(body, "PrincipalOrgID", "principalOrgID"), _ORG_ID, "principalOrgID"),
        event_source_token=_str(body, "EventSourceToken", "eventSourceToken"),
        url_auth_type=_enum(body, "FunctionUrlAuthType", "functionUrlAuthType", _URL_AUTH),
        invoked_via_function_url=via_url,
        revision_id=_str(body, "RevisionId", "revisionId"),
    )


def policy_statement(s: PolicyStatement) -> Json:
    """One statement as IAM writes it (AddPermission answers it as a JSON string)."""
    out: Json = {"Sid": s.sid, "Effect": "Allow", "Principal": s.principal, "Action": s.action, "Resource": s.resource}
    if s.conditions:
        out["Condition"] = s.conditions
    return out


def policy_document(p: Policy) -> Json:
    return {"Version": "2012-10-17", "Id": "default", "Statement": [policy_statement(s) for s in p.statements]}
