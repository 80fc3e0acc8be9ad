"""CloudFormation templates for `lamina deploy --template`: YAML with its short-form tags, and the
intrinsic functions that matter for local use (Ref, Fn::GetAtt, Fn::Sub, Fn::Join).

The loader turns every short form (`!Ref X`, `!GetAtt A.Arn`, `!Sub ...`, `!If [...]`) into the
long form CloudFormation itself uses (`{"Ref": "X"}`, `{"Fn::GetAtt": ["A", "Arn"]}`), so the
resolver sees one shape. It loads any tag CloudFormation defines; the resolver refuses the ones
Lamina does not evaluate with a `TemplateError` naming the resource and property.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

# Short-form tags: `!Name` is `Fn::Name`, except Ref and Condition which keep their bare names.
_TAGS = ("Ref", "Condition", "GetAtt", "Sub", "Join", "If", "Select", "Split", "FindInMap", "GetAZs", "ImportValue",
         "Base64", "Equals", "Not", "And", "Or", "Cidr", "Transform", "Length", "ToJsonString")  # fmt: skip
SUPPORTED = ("Ref", "Fn::GetAtt", "Fn::Sub", "Fn::Join")
_SUB_VAR = re.compile(r"\$\{([^}!]+)\}")


class TemplateError(Exception):
    """A template Lamina cannot deploy; the message names the resource and property."""


class _NoValue:
    """AWS::NoValue: the property or list item that holds it is removed."""


NO_VALUE = _NoValue()


class _Loader(yaml.SafeLoader):
    pass


def _short_form(name: str) -> Callable[[yaml.SafeLoader, yaml.Node], dict[str, Any]]:
    key = name if name in ("Ref", "Condition") else f"Fn::{name}"

    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if name == "GetAtt":  # `!GetAtt A.B` is `Fn::GetAtt: [A, B]`
                value = str(value).split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        return {key: value}

    return construct


for _tag in _TAGS:
    _Loader.add_constructor(f"!{_tag}", _short_form(_tag))


def load(text: str, *, source: str) -> dict[str, Any]:
    """A template's document (YAML or JSON); TemplateError if it is not a mapping of Resources."""
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise TemplateError(f"{source} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("Resources"), dict):
        raise TemplateError(f"{source} has no Resources section")
    return doc


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """What intrinsics resolve against.

    `refs`: logical id → what Ref gives (a parameter's value, a function's name, a layer's version
    ARN, a pseudo parameter's value). `attributes`: (logical id, attribute) → what Fn::GetAtt gives.
    `pending`: resources that exist in the template but have no value yet (not deployed).
    """

    refs: Mapping[str, object] = field(default_factory=dict)
    attributes: Mapping[tuple[str, str], object] = field(default_factory=dict)
    pending: frozenset[str] = frozenset()


def resolve(value: Any, ctx: Context, *, where: str) -> Any:
    """`value` with every supported intrinsic replaced by its value; `where` ("MyFunction.Environment")
    names the place in errors. AWS::NoValue entries vanish from mappings and lists."""
    if isinstance(value, list):
        items = (resolve(v, ctx, where=where) for v in value)
        return [v for v in items if v is not NO_VALUE]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (key, arg), = value.items()
        if key == "Ref" or key.startswith("Fn::") or key == "Condition":
            return _intrinsic(key, arg, ctx, where)
    out = {}
    for k, v in value.items():
        resolved = resolve(v, ctx, where=f"{where}.{k}")
        if resolved is not NO_VALUE:
            out[k] = resolved
    return out


def _intrinsic(key: str, arg: Any, ctx: Context, where: str) -> Any:
    if key == "Ref":
        return _ref(str(arg), ctx, where)
    if key == "Fn::GetAtt":
        parts = arg.split(".", 1) if isinstance(arg, str) else arg
        if not isinstance(parts, list) or len(parts) != 2:
            raise TemplateError(f"{where}: Fn::GetAtt takes [LogicalId, Attribute], not {arg!r}")
        return _get_att(str(parts[0]), str(parts[1]), ctx, where)
    if key == "Fn::Sub":
        return _sub(arg, ctx, where)
    if key == "Fn::Join":
        if not isinstance(arg, list) or len(arg) != 2 or not isinstance(arg[1], list):
            raise TemplateError(f"{where}: Fn::Join takes [delimiter, [values]], not {arg!r}")
        values = resolve(arg[1], ctx, where=where)
        return str(arg[0]).join(_text(v, where) for v in values)
    raise TemplateError(
        f"{where}: {key} is not supported by lamina deploy --template (it resolves {', '.join(SUPPORTED)}); "
        "replace it with a literal value or a parameter"
    )


def _ref(name: str, ctx: Context, where: str) -> object:
    if name == "AWS::NoValue":
        return NO_VALUE
    if name in ctx.refs:
        return ctx.refs[name]
    if name in ctx.pending:
        raise TemplateError(f"{where}: Ref {name} names a resource lamina deploy --template does not create")
    raise TemplateError(f"{where}: Ref {name} names no parameter or resource of the template")


def _get_att(name: str, attribute: str, ctx: Context, where: str) -> object:
    if (name, attribute) in ctx.attributes:
        return ctx.attributes[(name, attribute)]
    known = sorted(a for (n, a) in ctx.attributes if n == name)
    if known:
        raise TemplateError(f"{where}: Fn::GetAtt {name}.{attribute}: Lamina knows only {', '.join(known)} of {name}")
    if name in ctx.refs or name in ctx.pending:
        raise TemplateError(f"{where}: Fn::GetAtt {name}.{attribute}: {name} has no attributes Lamina can give")
    raise TemplateError(f"{where}: Fn::GetAtt {name}.{attribute} names no resource of the template")


def _sub(arg: Any, ctx: Context, where: str) -> str:
    """Fn::Sub: "${X}", "${X.Attr}", "${!Literal}", and the [template, {Var: value}] form."""
    if isinstance(arg, list):
        if len(arg) != 2 or not isinstance(arg[0], str) or not isinstance(arg[1], dict):
            raise TemplateError(f"{where}: Fn::Sub takes a string or [string, {{Var: value}}], not {arg!r}")
        text, local = arg[0], {k: resolve(v, ctx, where=f"{where}.{k}") for k, v in arg[1].items()}
    elif isinstance(arg, str):
        text, local = arg, {}
    else:
        raise TemplateError(f"{where}: Fn::Sub takes a string or [string, {{Var: value}}], not {arg!r}")

    def variable(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        if name in local:
            return _text(local[name], where)
        if "." in name:
            resource, attribute = name.split(".", 1)
            return _text(_get_att(resource, attribute, ctx, where), where)
        return _text(_ref(name, ctx, where), where)

    return _SUB_VAR.sub(variable, text).replace("${!", "${")


def _text(value: object, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise TemplateError(f"{where}: expected a string, got {value!r}")


def references(value: Any) -> set[str]:
    """The logical ids (and parameters) `value` refers to through Ref, Fn::GetAtt and Fn::Sub:
    what must be deployed before it."""
    found: set[str] = set()
    if isinstance(value, list):
        for v in value:
            found |= references(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            if k == "Ref" and isinstance(v, str):
                found.add(v)
            elif k == "Fn::GetAtt":
                parts = v.split(".", 1) if isinstance(v, str) else v
                if isinstance(parts, list) and parts:
                    found.add(str(parts[0]))
            elif k == "Fn::Sub":
                text = v[0] if isinstance(v, list) and v else v
                if isinstance(text, str):
                    found |= {m.split(".", 1)[0].strip() for m in _SUB_VAR.findall(text)}
                found |= references(v)
            else:
                found |= references(v)
    return found
