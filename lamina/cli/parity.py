"""`lamina parity NAME`: a deployed function's configured properties (its GetFunction answer)
against the parity table of lamina/model/parity.py, and the report lines deploys print.

A property counts as configured when GetFunction reports it with a value other than Lambda's
default (TracingConfig PassThrough, 512 MB of EphemeralStorage, no DeadLetterConfig...). Of the
ignored members the server keeps VpcConfig and KMSKeyArn (so GetFunction shows them); the others
(FileSystemConfigs, SnapStart...) appear in the deploy report, made from the request.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rich.table import Table
from rich.text import Text

from lamina.model.parity import Support, by_api_field, lookup

_STYLE = {Support.EXACT: "green", Support.APPROXIMATE: "yellow", Support.IGNORED: "red"}
_HOST_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}
# Members of FunctionConfiguration that are state or identity, not something the user configured.
_NOT_SETTINGS = ("FunctionName", "FunctionArn", "CodeSize", "CodeSha256", "LastModified", "Version", "RevisionId",
                 "State", "StateReason", "StateReasonCode", "LastUpdateStatus", "LastUpdateStatusReason",
                 "LastUpdateStatusReasonCode", "RuntimeVersionConfig", "MasterArn", "SigningProfileVersionArn",
                 "SigningJobArn")  # fmt: skip
_DEFAULT_ROLE_SUFFIX = ":role/lamina"


@dataclass(frozen=True, slots=True, kw_only=True)
class ParityRow:
    property: str
    value: str
    support: Support
    note: str


def rows(document: Mapping[str, Any]) -> tuple[ParityRow, ...]:
    """One row per configured property of a GetFunction answer, in the answer's order."""
    config = document.get("Configuration") or {}
    out = []
    for key, value in config.items():
        if key in _NOT_SETTINGS or _is_default(key, value):
            continue
        entry = by_api_field(key) or lookup(key)
        if entry is None:
            continue  # SnapStart Off and other members Lambda always reports
        support = _support(key, value, entry.support)
        note = "the host's own architecture" if key == "Architectures" and support is Support.EXACT else entry.note
        out.append(ParityRow(property=key, value=_short(value), support=support, note=note))
    if "Tags" in document:
        tags = lookup("Tags")
        assert tags is not None
        out.append(ParityRow(property="Tags", value=_short(document["Tags"]), support=tags.support, note=tags.note))
    reserved = (document.get("Concurrency") or {}).get("ReservedConcurrentExecutions")
    if reserved is not None:
        entry = lookup("ReservedConcurrentExecutions")
        assert entry is not None
        out.append(ParityRow(property="ReservedConcurrentExecutions", value=str(reserved), support=entry.support, note=entry.note))
    return tuple(out)


def _is_default(key: str, value: Any) -> bool:
    return (
        (key == "TracingConfig" and (value or {}).get("Mode") == "PassThrough")
        or (key == "EphemeralStorage" and (value or {}).get("Size") == 512)
        or (key == "PackageType" and value == "Zip")
        or (key == "Description" and not value)
        or (key == "LoggingConfig" and (value or {}).get("LogFormat") == "Text" and str((value or {}).get("LogGroup", "")).startswith("/aws/lambda/"))
        or (key == "SnapStart")
    )  # fmt: skip


def _support(key: str, value: Any, support: Support) -> Support:
    """Architectures is exact when it names the host's own architecture."""
    if key == "Architectures" and value == [_HOST_ARCH.get(platform.machine().lower(), "")]:
        return Support.EXACT
    return support


def notable(document: Mapping[str, Any]) -> tuple[ParityRow, ...]:
    """What a deploy prints: the rows that are not exact, less the default role `lamina deploy` gives."""
    return tuple(
        r for r in rows(document)
        if r.support is not Support.EXACT and not (r.property == "Role" and r.value.endswith(_DEFAULT_ROLE_SUFFIX))
    )  # fmt: skip


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def table(name: str, found: Iterable[ParityRow]) -> Table:
    t = Table(title=f"Parity of {name}", title_justify="left", box=None, header_style="bold", pad_edge=False)
    t.add_column("PROPERTY", no_wrap=True)
    t.add_column("VALUE")
    t.add_column("PARITY", no_wrap=True)
    t.add_column("NOTE")
    for r in found:
        t.add_row(Text(r.property, style="cyan"), Text(r.value), Text(r.support.value, style=_STYLE[r.support]), Text(r.note))
    return t


def line(resource: str, prop: str, support: Support, note: str) -> Text:
    """One report line of a deploy: `  MyFunction  VpcConfig  ignored: why`."""
    return Text.assemble("  ", (resource, "cyan"), "  ", prop, "  ", (support.value, _STYLE[support]), f": {note}")
