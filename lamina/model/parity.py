"""How faithfully Lamina emulates each function property: one table, read by the server (strict
mode refuses ignored properties) and by the CLI (`lamina parity`, the deploy reports).

Each claim was checked against the code that implements it (the module named in the note's
parenthesis where useful); change the table with that code. Property names are the
CloudFormation/SAM ones; `api_field` is the CreateFunction/UpdateFunctionConfiguration member it
becomes, when there is one.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass


class Support(enum.Enum):
    EXACT = "exact"  # behaves as on Lambda
    APPROXIMATE = "approximate"  # accepted and acted on, with a stated difference
    IGNORED = "ignored"  # accepted (or reported) but has no effect here


@dataclass(frozen=True, slots=True, kw_only=True)
class PropertyParity:
    name: str  # the template property (SAM or AWS::Lambda::Function)
    support: Support
    note: str
    api_field: str | None = None  # its CreateFunction member; None for template-only properties


def _p(name: str, support: Support, note: str, api_field: str | None = None) -> PropertyParity:
    return PropertyParity(name=name, support=support, note=note, api_field=api_field)


_E, _A, _I = Support.EXACT, Support.APPROXIMATE, Support.IGNORED
_TRACING = "trace id headers (_X_AMZN_TRACE_ID) only; no X-Ray segments are sent"

# Every property of AWS::Serverless::Function and AWS::Lambda::Function.
FUNCTION_PROPERTIES: Mapping[str, PropertyParity] = {
    p.name: p
    for p in (
        _p("FunctionName", _E, "the function's name", "FunctionName"),
        _p("Handler", _E, "module.function (Python), file.export (Node.js)", "Handler"),
        _p("Runtime", _E, "managed runtimes run on the host's interpreters; deprecation dates enforced", "Runtime"),
        _p("CodeUri", _E, "a directory, built (requirements.txt/package.json) and zipped"),
        _p("InlineCode", _E, "written as the handler's file and zipped"),
        _p("Code", _E, "ZipFile only; S3Bucket/ImageUri are refused (no S3 here)", "Code"),
        _p("Description", _E, "stored and returned", "Description"),
        _p("MemorySize", _E, "cgroup memory limit and CPU share (1,769 MB = 1 vCPU) in sandbox isolation; "
           "not enforced in process isolation", "MemorySize"),  # fmt: skip
        _p("Timeout", _E, "the invoke is cut at the deadline and the environment replaced", "Timeout"),
        _p("Environment", _E, "variables, with Lambda's reserved names refused", "Environment"),
        _p("Layers", _E, "merged into /opt in order", "Layers"),
        _p("EphemeralStorage", _E, "the size of the environment's private /tmp", "EphemeralStorage"),
        _p("LoggingConfig", _A, "Text/JSON formats and levels as Lambda applies them; a custom LogGroup is only "
           "told to the function (AWS_LAMBDA_LOG_GROUP_NAME): `lamina logs NAME` reads by function", "LoggingConfig"),  # fmt: skip
        _p("Tags", _E, "stored; TagResource/ListTags", "Tags"),
        _p("ReservedConcurrentExecutions", _E, "PutFunctionConcurrency: reserved and capped"),
        _p("ProvisionedConcurrencyConfig", _E, "environments started ahead on the alias"),
        _p("AutoPublishAlias", _E, "PublishVersion on each code or configuration change, alias moved to it"),
        _p("EventInvokeConfig", _E, "retries, maximum event age and destinations (Lamina functions)"),
        _p("RuntimeManagementConfig", _E, "Auto, FunctionUpdate and Manual runtime versions"),
        _p("Role", _A, "recorded and validated as an ARN; functions get no IAM credentials", "Role"),
        _p("Architectures", _A, "recorded; code runs on the host's architecture", "Architectures"),
        _p("Tracing", _A, _TRACING, "TracingConfig"),
        _p("TracingConfig", _A, _TRACING, "TracingConfig"),
        _p("DeadLetterQueue", _I, "SAM's targets are SQS/SNS, which Lamina does not have"),
        _p("DeadLetterConfig", _A, "Lamina function ARNs as targets; SQS/SNS refused", "DeadLetterConfig"),
        _p("PackageType", _A, "Zip only; Image is refused", "PackageType"),
        _p("Events", _A, "Schedule events become Lamina schedules; other event types are ignored"),
        _p("FunctionUrlConfig", _E, "a function URL with AuthType, Cors and InvokeMode"),
        _p("VpcConfig", _I, "there is no VPC here: the function's network is Lamina's --network", "VpcConfig"),
        _p("KmsKeyArn", _I, "environment variables are stored unencrypted", "KMSKeyArn"),
        _p("FileSystemConfigs", _I, "no EFS mounts", "FileSystemConfigs"),
        _p("CodeSigningConfigArn", _I, "code signatures are not checked", "CodeSigningConfigArn"),
        _p("SnapStart", _I, "no snapshots; every cold start runs init", "SnapStart"),
        _p("ImageConfig", _I, "container images are not supported", "ImageConfig"),
        _p("ImageUri", _I, "container images are not supported"),
        _p("RecursiveLoop", _I, "recursive invocations are not detected"),
        _p("SourceKMSKeyArn", _I, "deployment packages are stored unencrypted"),
        _p("Policies", _I, "no IAM: every caller may invoke every function"),
        _p("PermissionsBoundary", _I, "no IAM"),
        _p("AssumeRolePolicyDocument", _I, "no IAM"),
        _p("RolePath", _I, "no IAM"),
        _p("DeploymentPreference", _I, "no CodeDeploy: the alias moves at once"),
        _p("AutoPublishCodeSha256", _I, "versions are published when the code or configuration changes"),
        _p("AutoPublishAliasAllProperties", _I, "versions are published when the code or configuration changes"),
        _p("VersionDescription", _I, "published versions get no description"),
        _p("PropagateTags", _I, "no generated resources to tag"),
    )
}


def lookup(name: str) -> PropertyParity | None:
    return FUNCTION_PROPERTIES.get(name)


def by_api_field(field: str) -> PropertyParity | None:
    """The table's entry for a CreateFunction member (e.g. KMSKeyArn → KmsKeyArn)."""
    for p in FUNCTION_PROPERTIES.values():
        if p.api_field == field:
            return p
    return None


def is_set(value: object) -> bool:
    """Whether a request member asks for something: VpcConfig with empty lists, SnapStart
    ApplyOn=None or an empty KMSKeyArn are how a caller says "none" (and clears it)."""
    if isinstance(value, Mapping):
        return any(is_set(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(is_set(v) for v in value)
    return value not in (None, "", "None")


def ignored_fields(request: Mapping[str, object]) -> tuple[PropertyParity, ...]:
    """The ignored properties a CreateFunction/UpdateFunctionConfiguration body sets, in order."""
    found = []
    for key, value in request.items():
        entry = by_api_field(key)
        if entry is not None and entry.support is Support.IGNORED and is_set(value):
            found.append(entry)
    return tuple(found)


def strict_message(entry: PropertyParity) -> str:
    """InvalidParameterValueException's message when strict mode refuses `entry`."""
    field = entry.api_field or entry.name
    return (
        f"Lamina does not emulate {field} ({entry.note}); strict mode refuses it. "
        f"Remove {field}, or run the server without --strict."
    )
