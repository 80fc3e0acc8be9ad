"""Put/Get/Update/Delete/ListFunctionEventInvokeConfigs: shapes, qualifiers, Lambda's messages.

Expected texts are those of AWS-recorded responses (spec 2.2; LocalStack's snapshots of AWS).
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from lamina.testing import deploy

APP = {"app.py": "def handler(e, c):\n    return e\n"}
ACCOUNT_ARN = "arn:aws:lambda:us-east-1:000000000000:function:"


def error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    r = exc.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Message"]


def test_lifecycle_per_qualifier(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, APP)
    version = lambda_client.publish_version(FunctionName=fname)["Version"]
    lambda_client.create_alias(FunctionName=fname, Name="live", FunctionVersion=version)
    arn = ACCOUNT_ARN + fname

    put = lambda_client.put_function_event_invoke_config(FunctionName=fname, MaximumRetryAttempts=0)
    assert put["FunctionArn"] == f"{arn}:$LATEST"
    assert put["MaximumRetryAttempts"] == 0 and "MaximumEventAgeInSeconds" not in put
    assert put["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}
    assert put["LastModified"].year >= 2024  # a Date: an epoch number on the wire
    # Put replaces: what is left out is removed
    put = lambda_client.put_function_event_invoke_config(FunctionName=fname, MaximumEventAgeInSeconds=60)
    assert "MaximumRetryAttempts" not in put and put["MaximumEventAgeInSeconds"] == 60
    # Update merges
    upd = lambda_client.update_function_event_invoke_config(FunctionName=fname, MaximumRetryAttempts=1)
    assert (upd["MaximumRetryAttempts"], upd["MaximumEventAgeInSeconds"]) == (1, 60)
    got = lambda_client.get_function_event_invoke_config(FunctionName=fname, Qualifier="$LATEST")
    assert (got["MaximumRetryAttempts"], got["MaximumEventAgeInSeconds"]) == (1, 60)

    # versions and aliases have configs of their own, by Qualifier, name:qualifier or ARN
    assert lambda_client.put_function_event_invoke_config(FunctionName=fname, Qualifier=version,
                                                          MaximumRetryAttempts=2)["FunctionArn"] == f"{arn}:{version}"  # fmt: skip
    assert lambda_client.put_function_event_invoke_config(FunctionName=f"{fname}:live",
                                                          MaximumEventAgeInSeconds=120)["FunctionArn"] == f"{arn}:live"  # fmt: skip
    assert lambda_client.get_function_event_invoke_config(FunctionName=f"{arn}:live")["MaximumEventAgeInSeconds"] == 120
    listed = lambda_client.list_function_event_invoke_configs(FunctionName=fname)["FunctionEventInvokeConfigs"]
    assert [c["FunctionArn"] for c in listed] == [f"{arn}:$LATEST", f"{arn}:{version}", f"{arn}:live"]
    page = lambda_client.list_function_event_invoke_configs(FunctionName=fname, MaxItems=2)
    assert len(page["FunctionEventInvokeConfigs"]) == 2 and page["NextMarker"]
    rest = lambda_client.list_function_event_invoke_configs(FunctionName=fname, Marker=page["NextMarker"])
    assert [c["FunctionArn"] for c in rest["FunctionEventInvokeConfigs"]] == [f"{arn}:live"]

    # deleting the alias deletes its config with it
    lambda_client.delete_alias(FunctionName=fname, Name="live")
    listed = lambda_client.list_function_event_invoke_configs(FunctionName=fname)["FunctionEventInvokeConfigs"]
    assert [c["FunctionArn"] for c in listed] == [f"{arn}:$LATEST", f"{arn}:{version}"]
    assert lambda_client.delete_function_event_invoke_config(FunctionName=fname)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        lambda_client.delete_function_event_invoke_config(FunctionName=fname)
    assert error(exc) == ("ResourceNotFoundException", 404, f"The function {arn}:$LATEST doesn't have an EventInvokeConfig")
    with pytest.raises(ClientError) as exc:
        lambda_client.get_function_event_invoke_config(FunctionName=fname, Qualifier="nope")
    assert error(exc) == ("ResourceNotFoundException", 404, f"The function {arn}:nope doesn't have an EventInvokeConfig")


def test_destinations(lambda_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, APP)
    target = fname + "-dest"
    deploy(lambda_client, target, APP)
    arn, target_arn = ACCOUNT_ARN + fname, ACCOUNT_ARN + target
    put = lambda_client.put_function_event_invoke_config(
        FunctionName=fname, DestinationConfig={"OnSuccess": {"Destination": target_arn}, "OnFailure": {"Destination": f"{target_arn}:$LATEST"}}
    )
    assert put["DestinationConfig"] == {"OnSuccess": {"Destination": target_arn}, "OnFailure": {"Destination": f"{target_arn}:$LATEST"}}
    cases = [
        ({"OnSuccess": {"Destination": ACCOUNT_ARN + "doesnotexist"}},
         f"The destination ARN {ACCOUNT_ARN}doesnotexist is invalid."),
        ({"OnSuccess": {"Destination": arn}}, "You can't specify the function as a destination for itself."),
        ({"OnSuccess": {"Destination": arn.replace(":lambda:", ":iam:")}},
         f"The provided destination config DestinationConfig(onSuccess=OnSuccess(destination={arn.replace(':lambda:', ':iam:')}), "
         "onFailure=null) is invalid."),
        ({"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:000000000000:q"}},
         "The destination ARN arn:aws:sqs:us-east-1:000000000000:q names an Amazon SQS queue: Lamina delivers invocation "
         "records to Lamina functions only. Use a function ARN."),
    ]  # fmt: skip
    for config, message in cases:
        with pytest.raises(ClientError) as exc:
            lambda_client.put_function_event_invoke_config(FunctionName=fname, DestinationConfig=config)
        assert error(exc) == ("InvalidParameterValueException", 400, message)
    # an empty destination object clears it
    put = lambda_client.put_function_event_invoke_config(FunctionName=fname, DestinationConfig={"OnSuccess": {}})
    assert put["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}


def test_validation_messages(lambda_client: Any, unvalidated_client: Any, fname: str) -> None:
    deploy(lambda_client, fname, APP)
    cases = [
        (dict(MaximumRetryAttempts=5), "ValidationException",
         "1 validation error detected: Value '5' at 'maximumRetryAttempts' failed to satisfy constraint: "
         "Member must have value less than or equal to 2"),
        (dict(MaximumRetryAttempts=-1), "ValidationException",
         "1 validation error detected: Value '-1' at 'maximumRetryAttempts' failed to satisfy constraint: "
         "Member must have value greater than or equal to 0"),
        (dict(MaximumEventAgeInSeconds=44444), "ValidationException",
         "1 validation error detected: Value '44444' at 'maximumEventAgeInSeconds' failed to satisfy constraint: "
         "Member must have value less than or equal to 21600"),
        (dict(MaximumEventAgeInSeconds=59), "ValidationException",
         "1 validation error detected: Value '59' at 'maximumEventAgeInSeconds' failed to satisfy constraint: "
         "Member must have value greater than or equal to 60"),
        (dict(DestinationConfig={"OnFailure": {"Destination": "invalid"}}), "ValidationException",
         "1 validation error detected: Value 'invalid' at 'destinationConfig.onFailure.destination' failed to satisfy "
         r"constraint: Member must satisfy regular expression pattern: $|kafka://([^.]([a-zA-Z0-9\-_.]{0,248}))|"
         r"arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\-])+:((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1})?:(\d{12})?:(.*)"),
        ({}, "InvalidParameterValueException", "You must specify at least one of error handling or destination setting."),
    ]  # fmt: skip
    for params, code, message in cases:
        with pytest.raises(ClientError) as exc:
            unvalidated_client.put_function_event_invoke_config(FunctionName=fname, **params)
        assert error(exc)[::2] == (code, message), params
    with pytest.raises(ClientError) as exc:
        unvalidated_client.update_function_event_invoke_config(FunctionName=fname)
    assert error(exc) == ("InvalidParameterValueException", 400, "You must specify at least one of error handling or destination setting.")
    # no config yet: Update is a 404; missing functions and qualifiers likewise
    with pytest.raises(ClientError) as exc:
        lambda_client.update_function_event_invoke_config(FunctionName=fname, MaximumRetryAttempts=0)
    assert error(exc) == ("ResourceNotFoundException", 404, f"The function {ACCOUNT_ARN}{fname}:$LATEST doesn't have an EventInvokeConfig")
    for call in (
        lambda: lambda_client.put_function_event_invoke_config(FunctionName=fname + "-nope", MaximumRetryAttempts=1),
        lambda: lambda_client.put_function_event_invoke_config(FunctionName=fname, Qualifier="nope", MaximumRetryAttempts=1),
        lambda: lambda_client.update_function_event_invoke_config(FunctionName=fname + "-nope", MaximumRetryAttempts=1),
        lambda: lambda_client.list_function_event_invoke_configs(FunctionName=fname + "-nope"),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert error(exc) == ("ResourceNotFoundException", 404, "The function doesn't exist.")
    with pytest.raises(ClientError) as exc:
        lambda_client.put_function_event_invoke_config(FunctionName=f"{fname}:live", Qualifier="other", MaximumRetryAttempts=1)
    assert error(exc) == ("InvalidParameterValueException", 400, "The derived qualifier from the function name does not match the specified qualifier.")


def test_dead_letter_target_is_a_function(lambda_client: Any, fname: str) -> None:
    target = fname + "-dlq"
    deploy(lambda_client, target, APP)
    deploy(lambda_client, fname, APP, DeadLetterConfig={"TargetArn": ACCOUNT_ARN + target})
    config = lambda_client.get_function_configuration(FunctionName=fname)
    assert config["DeadLetterConfig"] == {"TargetArn": ACCOUNT_ARN + target}
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=fname, WaiterConfig={"Delay": 0.05, "MaxAttempts": 400})
    with pytest.raises(ClientError) as exc:
        lambda_client.update_function_configuration(FunctionName=fname, DeadLetterConfig={"TargetArn": "arn:aws:sqs:us-east-1:000000000000:q"})
    assert error(exc) == ("InvalidParameterValueException", 400,
                          "The dead-letter target arn:aws:sqs:us-east-1:000000000000:q names an Amazon SQS queue: Lamina sends "
                          "dead letters to Lamina functions only. Use a function ARN.")  # fmt: skip
    with pytest.raises(ClientError) as exc:
        lambda_client.update_function_configuration(FunctionName=fname, DeadLetterConfig={"TargetArn": ACCOUNT_ARN + fname})
    assert error(exc)[0] == "InvalidParameterValueException"
    # an empty TargetArn removes it
    lambda_client.update_function_configuration(FunctionName=fname, DeadLetterConfig={"TargetArn": ""})
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=fname, WaiterConfig={"Delay": 0.05, "MaxAttempts": 400})
    assert "DeadLetterConfig" not in lambda_client.get_function_configuration(FunctionName=fname)
