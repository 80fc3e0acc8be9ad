"""FunctionRef parsing: names, partial and full ARNs, qualifiers (spec 1.4)."""

from __future__ import annotations

import pytest

from lamina.model.errors import InvalidParameterValueException, ValidationException
from lamina.model.ids import Arns, FunctionRef


@pytest.mark.parametrize(
    ("raw", "qualifier", "name", "expected_q"),
    [
        ("f", None, "f", None),
        ("f:7", None, "f", "7"),
        ("f", "live", "f", "live"),
        ("123456789012:function:f", None, "f", None),
        ("arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST", None, "f", "$LATEST"),
        ("arn:aws:lambda:eu-west-2:123456789012:function:my-fn_1:prod", "prod", "my-fn_1", "prod"),
    ],
)
def test_parse(raw: str, qualifier: str | None, name: str, expected_q: str | None) -> None:
    ref = FunctionRef.parse(raw, qualifier)
    assert (ref.name, ref.qualifier) == (name, expected_q)


def test_mismatched_qualifier() -> None:
    with pytest.raises(InvalidParameterValueException, match="does not match the specified qualifier"):
        FunctionRef.parse("f:1", "2")


@pytest.mark.parametrize("raw", ["", "bad name", "f" * 65, "arn:aws:lambda:nowhere:1:function:f", "a/b"])
def test_invalid(raw: str) -> None:
    with pytest.raises(ValidationException, match="1 validation error detected"):
        FunctionRef.parse(raw)


def test_arns_round_trip() -> None:
    arns = Arns(region="us-east-1", account_id="000000000000")
    arn = arns.function("f", "3")
    assert arn == "arn:aws:lambda:us-east-1:000000000000:function:f:3"
    assert arns.parse_function_arn(arn) == FunctionRef.parse("f:3")
    assert arns.parse_function_arn("f") is None
