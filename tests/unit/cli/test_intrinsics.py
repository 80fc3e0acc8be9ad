"""The template loader and intrinsic resolver of `lamina deploy --template`."""

from __future__ import annotations

from pathlib import Path

import pytest

from lamina.cli import template as tmpl
from lamina.cli.intrinsics import NO_VALUE, Context, TemplateError, load, references, resolve

CTX = Context(
    refs={"Stage": "dev", "AWS::Region": "us-east-1", "Fn": "fn-name", "AWS::StackName": "app"},
    attributes={("Fn", "Arn"): "arn:aws:lambda:us-east-1:000000000000:function:fn-name"},
    pending=frozenset({"Queue"}),
)


def test_short_and_long_forms_load_to_the_same_document() -> None:
    short = load(
        "Resources:\n  X:\n    Properties:\n"
        "      A: !Ref Stage\n      B: !GetAtt Fn.Arn\n      C: !Sub '${Fn}-${Stage}'\n"
        "      D: !Join ['-', [a, !Ref Stage]]\n      E: !If [Cond, 1, 2]\n      F: !Sub\n        - '${X}'\n        - X: 1\n",
        source="t.yaml",
    )
    long = load(
        "Resources:\n  X:\n    Properties:\n"
        "      A: {Ref: Stage}\n      B: {'Fn::GetAtt': [Fn, Arn]}\n      C: {'Fn::Sub': '${Fn}-${Stage}'}\n"
        "      D: {'Fn::Join': ['-', [a, {Ref: Stage}]]}\n      E: {'Fn::If': [Cond, 1, 2]}\n"
        "      F: {'Fn::Sub': ['${X}', {X: 1}]}\n",
        source="t.yaml",
    )
    assert short == long
    assert short["Resources"]["X"]["Properties"]["B"] == {"Fn::GetAtt": ["Fn", "Arn"]}


def test_ref_getatt_sub_and_join_resolve() -> None:
    doc = {
        "name": {"Ref": "Fn"},
        "arn": {"Fn::GetAtt": "Fn.Arn"},
        "sub": {"Fn::Sub": "${AWS::StackName}/${Fn.Arn}/${Stage}/${!Literal}"},
        "two": {"Fn::Sub": ["${Greeting}, ${Stage}", {"Greeting": {"Ref": "Fn"}}]},
        "join": {"Fn::Join": [":", ["a", {"Ref": "Stage"}, 3]]},
        "gone": {"Ref": "AWS::NoValue"},
        "list": ["x", {"Ref": "AWS::NoValue"}, {"Ref": "Stage"}],
    }
    assert resolve(doc, CTX, where="R") == {
        "name": "fn-name",
        "arn": "arn:aws:lambda:us-east-1:000000000000:function:fn-name",
        "sub": "app/arn:aws:lambda:us-east-1:000000000000:function:fn-name/dev/${Literal}",
        "two": "fn-name, dev",
        "join": "a:dev:3",
        "list": ["x", "dev"],
    }
    assert resolve({"Ref": "AWS::NoValue"}, CTX, where="R") is NO_VALUE


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"Fn::If": ["C", 1, 2]}, r"R\.P: Fn::If is not supported by lamina deploy --template"),
        ({"Ref": "Nope"}, r"R\.P: Ref Nope names no parameter or resource of the template"),
        ({"Ref": "Queue"}, r"R\.P: Ref Queue names a resource lamina deploy --template does not create"),
        ({"Fn::GetAtt": ["Fn", "Version"]}, r"R\.P: Fn::GetAtt Fn\.Version: Lamina knows only Arn of Fn"),
        ({"Fn::Sub": "${Nope}"}, r"R\.P: Ref Nope names no parameter"),
    ],
)
def test_unsupported_or_unknown_references_name_the_place(value: object, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        resolve({"P": value}, CTX, where="R")


def test_references_find_what_must_come_first() -> None:
    value = {"Layers": [{"Ref": "Lib"}], "E": {"Fn::Sub": "${Other.Arn} ${Stage}"}, "G": {"Fn::GetAtt": "Third.Arn"}}
    assert references(value) == {"Lib", "Other", "Stage", "Third"}


def test_globals_merge_as_sam_merges_them() -> None:
    merged = tmpl.merge_globals(
        {"Timeout": 3, "Environment": {"Variables": {"A": "g", "B": "g"}}, "Layers": ["g"]},
        {"Timeout": 9, "Environment": {"Variables": {"B": "l"}}, "Layers": ["l"]},
    )
    assert merged == {"Timeout": 9, "Environment": {"Variables": {"A": "g", "B": "l"}}, "Layers": ["g", "l"]}


def test_template_orders_layers_first_names_and_parameters(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(
        "Parameters:\n  Stage: {Type: String, Default: dev}\n  Size: {Type: Number}\n"
        "Resources:\n"
        "  Api:\n    Type: AWS::Serverless::Function\n    Properties:\n      Layers: [!Ref Lib]\n"
        "  Lib:\n    Type: AWS::Serverless::LayerVersion\n    Properties: {ContentUri: lib}\n"
        "  Named:\n    Type: AWS::Lambda::Function\n    Properties: {FunctionName: !Sub 'n-${Stage}'}\n"
        "  Queue:\n    Type: AWS::SQS::Queue\n"
        "  Role:\n    Type: AWS::IAM::Role\n"
    )
    with pytest.raises(TemplateError, match="parameter Size has no Default: give it with --parameter-overrides Size=VALUE"):
        tmpl.read(path, stack_name=None, overrides={})
    with pytest.raises(TemplateError, match="names Nope, which the template does not declare"):
        tmpl.read(path, stack_name=None, overrides={"Size": "1", "Nope": "x"})
    t = tmpl.read(path, stack_name="shop", overrides=tmpl.parse_overrides(["Size=1 Stage=prod"]))
    assert [r.logical_id for r in t.resources] == ["Lib", "Api", "Named"]
    assert [r.name for r in t.resources] == ["shop-Lib", "shop-Api", "n-prod"]
    assert t.skipped == (("Queue", "AWS::SQS::Queue"), ("Role", "AWS::IAM::Role"))
    ctx = t.context(region="eu-west-1", account_id="123456789012", deployed={"Lib": "arn:layer:1"})
    assert ctx.refs["Lib"] == "arn:layer:1" and ctx.refs["AWS::StackName"] == "shop"
    assert ctx.attributes[("Api", "Arn")] == "arn:aws:lambda:eu-west-1:123456789012:function:shop-Api"
    # An IAM role is not created, but a function's Role: !GetAtt Role.Arn still resolves.
    assert ctx.attributes[("Role", "Arn")] == "arn:aws:iam::123456789012:role/shop-Role"
    assert "Queue" in ctx.pending and "Role" not in ctx.pending
    unnamed = tmpl.read(path, stack_name=None, overrides={"Size": "1"})
    assert [r.name for r in unnamed.resources] == ["Lib", "Api", "n-dev"]


def test_a_cycle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(
        "Resources:\n"
        "  A:\n    Type: AWS::Serverless::Function\n    Properties: {Description: !GetAtt B.Arn}\n"
        "  B:\n    Type: AWS::Serverless::Function\n    Properties: {Description: !GetAtt A.Arn}\n"
    )
    with pytest.raises(TemplateError, match="cycle: A -> B -> A"):
        tmpl.read(path, stack_name=None, overrides={})


def test_report_lists_what_is_not_exact() -> None:
    r = tmpl.Resource(logical_id="F", kind=tmpl.SERVERLESS_FUNCTION, name="F", properties={
        "Handler": "a.b", "VpcConfig": {"SubnetIds": ["s"]}, "Tracing": "Active", "DeploymentPreference": {"Type": "AllAtOnce"}, "AutoPublishAlias": "live",
        "Bogus": 1, "Events": {"Tick": {"Type": "Schedule", "Properties": {"Schedule": "rate(1 day)", "RetryPolicy": {}}},
                               "Q": {"Type": "SQS", "Properties": {}}},
    })  # fmt: skip
    got = {(line.property, line.support.value) for line in tmpl.report(r)}
    assert got == {
        ("VpcConfig", "ignored"), ("Tracing", "approximate"), ("DeploymentPreference", "ignored"), ("Bogus", "ignored"),
        ("Events.Tick.RetryPolicy", "ignored"), ("Events.Q", "ignored"),
    }  # fmt: skip


def test_layer_report_names_what_is_not_applied() -> None:
    r = tmpl.Resource(logical_id="L", kind=tmpl.SERVERLESS_LAYER, name="L", properties={"ContentUri": "x", "RetentionPolicy": "Retain"},
                      metadata={"BuildMethod": "python3.11"})  # fmt: skip
    assert [(line.property, line.support.value) for line in tmpl.report(r)] == [
        ("RetentionPolicy", "ignored"), ("Metadata.BuildMethod", "ignored")
    ]
