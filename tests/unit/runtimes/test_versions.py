"""Runtime versions: one per exact build, the newest current, chosen per update mode (spec 10).

The builds here are small real executables (shell scripts that answer --version as Python does),
so the tests read and hash real files without copying a 6 MB interpreter."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

from lamina.model.errors import InvalidRuntimeException
from lamina.model.function import CodeRef, FunctionConfig, RuntimeManagement, UpdateRuntimeOn
from lamina.runtimes.catalog import RuntimeCatalog, RuntimeInfo
from lamina.runtimes.versions import RuntimeVersions

ARN = re.compile(r"^arn:aws:lambda:eu-west-1::runtime:[0-9a-f]{64}$")


def fake_python(path: Path, version: str, *, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho 'Python {version}'\n")
    path.chmod(0o755)
    os.utime(path, (mtime, mtime))
    return path


def config(mode: UpdateRuntimeOn = UpdateRuntimeOn.AUTO, arn: str | None = None) -> FunctionConfig:
    return FunctionConfig(name="f", runtime="python3.11", handler="app.handler", role="r",
                          code=CodeRef(sha256_hex="00" * 32, size=1), revision_id="1", last_modified="t",
                          runtime_management=RuntimeManagement(update_on=mode, version_arn=arn))  # fmt: skip


@pytest.fixture
def host(tmp_path: Path) -> Path:
    return fake_python(tmp_path / "usr" / "bin" / "python3.11", "3.11.2", mtime=1_000_000)


def versions_of(host: Path, builds: Path | None = None) -> RuntimeVersions:
    catalog = RuntimeCatalog({"python3.11": RuntimeInfo(identifier="python3.11", interpreter=host),
                              "provided.al2023": RuntimeInfo(identifier="provided.al2023", interpreter=None)})  # fmt: skip
    return RuntimeVersions(catalog, region="eu-west-1", builds_dir=builds)


def test_a_build_is_named_by_its_version_and_hashed_by_its_contents(host: Path) -> None:
    first = versions_of(host).current("python3.11")
    assert first is not None and ARN.match(first.arn)
    assert first.name == f"python:3.11.2-{first.arn[-64:][:8]}"
    assert first.interpreter == host
    assert versions_of(host).current("python3.11") == first  # stable across restarts
    os_only = versions_of(host).current("provided.al2023")
    assert os_only is not None and os_only.interpreter is None and os_only.name.startswith("provided:al2023.")


def test_a_patched_build_becomes_current_and_a_removed_one_goes(host: Path, tmp_path: Path) -> None:
    builds = tmp_path / "builds"
    versions = versions_of(host, builds)
    v1 = versions.current("python3.11")
    assert v1 is not None
    patched = fake_python(builds / "python3.11" / "patch1" / "bin" / "python3.11", "3.11.9", mtime=2_000_000)
    versions.refresh()
    v2 = versions.current("python3.11")
    assert v2 is not None and v2.arn != v1.arn and v2.interpreter == patched and v2.name.startswith("python:3.11.9-")
    assert [v.arn for v in versions.installed("python3.11")] == [v2.arn, v1.arn]
    assert versions.find("python3.11", v1.arn) == v1
    patched.unlink()
    versions.refresh()
    assert versions.installed("python3.11") == [v1]


def test_patching_in_place_changes_the_version(host: Path) -> None:
    versions = versions_of(host)
    before = versions.current("python3.11")
    fake_python(host, "3.11.3", mtime=3_000_000)
    versions.refresh()
    after = versions.current("python3.11")
    assert before is not None and after is not None and after.arn != before.arn


def test_select_follows_the_update_mode(host: Path, tmp_path: Path) -> None:
    builds = tmp_path / "builds"
    versions = versions_of(host, builds)
    v1 = versions.current("python3.11")
    assert v1 is not None
    patched = fake_python(builds / "python3.11" / "p" / "bin" / "python3.11", "3.11.9", mtime=2_000_000)
    versions.refresh()
    v2 = versions.current("python3.11")
    assert v2 is not None
    assert versions.select(config()) == v2
    assert versions.select(config(UpdateRuntimeOn.FUNCTION_UPDATE, v1.arn)) == v1
    assert versions.select(config(UpdateRuntimeOn.MANUAL, v1.arn)) == v1
    patched.unlink()
    versions.refresh()
    gone = v2.arn
    assert versions.select(config(UpdateRuntimeOn.FUNCTION_UPDATE, gone)) == v1  # the newest left
    with pytest.raises(InvalidRuntimeException, match="is no longer installed") as exc:
        versions.select(config(UpdateRuntimeOn.MANUAL, gone))
    assert v1.arn in exc.value.message and exc.value.status == 502
    with pytest.raises(InvalidRuntimeException, match="not available on this Lamina host"):
        versions.select(replace(config(), runtime="python3.12"))
