"""SAM templates deployed with the real CLI to a real server (a pip build from a local wheel, a
layer, a schedule, a function URL, intrinsics, a parameter override, an unemulated property),
`lamina parity` on a deployed function, and a strict-mode server refusing ignored properties."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import lamina
from lamina.testing import DEFAULT_ROLE, PROBE, RunningServer, make_wheel, running_server, zip_files

CLI_TIMEOUT = 180.0
_ENV = {**os.environ, "PYTHONPATH": str(Path(lamina.__file__).resolve().parents[1])}
_ENV.pop("LAMINA_ENDPOINT", None)

TEMPLATE = """\
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Parameters:
  Greeting:
    Type: String
    Default: hello
  Memory:
    Type: Number
    Default: 192
Globals:
  Function:
    Runtime: python3.11
    Timeout: 10
    Environment:
      Variables:
        STAGE: global
Resources:
  Shared:
    Type: AWS::Serverless::LayerVersion
    Properties:
      LayerName: !Sub '${AWS::StackName}-shared'
      ContentUri: layer/
      CompatibleRuntimes: [python3.11]
  Api:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/
      Handler: app.handler
      MemorySize: !Ref Memory
      Layers:
        - !Ref Shared
      Environment:
        Variables:
          GREETING: !Ref Greeting
          HELPER: !Sub '${Helper} ${Helper.Arn}'
          REGION:
            Fn::Sub: ['${R}/${AWS::Region}', {R: !Ref Greeting}]
      VpcConfig:
        SubnetIds: [subnet-0123]
        SecurityGroupIds: [sg-0123]
      AutoPublishAlias: live
      ProvisionedConcurrencyConfig:
        ProvisionedConcurrentExecutions: 1
      FunctionUrlConfig:
        AuthType: NONE
        InvokeMode: BUFFERED
      Events:
        Nightly:
          Type: Schedule
          Properties:
            Schedule: rate(1 day)
            Input: '{"from": "schedule"}'
  Helper:
    Type: AWS::Lambda::Function
    Properties:
      Runtime: python3.11
      Handler: index.handler
      Role: !GetAtt HelperRole.Arn
      Tags:
        - Key: team
          Value: data
      Code:
        ZipFile: |
          def handler(event, context):
              return "helper"
  HelperRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument: {}
"""

APP = f"""\
import os
import {PROBE}
import shared


def handler(event, context):
    return {{
        "greeting": {PROBE}.greet(os.environ["GREETING"]),
        "layer": shared.WHERE,
        "helper": os.environ["HELPER"],
        "region": os.environ["REGION"],
        "stage": os.environ["STAGE"],
    }}
"""


def lamina_cli(endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lamina", "--endpoint", endpoint, *args], capture_output=True,
                          text=True, timeout=CLI_TIMEOUT, env=_ENV)  # fmt: skip


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def project(root: Path) -> Path:
    """template.yaml, fn/ (app.py + requirements.txt naming a local wheel) and layer/python/shared.py."""
    fn = root / "fn"
    make_wheel(fn / "wheels")
    (fn / "requirements.txt").write_text(f"--no-index\n--find-links ./wheels\n{PROBE}==1.0\n")
    (fn / "app.py").write_text(APP)
    (root / "layer" / "python").mkdir(parents=True)
    (root / "layer" / "python" / "shared.py").write_text('WHERE = "from the layer"\n')
    (root / "template.yaml").write_text(TEMPLATE)
    return root / "template.yaml"


def schedules(endpoint: str, function: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{endpoint}/lamina/v1/schedules?FunctionName={function}", timeout=30) as resp:
        return list(json.load(resp)["Schedules"])


def test_template_deploys_functions_layer_schedule_and_url_then_redeploys_idempotently(
    server: RunningServer, lambda_client: Any, tmp_path: Path, fname: str
) -> None:
    template = project(tmp_path)
    stack = fname[:30]
    args = ("deploy", "--template", str(template), "--stack-name", stack, "--parameter-overrides", "Greeting=bonjour")
    first = ok(lamina_cli(server.endpoint, *args))
    api, helper, layer = f"{stack}-Api", f"{stack}-Helper", f"{stack}-shared"
    assert f"layer {layer} published" in first.stdout
    assert f"function {helper} created" in first.stdout and f"function {api} created" in first.stdout
    assert f"schedule {api}-Nightly created" in first.stdout
    # The report names the unemulated property, per resource.
    assert "Api  VpcConfig  ignored: there is no VPC here" in first.stderr, first.stderr

    assert f"alias {api}:live created  version 1" in first.stdout
    answer = lambda_client.invoke(FunctionName=api, Qualifier="live", Payload=b"{}")
    assert "FunctionError" not in answer, answer["Payload"].read()
    helper_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{helper}"
    assert json.loads(answer["Payload"].read()) == {
        "greeting": "probe 1.0 greets bonjour",
        "layer": "from the layer",
        "helper": f"{helper} {helper_arn}",
        "region": "bonjour/us-east-1",
        "stage": "global",
    }
    config = lambda_client.get_function_configuration(FunctionName=api)
    assert (config["MemorySize"], config["Timeout"]) == (192, 10)
    assert config["VpcConfig"]["SubnetIds"] == ["subnet-0123"]  # kept (without effect), not dropped
    [layer_ref] = config["Layers"]
    assert layer_ref["Arn"].endswith(f":layer:{layer}:1")
    assert lambda_client.get_function_configuration(FunctionName=helper)["Role"] == f"arn:aws:iam::000000000000:role/{stack}-HelperRole"
    assert lambda_client.list_tags(Resource=helper_arn)["Tags"] == {"team": "data"}
    assert "HelperRole  AWS::IAM::Role  ignored: not created (Lamina has no IAM)" in first.stderr
    assert json.loads(lambda_client.invoke(FunctionName=helper)["Payload"].read()) == "helper"

    [schedule] = schedules(server.endpoint, api)
    assert (schedule["Name"], schedule["ScheduleExpression"], schedule["State"]) == (f"{api}-Nightly", "rate(1 day)", "ENABLED")
    assert schedule["Input"] == '{"from": "schedule"}'
    assert schedule["FunctionArn"].endswith(f":function:{api}:live")  # SAM's events target the alias
    provisioned = lambda_client.get_provisioned_concurrency_config(FunctionName=api, Qualifier="live")
    assert provisioned["RequestedProvisionedConcurrentExecutions"] == 1

    url = lambda_client.get_function_url_config(FunctionName=api, Qualifier="live")
    assert (url["AuthType"], url["InvokeMode"]) == ("NONE", "BUFFERED")
    with urllib.request.urlopen(url["FunctionUrl"], timeout=30) as resp:  # public: the deploy added the permission
        assert json.load(resp)["greeting"] == "probe 1.0 greets bonjour"

    # Again, unchanged: nothing is published or re-created, the code stays.
    sha = config["CodeSha256"]
    second = ok(lamina_cli(server.endpoint, *args))
    assert f"layer {layer} unchanged" in second.stdout and f"function {api} unchanged" in second.stdout
    assert f"schedule {api}-Nightly unchanged" in second.stdout
    assert f"alias {api}:live unchanged  version 1" in second.stdout
    assert [v["Version"] for v in lambda_client.list_layer_versions(LayerName=layer)["LayerVersions"]] == [1]
    assert lambda_client.get_function_configuration(FunctionName=api)["CodeSha256"] == sha
    assert len(schedules(server.endpoint, api)) == 1

    # A parameter change reaches the function's configuration and nothing else.
    third = ok(lamina_cli(server.endpoint, *args[:-1], "Greeting=hola Memory=256"))
    assert f"function {api} updated" in third.stdout and f"function {helper} unchanged" in third.stdout
    config = lambda_client.get_function_configuration(FunctionName=api)
    assert config["MemorySize"] == 256 and config["Environment"]["Variables"]["GREETING"] == "hola"
    assert config["CodeSha256"] == sha
    assert lambda_client.get_alias(FunctionName=api, Name="live")["FunctionVersion"] == "2"


def test_template_errors_name_the_resource_and_property(server: RunningServer, tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(
        "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        "      InlineCode: 'def handler(e, c): return 1'\n      Handler: index.handler\n      Runtime: python3.11\n"
        "      Description: !If [IsProd, a, b]\n"
    )
    failed = lamina_cli(server.endpoint, "deploy", "--template", str(tmp_path / "t.yaml"))
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert "template t.yaml: F.Description: Fn::If is not supported by lamina deploy --template" in failed.stderr


def test_parity_reports_each_configured_property(server: RunningServer, lambda_client: Any, fname: str) -> None:
    other_arch = "arm64" if platform.machine().lower() in ("x86_64", "amd64") else "x86_64"
    lambda_client.create_function(
        FunctionName=fname, Runtime="python3.11", Handler="index.handler", Role=DEFAULT_ROLE,
        Code={"ZipFile": zip_files({"index.py": "def handler(e, c):\n    return 1\n"})},
        MemorySize=256, Architectures=[other_arch], TracingConfig={"Mode": "Active"},
        KMSKeyArn="arn:aws:kms:us-east-1:000000000000:key/k", Environment={"Variables": {"MODE": "1"}},
        VpcConfig={"SubnetIds": ["subnet-1"], "SecurityGroupIds": ["sg-1"]},
    )  # fmt: skip
    lambda_client.get_waiter("function_active_v2").wait(FunctionName=fname, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
    lambda_client.put_function_concurrency(FunctionName=fname, ReservedConcurrentExecutions=2)

    result = ok(lamina_cli(server.endpoint, "parity", fname))
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[2:] if line.strip()}
    assert "exact" in rows["MemorySize"] and "256" in rows["MemorySize"]
    assert "exact" in rows["Environment"]
    assert "approximate" in rows["Architectures"] and "code runs on the host's architecture" in rows["Architectures"]
    assert "approximate" in rows["TracingConfig"] and "trace id headers" in rows["TracingConfig"]
    assert "ignored" in rows["KMSKeyArn"] and "stored unencrypted" in rows["KMSKeyArn"]
    assert "exact" in rows["ReservedConcurrentExecutions"]
    # Kept and returned, as Lambda does, so parity can name it.
    assert "ignored" in rows["VpcConfig"] and "there is no VPC here" in rows["VpcConfig"]
    assert "exact" in rows["Timeout"]
    # Lambda's defaults are not something the user configured.
    assert not {"EphemeralStorage", "SnapStart", "LoggingConfig", "PackageType"} & set(rows)

    missing = lamina_cli(server.endpoint, "parity", fname + "-nope")
    assert missing.returncode == 1 and "ResourceNotFoundException" in missing.stderr


def test_strict_server_refuses_ignored_properties(data_dir: Path, fname: str) -> None:
    from botocore.exceptions import ClientError

    with running_server(data_dir, extra_args=("--strict",)) as srv:
        client = srv.client()
        base = {"Runtime": "python3.11", "Handler": "index.handler", "Role": DEFAULT_ROLE,
                "Code": {"ZipFile": zip_files({"index.py": "def handler(e, c):\n    return 1\n"})}}  # fmt: skip
        with pytest.raises(ClientError) as refused:
            client.create_function(FunctionName=fname, VpcConfig={"SubnetIds": ["subnet-1"], "SecurityGroupIds": ["sg-1"]}, **base)
        error = refused.value.response["Error"]
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert error["Code"] == "InvalidParameterValueException"
        assert error["Message"] == (
            "Lamina does not emulate VpcConfig (there is no VPC here: the function's network is Lamina's --network); "
            "strict mode refuses it. Remove VpcConfig, or run the server without --strict."
        )
        with pytest.raises(ClientError, match="ResourceNotFoundException"):
            client.get_function(FunctionName=fname)  # nothing was created

        # Without it (and with VpcConfig's empty "no VPC" form) the create goes through.
        client.create_function(FunctionName=fname, VpcConfig={"SubnetIds": [], "SecurityGroupIds": []}, **base)
        client.get_waiter("function_active_v2").wait(FunctionName=fname, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
        with pytest.raises(ClientError, match="Lamina does not emulate KMSKeyArn"):
            client.update_function_configuration(FunctionName=fname, KMSKeyArn="arn:aws:kms:us-east-1:000000000000:key/k")
        client.update_function_configuration(FunctionName=fname, MemorySize=256)
        config = client.get_function_configuration(FunctionName=fname)
        assert config["MemorySize"] == 256 and "VpcConfig" not in config
