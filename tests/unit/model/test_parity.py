"""The parity table: what strict mode refuses, and its message."""

from __future__ import annotations

from lamina.model.parity import FUNCTION_PROPERTIES, Support, by_api_field, ignored_fields, is_set, strict_message


def test_ignored_fields_skip_the_empty_forms_that_clear_a_setting() -> None:
    body = {
        "FunctionName": "f",
        "VpcConfig": {"SubnetIds": ["subnet-1"], "SecurityGroupIds": []},
        "KMSKeyArn": "",
        "SnapStart": {"ApplyOn": "None"},
        "TracingConfig": {"Mode": "Active"},
    }
    assert [e.name for e in ignored_fields(body)] == ["VpcConfig"]
    assert not is_set({"SubnetIds": [], "SecurityGroupIds": []})


def test_strict_message_names_the_member() -> None:
    entry = by_api_field("KMSKeyArn")
    assert entry is not None and entry.support is Support.IGNORED
    assert strict_message(entry) == (
        "Lamina does not emulate KMSKeyArn (environment variables are stored unencrypted); strict mode refuses it. "
        "Remove KMSKeyArn, or run the server without --strict."
    )


def test_every_api_field_finds_its_entry() -> None:
    for p in FUNCTION_PROPERTIES.values():
        if p.api_field:
            found = by_api_field(p.api_field)
            assert found is not None and found.api_field == p.api_field, p.name
