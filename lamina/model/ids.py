"""Identifiers: function references, qualifiers, ARNs (spec 1.4)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NewType

from lamina.model.errors import InvalidParameterValueException, ValidationException

FunctionName = NewType("FunctionName", str)
RequestId = NewType("RequestId", str)

LATEST = "$LATEST"

# botocore's FunctionName pattern (name, partial ARN or full ARN, optional qualifier).
_FUNCTION_REF = re.compile(
    r"^(?:arn:(?P<partition>aws[a-zA-Z-]*)?:lambda:(?P<region>[a-z]{2}(?:-gov)?-[a-z]+-\d{1}):)?"
    r"(?:(?P<account>\d{12}):)?(?:function:)?"
    r"(?P<name>[a-zA-Z0-9-_\.]+)(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9-_]+))?$"
)
_FUNCTION_REF_PATTERN_TEXT = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?"
    r"([a-zA-Z0-9-_\.]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?"
)
_FULL_FUNCTION_ARN = re.compile(
    r"^arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):function:"
    r"(?P<name>[a-zA-Z0-9-_]{1,64})(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9-_]{1,128}))?$"
)
_PLAIN_NAME = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")
_QUALIFIER = re.compile(r"^(|[a-zA-Z0-9$_-]+)$")
ALIAS_NAME = re.compile(r"^(?!^[0-9]+$)([a-zA-Z0-9-_]+)$")
VERSION_NUMBER = re.compile(r"^[0-9]+$")


def validation_error(value: str, member: str, constraint: str) -> ValidationException:
    """Lambda's constraint-failure text (spec 1.2)."""
    return ValidationException(
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionRef:
    """A function as a caller named it: bare name plus an optional version or alias."""

    name: FunctionName
    qualifier: str | None = None

    @classmethod
    def parse(cls, raw: str, qualifier: str | None = None, *, member: str = "functionName") -> FunctionRef:
        """Parse a name, partial ARN or full ARN; `qualifier` is the separate Qualifier parameter."""
        if len(raw) > 140 or not raw:
            raise validation_error(raw, member, "Member must have length less than or equal to 140")
        m = _FUNCTION_REF.match(raw)
        if m is None:
            raise validation_error(
                raw, member, f"Member must satisfy regular expression pattern: {_FUNCTION_REF_PATTERN_TEXT}"
            )
        name = m.group("name")
        if len(name) > 64 or not _PLAIN_NAME.match(name):
            raise validation_error(raw, member, "Member must satisfy regular expression pattern: [a-zA-Z0-9-_]+")
        derived = m.group("qualifier")
        if qualifier is not None:
            if len(qualifier) > 128 or not _QUALIFIER.match(qualifier):
                raise validation_error(
                    qualifier, "qualifier", r"Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)"
                )
            if derived is not None and derived != qualifier:
                raise InvalidParameterValueException(
                    "The derived qualifier from the function name does not match the specified qualifier."
                )
        chosen = qualifier if qualifier else derived
        return cls(name=FunctionName(name), qualifier=chosen or None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Arns:
    """ARN formatting for one region and account."""

    region: str
    account_id: str

    def function(self, name: str, qualifier: str | None = None) -> str:
        base = f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"
        return f"{base}:{qualifier}" if qualifier else base

    def layer(self, name: str, version: int | None = None) -> str:
        """A layer ARN, or a layer version ARN with `version` (spec 1.4)."""
        base = f"arn:aws:lambda:{self.region}:{self.account_id}:layer:{name}"
        return f"{base}:{version}" if version is not None else base

    def local_function(self, arn: str) -> FunctionRef | None:
        """The function a full function ARN names, if it is one of this region and account
        (optionally qualified); None for anything else."""
        m = _FULL_FUNCTION_ARN.match(arn)
        if m is None or m.group("region") != self.region or m.group("account") != self.account_id:
            return None
        return FunctionRef(name=FunctionName(m.group("name")), qualifier=m.group("qualifier"))

    def parse_function_arn(self, arn: str) -> FunctionRef | None:
        """A function ARN (as a tag resource) → FunctionRef; None if it is not one."""
        m = _FUNCTION_REF.match(arn)
        if m is None or not arn.startswith("arn:"):
            return None
        return FunctionRef(name=FunctionName(m.group("name")), qualifier=m.group("qualifier"))
