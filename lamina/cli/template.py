"""A SAM/CloudFormation template read for `lamina deploy --template`: parameters, Globals, the
functions and layers Lamina creates in dependency order, and the parity report of each.

Names: a function without FunctionName is named for its logical id (`MyFunction`), or
`<stack>-<LogicalId>` with --stack-name; SAM would add a random suffix, which local use does not
want. Layers the same, from LayerName.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lamina.cli.intrinsics import Context, TemplateError, load, references
from lamina.model.parity import Support, lookup

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
LAMBDA_FUNCTION = "AWS::Lambda::Function"
SERVERLESS_LAYER = "AWS::Serverless::LayerVersion"
IAM_ROLE = "AWS::IAM::Role"
_KINDS = (SERVERLESS_FUNCTION, LAMBDA_FUNCTION, SERVERLESS_LAYER)

# Function properties `deploy --template` turns into API calls; a property outside this set is
# reported (with its parity) and not applied. VpcConfig and the other ignored members are sent
# as they are, so a strict server refuses them.
APPLIED = frozenset({
    "FunctionName", "Handler", "Runtime", "CodeUri", "InlineCode", "Code", "Description", "MemorySize", "Timeout",
    "Environment", "Layers", "EphemeralStorage", "LoggingConfig", "Tags", "Role", "Architectures", "Tracing",
    "TracingConfig", "DeadLetterConfig", "PackageType", "ReservedConcurrentExecutions", "Events", "FunctionUrlConfig",
    "VpcConfig", "KmsKeyArn", "FileSystemConfigs", "CodeSigningConfigArn", "SnapStart", "ImageConfig",
    "AutoPublishAlias", "ProvisionedConcurrencyConfig",
})  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class Resource:
    logical_id: str
    kind: str
    name: str  # the function's or layer's name in Lamina
    properties: Mapping[str, Any]  # unresolved; a serverless function's with Globals merged in
    metadata: Mapping[str, Any] = field(default_factory=dict)  # the resource's Metadata (sam build's BuildMethod)

    @property
    def is_layer(self) -> bool:
        return self.kind == SERVERLESS_LAYER


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportLine:
    """One non-exact property of a resource, as the deploy report prints it."""

    resource: str
    property: str
    support: Support
    note: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Template:
    path: Path
    stack_name: str
    parameters: Mapping[str, str]
    resources: tuple[Resource, ...]  # in dependency order
    skipped: tuple[tuple[str, str], ...]  # (logical id, type) of resources Lamina does not create
    prefixed: bool = False  # names are <stack>-<LogicalId> (--stack-name)

    @property
    def directory(self) -> Path:
        return self.path.parent

    def default_name(self, logical_id: str) -> str:
        return f"{self.stack_name}-{logical_id}" if self.prefixed else logical_id

    def context(self, *, region: str, account_id: str, deployed: Mapping[str, str]) -> Context:
        """What intrinsics resolve to now: parameters, pseudo parameters, functions' names and
        ARNs (known before they exist), and the version ARNs of the layers `deployed` so far."""
        refs: dict[str, object] = {
            "AWS::Region": region, "AWS::AccountId": account_id, "AWS::StackName": self.stack_name,
            "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{account_id}:stack/{self.stack_name}/lamina",
            **self.parameters,
        }  # fmt: skip
        attributes: dict[tuple[str, str], object] = {}
        pending = {logical for logical, kind in self.skipped if kind != IAM_ROLE}
        for logical, kind in self.skipped:
            if kind == IAM_ROLE:  # a function's Role: !GetAtt R.Arn gets a role ARN it only records
                role = self.default_name(logical)
                refs[logical] = role
                attributes[(logical, "Arn")] = f"arn:aws:iam::{account_id}:role/{role}"
        for r in self.resources:
            if r.is_layer:
                if r.logical_id in deployed:
                    refs[r.logical_id] = deployed[r.logical_id]
                else:
                    pending.add(r.logical_id)
            else:
                refs[r.logical_id] = r.name
                attributes[(r.logical_id, "Arn")] = f"arn:aws:lambda:{region}:{account_id}:function:{r.name}"
        return Context(refs=refs, attributes=attributes, pending=frozenset(pending))


def read(path: Path, *, stack_name: str | None, overrides: Mapping[str, str]) -> Template:
    """Parse `path`; TemplateError for what Lamina cannot deploy (the message says where)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise TemplateError(f"cannot read {path}: {exc.strerror or exc}") from exc
    doc = load(text, source=str(path))
    parameters = _parameters(doc.get("Parameters") or {}, overrides)
    globals_ = ((doc.get("Globals") or {}).get("Function") or {})
    resources, skipped = [], []
    for logical_id, body in doc["Resources"].items():
        kind = str((body or {}).get("Type", ""))
        props = (body or {}).get("Properties") or {}
        if kind not in _KINDS:
            skipped.append((logical_id, kind))
            continue
        if kind == SERVERLESS_FUNCTION:
            props = merge_globals(globals_, props)
        explicit = props.get("LayerName" if kind == SERVERLESS_LAYER else "FunctionName")
        default = f"{stack_name}-{logical_id}" if stack_name else logical_id
        name = default if explicit is None else explicit  # resolved below when it is an intrinsic
        metadata = (body or {}).get("Metadata") or {}
        resources.append(Resource(logical_id=logical_id, kind=kind, name=name, properties=props, metadata=metadata))
    template = Template(path=path, stack_name=stack_name or "lamina", parameters=parameters,
                        resources=tuple(_ordered(resources)), skipped=tuple(skipped), prefixed=stack_name is not None)  # fmt: skip
    return _with_literal_names(template)


def _with_literal_names(t: Template) -> Template:
    """Names given as intrinsics (FunctionName: !Sub ${AWS::StackName}-api) resolve against the
    parameters only; a name is needed before anything is deployed."""
    from dataclasses import replace

    from lamina.cli.intrinsics import resolve

    ctx = Context(refs={**t.parameters, "AWS::StackName": t.stack_name})
    named = []
    for r in t.resources:
        if not isinstance(r.name, str):
            r = replace(r, name=str(resolve(r.name, ctx, where=f"{r.logical_id}.FunctionName")))
        named.append(r)
    return replace(t, resources=tuple(named))


def _parameters(declared: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, str]:
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise TemplateError(f"--parameter-overrides names {', '.join(unknown)}, which the template does not declare")
    values = {}
    for name, spec in declared.items():
        if name in overrides:
            values[name] = overrides[name]
        elif isinstance(spec, dict) and "Default" in spec:
            values[name] = str(spec["Default"])
        else:
            raise TemplateError(f"parameter {name} has no Default: give it with --parameter-overrides {name}=VALUE")
    return values


def merge_globals(globals_: Mapping[str, Any], local: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's Globals rules: maps merge (the resource's keys win), lists concatenate (globals
    first), anything else the resource's value replaces."""
    out = dict(globals_)
    for key, value in local.items():
        base = out.get(key)
        if isinstance(base, dict) and isinstance(value, dict) and not _is_intrinsic(value):
            out[key] = merge_globals(base, value)
        elif isinstance(base, list) and isinstance(value, list):
            out[key] = [*base, *value]
        else:
            out[key] = value
    return out


def _is_intrinsic(value: Mapping[str, Any]) -> bool:
    return len(value) == 1 and next(iter(value)) in ("Ref", "Condition") or any(k.startswith("Fn::") for k in value)


def _ordered(resources: list[Resource]) -> list[Resource]:
    """Dependency order (what a resource's properties refer to comes first); TemplateError on a cycle."""
    by_id = {r.logical_id: r for r in resources}
    done: list[Resource] = []
    state: dict[str, str] = {}

    def visit(r: Resource, chain: tuple[str, ...]) -> None:
        if state.get(r.logical_id) == "done":
            return
        if state.get(r.logical_id) == "visiting":
            raise TemplateError(f"resources refer to each other in a cycle: {' -> '.join((*chain, r.logical_id))}")
        state[r.logical_id] = "visiting"
        for dep in sorted(references(dict(r.properties)) & set(by_id)):
            if dep != r.logical_id:
                visit(by_id[dep], (*chain, r.logical_id))
        state[r.logical_id] = "done"
        done.append(r)

    for r in resources:
        visit(r, ())
    return done


def report(r: Resource) -> tuple[ReportLine, ...]:
    """Every property of `r` that is not emulated exactly, or not applied by this deploy."""
    if r.is_layer:
        lines = [
            ReportLine(resource=r.logical_id, property=k, support=Support.IGNORED, note="not applied to layers here")
            for k in r.properties if k in ("RetentionPolicy", "CompatibleArchitectures", "LicenseInfo")
        ]  # fmt: skip
        if "BuildMethod" in r.metadata:
            lines.append(ReportLine(resource=r.logical_id, property="Metadata.BuildMethod", support=Support.IGNORED,
                                    note="ContentUri is zipped as it is; build it with `lamina layer publish --requirements`"))  # fmt: skip
        return tuple(lines)
    lines = []
    for key, value in r.properties.items():
        entry = lookup(key)
        if entry is None:
            lines.append(ReportLine(resource=r.logical_id, property=key, support=Support.IGNORED,
                                    note="not a property Lamina knows"))  # fmt: skip
        elif key not in APPLIED:
            lines.append(ReportLine(resource=r.logical_id, property=key, support=Support.IGNORED,
                                    note=f"lamina deploy --template does not apply it ({entry.support.value} through the API: {entry.note})"))  # fmt: skip
        elif key == "Events":
            lines += _event_lines(r.logical_id, value)
        elif entry.support is not Support.EXACT:
            lines.append(ReportLine(resource=r.logical_id, property=key, support=entry.support, note=entry.note))
    return tuple(lines)


def _event_lines(resource: str, events: Any) -> list[ReportLine]:
    lines = []
    for event_id, event in (events or {}).items():
        kind = str((event or {}).get("Type", ""))
        where = f"Events.{event_id}"
        if kind != "Schedule":
            lines.append(ReportLine(resource=resource, property=where, support=Support.IGNORED,
                                    note=f"{kind} events are not emulated; only Schedule"))  # fmt: skip
            continue
        for key in (event.get("Properties") or {}):
            if key not in SCHEDULE_PROPERTIES:
                lines.append(ReportLine(resource=resource, property=f"{where}.{key}", support=Support.IGNORED,
                                        note="not applied to Lamina schedules"))  # fmt: skip
    return lines


# Schedule event properties that become a Lamina schedule.
SCHEDULE_PROPERTIES = ("Schedule", "Input", "Enabled", "State", "Name")


def skipped_note(kind: str) -> str:
    """What the deploy report says of a resource it does not create."""
    if kind == IAM_ROLE:
        return "not created (Lamina has no IAM); Ref and Fn::GetAtt .Arn give a role name and ARN that functions only record"
    return "resource type not created by Lamina"


def parse_overrides(values: list[str]) -> dict[str, str]:
    """--parameter-overrides K=V, repeated or space-separated in one value (as `sam deploy` takes them)."""
    out = {}
    for value in values:
        for pair in value.split():
            key, sep, v = pair.partition("=")
            if not sep or not key:
                raise TemplateError(f"--parameter-overrides expects K=V, got {pair!r}")
            out[key] = v
    return out
