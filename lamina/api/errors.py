"""LambdaError → HTTP response in Lambda's rest-json error shape (spec 1.2)."""

from __future__ import annotations

import json
import uuid

from starlette.responses import Response

from lamina.model.errors import LambdaError


def error_response(exc: LambdaError, request_id: str | None = None) -> Response:
    body: dict[str, str] = {"message": exc.message}
    if exc.fault is not None:
        body["Type"] = exc.fault
    # The model spells the member `Message` for some shapes and `message` for others: send both.
    body["Message"] = exc.message
    if exc.reason:
        body["Reason"] = exc.reason
    return Response(
        json.dumps(body),
        status_code=exc.status,
        media_type="application/json",
        headers={"x-amzn-ErrorType": exc.code, "x-amzn-RequestId": request_id or str(uuid.uuid4())},
    )
