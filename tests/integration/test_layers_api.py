"""Layer operations through boto3 against a real server: shapes, pagination, permissions, and
Lambda's errors (messages as AWS-recorded, see functions/layers.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.request
import zipfile
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest

from lamina.testing import DEFAULT_ROLE, RunningServer, deploy, running_server, zip_files

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")
HANDLER = {"app.py": "def handler(event, context):\n    return 1\n"}


def publish(client: Any, name: str, files: dict[str, str | bytes] | None = None, **kwargs: Any) -> dict[str, Any]:
    resp: dict[str, Any] = client.publish_layer_version(
        LayerName=name, Content={"ZipFile": zip_files(files or {"python/mod.py": f"NAME = {name!r}\n"})}, **kwargs
    )
    return resp


def error(exc: pytest.ExceptionInfo[Any]) -> tuple[str, str, int]:
    err = exc.value.response
    return err["Error"]["Code"], err["Error"]["Message"], err["ResponseMetadata"]["HTTPStatusCode"]


def test_publish_get_list_delete(lambda_client: Any, server: RunningServer, fname: str) -> None:
    data = zip_files({"python/mod.py": "X = 1\n"})
    first = lambda_client.publish_layer_version(
        LayerName=fname, Content={"ZipFile": data}, Description="d", LicenseInfo="MIT",
        CompatibleRuntimes=["python3.11"], CompatibleArchitectures=["x86_64"],
    )  # fmt: skip
    assert first["ResponseMetadata"]["HTTPStatusCode"] == 201
    layer_arn = f"arn:aws:lambda:us-east-1:000000000000:layer:{fname}"
    assert first["LayerArn"] == layer_arn
    assert first["LayerVersionArn"] == f"{layer_arn}:1"
    assert first["Version"] == 1
    assert TIMESTAMP.match(first["CreatedDate"])
    assert (first["Description"], first["LicenseInfo"]) == ("d", "MIT")
    assert (first["CompatibleRuntimes"], first["CompatibleArchitectures"]) == (["python3.11"], ["x86_64"])
    content = first["Content"]
    assert content["CodeSha256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert content["CodeSize"] == len(data)
    with urllib.request.urlopen(content["Location"], timeout=10) as r:
        assert r.read() == data

    second = publish(lambda_client, fname)
    assert second["Version"] == 2
    # Not given at publish: absent, not empty (observed).
    assert "CompatibleRuntimes" not in second and "LicenseInfo" not in second
    assert second["Description"] == ""

    got = lambda_client.get_layer_version(LayerName=fname, VersionNumber=1)
    assert {k: v for k, v in got.items() if k != "ResponseMetadata"} == {k: v for k, v in first.items() if k != "ResponseMetadata"}
    assert lambda_client.get_layer_version(LayerName=layer_arn, VersionNumber=2)["Version"] == 2
    by_arn = lambda_client.get_layer_version_by_arn(Arn=f"{layer_arn}:1")
    assert by_arn["LayerVersionArn"] == f"{layer_arn}:1"

    versions = lambda_client.list_layer_versions(LayerName=fname)["LayerVersions"]
    assert [v["Version"] for v in versions] == [2, 1]
    assert set(versions[1]) == {"LayerVersionArn", "Version", "Description", "CreatedDate", "CompatibleRuntimes",
                                "CompatibleArchitectures", "LicenseInfo"}  # fmt: skip
    listed = [layer for layer in lambda_client.list_layers()["Layers"] if layer["LayerName"] == fname]
    assert listed == [{"LayerName": fname, "LayerArn": layer_arn, "LatestMatchingVersion": versions[0]}]

    lambda_client.delete_layer_version(LayerName=fname, VersionNumber=2)
    assert [v["Version"] for v in lambda_client.list_layer_versions(LayerName=fname)["LayerVersions"]] == [1]
    # Deleting what does not exist is not an error (observed); numbers are never reused.
    assert lambda_client.delete_layer_version(LayerName=fname, VersionNumber=2)["ResponseMetadata"]["HTTPStatusCode"] == 204
    lambda_client.delete_layer_version(LayerName="no-such-layer-at-all", VersionNumber=1)
    assert publish(lambda_client, fname)["Version"] == 3


def test_filters_and_pagination(lambda_client: Any, fname: str) -> None:
    names = [f"{fname}-{i}" for i in range(5)]
    for i, name in enumerate(names):
        publish(lambda_client, name, CompatibleRuntimes=["python3.12" if i % 2 else "nodejs22.x"],
                CompatibleArchitectures=["arm64"] if i == 4 else ["x86_64", "arm64"])  # fmt: skip
    publish(lambda_client, names[0], CompatibleRuntimes=["python3.12"])  # version 2 of the first

    pages = list(lambda_client.get_paginator("list_layers").paginate(PaginationConfig={"PageSize": 2}))
    assert all(len(p["Layers"]) <= 2 for p in pages) and len(pages) >= 3
    seen = [layer["LayerName"] for p in pages for layer in p["Layers"]]
    assert [n for n in seen if n.startswith(f"{fname}-")] == names
    assert len(seen) == len(set(seen))

    python = {layer["LayerName"]: layer["LatestMatchingVersion"]["Version"]
              for layer in lambda_client.list_layers(CompatibleRuntime="python3.12")["Layers"]}  # fmt: skip
    assert {n: python[n] for n in python if n.startswith(f"{fname}-")} == {names[0]: 2, names[1]: 1, names[3]: 1}
    node = lambda_client.list_layers(CompatibleRuntime="nodejs22.x", CompatibleArchitecture="x86_64")["Layers"]
    # The newest version that matches: version 1 of names[0] (its version 2 is python only).
    assert {layer["LayerName"]: layer["LatestMatchingVersion"]["Version"] for layer in node
            if layer["LayerName"].startswith(f"{fname}-")} == {names[0]: 1, names[2]: 1}  # fmt: skip

    for _ in range(2):
        publish(lambda_client, names[1], CompatibleRuntimes=["python3.12"])
    page = lambda_client.list_layer_versions(LayerName=names[1], MaxItems=2)
    assert [v["Version"] for v in page["LayerVersions"]] == [3, 2]
    rest = lambda_client.list_layer_versions(LayerName=names[1], MaxItems=2, Marker=page["NextMarker"])
    assert [v["Version"] for v in rest["LayerVersions"]] == [1] and "NextMarker" not in rest
    assert lambda_client.list_layer_versions(LayerName=names[1], CompatibleRuntime="nodejs22.x")["LayerVersions"] == []
    assert lambda_client.list_layer_versions(LayerName="never-published")["LayerVersions"] == []


def test_layer_errors(lambda_client: Any, unvalidated_client: Any, fname: str) -> None:
    publish(lambda_client, fname)
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException) as exc:
        lambda_client.get_layer_version(LayerName="layerdoesnotexist", VersionNumber=1)
    assert error(exc) == ("ResourceNotFoundException", "The resource you requested does not exist.", 404)
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_layer_version(LayerName=fname, VersionNumber=2)
    for bad in (0, -1):
        with pytest.raises(lambda_client.exceptions.InvalidParameterValueException) as exc:
            lambda_client.get_layer_version(LayerName=fname, VersionNumber=bad)
        assert error(exc)[1] == "Layer Version Cannot be less than 1"
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException):
        lambda_client.delete_layer_version(LayerName=fname, VersionNumber=-1)

    layer_arn = f"arn:aws:lambda:us-east-1:000000000000:layer:{fname}"
    with pytest.raises(lambda_client.exceptions.ClientError) as exc:
        lambda_client.get_layer_version_by_arn(Arn=layer_arn)  # no version
    code, message, status = error(exc)
    assert (code, status) == ("ValidationException", 400)
    assert message.startswith(f"1 validation error detected: Value '{layer_arn}' at 'arn' failed to satisfy constraint")
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_layer_version_by_arn(Arn=f"{layer_arn}:9")

    with pytest.raises(lambda_client.exceptions.ClientError) as exc:
        unvalidated_client.list_layers(CompatibleRuntime="runtimedoesnotexist")
    assert error(exc)[1].startswith(
        "1 validation error detected: Value 'runtimedoesnotexist' at 'compatibleRuntime' failed to satisfy constraint: "
        "Member must satisfy enum value set: ["
    )
    with pytest.raises(lambda_client.exceptions.ClientError) as exc:
        unvalidated_client.list_layers(CompatibleArchitecture="archdoesnotexist")
    assert error(exc)[1] == (
        "1 validation error detected: Value 'archdoesnotexist' at 'compatibleArchitecture' failed to satisfy constraint: "
        "Member must satisfy enum value set: [x86_64, arm64]"
    )
    with pytest.raises(lambda_client.exceptions.ClientError) as exc:
        unvalidated_client.publish_layer_version(
            LayerName=fname, Content={"ZipFile": zip_files(HANDLER)},
            CompatibleRuntimes=["invalidruntime"], CompatibleArchitectures=["invalidarch"],
        )  # fmt: skip
    code, message, _ = error(exc)
    assert code == "ValidationException"
    assert message.startswith("2 validation errors detected: Value '[invalidruntime]' at 'compatibleRuntimes'")
    assert "Value '[invalidarch]' at 'compatibleArchitectures' failed to satisfy constraint" in message
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException) as exc:
        lambda_client.publish_layer_version(LayerName=fname, Content={"ZipFile": b"not a zip"})
    assert "Could not unzip uploaded file" in error(exc)[1]
    # A failed publish takes no version number.
    assert publish(lambda_client, fname)["Version"] == 2


def test_layer_permissions(lambda_client: Any, unvalidated_client: Any, fname: str) -> None:
    publish(lambda_client, fname)
    arn = f"arn:aws:lambda:us-east-1:000000000000:layer:{fname}:1"
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException) as exc:
        lambda_client.get_layer_version_policy(LayerName=fname, VersionNumber=1)
    assert error(exc)[1] == "No policy is associated with the given resource."

    added = lambda_client.add_layer_version_permission(
        LayerName=fname, VersionNumber=1, StatementId="s1", Action="lambda:GetLayerVersion", Principal="*"
    )
    assert added["ResponseMetadata"]["HTTPStatusCode"] == 201
    statement = {"Sid": "s1", "Effect": "Allow", "Principal": "*", "Action": "lambda:GetLayerVersion", "Resource": arn}
    assert json.loads(added["Statement"]) == statement
    org = lambda_client.add_layer_version_permission(
        LayerName=fname, VersionNumber=1, StatementId="s2", Action="lambda:GetLayerVersion", Principal="*",
        OrganizationId="o-abcdefghij", RevisionId=added["RevisionId"],
    )  # fmt: skip
    policy = lambda_client.get_layer_version_policy(LayerName=fname, VersionNumber=1)
    assert policy["RevisionId"] == org["RevisionId"] != added["RevisionId"]
    assert json.loads(policy["Policy"]) == {"Version": "2012-10-17", "Id": "default", "Statement": [
        statement, {**statement, "Sid": "s2", "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}}},
    ]}  # fmt: skip

    with pytest.raises(lambda_client.exceptions.ResourceConflictException) as exc:
        lambda_client.add_layer_version_permission(
            LayerName=fname, VersionNumber=1, StatementId="s1", Action="lambda:GetLayerVersion", Principal="*"
        )
    assert error(exc)[1] == (
        "The statement id (s1) provided already exists. Please provide a new statement id, or remove the existing statement."
    )
    with pytest.raises(lambda_client.exceptions.PreconditionFailedException) as exc:
        lambda_client.remove_layer_version_permission(LayerName=fname, VersionNumber=1, StatementId="s1", RevisionId="stale")
    assert "Call the GetLayerPolicy API" in error(exc)[1]
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException) as exc:
        lambda_client.remove_layer_version_permission(LayerName=fname, VersionNumber=1, StatementId="doesnotexist")
    assert error(exc)[1] == "Statement doesnotexist is not found in resource policy."
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException) as exc:
        lambda_client.add_layer_version_permission(
            LayerName=fname, VersionNumber=2, StatementId="s3", Action="lambda:GetLayerVersion", Principal="*"
        )
    assert error(exc)[1] == f"Layer version {arn[:-1]}2 does not exist."
    with pytest.raises(lambda_client.exceptions.ClientError) as exc:
        unvalidated_client.add_layer_version_permission(LayerName=fname, VersionNumber=1, StatementId="s3", Action="*", Principal="*")
    assert error(exc)[:2] == ("ValidationException", "1 validation error detected: Value '*' at 'action' failed to satisfy "
                              "constraint: Member must satisfy regular expression pattern: lambda:GetLayerVersion")  # fmt: skip

    lambda_client.remove_layer_version_permission(LayerName=fname, VersionNumber=1, StatementId="s1", RevisionId=org["RevisionId"])
    remaining = json.loads(lambda_client.get_layer_version_policy(LayerName=fname, VersionNumber=1)["Policy"])
    assert [s["Sid"] for s in remaining["Statement"]] == ["s2"]


def test_function_layer_references(lambda_client: Any, fname: str) -> None:
    a1 = publish(lambda_client, f"{fname}-a")["LayerVersionArn"]
    a2 = publish(lambda_client, f"{fname}-a")["LayerVersionArn"]
    b1 = publish(lambda_client, f"{fname}-b", {"python/b.py": "B = 1\n" * 100})

    def create(layers: list[str]) -> None:
        lambda_client.create_function(FunctionName=fname, Runtime="python3.11", Role=DEFAULT_ROLE, Handler="app.handler",
                                      Code={"ZipFile": zip_files(HANDLER)}, Layers=layers)  # fmt: skip

    def refused(layers: list[str], kind: Any) -> tuple[str, str, int]:
        with pytest.raises(kind) as exc:
            create(layers)
        return error(exc)

    assert refused([a1] * 6, lambda_client.exceptions.InvalidParameterValueException)[1] == "Cannot reference more than 5 layers."
    assert refused([a1, a2], lambda_client.exceptions.InvalidParameterValueException)[1] == (
        "Two different versions of the same layer are not allowed to be referenced in the same function. "
        f"{a1} and {a2} are versions of the same layer."
    )
    missing = f"arn:aws:lambda:us-east-1:000000000000:layer:{fname}-a:9"
    assert refused([missing], lambda_client.exceptions.InvalidParameterValueException)[1] == f"Layer version {missing} does not exist."
    code, message, _ = refused([a1.rsplit(":", 1)[0]], lambda_client.exceptions.ClientError)
    assert code == "ValidationException" and "at 'layers' failed to satisfy constraint" in message
    other_region = a1.replace("us-east-1", "eu-west-1")
    assert refused([other_region], lambda_client.exceptions.InvalidParameterValueException)[1] == (
        "Layers are not in the same region as the function. Layers are expected to be in region us-east-1."
    )

    create([a2, b1["LayerVersionArn"]])
    lambda_client.get_waiter("function_active_v2").wait(FunctionName=fname, WaiterConfig={"Delay": 0.05, "MaxAttempts": 400})
    layers = lambda_client.get_function(FunctionName=fname)["Configuration"]["Layers"]
    assert layers == [{"Arn": a2, "CodeSize": publish_size(lambda_client, a2)}, {"Arn": b1["LayerVersionArn"], "CodeSize": b1["Content"]["CodeSize"]}]
    # A published version keeps the layers it was published with.
    version = lambda_client.publish_version(FunctionName=fname)["Version"]
    lambda_client.update_function_configuration(FunctionName=fname, Layers=[a1])
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=fname, WaiterConfig={"Delay": 0.05, "MaxAttempts": 400})
    assert [x["Arn"] for x in lambda_client.get_function_configuration(FunctionName=fname)["Layers"]] == [a1]
    assert [x["Arn"] for x in lambda_client.get_function_configuration(FunctionName=fname, Qualifier=version)["Layers"]] == [
        a2, b1["LayerVersionArn"]]  # fmt: skip
    lambda_client.update_function_configuration(FunctionName=fname, Layers=[])
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=fname, WaiterConfig={"Delay": 0.05, "MaxAttempts": 400})
    assert "Layers" not in lambda_client.get_function_configuration(FunctionName=fname)


def publish_size(client: Any, arn: str) -> int:
    return int(client.get_layer_version_by_arn(Arn=arn)["Content"]["CodeSize"])


def _zeros_zip(name: str, size: int) -> bytes:
    """A small zip whose one member unpacks to `size` bytes."""
    buf = BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open(name, "w", force_zip64=True) as member:
            chunk = bytes(1 << 20)
            for _ in range(size // len(chunk)):
                member.write(chunk)
            member.write(bytes(size % len(chunk)))
    return buf.getvalue()


def test_code_and_layers_over_250_mb_unzipped(lambda_client: Any, fname: str) -> None:
    layer_size, code_size = 150_000_000, 120_000_000
    arn = lambda_client.publish_layer_version(LayerName=fname, Content={"ZipFile": _zeros_zip("opt.bin", layer_size)})["LayerVersionArn"]
    big_code = _zeros_zip("big.bin", code_size)

    def create(**layers: Any) -> None:
        lambda_client.create_function(FunctionName=fname, Runtime="python3.11", Role=DEFAULT_ROLE, Handler="app.handler",
                                      Code={"ZipFile": big_code}, **layers)  # fmt: skip

    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException) as exc:
        create(Layers=[arn])
    assert error(exc)[1] == (
        "Function code combined with layers exceeds the maximum allowed size of 262144000 bytes. "
        f"The actual size is {layer_size + code_size} bytes."
    )
    # The same through UpdateFunctionConfiguration on a function that exists without layers.
    create()
    lambda_client.get_waiter("function_active_v2").wait(FunctionName=fname, WaiterConfig={"Delay": 0.05, "MaxAttempts": 400})
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException) as exc:
        lambda_client.update_function_configuration(FunctionName=fname, Layers=[arn])
    assert error(exc)[1].endswith(f"The actual size is {layer_size + code_size} bytes.")


def test_layers_survive_a_restart(data_dir: Path, fname: str) -> None:
    with running_server(data_dir) as srv:
        client = srv.client()
        publish(client, fname)
        publish(client, fname)
        client.add_layer_version_permission(LayerName=fname, VersionNumber=1, StatementId="s1",
                                            Action="lambda:GetLayerVersion", Principal="123456789012")  # fmt: skip
        client.delete_layer_version(LayerName=fname, VersionNumber=2)
        arn = client.get_layer_version(LayerName=fname, VersionNumber=1)["LayerVersionArn"]
        deploy(client, fname, {"app.py": "import mod\ndef handler(e, c):\n    return mod.NAME\n"}, Layers=[arn])
    with running_server(data_dir) as srv:
        client = srv.client()
        assert [v["Version"] for v in client.list_layer_versions(LayerName=fname)["LayerVersions"]] == [1]
        policy = json.loads(client.get_layer_version_policy(LayerName=fname, VersionNumber=1)["Policy"])
        assert policy["Statement"][0]["Principal"] == "123456789012"
        assert publish(client, fname)["Version"] == 3  # 2 was deleted, and stays used
        assert client.get_function_configuration(FunctionName=fname)["Layers"][0]["Arn"] == arn
        resp = client.invoke(FunctionName=fname)
        assert json.loads(resp["Payload"].read()) == fname
