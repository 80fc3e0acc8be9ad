"""The control plane through real boto3: create, update, versions, aliases, tags, list, delete."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError

from lamina.testing import DEFAULT_ROLE, deploy, zip_files

APP_V1 = "def handler(event, context):\n    return {'v': 1}\n"
APP_V2 = "def handler(event, context):\n    return {'v': 2}\n"


def call(client: Any, name: str, **kwargs: Any) -> Any:
    resp = client.invoke(FunctionName=name, **kwargs)
    return json.loads(resp["Payload"].read())


def executed_version(client: Any, name: str, **kwargs: Any) -> str:
    """Invoke and return X-Amz-Executed-Version, reading the payload so the connection is reused."""
    resp = client.invoke(FunctionName=name, **kwargs)
    resp["Payload"].read()
    return str(resp["ExecutedVersion"])


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_create_answers_pending_then_becomes_active(lambda_client: Any, fname: str) -> None:
    code = zip_files({"app.py": APP_V1})
    resp = lambda_client.create_function(
        FunctionName=fname, Runtime="python3.11", Role=DEFAULT_ROLE, Handler="app.handler", Code={"ZipFile": code}
    )
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert resp["State"] == "Pending"
    assert resp["StateReasonCode"] == "Creating"
    assert "LastUpdateStatus" not in resp
    assert resp["CodeSha256"] == base64.b64encode(hashlib.sha256(code).digest()).decode()
    assert resp["CodeSize"] == len(code)
    assert resp["FunctionArn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{fname}"
    assert resp["Version"] == "$LATEST"
    assert (resp["MemorySize"], resp["Timeout"], resp["PackageType"]) == (128, 3, "Zip")
    assert resp["LastModified"].endswith("+0000")
    lambda_client.get_waiter("function_active_v2").wait(FunctionName=fname, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    conf = lambda_client.get_function(FunctionName=fname)["Configuration"]
    assert conf["State"] == "Active"
    assert conf["LastUpdateStatus"] == "Successful"
    assert call(lambda_client, fname) == {"v": 1}


def test_create_twice_conflicts(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": APP_V1})
    with pytest.raises(ClientError) as exc:
        deploy(lambda_client, fname, {"app.py": APP_V1}, wait=False)
    assert error_code(exc) == "ResourceConflictException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409


def test_update_code_and_configuration_take_effect(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": "import os\ndef handler(e, c):\n    return [os.environ.get('COLOR'), c.memory_limit_in_mb]\n"})
    assert call(lambda_client, fname) == [None, "128"]
    resp = lambda_client.update_function_configuration(
        FunctionName=fname, MemorySize=256, Environment={"Variables": {"COLOR": "blue"}}
    )
    assert resp["LastUpdateStatus"] == "InProgress"
    assert resp["LastUpdateStatusReasonCode"] == "Creating"
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=fname, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    assert call(lambda_client, fname) == ["blue", "256"]
    resp = lambda_client.update_function_code(FunctionName=fname, ZipFile=zip_files({"app.py": APP_V2}))
    assert resp["LastUpdateStatus"] == "InProgress"
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=fname, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    assert call(lambda_client, fname) == {"v": 2}
    conf = lambda_client.get_function_configuration(FunctionName=fname)
    assert conf["MemorySize"] == 256 and conf["Environment"] == {"Variables": {"COLOR": "blue"}}


def test_revision_id_precondition(lambda_client: Any, fname: str) -> None:
    rev = deploy(lambda_client, fname, {"app.py": APP_V1})["RevisionId"]
    current = lambda_client.get_function(FunctionName=fname)["Configuration"]["RevisionId"]
    assert current != rev  # becoming Active is a change
    with pytest.raises(ClientError) as exc:
        lambda_client.update_function_configuration(FunctionName=fname, Timeout=5, RevisionId="not-the-revision")
    assert error_code(exc) == "PreconditionFailedException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    lambda_client.update_function_configuration(FunctionName=fname, Timeout=5, RevisionId=current)


def test_concurrent_update_conflicts(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": APP_V1})
    # Incompressible, so unpacking it (in the background) outlasts one loopback round trip.
    big = zip_files({"app.py": APP_V2, "blob.bin": os.urandom(40 * 1024 * 1024)})
    lambda_client.update_function_code(FunctionName=fname, ZipFile=big)
    with pytest.raises(ClientError) as exc:
        lambda_client.update_function_configuration(FunctionName=fname, Timeout=9)
    assert error_code(exc) == "ResourceConflictException"
    assert "An update is in progress" in str(exc.value)
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=fname, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    lambda_client.update_function_configuration(FunctionName=fname, Timeout=9)


def test_get_function_code_location_downloads_the_zip(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": APP_V1})
    resp = lambda_client.get_function(FunctionName=fname)
    assert resp["Code"]["RepositoryType"] == "S3"
    with urllib.request.urlopen(resp["Code"]["Location"], timeout=10) as r:
        data = r.read()
    assert base64.b64encode(hashlib.sha256(data).digest()).decode() == resp["Configuration"]["CodeSha256"]
    assert data == zip_files({"app.py": APP_V1})


def test_versions_and_aliases(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": APP_V1})
    v1 = lambda_client.publish_version(FunctionName=fname, Description="first")
    assert v1["Version"] == "1"
    assert v1["FunctionArn"].endswith(f":{fname}:1")
    # Publishing again with nothing changed returns the same version.
    assert lambda_client.publish_version(FunctionName=fname)["Version"] == "1"
    lambda_client.update_function_code(FunctionName=fname, ZipFile=zip_files({"app.py": APP_V2}))
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=fname, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    v2 = lambda_client.publish_version(FunctionName=fname)
    assert v2["Version"] == "2"

    assert call(lambda_client, fname, Qualifier="1") == {"v": 1}
    assert call(lambda_client, f"{fname}:2") == {"v": 2}
    assert executed_version(lambda_client, fname, Qualifier="1") == "1"

    versions = lambda_client.list_versions_by_function(FunctionName=fname)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1", "2"]
    assert versions[0]["FunctionArn"].endswith(":$LATEST")

    alias = lambda_client.create_alias(FunctionName=fname, Name="live", FunctionVersion="1")
    assert alias["AliasArn"].endswith(f":{fname}:live")
    assert call(lambda_client, fname, Qualifier="live") == {"v": 1}
    assert lambda_client.get_alias(FunctionName=fname, Name="live")["FunctionVersion"] == "1"

    # Weighted routing: all traffic to version 2, then half and half.
    lambda_client.update_alias(FunctionName=fname, Name="live", RoutingConfig={"AdditionalVersionWeights": {"2": 1.0}})
    assert {executed_version(lambda_client, fname, Qualifier="live") for _ in range(5)} == {"2"}
    lambda_client.update_alias(FunctionName=fname, Name="live", RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}})
    seen = {executed_version(lambda_client, fname, Qualifier="live") for _ in range(60)}
    assert seen == {"1", "2"}  # fails with probability 2 * 0.5**60

    with pytest.raises(ClientError) as exc:
        lambda_client.create_alias(FunctionName=fname, Name="live", FunctionVersion="1")
    assert error_code(exc) == "ResourceConflictException"
    with pytest.raises(ClientError) as exc:
        lambda_client.create_alias(
            FunctionName=fname, Name="bad", FunctionVersion="1", RoutingConfig={"AdditionalVersionWeights": {"2": 0.1, "3": 0.1}}
        )
    assert error_code(exc) == "InvalidParameterValueException"
    with pytest.raises(ClientError) as exc:
        lambda_client.delete_function(FunctionName=fname, Qualifier="1")
    assert error_code(exc) == "ResourceConflictException"  # alias "live" points at it
    with pytest.raises(ClientError) as exc:
        lambda_client.delete_function(FunctionName=fname, Qualifier="$LATEST")
    assert error_code(exc) == "InvalidParameterValueException"

    aliases = lambda_client.list_aliases(FunctionName=fname)["Aliases"]
    assert [a["Name"] for a in aliases] == ["live"]
    lambda_client.delete_alias(FunctionName=fname, Name="live")
    with pytest.raises(ClientError) as exc:
        lambda_client.get_alias(FunctionName=fname, Name="live")
    assert error_code(exc) == "ResourceNotFoundException"
    lambda_client.delete_function(FunctionName=fname, Qualifier="1")
    with pytest.raises(ClientError) as exc:
        lambda_client.invoke(FunctionName=fname, Qualifier="1")
    assert error_code(exc) == "ResourceNotFoundException"


def test_publish_with_wrong_code_sha(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": APP_V1})
    with pytest.raises(ClientError) as exc:
        lambda_client.publish_version(FunctionName=fname, CodeSha256="x" * 44)
    assert error_code(exc) == "InvalidParameterValueException"
    assert "is different from current CodeSHA256 in $LATEST" in str(exc.value)


def test_list_functions_paginates(lambda_client: Any, fname: str) -> None:
    names = [f"{fname}-{i}" for i in range(5)]
    for n in names:
        deploy(lambda_client, n, {"app.py": APP_V1}, wait=False)
    page = lambda_client.list_functions(MaxItems=2)
    assert len(page["Functions"]) == 2 and "NextMarker" in page
    assert "State" not in page["Functions"][0]  # list items omit state members (spec 2.1)
    listed = [f["FunctionName"] for p in lambda_client.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 2}) for f in p["Functions"]]
    assert set(names) <= set(listed)
    assert len(listed) == len(set(listed))
    assert listed == sorted(listed)


def test_tags(lambda_client: Any, fname: str) -> None:
    arn = deploy(lambda_client, fname, {"app.py": APP_V1}, Tags={"team": "a"})["FunctionArn"]
    assert lambda_client.list_tags(Resource=arn)["Tags"] == {"team": "a"}
    lambda_client.tag_resource(Resource=arn, Tags={"env": "dev", "team": "b"})
    assert lambda_client.list_tags(Resource=arn)["Tags"] == {"team": "b", "env": "dev"}
    lambda_client.untag_resource(Resource=arn, TagKeys=["team"])
    assert lambda_client.list_tags(Resource=arn)["Tags"] == {"env": "dev"}
    assert lambda_client.get_function(FunctionName=fname)["Tags"] == {"env": "dev"}
    with pytest.raises(ClientError) as exc:
        lambda_client.tag_resource(Resource=arn + ":1", Tags={"a": "b"})
    assert "Tags on function aliases and versions are not supported" in str(exc.value)


def test_delete_function(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": APP_V1})
    assert call(lambda_client, fname) == {"v": 1}
    resp = lambda_client.delete_function(FunctionName=fname)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        lambda_client.get_function(FunctionName=fname)
    assert error_code(exc) == "ResourceNotFoundException"
    assert exc.value.response["Error"]["Message"] == f"Function not found: arn:aws:lambda:us-east-1:000000000000:function:{fname}"
    assert exc.value.response["ResponseMetadata"]["RequestId"]
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.invoke(FunctionName=fname)


@pytest.mark.parametrize(
    ("overrides", "code", "fragment"),
    [
        ({"Runtime": "python9.9"}, "InvalidParameterValueException", "Member must satisfy enum value set"),
        ({"Runtime": "nodejs4.3"}, "InvalidParameterValueException", "no longer supported for creating or updating"),
        ({"Runtime": "java21"}, "InvalidParameterValueException", "not available on this Lamina host"),
        ({"MemorySize": 64}, "ValidationException", "greater than or equal to 128"),
        ({"MemorySize": 20000}, "ValidationException", "less than or equal to 10240"),
        ({"Timeout": 901}, "ValidationException", "less than or equal to 900"),
        ({"Role": "not-a-role"}, "ValidationException", "role"),
        ({"Environment": {"Variables": {"AWS_REGION": "x"}}}, "InvalidParameterValueException", "reserved keys"),
        ({"Environment": {"Variables": {"BIG": "x" * 5000}}}, "InvalidParameterValueException", "exceeded the 4KB limit"),
        ({"Code": {"ZipFile": b"not a zip"}}, "InvalidParameterValueException", "Could not unzip uploaded file"),
        ({"FunctionName": "bad name!"}, "ValidationException", "functionName"),
    ],
)
def test_create_validation(unvalidated_client: Any, fname: str, overrides: dict[str, Any], code: str, fragment: str) -> None:
    params: dict[str, Any] = {
        "FunctionName": fname,
        "Runtime": "python3.11",
        "Role": DEFAULT_ROLE,
        "Handler": "app.handler",
        "Code": {"ZipFile": zip_files({"app.py": APP_V1})},
    }
    params.update(overrides)
    with pytest.raises(ClientError) as exc:
        unvalidated_client.create_function(**params)
    assert error_code(exc) == code
    assert fragment in exc.value.response["Error"]["Message"]
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_unknown_function_errors(lambda_client: Any) -> None:
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_function_configuration(FunctionName="no-such-function")
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.update_function_configuration(FunctionName="no-such-function", Timeout=4)
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.list_versions_by_function(FunctionName="no-such-function")


def test_function_names_as_arns(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": APP_V1})
    full = f"arn:aws:lambda:us-east-1:000000000000:function:{fname}"
    partial = f"000000000000:function:{fname}"
    assert lambda_client.get_function(FunctionName=full)["Configuration"]["FunctionName"] == fname
    assert call(lambda_client, partial) == {"v": 1}
    assert call(lambda_client, f"{full}:$LATEST") == {"v": 1}
    with pytest.raises(ClientError) as exc:
        lambda_client.invoke(FunctionName=f"{fname}:1", Qualifier="2")
    assert "does not match the specified qualifier" in str(exc.value)


def test_account_settings(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, {"app.py": APP_V1})
    resp = lambda_client.get_account_settings()
    listed = [f for p in lambda_client.get_paginator("list_functions").paginate() for f in p["Functions"]]
    assert resp["AccountLimit"]["ConcurrentExecutions"] > 0
    assert resp["AccountUsage"]["FunctionCount"] == len(listed)
    assert resp["AccountUsage"]["TotalCodeSize"] >= sum(f["CodeSize"] for f in listed)
