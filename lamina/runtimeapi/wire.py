"""Paths, header names, size limits and error-type strings of the Runtime API (spec 4)."""

from __future__ import annotations

import re

PREFIX = "/2018-06-01/runtime"
NEXT = f"{PREFIX}/invocation/next"
INVOCATION = f"{PREFIX}/invocation/"
INIT_ERROR = f"{PREFIX}/init/error"

# The Extensions API (spec 4.7), on the same listener.
EXT_PREFIX = "/2020-01-01/extension"
EXT_REGISTER = f"{EXT_PREFIX}/register"
EXT_NEXT = f"{EXT_PREFIX}/event/next"
EXT_INIT_ERROR = f"{EXT_PREFIX}/init/error"
EXT_EXIT_ERROR = f"{EXT_PREFIX}/exit/error"
H_EXT_IDENTIFIER = "Lambda-Extension-Identifier"
H_EXT_EVENT_IDENTIFIER = "Lambda-Extension-Event-Identifier"
H_EXT_NAME_LC = b"lambda-extension-name"
H_EXT_IDENTIFIER_LC = b"lambda-extension-identifier"
H_EXT_ACCEPT_FEATURE_LC = b"lambda-extension-accept-feature"
H_EXT_ERROR_TYPE_LC = b"lambda-extension-function-error-type"

H_REQUEST_ID = "Lambda-Runtime-Aws-Request-Id"
H_DEADLINE = "Lambda-Runtime-Deadline-Ms"
H_FUNCTION_ARN = "Lambda-Runtime-Invoked-Function-Arn"
H_TRACE_ID = "Lambda-Runtime-Trace-Id"
H_CLIENT_CONTEXT = "Lambda-Runtime-Client-Context"
# Header names arrive lower-cased from the parser (clients send any case; spec 4).
H_ERROR_TYPE_LC = b"lambda-runtime-function-error-type"
H_CONTENT_TYPE_LC = b"content-type"
H_RESPONSE_MODE_LC = b"lambda-runtime-function-response-mode"

# 6 MiB + 100 bytes (spec 4.3, 11).
MAX_RESPONSE_BYTES = 6_291_556

ERROR_CAUSE_CONTENT_TYPE = "application/vnd.aws.lambda.error.cause+json"
_VALID_ERROR_TYPE = re.compile(r"^(Runtime|Function)\.[A-Z][a-zA-Z]+$")


def normalise_error_type(header: str) -> str:
    """RIE's rule: keep `Runtime.X`/`Function.X`, else map to `<Category>.Unknown` (spec 4.3)."""
    if _VALID_ERROR_TYPE.match(header):
        return header
    return "Function.Unknown" if header.startswith("Function") else "Runtime.Unknown"
