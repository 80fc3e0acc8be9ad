"""Lambda's runtime lifecycle (spec 10): when each runtime is deprecated, then blocked for
CreateFunction, then for UpdateFunctionCode/Configuration. Invocations are never blocked.

The dates are data (`lifecycle.toml`, with where each came from); this module reads them once and
answers "which phase is this runtime in today". "Today" is the real UTC date unless a fixed one is
given (LAMINA_TODAY, for tests and for trying a future date).
"""

from __future__ import annotations

import enum
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

LIFECYCLE_FILE = Path(__file__).with_name("lifecycle.toml")


class RuntimePhase(enum.Enum):
    """Ordered: each phase includes the restrictions of those before it."""

    SUPPORTED = "supported"
    DEPRECATED = "deprecated"  # no more patches; create and update still work through the API
    CREATE_BLOCKED = "create-blocked"  # CreateFunction refuses it
    UPDATE_BLOCKED = "update-blocked"  # UpdateFunctionCode/Configuration refuse it too

    @property
    def rank(self) -> int:
        return list(RuntimePhase).index(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeLifecycle:
    identifier: str
    name: str
    os: str
    deprecation: date | None = None  # None: not scheduled
    block_create: date | None = None
    block_update: date | None = None
    source: str = ""

    def phase(self, today: date) -> RuntimePhase:
        """The phase on `today` (a stage applies from its date on, UTC)."""
        if self.block_update is not None and today >= self.block_update:
            return RuntimePhase.UPDATE_BLOCKED
        if self.block_create is not None and today >= self.block_create:
            return RuntimePhase.CREATE_BLOCKED
        if self.deprecation is not None and today >= self.deprecation:
            return RuntimePhase.DEPRECATED
        return RuntimePhase.SUPPORTED


def blocked_message(identifier: str) -> str:
    """Lambda's text for a create or update on a blocked runtime (spec 2.3)."""
    return (
        f"The runtime parameter of {identifier} is no longer supported for creating or updating AWS Lambda "
        "functions. We recommend you use a supported runtime while creating or updating functions."
    )


class RuntimeCalendar:
    """Every runtime's lifecycle, and the day it is judged against."""

    def __init__(self, entries: Iterable[RuntimeLifecycle], *, today: date | None = None) -> None:
        self._entries = {e.identifier: e for e in entries}
        self._fixed_today = today

    @classmethod
    def load(cls, *, today: date | None = None, path: Path = LIFECYCLE_FILE) -> RuntimeCalendar:
        """Read the data file. Raises ValueError naming the entry if the file is malformed."""
        with path.open("rb") as f:
            doc = tomllib.load(f)
        return cls((_entry(rid, raw) for rid, raw in doc.get("runtimes", {}).items()), today=today)

    def today(self) -> date:
        return self._fixed_today or datetime.now(UTC).date()

    def get(self, identifier: str) -> RuntimeLifecycle | None:
        return self._entries.get(identifier)

    def phase(self, identifier: str) -> RuntimePhase:
        """Unknown identifiers (none reach here: validation knows Lambda's list) count as supported."""
        entry = self._entries.get(identifier)
        return entry.phase(self.today()) if entry is not None else RuntimePhase.SUPPORTED

    def entries(self) -> list[RuntimeLifecycle]:
        return list(self._entries.values())


def _entry(identifier: str, raw: dict[str, Any]) -> RuntimeLifecycle:
    def day(key: str) -> date | None:
        value = raw.get(key)
        if value is not None and not isinstance(value, date):
            raise ValueError(f"{LIFECYCLE_FILE.name}: {identifier}.{key} must be a date, not {value!r}")
        return value

    entry = RuntimeLifecycle(
        identifier=identifier,
        name=str(raw.get("name", identifier)),
        os=str(raw.get("os", "")),
        deprecation=day("deprecation"),
        block_create=day("block_create"),
        block_update=day("block_update"),
        source=str(raw.get("source", "")),
    )
    stages = [d for d in (entry.deprecation, entry.block_create, entry.block_update) if d is not None]
    if stages != sorted(stages):
        raise ValueError(f"{LIFECYCLE_FILE.name}: {identifier}'s dates are out of order")
    return entry
