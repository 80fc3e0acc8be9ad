"""Layer versions and their permissions as typed values (spec 1.4, 2.2 layer rows).

A layer is a name; each publish makes a version numbered from 1, never reused (even after a
delete). A version's content is a zip in the code store, like a function's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lamina.model.function import CodeRef

# botocore's patterns: LayerName (a name or a layer ARN) and LayerVersionArn.
LAYER_NAME_PATTERN_TEXT = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:\d{12}:layer:[a-zA-Z0-9-_]+)"
    r"|[a-zA-Z0-9-_]+"
)
LAYER_VERSION_ARN_PATTERN_TEXT = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+)"
    r"|(arn:[a-zA-Z0-9-]+:lambda:::awslayer:[a-zA-Z0-9-_]+)"
)
_LAYER_ARN = re.compile(
    r"^arn:(?:aws[a-zA-Z-]*)?:lambda:(?P<region>(?:eusc-)?[a-z]{2}(?:(?:-gov)|(?:-iso[a-z]?))?-[a-z]+-\d):"
    r"(?P<account>\d{12}):layer:(?P<name>[a-zA-Z0-9-_]+)(?::(?P<version>[0-9]+))?$"
)
LAYER_NAME = re.compile(f"^(?:{LAYER_NAME_PATTERN_TEXT})$")
LAYER_VERSION_ARN = re.compile(f"^(?:{LAYER_VERSION_ARN_PATTERN_TEXT})$")

MAX_LAYERS_PER_FUNCTION = 5  # spec 11


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerArnParts:
    """What a layer ARN (with or without a version) names."""

    region: str
    account: str
    name: str
    version: int | None


def parse_layer_arn(arn: str) -> LayerArnParts | None:
    """A layer or layer version ARN → its parts; None if `arn` is not one."""
    m = _LAYER_ARN.match(arn)
    if m is None:
        return None
    version = m.group("version")
    return LayerArnParts(
        region=m.group("region"), account=m.group("account"), name=m.group("name"),
        version=int(version) if version is not None else None,
    )  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerStatement:
    """One statement of a layer version's resource policy (AddLayerVersionPermission)."""

    sid: str
    principal: str  # an account id, "*" or an account root ARN
    action: str = "lambda:GetLayerVersion"
    organization_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerVersion:
    name: str
    version: int
    code: CodeRef
    unzipped_size: int
    created_date: str  # Lambda's Timestamp string: 2024-05-01T10:20:30.123+0000
    description: str = ""
    # None: not given at publish (then absent from responses); () was given empty (then []).
    compatible_runtimes: tuple[str, ...] | None = None
    compatible_architectures: tuple[str, ...] | None = None
    license_info: str | None = None
    statements: tuple[LayerStatement, ...] = ()
    policy_revision: str | None = None  # RevisionId of the policy; changes with each statement

    def compatible(self, runtime: str | None, architecture: str | None) -> bool:
        """ListLayers/ListLayerVersions filters: a version matches a filter it declares."""
        if runtime is not None and runtime not in (self.compatible_runtimes or ()):
            return False
        return architecture is None or architecture in (self.compatible_architectures or ())


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishLayerInput:
    name: str
    zip_file: bytes
    description: str = ""
    compatible_runtimes: tuple[str, ...] | None = None
    compatible_architectures: tuple[str, ...] | None = None
    license_info: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerPermissionInput:
    statement: LayerStatement
    revision_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerFilter:
    """ListLayers/ListLayerVersions query filters."""

    runtime: str | None = None
    architecture: str | None = None
