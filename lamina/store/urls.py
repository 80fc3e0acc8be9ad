"""UrlRepo: function URL configs and resource-based policies in SQLite (schema version 5).

Rows go with their function by cascade; FunctionRepo deletes those of a version or alias with it.
An unqualified URL or policy is stored under the qualifier "" (the column is part of the key).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from lamina.model.urls import Cors, FunctionUrlConfig, InvokeMode, Policy, PolicyStatement, UrlAuthType
from lamina.store.db import Database


class UrlRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def load_urls(self) -> list[FunctionUrlConfig]:
        def q(conn: sqlite3.Connection) -> list[FunctionUrlConfig]:
            rows = conn.execute("SELECT name, qualifier, url_id, config FROM function_urls ORDER BY name, qualifier")
            return [_url_from(n, q_, u, json.loads(doc)) for n, q_, u, doc in rows]

        return await self._db.run(q)

    async def put_url(self, c: FunctionUrlConfig) -> None:
        await self._db.run(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO function_urls(name, qualifier, url_id, config) VALUES (?,?,?,?)",
                (c.function_name, c.qualifier or "", c.url_id, json.dumps(_url_doc(c))),
            )
        )

    async def delete_url(self, name: str, qualifier: str | None) -> None:
        await self._db.run(
            lambda conn: conn.execute("DELETE FROM function_urls WHERE name=? AND qualifier=?", (name, qualifier or ""))
        )

    async def load_policies(self) -> list[Policy]:
        def q(conn: sqlite3.Connection) -> list[Policy]:
            rows = conn.execute("SELECT name, qualifier, revision_id, statements FROM policies ORDER BY name, qualifier")
            return [
                Policy(function_name=n, qualifier=q_ or None, revision_id=r,
                       statements=tuple(PolicyStatement(**s) for s in json.loads(doc)))  # fmt: skip
                for n, q_, r, doc in rows
            ]

        return await self._db.run(q)

    async def put_policy(self, p: Policy) -> None:
        """Store a policy; one without statements is deleted (Lambda then has no policy)."""

        def q(conn: sqlite3.Connection) -> None:
            key = (p.function_name, p.qualifier or "")
            if not p.statements:
                conn.execute("DELETE FROM policies WHERE name=? AND qualifier=?", key)
                return
            doc = json.dumps([_statement_doc(s) for s in p.statements])
            conn.execute(
                "INSERT OR REPLACE INTO policies(name, qualifier, revision_id, statements) VALUES (?,?,?,?)",
                (*key, p.revision_id, doc),
            )

        await self._db.run(q)


def _statement_doc(s: PolicyStatement) -> dict[str, Any]:
    return {"sid": s.sid, "action": s.action, "principal": s.principal, "resource": s.resource, "conditions": s.conditions}


def _url_doc(c: FunctionUrlConfig) -> dict[str, Any]:
    cors = c.cors
    return {
        "auth_type": c.auth_type.value,
        "invoke_mode": c.invoke_mode.value,
        "creation_time": c.creation_time,
        "last_modified_time": c.last_modified_time,
        "cors": None if cors is None else {
            "allow_credentials": cors.allow_credentials,
            "allow_headers": cors.allow_headers,
            "allow_methods": cors.allow_methods,
            "allow_origins": cors.allow_origins,
            "expose_headers": cors.expose_headers,
            "max_age": cors.max_age,
        },
    }  # fmt: skip


def _tuple(v: list[str] | None) -> tuple[str, ...] | None:
    return None if v is None else tuple(v)


def _url_from(name: str, qualifier: str, url_id: str, d: dict[str, Any]) -> FunctionUrlConfig:
    raw = d["cors"]
    cors = None
    if raw is not None:
        cors = Cors(
            allow_credentials=raw["allow_credentials"],
            allow_headers=_tuple(raw["allow_headers"]),
            allow_methods=_tuple(raw["allow_methods"]),
            allow_origins=_tuple(raw["allow_origins"]),
            expose_headers=_tuple(raw["expose_headers"]),
            max_age=raw["max_age"],
        )
    return FunctionUrlConfig(
        function_name=name,
        qualifier=qualifier or None,
        url_id=url_id,
        auth_type=UrlAuthType(d["auth_type"]),
        cors=cors,
        invoke_mode=InvokeMode(d["invoke_mode"]),
        creation_time=d["creation_time"],
        last_modified_time=d["last_modified_time"],
    )
