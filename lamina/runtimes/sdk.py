"""The AWS SDK (boto3 and its dependencies) that the managed Python runtimes carry.

Lambda's Python runtimes ship boto3, so functions need not package it; a function's own copy (in
its zip or a layer) wins because the runtime client puts the SDK last on ``sys.path``. Here the
SDK sets are pinned in ``sdk_requirements/python3.X.txt`` (one per range of interpreters the wheels support)
and installed by ``scripts/setup.sh`` into ``<repo>/.runtime-sdk/python3.X``: pure-Python wheels,
byte-compiled for every interpreter on the host (sandboxes see the SDK read-only, so a missing
``.pyc`` would be recompiled on every cold start that imports boto3).

The versions are part of a runtime's version: `Sdk.version` and `Sdk.digest` give them for a
runtime identifier (runtimes/versions.py folds the digest into the runtime version ARN).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

REQUIREMENTS_DIR = Path(__file__).parent / "sdk_requirements"
# Where setup.sh installs the sets: beside .venv in the checkout Lamina runs from.
SDK_ROOT = Path(__file__).resolve().parents[2] / ".runtime-sdk"
# Where sandboxes that map paths see the runtime's SDK (its own mount: /var/runtime and /var/lang
# are read-only binds that cannot take a mount point inside).
SDK_DIR_INSIDE = "/var/lang-sdk"
# The runtime client reads this (and removes it, so user code never sees it) to find the SDK.
SDK_PATH_ENV = "_LAMINA_SDK_PATH"
# Marks a completed install (written last by setup.sh): a half-installed set is not used.
INSTALLED_MARK = ".installed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Sdk:
    """One installed SDK set."""

    name: str  # the set, e.g. "python3.10" (for python3.10 and later)
    directory: Path
    packages: tuple[tuple[str, str], ...]  # (distribution, version), sorted by name

    @property
    def version(self) -> str:
        """E.g. "boto3/1.44.5 botocore/1.44.5 ..." (what a runtime version can name)."""
        return " ".join(f"{name}/{version}" for name, version in self.packages)

    @property
    def digest(self) -> str:
        """A short hash of `version`, for identifiers derived from it (runtime version ARNs)."""
        return hashlib.sha256(self.version.encode()).hexdigest()[:16]

    def package_version(self, name: str) -> str | None:
        return dict(self.packages).get(name)


def set_name(runtime_id: str) -> str | None:
    """The SDK set of a Python runtime identifier; None for other runtimes."""
    if not runtime_id.startswith("python3."):
        return None
    minor = runtime_id.removeprefix("python3.")
    if not minor.isdigit() or int(minor) < 9:
        return None
    return "python3.9" if int(minor) == 9 else "python3.10"


def _installed_packages(directory: Path) -> tuple[tuple[str, str], ...]:
    """(name, version) of each distribution installed in `directory`, from its .dist-info name."""
    found = []
    for entry in os.listdir(directory):
        if entry.endswith(".dist-info"):
            name, _, version = entry.removesuffix(".dist-info").rpartition("-")
            found.append((name.lower().replace("_", "-"), version))
    return tuple(sorted(found))


class SdkCatalog:
    """The SDK sets installed on this host (looked up once, at server start)."""

    def __init__(self, sets: dict[str, Sdk]) -> None:
        self._sets = sets

    @classmethod
    def discover(cls, root: Path = SDK_ROOT) -> SdkCatalog:
        sets: dict[str, Sdk] = {}
        for req in sorted(REQUIREMENTS_DIR.glob("python3.*.txt")):
            name = req.stem
            directory = root / name
            if (directory / INSTALLED_MARK).is_file():
                sets[name] = Sdk(name=name, directory=directory, packages=_installed_packages(directory))
        return cls(sets)

    def for_runtime(self, runtime_id: str) -> Sdk | None:
        name = set_name(runtime_id)
        return self._sets.get(name) if name is not None else None

    def missing(self, runtime_ids: list[str]) -> list[str]:
        """The Python runtimes among `runtime_ids` that run without an SDK here."""
        return [rid for rid in runtime_ids if set_name(rid) is not None and self.for_runtime(rid) is None]

