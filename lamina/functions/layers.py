"""LayerService: publish, read, list and delete layer versions and their permissions; no HTTP.

Layers live in memory (loaded once at start), written to the store before a change is visible,
as functions are. Messages and the order of checks follow AWS-recorded responses (the
TestLambdaLayer snapshots in LocalStack's parity tests): a missing layer version is "The resource
you requested does not exist." for GetLayerVersion, "Layer version <arn> does not exist." for the
permission calls and for a function that references it (spec 2.3).

Functions reference versions by ARN; `resolve` turns those into `LayerRef`s (ARN plus content),
so a function keeps working after a version it uses is deleted, as on Lambda.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass, field, replace

from lamina.functions.service import now_timestamp
from lamina.model.errors import (
    InvalidParameterValueException,
    ResourceConflictException,
    ResourceNotFoundException,
    ValidationException,
)
from lamina.model.function import LayerRef
from lamina.model.ids import Arns
from lamina.model.layers import (
    LAYER_NAME,
    LAYER_NAME_PATTERN_TEXT,
    LAYER_VERSION_ARN,
    LAYER_VERSION_ARN_PATTERN_TEXT,
    MAX_LAYERS_PER_FUNCTION,
    LayerFilter,
    LayerPermissionInput,
    LayerStatement,
    LayerVersion,
    PublishLayerInput,
    parse_layer_arn,
)
from lamina.runtimes.catalog import LAMBDA_RUNTIMES
from lamina.store.code import CodeStore
from lamina.store.layers import LayerRepo
from lamina.functions import validate

ARCHITECTURES = ("x86_64", "arm64")
_NOT_FOUND = "The resource you requested does not exist."
_STATEMENT_ID = r"([a-zA-Z0-9-_]+)"
_PRINCIPAL = r"\d{12}|\*|arn:(aws[a-zA-Z-]*):iam::\d{12}:root"
_ORGANIZATION = r"o-[a-z0-9]{10,32}"


@dataclass(slots=True)
class LayerRecord:
    """One layer in memory: its live versions and the number the next publish gets."""

    name: str
    next_version: int
    versions: dict[int, LayerVersion] = field(default_factory=dict)


class LayerService:
    def __init__(self, *, repo: LayerRepo, code: CodeStore, arns: Arns) -> None:
        self._repo = repo
        self._code = code
        self.arns = arns
        self._layers: dict[str, LayerRecord] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def load(self) -> None:
        counters, versions = await self._repo.load_all()
        self._layers = {name: LayerRecord(name=name, next_version=n) for name, n in counters.items()}
        for v in versions:
            self._layers[v.name].versions[v.version] = v

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    # --- names -------------------------------------------------------------------------------

    def layer_name(self, raw: str) -> str:
        """The layer a LayerName parameter names: a name, or a layer ARN of this region and account."""
        if not 1 <= len(raw) <= 140 or not LAYER_NAME.match(raw):
            raise _validation([(raw, "layerName", f"Member must satisfy regular expression pattern: {LAYER_NAME_PATTERN_TEXT}")])
        if not raw.startswith("arn:"):
            return raw
        parts = parse_layer_arn(raw)
        if parts is None or parts.version is not None:
            raise _validation([(raw, "layerName", f"Member must satisfy regular expression pattern: {LAYER_NAME_PATTERN_TEXT}")])
        if (parts.region, parts.account) != (self.arns.region, self.arns.account_id):
            raise ResourceNotFoundException(_NOT_FOUND)
        return parts.name

    # --- publish / read / delete -------------------------------------------------------------

    async def publish(self, req: PublishLayerInput) -> LayerVersion:
        name = self.layer_name(req.name)
        _check_publish(req)
        code = await self._code.put(req.zip_file)
        unzipped = await self._code.unzipped_size(code)
        async with self._lock(name):
            rec = self._layers.get(name) or LayerRecord(name=name, next_version=1)
            version = LayerVersion(
                name=name,
                version=rec.next_version,
                code=code,
                unzipped_size=unzipped,
                created_date=now_timestamp(),
                description=req.description,
                compatible_runtimes=req.compatible_runtimes,
                compatible_architectures=req.compatible_architectures,
                license_info=req.license_info,
            )
            await self._repo.publish(version)
            rec.versions[version.version] = version
            rec.next_version += 1
            self._layers[name] = rec
            return version

    def get(self, name: str, version: int) -> LayerVersion:
        found = self._find(self.layer_name(name), _version_number(version))
        if found is None:
            raise ResourceNotFoundException(_NOT_FOUND)
        return found

    def get_by_arn(self, arn: str) -> LayerVersion:
        if not 1 <= len(arn) <= 2048 or not LAYER_VERSION_ARN.match(arn):
            raise _validation([(arn, "arn", f"Member must satisfy regular expression pattern: {LAYER_VERSION_ARN_PATTERN_TEXT}")])
        parts = parse_layer_arn(arn)
        if parts is None or parts.version is None or (parts.region, parts.account) != (self.arns.region, self.arns.account_id):
            raise ResourceNotFoundException(_NOT_FOUND)
        return self.get(parts.name, parts.version)

    def list_layers(self, f: LayerFilter) -> list[LayerVersion]:
        """Each layer's newest version that matches `f`, by layer name; layers with none are left out."""
        _check_filter(f)
        out = []
        for name in sorted(self._layers):
            matching = [v for v in self._layers[name].versions.values() if v.compatible(f.runtime, f.architecture)]
            if matching:
                out.append(max(matching, key=lambda v: v.version))
        return out

    def list_versions(self, name: str, f: LayerFilter) -> list[LayerVersion]:
        """A layer's versions that match `f`, newest first (none for an unknown layer, as Lambda)."""
        _check_filter(f)
        rec = self._layers.get(self.layer_name(name))
        if rec is None:
            return []
        return [rec.versions[n] for n in sorted(rec.versions, reverse=True) if rec.versions[n].compatible(f.runtime, f.architecture)]

    async def delete(self, name: str, version: int) -> None:
        """Delete a version; deleting one that does not exist is not an error (observed: 204)."""
        layer, number = self.layer_name(name), _version_number(version)
        async with self._lock(layer):
            rec = self._layers.get(layer)
            if rec is None or number not in rec.versions:
                return
            await self._repo.delete(layer, number)
            del rec.versions[number]

    def _find(self, name: str, version: int) -> LayerVersion | None:
        rec = self._layers.get(name)
        return rec.versions.get(version) if rec is not None else None

    # --- permissions -------------------------------------------------------------------------

    def _permission_target(self, name: str, version: int) -> LayerVersion:
        layer, number = self.layer_name(name), _version_number(version)
        found = self._find(layer, number)
        if found is None:
            raise ResourceNotFoundException(f"Layer version {self.arns.layer(layer, number)} does not exist.")
        return found

    async def add_permission(self, name: str, version: int, req: LayerPermissionInput) -> tuple[LayerVersion, LayerStatement]:
        _check_statement(req.statement)
        layer = self.layer_name(name)
        async with self._lock(layer):
            target = self._permission_target(layer, version)
            validate.revision(req.revision_id, target.policy_revision, api="GetLayerPolicy")
            if any(s.sid == req.statement.sid for s in target.statements):
                raise ResourceConflictException(
                    f"The statement id ({req.statement.sid}) provided already exists. "
                    "Please provide a new statement id, or remove the existing statement."
                )
            updated = replace(target, statements=(*target.statements, req.statement), policy_revision=str(uuid.uuid4()))
            await self._store(updated)
            return updated, req.statement

    def get_policy(self, name: str, version: int) -> LayerVersion:
        target = self._permission_target(name, version)
        if not target.statements:
            raise ResourceNotFoundException("No policy is associated with the given resource.")
        return target

    async def remove_permission(self, name: str, version: int, sid: str, revision_id: str | None) -> None:
        layer = self.layer_name(name)
        async with self._lock(layer):
            target = self._permission_target(layer, version)
            if not any(s.sid == sid for s in target.statements):
                raise ResourceNotFoundException(f"Statement {sid} is not found in resource policy.")
            validate.revision(revision_id, target.policy_revision, api="GetLayerPolicy")
            kept = tuple(s for s in target.statements if s.sid != sid)
            await self._store(replace(target, statements=kept, policy_revision=str(uuid.uuid4())))

    async def _store(self, v: LayerVersion) -> None:
        await self._repo.put(v)
        self._layers[v.name].versions[v.version] = v

    # --- what functions use ------------------------------------------------------------------

    def resolve(self, arns: tuple[str, ...]) -> tuple[LayerRef, ...]:
        """A function's Layers parameter → its layers, in order; Lambda's checks (spec 2.3)."""
        if len(arns) > MAX_LAYERS_PER_FUNCTION:
            raise InvalidParameterValueException(f"Cannot reference more than {MAX_LAYERS_PER_FUNCTION} layers.")
        refs: list[LayerRef] = []
        seen: dict[str, str] = {}  # layer ARN → the version ARN that named it first
        for arn in arns:
            parts = parse_layer_arn(arn) if LAYER_VERSION_ARN.match(arn) and len(arn) <= 2048 else None
            if parts is None or parts.version is None:
                raise _validation([(f"[{arn}]", "layers", (
                    "Member must satisfy constraint: [Member must have length less than or equal to 2048, Member must "
                    "have length greater than or equal to 1, Member must satisfy regular expression pattern: "
                    f"{LAYER_VERSION_ARN_PATTERN_TEXT}, Member must not be null]"
                ))])  # fmt: skip
            if parts.region != self.arns.region:
                raise InvalidParameterValueException(
                    "Layers are not in the same region as the function. "
                    f"Layers are expected to be in region {self.arns.region}."
                )
            found = self._find(parts.name, parts.version) if parts.account == self.arns.account_id else None
            if found is None:
                raise InvalidParameterValueException(f"Layer version {arn} does not exist.")
            layer_arn = arn.rsplit(":", 1)[0]
            if layer_arn in seen:
                raise InvalidParameterValueException(
                    "Two different versions of the same layer are not allowed to be referenced in the same function. "
                    f"{seen[layer_arn]} and {arn} are versions of the same layer."
                )
            seen[layer_arn] = arn
            refs.append(LayerRef(arn=arn, code=found.code, unzipped_size=found.unzipped_size))
        return tuple(refs)


# --- checks --------------------------------------------------------------------------------


def _validation(failures: list[tuple[str, str, str]]) -> ValidationException:
    """Lambda's constraint-failure text, for one or more members (spec 1.2)."""
    n = len(failures)
    detail = "; ".join(f"Value '{value}' at '{member}' failed to satisfy constraint: {c}" for value, member, c in failures)
    return ValidationException(f"{n} validation error{'s' if n > 1 else ''} detected: {detail}")


def _version_number(version: int) -> int:
    if version < 1:
        raise InvalidParameterValueException("Layer Version Cannot be less than 1")
    return version


def _enum_text(values: tuple[str, ...]) -> str:
    return f"Member must satisfy enum value set: [{', '.join(values)}]"


def _check_publish(req: PublishLayerInput) -> None:
    failures: list[tuple[str, str, str]] = []
    if len(req.description) > 256:
        failures.append((req.description, "description", "Member must have length less than or equal to 256"))
    runtimes = req.compatible_runtimes or ()
    if any(r not in LAMBDA_RUNTIMES for r in runtimes):
        failures.append((f"[{', '.join(runtimes)}]", "compatibleRuntimes", _enum_text(LAMBDA_RUNTIMES)))
    elif len(runtimes) > 15:
        failures.append((f"[{', '.join(runtimes)}]", "compatibleRuntimes", "Member must have length less than or equal to 15"))
    archs = req.compatible_architectures or ()
    if any(a not in ARCHITECTURES for a in archs):
        failures.append((f"[{', '.join(archs)}]", "compatibleArchitectures",
                         f"Member must satisfy constraint: [{_enum_text(ARCHITECTURES)}, Member must not be null]"))  # fmt: skip
    elif len(archs) > 2:
        failures.append((f"[{', '.join(archs)}]", "compatibleArchitectures", "Member must have length less than or equal to 2"))
    if req.license_info is not None and len(req.license_info) > 512:
        failures.append((req.license_info, "licenseInfo", "Member must have length less than or equal to 512"))
    if failures:
        raise _validation(failures)


def _check_filter(f: LayerFilter) -> None:
    if f.runtime is not None and f.runtime not in LAMBDA_RUNTIMES:
        raise _validation([(f.runtime, "compatibleRuntime", _enum_text(LAMBDA_RUNTIMES))])
    if f.architecture is not None and f.architecture not in ARCHITECTURES:
        raise _validation([(f.architecture, "compatibleArchitecture", _enum_text(ARCHITECTURES))])


def _check_statement(s: LayerStatement) -> None:
    failures: list[tuple[str, str, str]] = []
    if not 1 <= len(s.sid) <= 100 or not re.fullmatch(_STATEMENT_ID, s.sid):
        failures.append((s.sid, "statementId", f"Member must satisfy regular expression pattern: {_STATEMENT_ID}"))
    if s.action != "lambda:GetLayerVersion":
        failures.append((s.action, "action", "Member must satisfy regular expression pattern: lambda:GetLayerVersion"))
    if not re.fullmatch(_PRINCIPAL, s.principal):
        failures.append((s.principal, "principal", f"Member must satisfy regular expression pattern: {_PRINCIPAL}"))
    if s.organization_id is not None and not re.fullmatch(_ORGANIZATION, s.organization_id):
        failures.append((s.organization_id, "organizationId", f"Member must satisfy regular expression pattern: {_ORGANIZATION}"))
    if failures:
        raise _validation(failures)
