"""FunctionRepo: functions, versions, aliases and tags in SQLite.

Values are stored as JSON documents of the model types; the codec below is the only place that
knows their layout. Every method is one transaction.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from lamina.model.events import DestinationConfig, EventInvokeConfig
from lamina.model.function import (
    Alias,
    ProvisionedConfig,
    CodeRef,
    FunctionConfig,
    FunctionState,
    LastUpdateStatus,
    LayerRef,
    LoggingConfig,
    LogFormat,
    LogLevel,
    RuntimeManagement,
    StateInfo,
    UpdateRuntimeOn,
    VpcConfig,
)
from lamina.store.db import Database


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredFunction:
    name: str
    created: str
    tags: dict[str, str]
    next_version: int
    versions: list[FunctionConfig]
    aliases: list[Alias]
    reserved: int | None = None


def config_to_doc(c: FunctionConfig) -> dict[str, Any]:
    s = c.status
    return {
        "name": c.name,
        "version": c.version,
        "runtime": c.runtime,
        "handler": c.handler,
        "role": c.role,
        "code": {"sha256": c.code.sha256_hex, "size": c.code.size, **({"source": c.code.source} if c.code.source else {})},
        "description": c.description,
        "memory_size": c.memory_size,
        "timeout": c.timeout,
        "environment": c.environment,
        "architectures": list(c.architectures),
        "ephemeral_storage": c.ephemeral_storage,
        "tracing_mode": c.tracing_mode,
        "logging": {
            "log_format": c.logging.log_format.value,
            "application_log_level": c.logging.application_log_level.name if c.logging.application_log_level else None,
            "system_log_level": c.logging.system_log_level.name if c.logging.system_log_level else None,
            "log_group": c.logging.log_group,
        },
        "layers": [
            {"arn": ref.arn, "sha256": ref.code.sha256_hex, "size": ref.code.size, "unzipped_size": ref.unzipped_size}
            for ref in c.layers
        ],
        "dead_letter_target": c.dead_letter_target,
        "kms_key_arn": c.kms_key_arn,
        "vpc": {"subnet_ids": list(c.vpc.subnet_ids), "security_group_ids": list(c.vpc.security_group_ids),
                "ipv6": c.vpc.ipv6_allowed_for_dual_stack},  # fmt: skip
        "package_type": c.package_type,
        "revision_id": c.revision_id,
        "last_modified": c.last_modified,
        "status": {
            "state": s.state.value,
            "state_reason": s.state_reason,
            "state_reason_code": s.state_reason_code,
            "last_update_status": s.last_update_status.value if s.last_update_status else None,
            "last_update_reason": s.last_update_reason,
            "last_update_reason_code": s.last_update_reason_code,
        },
        "runtime_management": {
            "update_on": c.runtime_management.update_on.value,
            "version_arn": c.runtime_management.version_arn,
        },
    }


def config_from_doc(d: dict[str, Any]) -> FunctionConfig:
    s = d["status"]
    rm = d.get("runtime_management") or {}
    return FunctionConfig(
        name=d["name"],
        version=d["version"],
        runtime=d["runtime"],
        handler=d["handler"],
        role=d["role"],
        code=CodeRef(sha256_hex=d["code"]["sha256"], size=d["code"]["size"], source=d["code"].get("source")),
        description=d["description"],
        memory_size=d["memory_size"],
        timeout=d["timeout"],
        environment=d["environment"],
        architectures=tuple(d["architectures"]),
        ephemeral_storage=d["ephemeral_storage"],
        tracing_mode=d["tracing_mode"],
        logging=_logging_from_doc(d["logging"]),
        layers=tuple(
            LayerRef(arn=r["arn"], code=CodeRef(sha256_hex=r["sha256"], size=r["size"]), unzipped_size=r["unzipped_size"])
            for r in d["layers"]
        ),
        dead_letter_target=d["dead_letter_target"],
        kms_key_arn=d["kms_key_arn"],
        vpc=_vpc_from_doc(d.get("vpc")),  # absent in documents written before VpcConfig was kept
        package_type=d["package_type"],
        revision_id=d["revision_id"],
        last_modified=d["last_modified"],
        status=StateInfo(
            state=FunctionState(s["state"]),
            state_reason=s["state_reason"],
            state_reason_code=s["state_reason_code"],
            last_update_status=LastUpdateStatus(s["last_update_status"]) if s["last_update_status"] else None,
            last_update_reason=s["last_update_reason"],
            last_update_reason_code=s["last_update_reason_code"],
        ),
        # Documents written before runtime management existed are Auto (Lambda's default).
        runtime_management=RuntimeManagement(
            update_on=UpdateRuntimeOn(rm.get("update_on", "Auto")), version_arn=rm.get("version_arn")
        ),
    )


def _alias_to_doc(a: Alias) -> str:
    return json.dumps(
        {
            "function_version": a.function_version,
            "description": a.description,
            "additional_weights": a.additional_weights,
            "revision_id": a.revision_id,
        }
    )


class FunctionRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def load_all(self) -> list[StoredFunction]:
        def q(conn: sqlite3.Connection) -> list[StoredFunction]:
            out = []
            for name, created, tags, next_version, reserved in conn.execute(
                "SELECT name, created, tags, next_version, reserved FROM functions ORDER BY name"
            ):
                versions = [
                    config_from_doc(json.loads(doc))
                    for (doc,) in conn.execute("SELECT config FROM versions WHERE name=?", (name,))
                ]
                aliases = []
                for alias, doc in conn.execute("SELECT alias, config FROM aliases WHERE name=?", (name,)):
                    a = json.loads(doc)
                    aliases.append(Alias(function_name=name, name=alias, **a))
                out.append(
                    StoredFunction(
                        name=name,
                        created=created,
                        tags=json.loads(tags),
                        next_version=next_version,
                        versions=versions,
                        aliases=aliases,
                        reserved=reserved,
                    )
                )
            return out

        return await self._db.run(q)

    async def create(self, config: FunctionConfig, tags: dict[str, str], created: str) -> None:
        def q(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO functions(name, created, tags) VALUES (?,?,?)", (config.name, created, json.dumps(tags)))
            conn.execute(
                "INSERT INTO versions(name, version, config) VALUES (?,?,?)",
                (config.name, config.version, json.dumps(config_to_doc(config))),
            )

        await self._db.run(q)

    async def put_version(self, config: FunctionConfig, *, next_version: int | None = None) -> None:
        """Insert or replace one version; with next_version, also advance the version counter."""

        def q(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO versions(name, version, config) VALUES (?,?,?)",
                (config.name, config.version, json.dumps(config_to_doc(config))),
            )
            if next_version is not None:
                conn.execute("UPDATE functions SET next_version=? WHERE name=?", (next_version, config.name))

        await self._db.run(q)

    async def delete_function(self, name: str) -> None:
        await self._db.run(lambda conn: conn.execute("DELETE FROM functions WHERE name=?", (name,)))

    async def delete_version(self, name: str, version: str) -> None:
        """Delete a version, its event invoke config and its policy (they go together, as in Lambda)."""

        def q(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM versions WHERE name=? AND version=?", (name, version))
            conn.execute("DELETE FROM event_configs WHERE name=? AND qualifier=?", (name, version))
            conn.execute("DELETE FROM policies WHERE name=? AND qualifier=?", (name, version))

        await self._db.run(q)

    async def put_alias(self, alias: Alias) -> None:
        await self._db.run(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO aliases(name, alias, config) VALUES (?,?,?)",
                (alias.function_name, alias.name, _alias_to_doc(alias)),
            )
        )

    async def delete_alias(self, name: str, alias: str) -> None:
        """Delete an alias, its event invoke config, function URL and policy."""

        def q(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM aliases WHERE name=? AND alias=?", (name, alias))
            for table in ("event_configs", "function_urls", "policies"):
                conn.execute(f"DELETE FROM {table} WHERE name=? AND qualifier=?", (name, alias))

        await self._db.run(q)

    async def set_tags(self, name: str, tags: dict[str, str]) -> None:
        await self._db.run(lambda conn: conn.execute("UPDATE functions SET tags=? WHERE name=?", (json.dumps(tags), name)))

    async def set_reserved(self, name: str, reserved: int | None) -> None:
        await self._db.run(lambda conn: conn.execute("UPDATE functions SET reserved=? WHERE name=?", (reserved, name)))

    async def load_provisioned(self) -> list[ProvisionedConfig]:
        def q(conn: sqlite3.Connection) -> list[ProvisionedConfig]:
            rows = conn.execute("SELECT name, qualifier, requested, last_modified FROM provisioned ORDER BY name, qualifier")
            return [ProvisionedConfig(function_name=n, qualifier=q_, requested=r, last_modified=m) for n, q_, r, m in rows]

        return await self._db.run(q)

    async def put_provisioned(self, p: ProvisionedConfig) -> None:
        await self._db.run(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO provisioned(name, qualifier, requested, last_modified) VALUES (?,?,?,?)",
                (p.function_name, p.qualifier, p.requested, p.last_modified),
            )
        )

    async def delete_provisioned(self, name: str, qualifier: str) -> None:
        await self._db.run(lambda conn: conn.execute("DELETE FROM provisioned WHERE name=? AND qualifier=?", (name, qualifier)))

    async def load_event_configs(self) -> list[EventInvokeConfig]:
        def q(conn: sqlite3.Connection) -> list[EventInvokeConfig]:
            rows = conn.execute("SELECT name, qualifier, config FROM event_configs ORDER BY name, qualifier")
            return [_event_config_from(n, q_, json.loads(doc)) for n, q_, doc in rows]

        return await self._db.run(q)

    async def put_event_config(self, c: EventInvokeConfig) -> None:
        await self._db.run(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO event_configs(name, qualifier, config) VALUES (?,?,?)",
                (c.function_name, c.qualifier, json.dumps(_event_config_doc(c))),
            )
        )

    async def delete_event_config(self, name: str, qualifier: str) -> None:
        await self._db.run(lambda conn: conn.execute("DELETE FROM event_configs WHERE name=? AND qualifier=?", (name, qualifier)))


def _event_config_doc(c: EventInvokeConfig) -> dict[str, Any]:
    return {
        "maximum_retry_attempts": c.maximum_retry_attempts,
        "maximum_event_age_s": c.maximum_event_age_s,
        "on_success": c.destinations.on_success,
        "on_failure": c.destinations.on_failure,
        "last_modified": c.last_modified,
    }


def _event_config_from(name: str, qualifier: str, d: dict[str, Any]) -> EventInvokeConfig:
    return EventInvokeConfig(
        function_name=name,
        qualifier=qualifier,
        maximum_retry_attempts=d["maximum_retry_attempts"],
        maximum_event_age_s=d["maximum_event_age_s"],
        destinations=DestinationConfig(on_success=d["on_success"], on_failure=d["on_failure"]),
        last_modified=d["last_modified"],
    )


def _logging_from_doc(d: dict[str, Any]) -> LoggingConfig:
    app, system = d.get("application_log_level"), d.get("system_log_level")
    return LoggingConfig(
        log_format=LogFormat(d.get("log_format") or "Text"),
        application_log_level=LogLevel[app] if app else None,
        system_log_level=LogLevel[system] if system else None,
        log_group=d.get("log_group") or "",
    )


def _vpc_from_doc(d: dict[str, Any] | None) -> VpcConfig:
    if not d:
        return VpcConfig()
    return VpcConfig(subnet_ids=tuple(d["subnet_ids"]), security_group_ids=tuple(d["security_group_ids"]),
                     ipv6_allowed_for_dual_stack=bool(d.get("ipv6")))  # fmt: skip
