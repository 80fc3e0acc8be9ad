"""LayerRepo: layers and their versions in SQLite (the content itself is in the CodeStore).

A version is stored as a JSON document of `LayerVersion`; the codec below is the only place that
knows its layout. Every method is one transaction.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from lamina.model.function import CodeRef
from lamina.model.layers import LayerStatement, LayerVersion
from lamina.store.db import Database


def _to_doc(v: LayerVersion) -> str:
    doc: dict[str, Any] = {
        "code": {"sha256": v.code.sha256_hex, "size": v.code.size},
        "unzipped_size": v.unzipped_size,
        "created_date": v.created_date,
        "description": v.description,
        "compatible_runtimes": list(v.compatible_runtimes) if v.compatible_runtimes is not None else None,
        "compatible_architectures": list(v.compatible_architectures) if v.compatible_architectures is not None else None,
        "license_info": v.license_info,
        "statements": [
            {"sid": s.sid, "principal": s.principal, "action": s.action, "organization_id": s.organization_id}
            for s in v.statements
        ],
        "policy_revision": v.policy_revision,
    }
    return json.dumps(doc)


def _from_doc(name: str, version: int, raw: str) -> LayerVersion:
    d = json.loads(raw)
    runtimes, archs = d["compatible_runtimes"], d["compatible_architectures"]
    return LayerVersion(
        name=name,
        version=version,
        code=CodeRef(sha256_hex=d["code"]["sha256"], size=d["code"]["size"]),
        unzipped_size=d["unzipped_size"],
        created_date=d["created_date"],
        description=d["description"],
        compatible_runtimes=tuple(runtimes) if runtimes is not None else None,
        compatible_architectures=tuple(archs) if archs is not None else None,
        license_info=d["license_info"],
        statements=tuple(LayerStatement(**s) for s in d["statements"]),
        policy_revision=d["policy_revision"],
    )


class LayerRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def load_all(self) -> tuple[dict[str, int], list[LayerVersion]]:
        """Every layer's next version number, and every live version."""

        def q(conn: sqlite3.Connection) -> tuple[dict[str, int], list[LayerVersion]]:
            layers = {name: n for name, n in conn.execute("SELECT name, next_version FROM layers")}
            rows = conn.execute("SELECT name, version, doc FROM layer_versions ORDER BY name, version")
            return layers, [_from_doc(name, version, doc) for name, version, doc in rows]

        return await self._db.run(q)

    async def publish(self, v: LayerVersion) -> None:
        """Store a new version and move the layer's counter past it."""

        def q(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO layers(name, next_version) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET next_version = excluded.next_version",
                (v.name, v.version + 1),
            )
            conn.execute("INSERT INTO layer_versions(name, version, doc) VALUES (?, ?, ?)", (v.name, v.version, _to_doc(v)))

        await self._db.run(q)

    async def put(self, v: LayerVersion) -> None:
        """Replace a version's document (its policy changed)."""

        def q(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE layer_versions SET doc = ? WHERE name = ? AND version = ?", (_to_doc(v), v.name, v.version))

        await self._db.run(q)

    async def delete(self, name: str, version: int) -> None:
        """Delete a version; the layer's counter stays, so its number is never reused."""

        def q(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM layer_versions WHERE name = ? AND version = ?", (name, version))

        await self._db.run(q)
