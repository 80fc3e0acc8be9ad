"""Lambda's parameter rules and messages for functions (spec 1.4, 2.1, 2.3) → LambdaError."""

from __future__ import annotations

import json
import re

from lamina.model.errors import InvalidParameterValueException, PreconditionFailedException
from lamina.model.function import LogFormat, LogLevel
from lamina.model.ids import validation_error
from lamina.runtimes.catalog import LAMBDA_RUNTIMES
from lamina.runtimes.lifecycle import RuntimeCalendar, RuntimePhase, blocked_message

_NAME = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")
_ROLE = re.compile(r"^arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")
_HANDLER = re.compile(r"^[^\s]+$")
_ENV_KEY = re.compile(r"^[a-zA-Z]([a-zA-Z0-9_])+$")
_TAG_KEY = re.compile(r"^[\w\s.:/=+\-@]{1,128}$", re.UNICODE)
ENV_LIMIT = 4096

# Keys Lambda sets itself and refuses in configuration (spec 5.3).
RESERVED_ENV_KEYS = frozenset(
    {
        "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
    }
)  # fmt: skip


def function_name(name: str) -> None:
    if not _NAME.match(name):
        raise validation_error(name, "functionName", "Member must satisfy regular expression pattern: [a-zA-Z0-9-_]+")


def role(value: str) -> None:
    if not _ROLE.match(value):
        raise validation_error(
            value, "role", r"Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+"
        )


def runtime(value: str, available: list[str], calendar: RuntimeCalendar, *, creating: bool) -> None:
    """A runtime a create (or an update, `creating=False`) may set: one Lambda knows, not blocked
    for that operation on the calendar's today (spec 10), and installed here."""
    if value not in LAMBDA_RUNTIMES:
        raise InvalidParameterValueException(
            f"Value {value} at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: "
            f"[{', '.join(LAMBDA_RUNTIMES)}] or be a valid ARN"
        )
    runtime_updatable(value, calendar, creating=creating)
    if value not in available:
        raise InvalidParameterValueException(
            f"The runtime parameter of {value} is not available on this Lamina host. "
            f"Runtimes available here: {', '.join(available)}."
        )


def runtime_updatable(value: str, calendar: RuntimeCalendar, *, creating: bool = False) -> None:
    """Lambda's refusal once a runtime reaches its block-create (or block-update) date."""
    blocked_from = RuntimePhase.CREATE_BLOCKED if creating else RuntimePhase.UPDATE_BLOCKED
    if calendar.phase(value).rank >= blocked_from.rank:
        raise InvalidParameterValueException(blocked_message(value))


def handler(value: str | None) -> None:
    if value is None:
        raise InvalidParameterValueException("Handler is required when Runtime is specified for a Zip package.")
    if len(value) > 128:
        raise validation_error(value, "handler", "Member must have length less than or equal to 128")
    if not _HANDLER.match(value):
        raise validation_error(value, "handler", r"Member must satisfy regular expression pattern: [^\s]+")


def memory_size(value: int) -> None:
    if value < 128:
        raise validation_error(str(value), "memorySize", "Member must have value greater than or equal to 128")
    if value > 10240:
        raise validation_error(str(value), "memorySize", "Member must have value less than or equal to 10240")


def timeout(value: int) -> None:
    if value < 1:
        raise validation_error(str(value), "timeout", "Member must have value greater than or equal to 1")
    if value > 900:
        raise validation_error(str(value), "timeout", "Member must have value less than or equal to 900")


def description(value: str) -> None:
    if len(value) > 256:
        raise validation_error(value, "description", "Member must have length less than or equal to 256")


def ephemeral_storage(value: int) -> None:
    if not 512 <= value <= 10240:
        raise validation_error(
            str(value), "ephemeralStorage.size", "Member must have value between 512 and 10240"
        )


def architectures(values: tuple[str, ...]) -> None:
    if len(values) != 1:
        raise validation_error(str(list(values)), "architectures", "Member must have length less than or equal to 1")
    if values[0] not in ("x86_64", "arm64"):
        raise validation_error(values[0], "architectures", "Member must satisfy enum value set: [x86_64, arm64]")


def environment(variables: dict[str, str]) -> None:
    for key in variables:
        if not _ENV_KEY.match(key):
            raise validation_error(
                key, "environment.variables", "Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+"
            )
    reserved = sorted(k for k in variables if k in RESERVED_ENV_KEYS)
    if reserved:
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the environment variables you have "
            "provided contains reserved keys that are currently not supported for modification. "
            f"Reserved keys used in this request: {','.join(reserved)}"
        )
    measured = json.dumps(variables, separators=(",", ":"))
    if len(measured.encode()) > ENV_LIMIT:
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the environment variables you have "
            f"provided exceeded the 4KB limit. String measured: {measured}"
        )


def log_levels(fmt: LogFormat, application: LogLevel | None, system: LogLevel | None) -> None:
    """Log levels filter only JSON logs: Lambda refuses them with the Text format."""
    if fmt is LogFormat.TEXT and (application is not None or system is not None):
        raise InvalidParameterValueException(
            'LogLevel is not supported when LogFormat is set to "Text". Remove LogLevel from your request '
            'or change the LogFormat to "JSON" and try again.'
        )


NETWORK_TAG = "lamina:network"
NETWORK_MODES = ("none", "outbound")


def tags(values: dict[str, str]) -> None:
    if NETWORK_TAG in values and values[NETWORK_TAG] not in NETWORK_MODES:
        raise InvalidParameterValueException(
            f"The tag {NETWORK_TAG} sets the function's network in Lamina's sandboxes: "
            f"use one of {', '.join(NETWORK_MODES)}, not {values[NETWORK_TAG]!r}."
        )
    for key, value in values.items():
        if not _TAG_KEY.match(key) or key.lower().startswith("aws:"):
            raise InvalidParameterValueException(f"Invalid tag key: {key}")
        if len(value) > 256:
            raise InvalidParameterValueException(f"Invalid tag value for key {key}: longer than 256 characters")


# --- asynchronous invocation (spec 2.2 *EventInvokeConfig rows, 7) -----------------------------

# The constraint on DestinationConfig ARNs, as AWS reports it (observed in AWS-recorded
# responses); `$` stands for the empty string.
DESTINATION_PATTERN_TEXT = (
    r"$|kafka://([^.]([a-zA-Z0-9\-_.]{0,248}))|arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\-])+:"
    r"((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1})?:(\d{12})?:(.*)"
)
_DESTINATION = re.compile(f"^(?:{DESTINATION_PATTERN_TEXT})$", re.DOTALL)
# DeadLetterConfig.TargetArn's constraint.
DEAD_LETTER_PATTERN_TEXT = r"(arn:(aws[a-zA-Z-]*)?:[a-z0-9-.]+:.*)|()"
_DEAD_LETTER = re.compile(f"^(?:{DEAD_LETTER_PATTERN_TEXT})$", re.DOTALL)
# Services Lambda delivers to that Lamina does not have: their ARNs are well formed, but only a
# Lamina function can receive here.
FOREIGN_TARGETS = {"sqs": "an Amazon SQS queue", "sns": "an Amazon SNS topic", "events": "an EventBridge bus",
                   "s3": "an Amazon S3 bucket"}  # fmt: skip


def maximum_retry_attempts(value: int) -> None:
    if value < 0:
        raise validation_error(str(value), "maximumRetryAttempts", "Member must have value greater than or equal to 0")
    if value > 2:
        raise validation_error(str(value), "maximumRetryAttempts", "Member must have value less than or equal to 2")


def maximum_event_age(value: int) -> None:
    if value < 60:
        raise validation_error(str(value), "maximumEventAgeInSeconds", "Member must have value greater than or equal to 60")
    if value > 21600:
        raise validation_error(str(value), "maximumEventAgeInSeconds", "Member must have value less than or equal to 21600")


def destination_shape(arn: str, member: str) -> None:
    """The request-level pattern check (ValidationException, as AWS's front end answers)."""
    if not _DESTINATION.match(arn):
        raise validation_error(arn, member, f"Member must satisfy regular expression pattern: {DESTINATION_PATTERN_TEXT}")


def dead_letter_shape(arn: str) -> None:
    if not _DEAD_LETTER.match(arn):
        raise validation_error(arn, "deadLetterConfig.targetArn", f"Member must satisfy regular expression pattern: {DEAD_LETTER_PATTERN_TEXT}")


def arn_service(arn: str) -> str:
    """The service part of an ARN ("lambda", "sqs", ...); "" if `arn` has none."""
    parts = arn.split(":", 3)
    return parts[2] if len(parts) > 2 and parts[0] == "arn" else ""


def revision(given: str | None, current: str | None, *, api: str = "GetFunction/GetAlias") -> None:
    """RevisionId preconditions (spec 2.3): a given id must be the current one; `api` is the call
    the message sends the caller to for the current id."""
    if given is not None and given != current:
        raise PreconditionFailedException(
            f"The Revision Id provided does not match the latest Revision Id. Call the {api} API to retrieve the latest "
            "Revision Id"
        )
