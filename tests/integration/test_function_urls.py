"""Function URLs end to end: the URL config API, policies, and requests over real HTTP.

One server for the module, with credentials set, so AWS_IAM URLs can be signed for. Requests go
through urllib and http.client (real sockets); the event shape is proven by aws-lambda-powertools'
APIGatewayHttpResolver running inside a sandboxed function.
"""

from __future__ import annotations

import base64
import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

import aws_lambda_powertools
import jmespath
import typing_extensions
from lamina.testing import RunningServer, data_directory, deploy, free_port, running_server, wait_for_log, zip_files

KEY, SECRET = "AKIDLAMINATEST", "lamina-url-secret"
ARN = "arn:aws:lambda:us-east-1:000000000000:function:"
ECHO = {"app.py": "def handler(event, context):\n    return {'statusCode': 200, 'body': __import__('json').dumps(event)}\n"}


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    env = {"LAMINA_ACCESS_KEY_ID": KEY, "LAMINA_SECRET_ACCESS_KEY": SECRET}
    with data_directory() as data, running_server(data, env=env, extra_args=("--idle-timeout", "30")) as s:
        yield s


@pytest.fixture(scope="module")
def client(srv: RunningServer) -> Any:
    return srv.client()


def error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    r = exc.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Message"]


def call(url: str, *, method: str = "GET", body: bytes | None = None,
         headers: Mapping[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:  # fmt: skip
    """One request with urllib; any status is returned, not raised."""
    req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers, exc.read()


def public_url(client: Any, name: str, **kwargs: Any) -> str:
    """A NONE-auth URL with the permission Lambda requires for it."""
    url: str = client.create_function_url_config(FunctionName=name, AuthType="NONE", **kwargs)["FunctionUrl"]
    client.add_permission(FunctionName=name, StatementId="public-url", Action="lambda:InvokeFunctionUrl",
                          Principal="*", FunctionUrlAuthType="NONE", **({"Qualifier": kwargs["Qualifier"]} if "Qualifier" in kwargs else {}))  # fmt: skip
    return url


# --- the config API ----------------------------------------------------------------------------


def test_url_config_lifecycle(client: Any, fname: str) -> None:
    deploy(client, fname, ECHO)
    created = client.create_function_url_config(FunctionName=fname, AuthType="AWS_IAM")
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["FunctionArn"] == ARN + fname and created["AuthType"] == "AWS_IAM"
    assert created["InvokeMode"] == "BUFFERED" and "LastModifiedTime" not in created and "Cors" not in created
    url = created["FunctionUrl"]
    url_id = url.split("/lambda-url/")[1].rstrip("/") if "/lambda-url/" in url else urlsplit(url).hostname.split(".")[0]
    assert len(url_id) == 32 and url_id.isalnum() and url_id.islower()
    with pytest.raises(ClientError) as exc:
        client.create_function_url_config(FunctionName=fname, AuthType="NONE")
    assert error(exc) == ("ResourceConflictException", 409, f"Failed to create function url config for [functionArn = {ARN}{fname}]. "
                          "Error message:  FunctionUrlConfig exists for this Lambda function")  # fmt: skip

    cors = {"AllowOrigins": ["https://example.com"], "AllowMethods": ["GET"], "MaxAge": 60}
    updated = client.update_function_url_config(FunctionName=fname, AuthType="NONE", Cors=cors)
    assert updated["FunctionUrl"] == url and updated["AuthType"] == "NONE" and updated["Cors"] == cors
    got = client.get_function_url_config(FunctionName=ARN + fname)
    assert got["CreationTime"] == created["CreationTime"] and got["LastModifiedTime"] >= got["CreationTime"]
    assert got["Cors"] == cors

    version = client.publish_version(FunctionName=fname)["Version"]
    client.create_alias(FunctionName=fname, Name="live", FunctionVersion=version)
    live = client.create_function_url_config(FunctionName=fname, Qualifier="live", AuthType="NONE")
    assert live["FunctionArn"] == f"{ARN}{fname}:live" and live["FunctionUrl"] != url
    listed = client.list_function_url_configs(FunctionName=fname)["FunctionUrlConfigs"]
    assert [c["FunctionArn"] for c in listed] == [ARN + fname, f"{ARN}{fname}:live"]

    client.delete_alias(FunctionName=fname, Name="live")  # the alias's URL goes with it
    assert [c["FunctionArn"] for c in client.list_function_url_configs(FunctionName=fname)["FunctionUrlConfigs"]] == [ARN + fname]
    assert client.delete_function_url_config(FunctionName=fname)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        client.get_function_url_config(FunctionName=fname)
    assert error(exc) == ("ResourceNotFoundException", 404, "The resource you requested does not exist.")
    assert client.list_function_url_configs(FunctionName=fname)["FunctionUrlConfigs"] == []


def test_url_config_errors(srv: RunningServer, client: Any, fname: str) -> None:
    raw = srv.client(parameter_validation=False)
    deploy(client, fname, ECHO)
    version = client.publish_version(FunctionName=fname)["Version"]
    for qualifier in (version, "$LATEST"):
        with pytest.raises(ClientError) as exc:
            raw.create_function_url_config(FunctionName=fname, Qualifier=qualifier, AuthType="NONE")
        code, status, message = error(exc)
        assert (code, status) == ("ValidationException", 400) and f"Value '{qualifier}' at 'qualifier'" in message
    with pytest.raises(ClientError) as exc:
        client.create_function_url_config(FunctionName=fname, Qualifier="nope", AuthType="NONE")
    assert error(exc)[:2] == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as exc:
        client.get_function_url_config(FunctionName=fname + "-missing")
    assert error(exc) == ("ResourceNotFoundException", 404, "Function does not exist")
    with pytest.raises(ClientError) as exc:
        raw.create_function_url_config(FunctionName=fname, AuthType="NONE", Cors={"MaxAge": 86401})
    assert error(exc) == ("ValidationException", 400, "1 validation error detected: Value '86401' at 'cors.maxAge' "
                          "failed to satisfy constraint: Member must have value less than or equal to 86400")  # fmt: skip
    with pytest.raises(ClientError) as exc:
        raw.create_function_url_config(FunctionName=fname, AuthType="OPEN")
    assert error(exc)[:2] == ("ValidationException", 400) and "[AWS_IAM, NONE]" in error(exc)[2]
    with pytest.raises(ClientError) as exc:
        client.create_function_url_config(FunctionName=fname, AuthType="NONE", InvokeMode="RESPONSE_STREAM")
    assert error(exc)[:2] == ("InvalidParameterValueException", 400) and "RESPONSE_STREAM" in error(exc)[2]
    assert client.list_function_url_configs(FunctionName=fname)["FunctionUrlConfigs"] == []


def test_policy_lifecycle(client: Any, fname: str) -> None:
    deploy(client, fname, ECHO)
    with pytest.raises(ClientError) as exc:
        client.get_policy(FunctionName=fname)
    assert error(exc) == ("ResourceNotFoundException", 404, "No policy is associated with the given resource.")
    added = client.add_permission(FunctionName=fname, StatementId="url", Action="lambda:InvokeFunctionUrl",
                                  Principal="*", FunctionUrlAuthType="NONE")  # fmt: skip
    assert json.loads(added["Statement"]) == {
        "Sid": "url", "Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunctionUrl",
        "Resource": ARN + fname, "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}},
    }  # fmt: skip
    client.add_permission(FunctionName=fname, StatementId="s3", Action="lambda:InvokeFunction",
                          Principal="s3.amazonaws.com", SourceArn="arn:aws:s3:::bucket", SourceAccount="123456789012")  # fmt: skip
    with pytest.raises(ClientError) as exc:
        client.add_permission(FunctionName=fname, StatementId="s3", Action="lambda:InvokeFunction", Principal="*")
    assert error(exc) == ("ResourceConflictException", 409, "The statement id (s3) provided already exists. Please provide "
                          "a new statement id, or remove the existing statement.")  # fmt: skip
    got = client.get_policy(FunctionName=fname)
    policy = json.loads(got["Policy"])
    assert policy["Version"] == "2012-10-17" and [s["Sid"] for s in policy["Statement"]] == ["url", "s3"]
    assert policy["Statement"][1]["Principal"] == {"Service": "s3.amazonaws.com"}
    assert policy["Statement"][1]["Condition"] == {"StringEquals": {"AWS:SourceAccount": "123456789012"},
                                                   "ArnLike": {"AWS:SourceArn": "arn:aws:s3:::bucket"}}  # fmt: skip
    with pytest.raises(ClientError) as exc:
        client.remove_permission(FunctionName=fname, StatementId="s3", RevisionId="stale")
    assert error(exc)[:2] == ("PreconditionFailedException", 412)
    client.remove_permission(FunctionName=fname, StatementId="s3", RevisionId=got["RevisionId"])
    with pytest.raises(ClientError) as exc:
        client.remove_permission(FunctionName=fname, StatementId="s3")
    assert error(exc) == ("ResourceNotFoundException", 404, "Statement s3 is not found in resource policy.")
    with pytest.raises(ClientError) as exc:
        client.add_permission(FunctionName=fname, Qualifier="$LATEST", StatementId="x", Action="lambda:*", Principal="*")
    assert error(exc) == ("InvalidParameterValueException", 400, "We currently do not support adding policies for $LATEST.")
    client.remove_permission(FunctionName=fname, StatementId="url")
    with pytest.raises(ClientError) as exc:
        client.get_policy(FunctionName=fname)
    assert error(exc)[:2] == ("ResourceNotFoundException", 404)


# --- serving -------------------------------------------------------------------------------------


def test_none_url_needs_the_public_permission(srv: RunningServer, client: Any, fname: str) -> None:
    deploy(client, fname, {"app.py": "def handler(event, context):\n    return 'Hello'\n"})
    url = client.create_function_url_config(FunctionName=fname, AuthType="NONE")["FunctionUrl"]
    status, headers, body = call(url)
    assert status == 403 and json.loads(body)["Message"].startswith("Forbidden.")
    assert "add-permission" in headers["x-lamina-reason"]
    client.add_permission(FunctionName=fname, StatementId="public", Action="lambda:InvokeFunctionUrl",
                          Principal="*", FunctionUrlAuthType="NONE")  # fmt: skip
    status, headers, body = call(url)
    # a bare value is a JSON 200: the Python str "Hello" is the 7-byte body "Hello" with quotes
    assert (status, body, headers["content-type"]) == (200, b'"Hello"', "application/json")
    # the same invoke path as Invoke: the function's log and the metrics count it
    wait_for_log(srv.endpoint, fname, f"END RequestId: {headers['x-amzn-requestid']}")
    with urllib.request.urlopen(f"{srv.endpoint}/lamina/v1/metrics", timeout=30) as r:
        metrics = r.read().decode()
    assert any(fname in line and "invocations" in line for line in metrics.splitlines())


def test_host_form_and_path_form_reach_the_same_url(srv: RunningServer, client: Any, fname: str) -> None:
    deploy(client, fname, ECHO)
    url = public_url(client, fname)
    url_id = url.split("/lambda-url/")[1].rstrip("/") if "/lambda-url/" in url else urlsplit(url).hostname.split(".")[0]
    port = urlsplit(srv.endpoint).port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        # POST to a path that is also Invoke's: on a URL host it is the function's own path
        conn.request("POST", "/2015-03-31/functions/x/invocations?q=1", body=b"hi", headers={
            "Host": f"{url_id}.lambda-url.us-east-1.localhost:{port}", "Content-Type": "text/plain"})  # fmt: skip
        resp = conn.getresponse()
        event = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status == 200
    assert event["rawPath"] == "/2015-03-31/functions/x/invocations" and event["body"] == "hi"
    status, _, body = call(f"{srv.endpoint}/lambda-url/{url_id}/a/b?q=1")
    assert status == 200 and json.loads(body)["rawPath"] == "/a/b"
    status, _, body = call(f"{srv.endpoint}/lambda-url/{'0' * 32}/")
    assert status == 404 and b"No function URL" in body


def test_iam_url_checks_the_signature(srv: RunningServer, client: Any, fname: str) -> None:
    deploy(client, fname, ECHO)
    url = client.create_function_url_config(FunctionName=fname, AuthType="AWS_IAM")["FunctionUrl"]
    target = url + "path?x=1"

    def signed(key: str, secret: str) -> dict[str, str]:
        req = AWSRequest(method="POST", url=target, data=b'{"a":1}', headers={"Content-Type": "application/json"})
        SigV4Auth(Credentials(key, secret), "lambda", "us-east-1").add_auth(req)
        return dict(req.headers.items())

    status, headers, body = call(target, method="POST", body=b'{"a":1}', headers={"Content-Type": "application/json"})
    assert status == 403 and "not signed" in headers["x-lamina-reason"]
    status, headers, _ = call(target, method="POST", body=b'{"a":1}', headers=signed(KEY, "wrong"))
    assert status == 403 and "does not match" in headers["x-lamina-reason"]
    status, headers, _ = call(target, method="POST", body=b'{"a":2}', headers=signed(KEY, SECRET))  # body changed
    assert status == 403
    status, _, body = call(target, method="POST", body=b'{"a":1}', headers=signed(KEY, SECRET))
    assert status == 200
    event = json.loads(body)
    iam = event["requestContext"]["authorizer"]["iam"]
    assert iam["accessKey"] == KEY and iam["accountId"] == "000000000000" and event["requestContext"]["accountId"] == "000000000000"
    assert json.loads(event["body"]) == {"a": 1} and event["isBase64Encoded"] is False


def test_function_errors_throttles_and_deletion(client: Any, fname: str) -> None:
    deploy(client, fname, {"app.py": "def handler(event, context):\n    raise ValueError('boom')\n"})
    url = public_url(client, fname)
    status, _, body = call(url)
    assert status == 502 and json.loads(body) == {"Message": "Internal Server Error"}
    client.put_function_concurrency(FunctionName=fname, ReservedConcurrentExecutions=0)
    status, _, body = call(url)
    assert status == 429 and json.loads(body) == {"Message": "Rate Exceeded."}
    client.delete_function(FunctionName=fname)
    status, _, _ = call(url)
    assert status == 404
    deploy(client, fname, ECHO)  # a new function of the same name has no URL and no policy
    assert client.list_function_url_configs(FunctionName=fname)["FunctionUrlConfigs"] == []
    with pytest.raises(ClientError):
        client.get_policy(FunctionName=fname)


def test_response_mapping(client: Any, fname: str) -> None:
    code = (
        "import base64\n"
        "def handler(event, context):\n"
        "    return {'statusCode': 418, 'headers': {'x-one': 'a', 'Content-Type': 'image/png'},\n"
        "            'cookies': ['a=1; Path=/', 'b=2'], 'isBase64Encoded': True,\n"
        "            'body': base64.b64encode(bytes(range(256))).decode()}\n"
    )
    deploy(client, fname, {"app.py": code})
    status, headers, body = call(public_url(client, fname))
    assert (status, body) == (418, bytes(range(256)))
    assert headers["x-one"] == "a" and headers["content-type"] == "image/png"
    assert headers.get_all("set-cookie") == ["a=1; Path=/", "b=2"]


# --- the event shape, through aws-lambda-powertools ------------------------------------------------

POWERTOOLS_APP = '''
import base64
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.shared.cookies import Cookie

app = APIGatewayHttpResolver()


@app.get("/items/<item_id>")
def get_item(item_id):
    e = app.current_event
    ctx = e.request_context
    return Response(status_code=200, content_type="application/json", body={
        "item": item_id, "query": e.query_string_parameters, "cookies": e.cookies,
        "custom": e.headers.get("x-custom"), "method": ctx.http.method, "path": e.path, "raw_path": e.raw_path,
        "raw_query": e.raw_query_string, "source_ip": ctx.http.source_ip, "user_agent": ctx.http.user_agent,
        "stage": ctx.stage, "api_id": ctx.api_id, "request_id": ctx.request_id, "time_epoch": ctx.time_epoch,
        "version": e.version, "route_key": e.route_key,
    }, cookies=[Cookie(name="seen", value=item_id, secure=False)])


@app.post("/upload")
def upload():
    e = app.current_event
    data = base64.b64decode(e.body) if e.is_base64_encoded else e.body.encode()
    return Response(status_code=201, content_type="application/octet-stream", body=bytes(reversed(data)),
                    headers={"x-was-base64": str(e.is_base64_encoded)})


def handler(event, context):
    return app.resolve(event, context)
'''


def _package_files() -> dict[str, bytes]:
    """aws-lambda-powertools and its pure-Python dependencies, copied from this venv."""
    files: dict[str, bytes] = {}
    for module in (aws_lambda_powertools, jmespath):
        root = Path(module.__file__ or "").parent
        for path in root.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                files[str(path.relative_to(root.parent))] = path.read_bytes()
    te = Path(typing_extensions.__file__ or "")
    files[te.name] = te.read_bytes()
    return files


def test_powertools_resolver_sees_lambdas_event(client: Any, fname: str) -> None:
    files = _package_files()
    files["app.py"] = POWERTOOLS_APP.encode()
    client.create_function(FunctionName=fname, Runtime="python3.11", Role="arn:aws:iam::000000000000:role/lamina",
                           Handler="app.handler", Code={"ZipFile": zip_files(files)}, Timeout=30)  # fmt: skip
    client.get_waiter("function_active_v2").wait(FunctionName=fname, WaiterConfig={"Delay": 0.05, "MaxAttempts": 600})
    cors = {"AllowOrigins": ["https://example.com"], "AllowMethods": ["GET", "POST"], "AllowHeaders": ["x-custom"],
            "ExposeHeaders": ["x-was-base64"], "MaxAge": 300, "AllowCredentials": True}  # fmt: skip
    url = public_url(client, fname, Cors=cors)

    status, headers, body = call(url + "items/42?a=1&a=2&b=x%20y", headers={
        "Cookie": "c1=v1; c2=v2", "X-Custom": "yes", "User-Agent": "lamina-test/1", "Origin": "https://example.com"})  # fmt: skip
    assert status == 200, body
    got = json.loads(body)
    assert got["item"] == "42" and got["method"] == "GET" and got["path"] == got["raw_path"] == "/items/42"
    assert got["query"] == {"a": "1,2", "b": "x y"} and got["raw_query"] == "a=1&a=2&b=x%20y"
    assert got["cookies"] == ["c1=v1", "c2=v2"] and got["custom"] == "yes" and got["user_agent"] == "lamina-test/1"
    assert got["source_ip"] == "127.0.0.1" and got["stage"] == "$default" and got["route_key"] == "$default"
    assert got["version"] == "2.0" and len(got["api_id"]) == 32 and got["request_id"] == headers["x-amzn-requestid"]
    assert headers.get_all("set-cookie") == ["seen=42"]
    assert headers["access-control-allow-origin"] == "https://example.com"
    assert headers["access-control-allow-credentials"] == "true"

    blob = bytes([0, 1, 2, 255, 254, 128])
    status, headers, body = call(url + "upload", method="POST", body=blob, headers={"Content-Type": "application/octet-stream"})
    assert (status, body, headers["x-was-base64"]) == (201, bytes(reversed(blob)), "True")

    status, headers, body = call(url + "nothing")
    assert status == 404  # the resolver's own answer for an unknown route

    # CORS preflight: answered by the URL itself, per the config; the function is not called
    preflight = {"Origin": "https://example.com", "Access-Control-Request-Method": "POST"}
    status, headers, body = call(url + "upload", method="OPTIONS", headers=preflight)
    assert status == 200 and body == b""
    assert headers["access-control-allow-origin"] == "https://example.com"
    assert headers["access-control-allow-methods"] == "GET,POST" and headers["access-control-allow-headers"] == "x-custom"
    assert headers["access-control-max-age"] == "300"
    status, headers, _ = call(url + "upload", method="OPTIONS", headers={**preflight, "Origin": "https://evil.example"})
    assert status == 200 and "access-control-allow-origin" not in headers


def test_urls_and_policies_survive_a_restart(data_dir: Path) -> None:
    env = {"LAMINA_ACCESS_KEY_ID": KEY, "LAMINA_SECRET_ACCESS_KEY": SECRET}
    port = free_port()
    with running_server(data_dir, port=port, env=env) as first:
        c = first.client()
        deploy(c, "kept", ECHO)
        url = public_url(c, "kept")
        policy = c.get_policy(FunctionName="kept")
    with running_server(data_dir, port=port, env=env) as second:
        c = second.client()
        assert c.get_function_url_config(FunctionName="kept")["FunctionUrl"] == url
        assert c.get_policy(FunctionName="kept")["Policy"] == policy["Policy"]
        status, _, body = call(url + "again")
        assert status == 200 and json.loads(body)["rawPath"] == "/again"
    with running_server(data_dir, port=port, env=env, extra_args=("--function-url-style", "host")) as third:
        url_id = url.rstrip("/").rsplit("/", 1)[1] if "/lambda-url/" in url else urlsplit(url).hostname.split(".")[0]
        host_url = f"http://{url_id}.lambda-url.us-east-1.localhost:{port}/"
        assert third.client().get_function_url_config(FunctionName="kept")["FunctionUrl"] == host_url
