"""SigV4 verification against requests signed by botocore, as clients sign them."""

from __future__ import annotations

import time

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from lamina.api.sigv4 import SignatureError, SignedRequest, verify

KEY, SECRET = "AKIDTEST", "secret"


def signed(url: str = "http://u.lambda-url.us-east-1.localhost:9000/a%20b/c?z=1&a=2", body: bytes = b"data", *,
           secret: str = SECRET, region: str = "us-east-1", service: str = "lambda") -> SignedRequest:  # fmt: skip
    req = AWSRequest(method="PUT", url=url, data=body, headers={"Content-Type": "text/plain", "X-Custom": "1"})
    SigV4Auth(Credentials(KEY, secret), service, region).add_auth(req)
    path, _, query = url.split("9000", 1)[1].partition("?")
    headers = [("host", url.split("/")[2])] + [(k.lower(), v) for k, v in req.headers.items()]
    return SignedRequest(method="PUT", path=path, query=query, headers=tuple(headers), body=body)


def check(req: SignedRequest, **kw: object) -> str:
    return verify(req, access_key_id=KEY, secret_access_key=SECRET, region="us-east-1", **kw)  # type: ignore[arg-type]


def test_a_good_signature_passes() -> None:
    assert check(signed()) == KEY


@pytest.mark.parametrize(
    ("req", "reason"),
    [
        (signed(secret="other"), "does not match"),
        (signed(region="eu-west-1"), "sign for lambda in us-east-1"),
        (signed(service="s3"), "sign for lambda"),
    ],
)
def test_bad_signatures_fail(req: SignedRequest, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        check(req)


def test_tampering_fails() -> None:
    good = signed()
    for changed in (
        SignedRequest(method=good.method, path=good.path, query=good.query, headers=good.headers, body=b"other"),
        SignedRequest(method=good.method, path="/other", query=good.query, headers=good.headers, body=good.body),
        SignedRequest(method=good.method, path=good.path, query="z=2&a=2", headers=good.headers, body=good.body),
        SignedRequest(method=good.method, path=good.path, query=good.query, body=good.body,
                      headers=tuple((k, "2" if k == "x-custom" else v) for k, v in good.headers)),  # fmt: skip
    ):
        with pytest.raises(SignatureError):
            check(changed)


def test_unsigned_stale_and_unconfigured() -> None:
    with pytest.raises(SignatureError, match="not signed"):
        check(SignedRequest(method="GET", path="/", query="", headers=(("host", "h"),), body=b""))
    with pytest.raises(SignatureError, match="15 minutes"):
        check(signed(), now=time.time() + 3600)
    with pytest.raises(SignatureError, match="LAMINA_ACCESS_KEY_ID"):
        verify(signed(), access_key_id="", secret_access_key="", region="us-east-1")
