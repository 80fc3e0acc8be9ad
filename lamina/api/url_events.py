"""HTTP request ↔ function URL payload format 2.0 (spec 9): pure mapping, no I/O.

`build_event` turns a request into the event Lambda sends for a function URL; `map_response`
turns what the function returned into the HTTP answer, as Lambda maps it; `preflight` and
`cors_headers` apply a URL's CORS settings. The gateway (`url_gateway.py`) does the I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from lamina.model.urls import Cors

# Bodies of these types reach the function as text; anything else is base64 (isBase64Encoded).
_TEXT_TYPES = ("text/", "application/json", "application/javascript", "application/xml",
               "application/x-www-form-urlencoded", "application/ecmascript", "application/graphql")  # fmt: skip
_TEXT_SUFFIXES = ("+json", "+xml")
_PREFLIGHT_MAX_AGE_DEFAULT = 0
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


@dataclass(frozen=True, slots=True, kw_only=True)
class IamCaller:
    """Who signed an AWS_IAM request (requestContext.authorizer.iam)."""

    access_key: str
    account_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UrlRequest:
    """One HTTP request to a function URL, as received (headers in wire order, names lower-case)."""

    method: str
    path: str  # the path the function sees (after the path-form prefix, if any)
    query: str  # raw query string, without '?'
    headers: tuple[tuple[str, str], ...]
    body: bytes
    protocol: str  # "HTTP/1.1"
    source_ip: str
    url_id: str
    domain: str  # <url-id>.lambda-url.<region>.<suffix>
    account_id: str
    request_id: str
    time_ms: int
    caller: IamCaller | None = None  # AWS_IAM only

    def header(self, name: str) -> str | None:
        """The values of header `name` (lower-case), comma-joined; None if absent."""
        values = [v for k, v in self.headers if k == name]
        return ",".join(values) if values else None


@dataclass(frozen=True, slots=True, kw_only=True)
class UrlReply:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


class MalformedResponse(Exception):
    """What the function returned cannot be mapped to an HTTP response (Lambda answers 502)."""


def build_event(req: UrlRequest) -> dict[str, Any]:
    """The payload format 2.0 event for `req`. Headers are comma-joined per name; the Cookie
    header becomes `cookies`; empty query, cookies and body are left out, as Lambda does."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in req.headers:
        if name == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
        elif name in headers:
            headers[name] += "," + value
        else:
            headers[name] = value
    headers.setdefault("x-forwarded-for", req.source_ip)
    headers.setdefault("x-forwarded-proto", "http")
    context: dict[str, Any] = {
        "accountId": "anonymous" if req.caller is None else req.account_id,
        "apiId": req.url_id,
        "authentication": None,
        "authorizer": None if req.caller is None else {"iam": _iam(req.caller)},
        "domainName": req.domain,
        "domainPrefix": req.url_id,
        "http": {
            "method": req.method,
            "path": req.path,
            "protocol": req.protocol,
            "sourceIp": req.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": req.request_id,
        "routeKey": "$default",
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(req.time_ms / 1000)),
        "timeEpoch": req.time_ms,
    }
    event: dict[str, Any] = {"version": "2.0", "routeKey": "$default", "rawPath": req.path, "rawQueryString": req.query}
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if req.query:
        params: dict[str, str] = {}
        for key, value in parse_qsl(req.query, keep_blank_values=True):
            params[key] = f"{params[key]},{value}" if key in params else value
        event["queryStringParameters"] = params
    event["requestContext"] = context
    if req.body:
        text = _as_text(req.body, headers.get("content-type"))
        event["body"] = text if text is not None else base64.b64encode(req.body).decode()
        event["isBase64Encoded"] = text is None
    else:
        event["isBase64Encoded"] = False
    return event


def _iam(caller: IamCaller) -> dict[str, Any]:
    # Lamina has one identity, the account's own (its configured credentials): the root user.
    return {
        "accessKey": caller.access_key,
        "accountId": caller.account_id,
        "callerId": caller.account_id,
        "cognitoIdentity": None,
        "principalOrgId": None,
        "userArn": f"arn:aws:iam::{caller.account_id}:root",
        "userId": caller.account_id,
    }


def _as_text(body: bytes, content_type: str | None) -> str | None:
    """The body as text if its type is textual and it is valid UTF-8; None means base64."""
    if content_type is None:
        return None
    kind = content_type.split(";", 1)[0].strip().lower()
    if not (kind.startswith(_TEXT_TYPES) or kind.endswith(_TEXT_SUFFIXES)):
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def map_response(payload: bytes) -> UrlReply:
    """What the function returned → the HTTP answer (spec 9): an object with statusCode gives its
    status, headers, cookies and body; any other JSON value is a 200 with that JSON as the body."""
    try:
        doc = json.loads(payload) if payload else None
    except ValueError:
        return UrlReply(status=200, headers=(("content-type", "application/json"),), body=payload)
    if not isinstance(doc, dict) or "statusCode" not in doc:
        return UrlReply(status=200, headers=(("content-type", "application/json"),), body=payload)
    status = doc["statusCode"]
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise MalformedResponse(f"statusCode {status!r} is not an HTTP status")
    headers: list[tuple[str, str]] = []
    raw_headers = doc.get("headers")
    raw_headers = {} if raw_headers is None else raw_headers
    cookies = doc.get("cookies")
    cookies = [] if cookies is None else cookies
    if not isinstance(raw_headers, dict) or not isinstance(cookies, list):
        raise MalformedResponse("headers must be an object and cookies a list")
    for name, value in raw_headers.items():
        headers.append(_header(str(name), _header_value(value)))
    if not any(name == "content-type" for name, _ in headers):
        headers.append(("content-type", "application/json"))
    for cookie in cookies:
        headers.append(_header("set-cookie", str(cookie)))
    return UrlReply(status=status, headers=tuple(headers), body=_body(doc.get("body"), doc.get("isBase64Encoded") is True))


def _header(name: str, value: str) -> tuple[str, str]:
    """A header the function set, if HTTP can carry it (no header splitting, latin-1 only)."""
    if not _TOKEN.fullmatch(name) or not _FIELD_VALUE.fullmatch(value):
        raise MalformedResponse(f"header {name!r} cannot be sent over HTTP")
    return name.lower(), value


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def _body(body: Any, encoded: bool) -> bytes:
    if body is None:
        return b""
    if not isinstance(body, str):
        return json.dumps(body).encode()
    if encoded:
        try:
            return base64.b64decode(body, validate=True)
        except binascii.Error as exc:
            raise MalformedResponse("body is not valid base64 though isBase64Encoded is true") from exc
    return body.encode()


# --- CORS ------------------------------------------------------------------------------------


def _origin_allowed(cors: Cors, origin: str) -> bool:
    origins = cors.allow_origins or ()
    return "*" in origins or origin in origins


def is_preflight(req: UrlRequest) -> bool:
    return req.method == "OPTIONS" and req.header("origin") is not None and req.header("access-control-request-method") is not None


def preflight(cors: Cors, req: UrlRequest) -> UrlReply:
    """Lambda answers a CORS preflight itself when the URL has CORS settings; a disallowed origin
    or method gets the answer without CORS headers, which the browser reads as a refusal."""
    origin = req.header("origin") or ""
    method = (req.header("access-control-request-method") or "").upper()
    methods = [m.upper() for m in cors.allow_methods or ()]
    headers: list[tuple[str, str]] = []
    if _origin_allowed(cors, origin) and ("*" in methods or method in methods):
        headers += _allow_origin(cors, origin)
        headers.append(("access-control-allow-methods", ",".join(methods)))
        if cors.allow_headers:
            headers.append(("access-control-allow-headers", ",".join(cors.allow_headers)))
        headers.append(("access-control-max-age", str(cors.max_age or _PREFLIGHT_MAX_AGE_DEFAULT)))
    return UrlReply(status=200, headers=tuple(headers), body=b"")


def cors_headers(cors: Cors, req: UrlRequest) -> list[tuple[str, str]]:
    """Headers an actual (non-preflight) cross-origin request's answer gets; they replace any
    CORS headers the function set, as Lambda's do."""
    origin = req.header("origin")
    if origin is None or not _origin_allowed(cors, origin):
        return []
    headers = _allow_origin(cors, origin)
    if cors.expose_headers:
        headers.append(("access-control-expose-headers", ",".join(cors.expose_headers)))
    return headers


def _allow_origin(cors: Cors, origin: str) -> list[tuple[str, str]]:
    # A wildcard answers "*" unless credentials are allowed, which browsers refuse with "*".
    wildcard = "*" in (cors.allow_origins or ()) and not cors.allow_credentials
    headers = [("access-control-allow-origin", "*" if wildcard else origin)]
    if cors.allow_credentials:
        headers.append(("access-control-allow-credentials", "true"))
    if not wildcard:
        headers.append(("vary", "Origin"))
    return headers
