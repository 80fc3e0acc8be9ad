"""FunctionUrls: Create/Get/Update/Delete/ListFunctionUrlConfigs (spec 2.2, 9); no HTTP.

A URL belongs to a function ($LATEST, unqualified) or to one of its aliases, never to a numbered
version (the Qualifier pattern refuses digits and $LATEST). Configs live on the function's record
(`FunctionRecord.urls`), written to the store first, and go with their alias or function. The
data plane finds a config by its url id through `find`, which reads only memory.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import replace
from datetime import datetime, timezone

from lamina.functions.service import FunctionRecord, FunctionService
from lamina.model.errors import InvalidParameterValueException, ResourceConflictException, ResourceNotFoundException
from lamina.model.ids import FunctionRef, validation_error
from lamina.model.urls import Cors, FunctionUrlConfig, InvokeMode, UrlConfigChanges
from lamina.store.urls import UrlRepo

# botocore's FunctionUrlQualifier: an alias name (no digits-only names, no $LATEST).
_QUALIFIER = re.compile(r"^(?!\d+$)[0-9a-zA-Z_-]{1,128}$")
_QUALIFIER_TEXT = r"((?!^\d+$)^[0-9a-zA-Z-_]+$)"
_ID_ALPHABET = string.ascii_lowercase + string.digits
# botocore's Cors limits: (member, most items, longest item).
_CORS_LISTS = (
    ("allowHeaders", 100, 1024),
    ("allowMethods", 6, 6),
    ("allowOrigins", 100, 253),
    ("exposeHeaders", 100, 1024),
)
MAX_AGE_LIMIT = 86_400


def new_url_id() -> str:
    """32 lower-case alphanumerics, as Lambda's url ids; unguessable (they are the URL)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(32))


def url_timestamp() -> str:
    """CreationTime / LastModifiedTime: ISO-8601 with microseconds, in UTC."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FunctionUrls:
    def __init__(self, *, functions: FunctionService, repo: UrlRepo) -> None:
        self._functions = functions
        self._repo = repo
        # url id → (function, qualifier); entries of deleted functions are ignored by `find`.
        self._by_id: dict[str, tuple[str, str | None]] = {}

    async def load(self) -> None:
        """Put every stored URL on its function's record (after FunctionService.load)."""
        for c in await self._repo.load_urls():
            rec = self._functions.find(c.function_name)
            if rec is not None:
                rec.urls[c.qualifier] = c
                self._by_id[c.url_id] = (c.function_name, c.qualifier)

    # --- reads -------------------------------------------------------------------------------

    def find(self, url_id: str) -> FunctionUrlConfig | None:
        """The live config whose URL has this id, if any (the data plane's lookup)."""
        key = self._by_id.get(url_id)
        if key is None:
            return None
        rec = self._functions.find(key[0])
        config = rec.urls.get(key[1]) if rec is not None else None
        return config if config is not None and config.url_id == url_id else None

    def get(self, ref: FunctionRef) -> FunctionUrlConfig:
        rec, qualifier = self._target(ref)
        config = rec.urls.get(qualifier)
        if config is None:
            raise ResourceNotFoundException("The resource you requested does not exist.")
        return config

    def list(self, ref: FunctionRef) -> list[FunctionUrlConfig]:
        rec = self._record(ref.name)
        return [rec.urls[q] for q in sorted(rec.urls, key=lambda q: q or "")]

    # --- changes -----------------------------------------------------------------------------

    async def create(self, ref: FunctionRef, changes: UrlConfigChanges) -> FunctionUrlConfig:
        if changes.auth_type is None:
            raise validation_error("null", "authType", "Member must not be null")
        _check(changes)
        async with self._functions.lock(ref.name):
            rec, qualifier = self._target(ref)
            if qualifier in rec.urls:
                arn = self._functions.arns.function(rec.name, qualifier)
                raise ResourceConflictException(
                    f"Failed to create function url config for [functionArn = {arn}]. "
                    "Error message:  FunctionUrlConfig exists for this Lambda function"
                )
            now = url_timestamp()
            config = FunctionUrlConfig(
                function_name=rec.name,
                qualifier=qualifier,
                url_id=new_url_id(),
                auth_type=changes.auth_type,
                cors=changes.cors,
                invoke_mode=changes.invoke_mode or InvokeMode.BUFFERED,
                creation_time=now,
                last_modified_time=now,
            )
            await self._repo.put_url(config)
            rec.urls[qualifier] = config
            self._by_id[config.url_id] = (rec.name, qualifier)
            return config

    async def update(self, ref: FunctionRef, changes: UrlConfigChanges) -> FunctionUrlConfig:
        """Members given replace the current ones (Cors as a whole); the URL stays the same."""
        _check(changes)
        async with self._functions.lock(ref.name):
            current = self.get(ref)
            config = replace(
                current,
                auth_type=changes.auth_type or current.auth_type,
                cors=changes.cors if changes.cors is not None else current.cors,
                invoke_mode=changes.invoke_mode or current.invoke_mode,
                last_modified_time=url_timestamp(),
            )
            await self._repo.put_url(config)
            self._record(ref.name).urls[config.qualifier] = config
            return config

    async def delete(self, ref: FunctionRef) -> None:
        async with self._functions.lock(ref.name):
            config = self.get(ref)
            await self._repo.delete_url(config.function_name, config.qualifier)
            del self._record(ref.name).urls[config.qualifier]
            self._by_id.pop(config.url_id, None)

    # --- helpers -----------------------------------------------------------------------------

    def _record(self, name: str) -> FunctionRecord:
        rec = self._functions.find(name)
        if rec is None:
            raise ResourceNotFoundException("Function does not exist")
        return rec

    def _target(self, ref: FunctionRef) -> tuple[FunctionRecord, str | None]:
        q = ref.qualifier
        if q is not None and not _QUALIFIER.match(q):
            raise validation_error(q, "qualifier", f"Member must satisfy regular expression pattern: {_QUALIFIER_TEXT}")
        rec = self._record(ref.name)
        if q is not None and q not in rec.aliases:
            raise ResourceNotFoundException(f"Function not found: {self._functions.arns.function(rec.name, q)}")
        return rec, q


def _check(changes: UrlConfigChanges) -> None:
    if changes.invoke_mode is InvokeMode.RESPONSE_STREAM:
        # Lamina cannot stream responses yet; accepting the mode would serve it wrongly.
        raise InvalidParameterValueException(
            "Lamina does not support InvokeMode RESPONSE_STREAM yet: function URLs answer buffered. Use BUFFERED."
        )
    if changes.cors is not None:
        check_cors(changes.cors)


def check_cors(cors: Cors) -> None:
    """botocore's Cors constraints, with Lambda's constraint-failure text."""
    for member, most, longest in _CORS_LISTS:
        items = getattr(cors, _snake(member))
        if items is None:
            continue
        if len(items) > most:
            raise validation_error(
                f"[{', '.join(items)}]", f"cors.{member}", f"Member must have length less than or equal to {most}"
            )
        for item in items:
            if len(item) > longest or (member == "allowOrigins" and not item):
                raise validation_error(
                    item, f"cors.{member}", f"Member must have length less than or equal to {longest}"
                    if item else "Member must have length greater than or equal to 1",
                )
    if cors.max_age is not None and not 0 <= cors.max_age <= MAX_AGE_LIMIT:
        bound = "less than or equal to 86400" if cors.max_age > 0 else "greater than or equal to 0"
        raise validation_error(str(cors.max_age), "cors.maxAge", f"Member must have value {bound}")


def _snake(member: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), member)
