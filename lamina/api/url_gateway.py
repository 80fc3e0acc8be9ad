"""Serving function URLs (spec 9): find the URL a request is for, check access, invoke, answer.

A request is for a function URL when its Host is `<url-id>.lambda-url.<region>.localhost[:port]`
(any suffix after `.lambda-url.` is accepted), or when its path starts with `/lambda-url/<url-id>`
(the path form, for clients that cannot set Host; the function sees the rest of the path). Both
forms are always served; `UrlAddressing` says which one the API hands out as `FunctionUrl`.

Order, as Lambda's: CORS preflight (answered here when the URL has CORS settings), then access
(AWS_IAM: a SigV4 signature by Lamina's credentials; NONE: a resource policy letting anyone
invoke the URL), then the invocation through `Invoker`, the same path as a synchronous Invoke
(concurrency, throttling, logs, metrics, the function's timeout).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from starlette.types import Receive, Scope, Send

from lamina.api.sigv4 import SignatureError, SignedRequest, verify
from lamina.api.url_events import (
    IamCaller,
    MalformedResponse,
    UrlReply,
    UrlRequest,
    build_event,
    cors_headers,
    is_preflight,
    map_response,
    preflight,
)
from lamina.functions.policies import Policies
from lamina.functions.urls import FunctionUrls
from lamina.invoke.invoker import Invoker, new_request_id
from lamina.model.errors import LambdaError, TooManyRequestsException
from lamina.model.ids import FunctionName, FunctionRef, RequestId
from lamina.model.invocation import SYNC_PAYLOAD_LIMIT as SYNC_LIMIT
from lamina.model.invocation import InvokeRequest
from lamina.model.urls import FunctionUrlConfig, UrlAuthType

log = logging.getLogger("lamina.urls")
PATH_PREFIX = "/lambda-url/"
_HOST = re.compile(rb"^([a-z0-9]{32})\.lambda-url\.")
_URL_ID = re.compile(r"[a-z0-9]{32}")
_FORBIDDEN = b'{"Message":"Forbidden. For troubleshooting Function URL authorization issues, see: https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html"}'
_JSON = ("content-type", "application/json")


@dataclass(frozen=True, slots=True, kw_only=True)
class UrlAddressing:
    """How function URLs are written for clients of this server."""

    region: str
    host: str  # the address clients reach the server at (loopback when it listens on all)
    port: int
    by_host: bool

    def url(self, url_id: str) -> str:
        if self.by_host:
            return f"http://{self.domain(url_id)}:{self.port}/"
        return f"http://{self.host}:{self.port}{PATH_PREFIX}{url_id}/"

    def domain(self, url_id: str) -> str:
        return f"{url_id}.lambda-url.{self.region}.localhost"


async def localhost_names_resolve(region: str, timeout: float = 1.0) -> bool:
    """Whether `<id>.lambda-url.<region>.localhost` resolves to loopback for this machine's
    resolver (glibc needs nss-myhostname or systemd-resolved for that; browsers and curl resolve
    *.localhost themselves)."""
    name = f"{'0' * 32}.lambda-url.{region}.localhost"
    try:
        infos = await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(name, None, type=socket.SOCK_STREAM), timeout)
    except (OSError, asyncio.TimeoutError):
        return False
    return bool(infos) and all(str(info[4][0]) in ("127.0.0.1", "::1") for info in infos)


def url_target(scope: Mapping[str, Any]) -> tuple[str, str] | None:
    """(url id, the path the function sees) if this request is for a function URL."""
    path: str = scope["path"]
    if path.startswith(PATH_PREFIX):
        url_id, _, rest = path[len(PATH_PREFIX) :].partition("/")
        return (url_id, "/" + rest) if _URL_ID.fullmatch(url_id) else None
    for name, value in scope["headers"]:
        if name == b"host":
            m = _HOST.match(value)
            return (m.group(1).decode(), path) if m else None
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    account_id: str
    region: str


class UrlGateway:
    def __init__(self, *, urls: FunctionUrls, policies: Policies, invoker: Invoker, addressing: UrlAddressing,
                 credentials: Credentials) -> None:  # fmt: skip
        self._urls = urls
        self._policies = policies
        self._invoker = invoker
        self.addressing = addressing
        self._credentials = credentials

    async def serve(self, scope: Scope, receive: Receive, send: Send, url_id: str, path: str) -> None:
        body = await _read_body(receive)
        if body is None:
            return  # the client went away
        reply = await self.answer(scope, url_id, path, body)
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
        headers.append((b"content-length", b"%d" % len(reply.body)))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})

    async def answer(self, scope: Scope, url_id: str, path: str, body: bytes) -> UrlReply:
        config = self._urls.find(url_id)
        if len(body) > SYNC_LIMIT:
            return _too_large()
        if config is None:
            message = f"No function URL {url_id} on this server (deleted, or never created)."
            return UrlReply(status=404, headers=(_JSON,), body=json.dumps({"Message": message}).encode())
        request_id = new_request_id()
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        req = UrlRequest(
            method=scope["method"],
            path=path,
            query=scope["query_string"].decode("latin-1"),
            headers=tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]),
            body=body,
            protocol=f"HTTP/{scope.get('http_version', '1.1')}",
            source_ip=(scope.get("client") or ("127.0.0.1", 0))[0],
            url_id=url_id,
            domain=self.addressing.domain(url_id),
            account_id=self._credentials.account_id,
            request_id=request_id,
            time_ms=int(time.time() * 1000),
        )
        cors = config.cors
        if cors is not None and is_preflight(req):
            return preflight(cors, req)
        denied = self._check_access(config, req, raw_path.decode("latin-1"))
        if isinstance(denied, UrlReply):
            return denied
        reply = await self._invoke(config, replace(req, caller=denied))
        if cors is not None:
            extra = cors_headers(cors, req)
            if extra:
                names = {name for name, _ in extra}
                kept = tuple(h for h in reply.headers if h[0] not in names)
                reply = UrlReply(status=reply.status, headers=(*kept, *extra), body=reply.body)
        return UrlReply(status=reply.status, headers=(*reply.headers, ("x-amzn-requestid", request_id)), body=reply.body)

    def _check_access(self, config: FunctionUrlConfig, req: UrlRequest, raw_path: str) -> UrlReply | IamCaller | None:
        """The caller (AWS_IAM), None (NONE, allowed) or the 403 answer."""
        if config.auth_type is UrlAuthType.NONE:
            if self._policies.allows_public_url(config.function_name, config.qualifier):
                return None
            return _forbidden(
                "the function's resource policy does not let anyone invoke this NONE-auth URL: add-permission "
                "--action lambda:InvokeFunctionUrl --principal '*' --function-url-auth-type NONE"
            )
        c = self._credentials
        try:
            key = verify(
                SignedRequest(method=req.method, path=raw_path, query=req.query, headers=req.headers, body=req.body),
                access_key_id=c.access_key_id, secret_access_key=c.secret_access_key, region=c.region,
            )  # fmt: skip
        except SignatureError as exc:
            return _forbidden(str(exc))
        return IamCaller(access_key=key, account_id=c.account_id)

    async def _invoke(self, config: FunctionUrlConfig, req: UrlRequest) -> UrlReply:
        payload = json.dumps(build_event(req)).encode()
        if len(payload) > SYNC_LIMIT:
            return _too_large()
        ref = FunctionRef(name=FunctionName(config.function_name), qualifier=config.qualifier)
        try:
            result = await self._invoker.invoke(
                InvokeRequest(ref=ref, payload=payload, trace_id=req.header("x-amzn-trace-id")), RequestId(req.request_id)
            )
        except TooManyRequestsException:
            return UrlReply(status=429, headers=(_JSON,), body=b'{"Message":"Rate Exceeded."}')
        except LambdaError as exc:
            return UrlReply(status=exc.status, headers=(_JSON,), body=json.dumps({"Message": exc.message}).encode())
        if result.failed:
            return _bad_gateway()
        try:
            return map_response(result.payload)
        except MalformedResponse as exc:
            log.warning("function URL of %s: unusable response (%s); answered 502", config.function_name, exc)
            return _bad_gateway()


def _forbidden(reason: str) -> UrlReply:
    # Lambda's body, word for word; why, in a header of Lamina's own.
    return UrlReply(status=403, headers=(_JSON, ("x-amzn-errortype", "AccessDeniedException"), ("x-lamina-reason", reason)),
                    body=_FORBIDDEN)  # fmt: skip


def _too_large() -> UrlReply:
    message = f"Request must be smaller than {SYNC_LIMIT} bytes for the InvokeFunction operation"
    return UrlReply(status=413, headers=(_JSON,), body=json.dumps({"Message": message}).encode())


def _bad_gateway() -> UrlReply:
    return UrlReply(status=502, headers=(_JSON,), body=b'{"Message":"Internal Server Error"}')


async def _read_body(receive: Receive) -> bytes | None:
    """The body, or None if the client left; past Lambda's limit only one byte more is kept
    (the answer is 413 then, and a huge upload must not fill memory)."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk: bytes = message.get("body", b"")
        if size <= SYNC_LIMIT:
            chunks.append(chunk[: SYNC_LIMIT + 1 - size])
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
