"""SigV4 verification of requests to AWS_IAM function URLs, with botocore's own signer.

The request is rebuilt from what the client signed (its method, path, query, the headers named in
SignedHeaders, the body or its declared hash) and signed again with Lamina's credentials for the
scope the client named; the signatures must match. Only the Authorization-header form is
accepted (not presigned query strings). Failures raise `SignatureError` with the reason.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

# Lambda, like every AWS service, refuses a signature more than 15 minutes off its clock.
MAX_SKEW_S = 15 * 60
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<key>[^/\s]+)/(?P<date>\d{8})/(?P<region>[^/\s]+)/(?P<service>[^/\s]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)


class SignatureError(Exception):
    """The request is not signed, or not signed by Lamina's credentials; the text says why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedRequest:
    """What a signature covers, as received."""

    method: str
    path: str  # raw (percent-encoded) path
    query: str
    headers: tuple[tuple[str, str], ...]  # names lower-case
    body: bytes


class _Verifier(SigV4Auth):  # type: ignore[misc]  # botocore is untyped
    """botocore's signer, restricted to the headers the client signed."""

    def __init__(self, credentials: Credentials, region: str, signed: list[str]) -> None:
        super().__init__(credentials, "lambda", region)
        self._signed = signed

    def headers_to_sign(self, request: Any) -> Any:
        found = HTTPHeaders()
        for name in self._signed:
            value = request.headers.get(name)
            if value is not None:
                found[name] = value
        return found


def verify(req: SignedRequest, *, access_key_id: str, secret_access_key: str, region: str, now: float | None = None) -> str:
    """Check `req`'s signature; return the access key id that signed it."""
    if not access_key_id or not secret_access_key:
        raise SignatureError(
            "Lamina has no credentials to check signatures with: set LAMINA_ACCESS_KEY_ID and LAMINA_SECRET_ACCESS_KEY"
        )
    headers: dict[str, list[str]] = {}
    for name, value in req.headers:
        headers.setdefault(name, []).append(value)
    auth = headers.get("authorization")
    if auth is None:
        raise SignatureError("the request is not signed: an AWS_IAM function URL needs a SigV4 Authorization header")
    m = _AUTHORIZATION.match(auth[0].strip())
    if m is None:
        raise SignatureError("the Authorization header is not a SigV4 (AWS4-HMAC-SHA256) signature")
    if not hmac.compare_digest(m["key"], access_key_id):
        raise SignatureError(f"the access key {m['key']} is not Lamina's (LAMINA_ACCESS_KEY_ID)")
    if m["service"] != "lambda" or m["region"] != region:
        raise SignatureError(f"the signature is for {m['service']} in {m['region']}; sign for lambda in {region}")
    stamp = (headers.get("x-amz-date") or [""])[0]
    try:
        signed_at = calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        raise SignatureError("the request has no valid X-Amz-Date header") from None
    if abs((time.time() if now is None else now) - signed_at) > MAX_SKEW_S or stamp[:8] != m["date"]:
        raise SignatureError(f"the signature's date {stamp} is more than 15 minutes from the server's time")
    signed = m["signed"].split(";")
    request = AWSRequest(
        method=req.method,
        url=f"http://{(headers.get('host') or ['localhost'])[0]}{req.path}" + (f"?{req.query}" if req.query else ""),
        headers={name: ",".join(values) for name, values in headers.items() if name in signed},
        data=req.body,
    )
    request.context["timestamp"] = stamp
    digest = hashlib.sha256(req.body).hexdigest()
    declared = headers["x-amz-content-sha256"][0] if "x-amz-content-sha256" in headers else None
    if declared is None:
        request.headers["X-Amz-Content-SHA256"] = digest
    elif declared not in (digest, "UNSIGNED-PAYLOAD"):
        raise SignatureError("the X-Amz-Content-SHA256 header does not match the body's SHA-256")
    verifier = _Verifier(Credentials(access_key_id, secret_access_key), region, signed)
    expected = verifier.signature(verifier.string_to_sign(request, verifier.canonical_request(request)), request)
    if not hmac.compare_digest(expected, m["signature"]):
        raise SignatureError(
            "the request signature does not match: sign it with Lamina's credentials (LAMINA_SECRET_ACCESS_KEY), "
            "the service lambda and the URL exactly as sent"
        )
    return str(m["key"])
