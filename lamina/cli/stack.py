"""`lamina deploy --template`: a template's layers and functions created or updated through the
Lambda API, in dependency order, with their schedules, function URLs and reserved concurrency.

Idempotent: a layer whose zip is unchanged is not published again, a function whose zip is
unchanged keeps its code, and a schedule that already says the same is left alone. Failures are
CliError (API) or TemplateError (the template), raised at the first resource that fails; what
was deployed before it stays.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lamina.cli.client import AdminClient, DeploySpec, LambdaClient, LayerSpec, zip_directory, zip_text
from lamina.cli.intrinsics import TemplateError, resolve
from lamina.cli.template import Resource, Template

Progress = Callable[[str], None]
# Build DIRECTORY for RUNTIME when it has a requirements.txt or package.json: the directory to zip.
Builder = Callable[[Path, str], Path]
# CreateFunction members a template gives in the API's own shape, passed as they are.
_PASSED = {"Architectures": "Architectures", "LoggingConfig": "LoggingConfig", "DeadLetterConfig": "DeadLetterConfig",
           "VpcConfig": "VpcConfig", "KmsKeyArn": "KMSKeyArn", "FileSystemConfigs": "FileSystemConfigs",
           "CodeSigningConfigArn": "CodeSigningConfigArn", "SnapStart": "SnapStart", "ImageConfig": "ImageConfig",
           "TracingConfig": "TracingConfig", "EphemeralStorage": "EphemeralStorage"}  # fmt: skip
_INLINE_FILE = {"python": "index.py", "nodejs": "index.js"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    logical_id: str
    kind: str  # layer, function, schedule, url, concurrency
    name: str
    action: str  # created, updated, unchanged, published
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    client: LambdaClient
    admin: AdminClient
    region: str
    account_id: str


def deploy(t: Template, target: Target, *, build: Builder, progress: Progress, done: Callable[[Outcome], None]) -> None:
    """Deploy every resource of `t` in order; `done` hears each outcome as it happens."""
    layer_arns: dict[str, str] = {}
    for r in t.resources:
        ctx = t.context(region=target.region, account_id=target.account_id, deployed=layer_arns)
        props: dict[str, Any] = resolve(dict(r.properties), ctx, where=r.logical_id)
        if r.is_layer:
            outcome = _layer(t, r, props, target, progress)
            layer_arns[r.logical_id] = outcome.detail
            done(outcome)
        else:
            _function(t, r, props, target, build=build, progress=progress, done=done)


def _layer(t: Template, r: Resource, props: Mapping[str, Any], target: Target, progress: Progress) -> Outcome:
    content = _directory(t, r, props, "ContentUri")
    progress(f"zipping layer {r.name}")
    zipped = zip_directory(content)
    latest = target.client.latest_layer_sha256(r.name)
    if latest is not None and latest[1] == _sha256_b64(zipped):
        return Outcome(logical_id=r.logical_id, kind="layer", name=r.name, action="unchanged", detail=latest[0])
    progress(f"publishing layer {r.name}")
    spec = LayerSpec(name=r.name, runtimes=tuple(str(x) for x in props.get("CompatibleRuntimes") or ()),
                     description=_opt_str(props.get("Description")))  # fmt: skip
    published = target.client.publish_layer(spec, zipped)
    return Outcome(logical_id=r.logical_id, kind="layer", name=r.name, action="published", detail=published.arn)


def _function(t: Template, r: Resource, props: Mapping[str, Any], target: Target, *, build: Builder,
              progress: Progress, done: Callable[[Outcome], None]) -> None:  # fmt: skip
    if str(props.get("PackageType", "Zip")) != "Zip":
        raise TemplateError(f"{r.logical_id}.PackageType: Lamina runs Zip functions only, not {props['PackageType']}")
    runtime, handler = props.get("Runtime"), props.get("Handler")
    if not runtime or not handler:
        raise TemplateError(f"{r.logical_id}: Runtime and Handler are required (no Globals gives them)")
    code = _code(t, r, props, str(runtime), build, progress)
    spec = DeploySpec(
        name=r.name,
        runtime=str(runtime),
        handler=str(handler),
        role=str(props.get("Role") or f"arn:aws:iam::{target.account_id}:role/lamina"),
        memory_mb=_opt_int(r, props, "MemorySize"),
        timeout_s=_opt_int(r, props, "Timeout"),
        environment=_environment(r, props),
        description=_opt_str(props.get("Description")),
        layers=tuple(str(x) for x in props["Layers"]) if "Layers" in props else None,
        extra=_extra(props),
    )
    progress(f"deploying function {r.name}")
    action = put_function(target.client, spec, code, progress)
    arn = f"arn:aws:lambda:{target.region}:{target.account_id}:function:{r.name}"
    done(Outcome(logical_id=r.logical_id, kind="function", name=r.name, action=action, detail=arn))
    if props.get("Tags"):
        target.client.tag(arn, _tags(r, props["Tags"]))
    if "ReservedConcurrentExecutions" in props:  # before provisioned concurrency, which must fit in it
        reserved = _opt_int(r, props, "ReservedConcurrentExecutions") or 0
        target.client.put_concurrency(r.name, reserved)
        done(Outcome(logical_id=r.logical_id, kind="concurrency", name=r.name, action="set", detail=str(reserved)))
    alias = _opt_str(props.get("AutoPublishAlias"))
    if alias is not None:
        # PublishVersion answers the newest version when nothing changed (spec 2.3): no new one.
        version = target.client.publish_version(r.name, "")
        moved = target.client.point_alias(r.name, alias, version)
        done(Outcome(logical_id=r.logical_id, kind="alias", name=f"{r.name}:{alias}", action=moved,
                     detail=f"version {version}"))  # fmt: skip
    provisioned = props.get("ProvisionedConcurrencyConfig")
    if provisioned is not None:
        if alias is None:
            raise TemplateError(f"{r.logical_id}.ProvisionedConcurrencyConfig: needs AutoPublishAlias (as in SAM)")
        count = _opt_int(r, provisioned, "ProvisionedConcurrentExecutions") or 0
        target.client.put_provisioned(r.name, alias, count)
        done(Outcome(logical_id=r.logical_id, kind="provisioned", name=f"{r.name}:{alias}", action="set",
                     detail=str(count)))  # fmt: skip
    if "FunctionUrlConfig" in props:
        progress(f"function URL of {r.name}")
        # With AutoPublishAlias, SAM gives the URL (and the events) to the alias.
        config = _url_config(r, props["FunctionUrlConfig"])
        url = target.client.put_url_config(r.name, config, qualifier=alias)
        if config["AuthType"] == "NONE":  # SAM's public-access permission, without which Lambda answers 403
            target.client.allow_public_url(r.name, qualifier=alias)
        done(Outcome(logical_id=r.logical_id, kind="url", name=r.name, action="set", detail=url))
    for event_id, event in (props.get("Events") or {}).items():
        if (event or {}).get("Type") == "Schedule":
            done(_schedule(r, event_id, event.get("Properties") or {}, target, alias))


def put_function(client: LambdaClient, spec: DeploySpec, code: bytes, progress: Progress) -> str:
    """Create the function, or update its code (when the zip changed) and configuration, waiting
    for each step; "created", "updated", or "unchanged" when neither the code nor the
    configuration GetFunction reports changed (the configuration is sent anyway: it is cheap)."""
    existing = client.get(spec.name)
    if existing is None:
        client.create(spec, code)
        progress(f"waiting for {spec.name} to become Active…")
        client.wait_active(spec.name)
        return "created"
    if existing.state == "Pending":
        progress(f"waiting for {spec.name} to become Active…")
        client.wait_active(spec.name)
    before = _settings(client, spec.name)
    if existing.code_sha256 != _sha256_b64(code):
        client.update_code(spec.name, code)
        progress(f"waiting for {spec.name}'s code update…")
        client.wait_updated(spec.name)
    client.update_configuration(spec)
    progress(f"waiting for {spec.name}'s configuration update…")
    client.wait_updated(spec.name)
    return "unchanged" if _settings(client, spec.name) == before else "updated"


# What changes on every update whether or not anything else did.
_VOLATILE = ("RevisionId", "LastModified", "LastUpdateStatus", "LastUpdateStatusReason", "LastUpdateStatusReasonCode",
             "State", "StateReason", "StateReasonCode")  # fmt: skip


def _settings(client: LambdaClient, name: str) -> dict[str, Any]:
    config = dict(client.function_document(name).get("Configuration") or {})
    return {k: v for k, v in config.items() if k not in _VOLATILE}


def _code(t: Template, r: Resource, props: Mapping[str, Any], runtime: str, build: Builder, progress: Progress) -> bytes:
    inline = props.get("InlineCode")
    code = props.get("Code")
    if isinstance(code, dict):
        if "ZipFile" not in code:
            raise TemplateError(f"{r.logical_id}.Code: Lamina takes ZipFile (inline code) or a local directory, not S3")
        inline = code["ZipFile"]
    if inline is not None:
        family = "nodejs" if runtime.startswith("nodejs") else "python"
        return zip_text(_INLINE_FILE[family], str(inline))
    directory = _directory(t, r, props, "CodeUri" if "CodeUri" in props else "Code")
    progress(f"building {r.name}")
    source = build(directory, runtime)
    progress(f"zipping {r.name}")
    return zip_directory(source)


def _directory(t: Template, r: Resource, props: Mapping[str, Any], key: str) -> Path:
    value = props.get(key)
    if not isinstance(value, str) or value.startswith("s3://"):
        raise TemplateError(f"{r.logical_id}.{key}: give a local directory (relative to the template), not {value!r}")
    path = (t.directory / value).resolve()
    if not path.is_dir():
        raise TemplateError(f"{r.logical_id}.{key}: {path} is not a directory")
    return path


def _environment(r: Resource, props: Mapping[str, Any]) -> dict[str, str] | None:
    env = props.get("Environment")
    if env is None:
        return None
    variables = (env or {}).get("Variables") or {}
    if not isinstance(variables, dict):
        raise TemplateError(f"{r.logical_id}.Environment.Variables: expected a mapping")
    return {str(k): _scalar(v) for k, v in variables.items()}


def _extra(props: Mapping[str, Any]) -> dict[str, Any]:
    extra = {api: props[key] for key, api in _PASSED.items() if key in props}
    if "Tracing" in props:  # SAM's Tracing: Active | PassThrough
        extra["TracingConfig"] = {"Mode": str(props["Tracing"])}
    if "VpcConfig" in extra:  # SAM-only member the API does not have
        extra["VpcConfig"] = {k: v for k, v in extra["VpcConfig"].items() if k in ("SubnetIds", "SecurityGroupIds")}
    return extra


def _url_config(r: Resource, config: Any) -> dict[str, Any]:
    if not isinstance(config, dict) or "AuthType" not in config:
        raise TemplateError(f"{r.logical_id}.FunctionUrlConfig: AuthType is required")
    return {k: config[k] for k in ("AuthType", "Cors", "InvokeMode") if k in config}


def _schedule(r: Resource, event_id: str, props: Mapping[str, Any], target: Target, alias: str | None) -> Outcome:
    expression = props.get("Schedule")
    if not isinstance(expression, str):
        raise TemplateError(f"{r.logical_id}.Events.{event_id}.Schedule: a rate() or cron() expression is required")
    name = str(props.get("Name") or f"{r.name}-{event_id}")
    raw_input = props.get("Input")
    input_json = raw_input if raw_input is None or isinstance(raw_input, str) else json.dumps(raw_input)
    enabled = bool(props.get("Enabled", True)) and str(props.get("State", "ENABLED")).upper() != "DISABLED"
    arn = f"arn:aws:lambda:{target.region}:{target.account_id}:function:{r.name}" + (f":{alias}" if alias else "")
    state = "ENABLED" if enabled else "DISABLED"
    existing = {s.name: s for s in target.admin.schedules()}.get(name)
    if existing is not None:
        same = (existing.expression, existing.input, existing.state, existing.function_arn)
        if same == (expression, input_json, state, arn):
            return Outcome(logical_id=r.logical_id, kind="schedule", name=name, action="unchanged", detail=expression)
        target.admin.remove_schedule(name)
    target.admin.add_schedule(name=name, expression=expression, function=r.name, qualifier=alias,
                              input_json=input_json, enabled=enabled)  # fmt: skip
    action = "created" if existing is None else "updated"
    return Outcome(logical_id=r.logical_id, kind="schedule", name=name, action=action, detail=expression)


def _tags(r: Resource, tags: Any) -> dict[str, str]:
    """SAM's Tags are a map; AWS::Lambda::Function's a list of {Key, Value}."""
    if isinstance(tags, dict):
        return {str(k): _scalar(v) for k, v in tags.items()}
    if isinstance(tags, list) and all(isinstance(x, dict) and "Key" in x for x in tags):
        return {str(x["Key"]): _scalar(x.get("Value", "")) for x in tags}
    raise TemplateError(f"{r.logical_id}.Tags: expected a map or a list of {{Key, Value}}")


def _opt_int(r: Resource, props: Mapping[str, Any], key: str) -> int | None:
    value = props.get(key)
    if value is None:
        return None
    try:
        return int(str(value))
    except ValueError:
        raise TemplateError(f"{r.logical_id}.{key}: expected a whole number, got {value!r}") from None


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()
