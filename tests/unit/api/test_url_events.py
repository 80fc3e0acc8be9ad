"""The pure mapping of function URL requests and responses (payload format 2.0, spec 9)."""

from __future__ import annotations

import base64
import json

import pytest

from lamina.api.url_events import (
    IamCaller,
    MalformedResponse,
    UrlRequest,
    build_event,
    cors_headers,
    is_preflight,
    map_response,
    preflight,
)
from lamina.model.urls import Cors

URL_ID = "a" * 32


def request(**overrides: object) -> UrlRequest:
    fields: dict[str, object] = dict(
        method="GET", path="/p", query="", headers=(("host", "h"),), body=b"", protocol="HTTP/1.1",
        source_ip="10.0.0.1", url_id=URL_ID, domain=f"{URL_ID}.lambda-url.us-east-1.localhost",
        account_id="000000000000", request_id="rid", time_ms=1583348638390,
    )  # fmt: skip
    fields.update(overrides)
    return UrlRequest(**fields)  # type: ignore[arg-type]


def test_event_of_a_plain_get_leaves_out_what_is_empty() -> None:
    event = build_event(request())
    assert "cookies" not in event and "queryStringParameters" not in event and "body" not in event
    assert event["isBase64Encoded"] is False and event["rawQueryString"] == "" and event["rawPath"] == "/p"
    ctx = event["requestContext"]
    assert ctx["time"] == "04/Mar/2020:19:03:58 +0000" and ctx["timeEpoch"] == 1583348638390
    assert ctx["accountId"] == "anonymous" and ctx["authorizer"] is None and ctx["domainPrefix"] == URL_ID
    assert ctx["http"] == {"method": "GET", "path": "/p", "protocol": "HTTP/1.1", "sourceIp": "10.0.0.1", "userAgent": ""}
    assert event["headers"]["x-forwarded-for"] == "10.0.0.1"


def test_repeated_headers_and_query_values_are_comma_joined_and_cookies_split_out() -> None:
    req = request(
        query="a=1&a=2&b=x%20y&empty=",
        headers=(("x-multi", "v1"), ("cookie", "c1=v1; c2=v2"), ("x-multi", "v2"), ("user-agent", "ua")),
    )
    event = build_event(req)
    assert event["headers"]["x-multi"] == "v1,v2" and "cookie" not in event["headers"]
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x y", "empty": ""}
    assert event["rawQueryString"] == "a=1&a=2&b=x%20y&empty="
    assert event["requestContext"]["http"]["userAgent"] == "ua"


@pytest.mark.parametrize(
    ("content_type", "body", "encoded"),
    [
        ("application/json", b'{"a": 1}', False),
        ("text/plain; charset=utf-8", "héllo".encode(), False),
        ("application/vnd.api+json", b"{}", False),
        ("application/octet-stream", b"\x00\x01", True),
        ("text/plain", b"\xff\xfe", True),  # not UTF-8: base64 after all
        (None, b"abc", True),
    ],
)
def test_binary_bodies_are_base64(content_type: str | None, body: bytes, encoded: bool) -> None:
    headers = (("content-type", content_type),) if content_type else ()
    event = build_event(request(method="POST", body=body, headers=headers))
    assert event["isBase64Encoded"] is encoded
    assert (base64.b64decode(event["body"]) if encoded else event["body"].encode()) == body


def test_iam_caller_fills_the_authorizer() -> None:
    event = build_event(request(caller=IamCaller(access_key="AKID", account_id="000000000000")))
    assert event["requestContext"]["accountId"] == "000000000000"
    assert event["requestContext"]["authorizer"]["iam"]["accessKey"] == "AKID"
    assert event["requestContext"]["authorizer"]["iam"]["userArn"] == "arn:aws:iam::000000000000:root"


def test_bare_values_are_json_200s() -> None:
    for payload in (b'"Hello"', b"42", b'{"a": 1}', b"null", b"[1]"):
        reply = map_response(payload)
        assert (reply.status, reply.body, reply.headers) == (200, payload, (("content-type", "application/json"),))


def test_an_object_with_status_code_is_an_http_response() -> None:
    reply = map_response(json.dumps({
        "statusCode": 302, "headers": {"Location": "/x", "X-N": 5}, "cookies": ["a=1", "b=2"], "body": "moved",
    }).encode())  # fmt: skip
    assert reply.status == 302 and reply.body == b"moved"
    assert reply.headers == (("location", "/x"), ("x-n", "5"), ("content-type", "application/json"),
                             ("set-cookie", "a=1"), ("set-cookie", "b=2"))  # fmt: skip
    binary = map_response(json.dumps({"statusCode": 200, "isBase64Encoded": True, "body": "AAH/"}).encode())
    assert binary.body == b"\x00\x01\xff"
    assert map_response(b'{"statusCode": 204}').body == b""


@pytest.mark.parametrize("payload", [b'{"statusCode": "abc"}', b'{"statusCode": 99}', b'{"statusCode": 200, "headers": []}',
                                     b'{"statusCode": 200, "isBase64Encoded": true, "body": "***"}',
                                     b'{"statusCode": 200, "headers": {"x": "a\\r\\nset-cookie: evil=1"}}',
                                     b'{"statusCode": 200, "headers": {"bad name": "v"}}',
                                     b'{"statusCode": 200, "headers": {"x": "trailing\\n"}}',
                                     b'{"statusCode": 200, "cookies": ["\\u2603=1"]}'])  # fmt: skip
def test_unusable_responses_are_refused(payload: bytes) -> None:
    with pytest.raises(MalformedResponse):
        map_response(payload)


CORS = Cors(allow_origins=("https://a.example",), allow_methods=("GET", "POST"), allow_headers=("x-h",),
            expose_headers=("x-e",), max_age=60, allow_credentials=True)  # fmt: skip


def test_preflight_follows_the_config() -> None:
    req = request(method="OPTIONS", headers=(("origin", "https://a.example"), ("access-control-request-method", "POST")))
    assert is_preflight(req)
    reply = preflight(CORS, req)
    assert dict(reply.headers) == {
        "access-control-allow-origin": "https://a.example", "access-control-allow-credentials": "true", "vary": "Origin",
        "access-control-allow-methods": "GET,POST", "access-control-allow-headers": "x-h", "access-control-max-age": "60",
    }  # fmt: skip
    wrong_method = request(method="OPTIONS", headers=(("origin", "https://a.example"), ("access-control-request-method", "PUT")))
    assert preflight(CORS, wrong_method).headers == ()
    assert not is_preflight(request(method="OPTIONS"))


def test_cors_headers_of_actual_requests() -> None:
    assert cors_headers(CORS, request(headers=(("origin", "https://b.example"),))) == []
    assert ("access-control-expose-headers", "x-e") in cors_headers(CORS, request(headers=(("origin", "https://a.example"),)))
    anyone = Cors(allow_origins=("*",))
    assert cors_headers(anyone, request(headers=(("origin", "https://b.example"),))) == [("access-control-allow-origin", "*")]
