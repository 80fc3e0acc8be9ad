"""LambdaError: one class per wire error type, each with its HTTP status (spec 1.2, 3.2).

Raised anywhere below the API; `api.errors` turns them into Lambda's rest-json error shape.
"""

from __future__ import annotations


class LambdaError(Exception):
    """An error the Lambda API reports to the caller. `code` is the x-amzn-ErrorType."""

    code: str = "ServiceException"
    status: int = 500
    # "User" for client faults; botocore ignores it but AWS sends it (spec 1.2).
    fault: str | None = "Service"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


class ServiceException(LambdaError):
    pass


class _UserError(LambdaError):
    fault = "User"


class InvalidParameterValueException(_UserError):
    code, status = "InvalidParameterValueException", 400


class ValidationException(LambdaError):
    # Constraint failures: unmodeled, and AWS sends no Type (spec 12).
    code, status, fault = "ValidationException", 400, None


class ResourceNotFoundException(_UserError):
    code, status = "ResourceNotFoundException", 404


class ResourceConflictException(_UserError):
    code, status = "ResourceConflictException", 409


class PreconditionFailedException(_UserError):
    code, status = "PreconditionFailedException", 412


class TooManyRequestsException(_UserError):
    code, status = "TooManyRequestsException", 429


class RequestEntityTooLargeException(_UserError):
    code, status = "RequestEntityTooLargeException", 413


class InvalidRequestContentException(_UserError):
    code, status = "InvalidRequestContentException", 400


class UnsupportedMediaTypeException(_UserError):
    code, status = "UnsupportedMediaTypeException", 415


class ProvisionedConcurrencyConfigNotFoundException(_UserError):
    code, status = "ProvisionedConcurrencyConfigNotFoundException", 404


class InvalidRuntimeException(LambdaError):
    # Invoke: "The runtime or runtime version specified is not supported" (botocore model: 502).
    code, status = "InvalidRuntimeException", 502
