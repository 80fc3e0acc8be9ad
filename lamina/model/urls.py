"""Function URLs and resource-based policies as typed values (spec 2.2, 9)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class UrlAuthType(enum.Enum):
    NONE = "NONE"
    AWS_IAM = "AWS_IAM"


class InvokeMode(enum.Enum):
    BUFFERED = "BUFFERED"
    RESPONSE_STREAM = "RESPONSE_STREAM"


@dataclass(frozen=True, slots=True, kw_only=True)
class Cors:
    """A function URL's CORS settings; None = not given (Lambda omits it from responses)."""

    allow_credentials: bool | None = None
    allow_headers: tuple[str, ...] | None = None
    allow_methods: tuple[str, ...] | None = None
    allow_origins: tuple[str, ...] | None = None
    expose_headers: tuple[str, ...] | None = None
    max_age: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionUrlConfig:
    """One function URL: of $LATEST (qualifier None) or of an alias."""

    function_name: str
    qualifier: str | None
    url_id: str  # 32 lower-case alphanumerics; the URL's host label
    auth_type: UrlAuthType
    cors: Cors | None
    invoke_mode: InvokeMode
    creation_time: str
    last_modified_time: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UrlConfigChanges:
    """Create/UpdateFunctionUrlConfig's body; None = not given (Update keeps the current value)."""

    auth_type: UrlAuthType | None = None
    cors: Cors | None = None
    invoke_mode: InvokeMode | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PermissionInput:
    """AddPermission's request, as given."""

    statement_id: str
    action: str
    principal: str
    source_arn: str | None = None
    source_account: str | None = None
    principal_org_id: str | None = None
    event_source_token: str | None = None
    url_auth_type: UrlAuthType | None = None
    invoked_via_function_url: bool | None = None
    revision_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyStatement:
    """One statement of a function's (or alias's, or version's) resource-based policy, as Lambda
    renders it: principal and conditions already in IAM's form."""

    sid: str
    action: str
    principal: str | dict[str, str]  # "*" or {"Service": ...} / {"AWS": ...}
    resource: str
    conditions: dict[str, dict[str, str]]  # {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}}

    def allows_public_url(self) -> bool:
        """Whether it lets anyone call a NONE-auth function URL (what Lambda checks, spec 9)."""
        auth = self.conditions.get("StringEquals", {}).get("lambda:FunctionUrlAuthType", UrlAuthType.NONE.value)
        return self.principal == "*" and self.action in ("lambda:InvokeFunctionUrl", "lambda:*", "*") and auth == "NONE"


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """The resource-based policy of a function, version or alias: its statements in order."""

    function_name: str
    qualifier: str | None
    statements: tuple[PolicyStatement, ...]
    revision_id: str
