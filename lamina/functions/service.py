"""FunctionService: the control plane for functions, versions, aliases and tags; no HTTP.

All functions live in memory (loaded once at start), so reads and the invoke path never touch
the database; every change is written to the store before it is visible. Code is unpacked in the
background: create answers `State: Pending` and the function becomes `Active` once its code is
ready; updates go `LastUpdateStatus: InProgress` → `Successful` the same way (spec 0.4, 2.1).
Invocations of `$LATEST` run the last configuration whose update completed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from lamina.functions import validate
from lamina.model.events import EventInvokeConfig
from lamina.model.errors import (
    InvalidParameterValueException,
    ProvisionedConcurrencyConfigNotFoundException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from lamina.model.function import (
    Alias,
    CodeRef,
    ConfigChanges,
    CreateFunctionInput,
    FunctionConfig,
    FunctionState,
    LastUpdateStatus,
    LayerRef,
    LoggingChanges,
    LoggingConfig,
    LogFormat,
    LogLevel,
    ProvisionedConfig,
    ProvisionedState,
    RuntimeManagement,
    StateInfo,
    UpdateRuntimeOn,
)
from lamina.model.urls import FunctionUrlConfig, Policy
from lamina.model.ids import ALIAS_NAME, LATEST, VERSION_NUMBER, Arns, FunctionRef, validation_error
from lamina.runtimes.catalog import RuntimeCatalog
from lamina.store.code import MAX_UNZIPPED, CodeStore
from lamina.runtimes.lifecycle import RuntimeCalendar
from lamina.runtimes.versions import RuntimeVersions
from lamina.store.functions import FunctionRepo

log = logging.getLogger("lamina.functions")

# Lambda keeps this much of the account's concurrency unreserved (spec 8).
UNRESERVED_MINIMUM = 100


class LayerResolver(Protocol):
    """What functions need of layers (functions/layers.py): their Layers parameter, checked."""

    def resolve(self, arns: tuple[str, ...]) -> tuple[LayerRef, ...]:
        """The layer versions `arns` name, in order; raises Lambda's errors (spec 2.3)."""


class EnvironmentRetirer(Protocol):
    """What the control plane asks of execution environments (wired to envs by server.py)."""

    async def retire(self, name: str, version: str | None = None, *, wait: bool = True) -> None:
        """Stop a function's environments after an update or delete (`wait` False: idle ones stop
        in the background, but none of them serves another invoke)."""

    def provision(self, config: FunctionConfig, count: int, *, network: str | None = None) -> None:
        """Keep `count` environments of this version initialised ahead of traffic (0: none)."""

    def provisioned_state(self, name: str, version: str) -> ProvisionedState: ...


@dataclass(slots=True)
class FunctionRecord:
    """One function in memory: $LATEST, its published versions and aliases."""

    name: str
    created: str
    tags: dict[str, str]
    next_version: int
    latest: FunctionConfig
    # What invokes of $LATEST run: the last configuration whose update completed.
    runnable: FunctionConfig | None
    versions: dict[str, FunctionConfig] = field(default_factory=dict)
    aliases: dict[str, Alias] = field(default_factory=dict)
    # Reserved concurrency (PutFunctionConcurrency): a cap and a guarantee; 0 throttles everything.
    reserved: int | None = None
    # Provisioned concurrency by qualifier (a version number or an alias name).
    provisioned: dict[str, ProvisionedConfig] = field(default_factory=dict)
    # Asynchronous settings by qualifier ("$LATEST", a version or an alias); see event_configs.py.
    event_configs: dict[str, EventInvokeConfig] = field(default_factory=dict)
    # Function URLs and resource-based policies by qualifier (None: unqualified); see urls.py, policies.py.
    urls: dict[str | None, FunctionUrlConfig] = field(default_factory=dict)
    policies: dict[str | None, Policy] = field(default_factory=dict)


def now_timestamp() -> str:
    """Lambda's LastModified format: 2024-05-01T10:20:30.123+0000."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}+0000"


def _new_revision() -> str:
    return str(uuid.uuid4())


_CREATING = StateInfo()
_ACTIVE = StateInfo(state=FunctionState.ACTIVE, state_reason=None, state_reason_code=None, last_update_status=LastUpdateStatus.SUCCESSFUL)
_UPDATING = StateInfo(
    state=FunctionState.ACTIVE,
    state_reason=None,
    state_reason_code=None,
    last_update_status=LastUpdateStatus.IN_PROGRESS,
    last_update_reason="The function is being created.",
    last_update_reason_code="Creating",
)


class FunctionService:
    def __init__(
        self,
        *,
        repo: FunctionRepo,
        code: CodeStore,
        versions: RuntimeVersions,
        calendar: RuntimeCalendar,
        arns: Arns,
        retirer: EnvironmentRetirer,
        layers: LayerResolver,
        account_concurrency: int = 1000,
    ) -> None:
        self._layers = layers
        self.account_concurrency = account_concurrency
        self.total_reserved = 0
        self._repo = repo
        self._code = code
        self._versions = versions
        self.calendar = calendar
        self.arns = arns
        self._retirer = retirer
        self._functions: dict[str, FunctionRecord] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: dict[str, asyncio.Lock] = {}

    # --- lifecycle ---------------------------------------------------------------------------

    async def load(self) -> None:
        """Load every function from the store; finish code unpacking a crash interrupted."""
        for stored in await self._repo.load_all():
            versions = {c.version: c for c in stored.versions}
            latest = versions.pop(LATEST)
            pending = latest.status.state is FunctionState.PENDING or latest.status.last_update_status is LastUpdateStatus.IN_PROGRESS
            rec = FunctionRecord(
                name=stored.name,
                created=stored.created,
                tags=stored.tags,
                next_version=stored.next_version,
                latest=latest,
                runnable=None if pending else latest,
                versions=versions,
                aliases={a.name: a for a in stored.aliases},
                reserved=stored.reserved,
            )
            self._functions[stored.name] = rec
            self.total_reserved += stored.reserved or 0
            if pending:
                self._spawn(self._finish_update(rec.name, latest.revision_id))
        for c in await self._repo.load_event_configs():
            self._functions[c.function_name].event_configs[c.qualifier] = c
        for p in await self._repo.load_provisioned():
            rec = self._functions[p.function_name]
            rec.provisioned[p.qualifier] = p
            self._retirer.provision(self._provisioned_version(rec, p.qualifier), p.requested, network=self.network_of(rec.name))

    async def close(self) -> None:
        """Wait for background code unpacking to end (cancelled)."""
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background function task failed", exc_info=task.exception())

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def lock(self, name: str) -> asyncio.Lock:
        """The lock every change to function `name` holds (for control-plane code beside this one)."""
        return self._lock(name)

    # --- lookups -----------------------------------------------------------------------------

    def record(self, name: str, *, qualifier: str | None = None) -> FunctionRecord:
        rec = self._functions.get(name)
        if rec is None:
            raise ResourceNotFoundException(f"Function not found: {self.arns.function(name, qualifier)}")
        return rec

    def find(self, name: str) -> FunctionRecord | None:
        """The function's record, None if there is no such function."""
        return self._functions.get(name)

    def get_config(self, ref: FunctionRef) -> FunctionConfig:
        """The configuration a control-plane call addresses: $LATEST, a version, or an alias's version."""
        rec = self.record(ref.name, qualifier=ref.qualifier)
        q = ref.qualifier
        if q is None or q == LATEST:
            return rec.latest
        if VERSION_NUMBER.match(q):
            if q in rec.versions:
                return rec.versions[q]
        elif q in rec.aliases:
            return rec.versions[rec.aliases[q].function_version] if rec.aliases[q].function_version != LATEST else rec.latest
        raise ResourceNotFoundException(f"Function not found: {self.arns.function(ref.name, q)}")

    def list_functions(self) -> list[FunctionRecord]:
        return [self._functions[n] for n in sorted(self._functions)]

    def count(self) -> int:
        return len(self._functions)

    # --- create / update ---------------------------------------------------------------------

    async def create(self, req: CreateFunctionInput) -> FunctionConfig:
        validate.function_name(req.name)
        c = req.changes
        if req.package_type != "Zip":
            raise InvalidParameterValueException("Lamina runs Zip packages only; container images are not supported.")
        if c.role is None:
            raise validation_error("null", "role", "Member must not be null")
        if req.zip_file is None and req.code is None:
            raise InvalidParameterValueException("Please provide a source for function code: Code.ZipFile.")
        if c.runtime is None:
            raise InvalidParameterValueException("Runtime is required for a Zip package.")
        validate.tags(req.tags)
        await self._versions.look(c.runtime)  # a runtime whose first build was installed a moment ago counts
        self._validate_changes(req.name, c, runtime_required=True)
        async with self._lock(req.name):
            if req.name in self._functions:
                raise ResourceConflictException(f"Function already exist: {req.name}")
            layers = self._layers.resolve(c.layers or ())
            code = req.code if req.code is not None else await self._code.put(req.zip_file or b"")
            await self._check_size(code, layers)
            config = _apply(
                FunctionConfig(
                    name=req.name,
                    runtime=c.runtime,
                    handler=c.handler or "",
                    role=c.role,
                    code=code,
                    revision_id=_new_revision(),
                    last_modified=now_timestamp(),
                    status=_CREATING,
                ),
                c,
                layers,
            )
            created = now_timestamp()
            await self._repo.create(config, req.tags, created)
            self._functions[req.name] = FunctionRecord(
                name=req.name, created=created, tags=dict(req.tags), next_version=1, latest=config, runnable=None
            )
        if req.publish:
            await self._finish_update(req.name, config.revision_id)
            return await self.publish_version(req.name)
        self._spawn(self._finish_update(req.name, config.revision_id))
        return config

    def _validate_changes(self, name: str, c: ConfigChanges, *, runtime_required: bool) -> None:
        if c.runtime is not None:
            validate.runtime(c.runtime, self._versions.runtimes(), self.calendar, creating=runtime_required)
        if runtime_required or c.handler is not None:
            validate.handler(c.handler)
        if c.role is not None:
            validate.role(c.role)
        if c.memory_size is not None:
            validate.memory_size(c.memory_size)
        if c.timeout is not None:
            validate.timeout(c.timeout)
        if c.description is not None:
            validate.description(c.description)
        if c.ephemeral_storage is not None:
            validate.ephemeral_storage(c.ephemeral_storage)
        if c.architectures is not None:
            validate.architectures(c.architectures)
        if c.environment is not None:
            validate.environment(c.environment)
        if c.dead_letter_target:
            self._check_dead_letter_target(name, c.dead_letter_target)

    def _check_dead_letter_target(self, name: str, arn: str) -> None:
        """DeadLetterConfig.TargetArn: Lambda takes an SQS queue or SNS topic; Lamina has neither
        and sends dead letters to another Lamina function instead (the original event as its
        payload, the SQS message attributes in its client context; see asyncq/destinations.py)."""
        validate.dead_letter_shape(arn)
        service = validate.arn_service(arn)
        if service in ("sqs", "sns"):
            raise InvalidParameterValueException(
                f"The dead-letter target {arn} names {validate.FOREIGN_TARGETS[service]}: Lamina sends dead letters "
                "to Lamina functions only. Use a function ARN."
            )
        ref = self.arns.local_function(arn) if service == "lambda" else None
        if ref is None or ref.name not in self._functions:
            raise InvalidParameterValueException(
                f"The provided target ARN {arn} is invalid: it must be the ARN of an existing Lamina function."
            )
        if ref.name == name:
            raise InvalidParameterValueException("You can't specify the function as a dead-letter target for itself.")

    def _check_updatable(self, rec: FunctionRecord, revision_id: str | None) -> None:
        if rec.latest.status.state is FunctionState.PENDING or rec.latest.status.last_update_status is LastUpdateStatus.IN_PROGRESS:
            raise ResourceConflictException(
                "The operation cannot be performed at this time. An update is in progress for resource: "
                f"{self.arns.function(rec.name)}"
            )
        validate.revision(revision_id, rec.latest.revision_id)

    async def update_code(self, name: str, zip_file: bytes, *, publish: bool = False, revision_id: str | None = None) -> FunctionConfig:
        rec = self.record(name)
        validate.runtime_updatable(rec.latest.runtime, self.calendar)
        self._check_updatable(rec, revision_id)
        code = await self._code.put(zip_file)
        await self._versions.look(rec.latest.runtime)  # FunctionUpdate functions move to the newest version now
        async with self._lock(name):
            rec = self.record(name)
            self._check_updatable(rec, revision_id)
            await self._check_size(code, rec.latest.layers)
            config = replace(rec.latest, code=code, revision_id=_new_revision(), last_modified=now_timestamp(), status=_UPDATING)
            await self._commit_latest(rec, self._on_update(config))
        if publish:
            await self._finish_update(name, config.revision_id)
            return await self.publish_version(name)
        self._spawn(self._finish_update(name, config.revision_id))
        return config

    async def finish_pending(self, name: str) -> None:
        """Finish a create or update still Pending / InProgress now, instead of in the background."""
        rec = self.record(name)
        if rec.latest.status.state is FunctionState.PENDING or rec.latest.status.last_update_status is LastUpdateStatus.IN_PROGRESS:
            await self._finish_update(name, rec.latest.revision_id)

    async def swap_code(self, name: str, code: CodeRef) -> FunctionConfig:
        """Make `code`, already unpacked in the store (a source snapshot), what $LATEST runs now.

        The hot-reload path (functions/sources.py): no Pending or InProgress step, since there is
        nothing to unpack; the next invoke runs the new code. Idle environments on the old code
        stop at once and busy ones when their invocation ends (EnvironmentRetirer.retire).
        """
        async with self._lock(name):
            rec = self.record(name)
            # An update in progress is overtaken: its background step sees a new RevisionId and
            # leaves; its configuration is kept, since `latest` already carries it.
            config = replace(rec.latest, code=code, revision_id=_new_revision(), last_modified=now_timestamp(), status=_ACTIVE)
            await self._commit_latest(rec, config)
            previous, rec.runnable = rec.runnable, config
        if previous is not None and not previous.runs_like(config):
            await self._retirer.retire(name, LATEST, wait=False)
        return config

    async def update_configuration(self, name: str, changes: ConfigChanges, *, revision_id: str | None = None) -> FunctionConfig:
        self._validate_changes(name, changes, runtime_required=False)
        if changes.runtime is None:
            validate.runtime_updatable(self.record(name).latest.runtime, self.calendar)
        await self._versions.look()  # FunctionUpdate functions move to the newest version now
        async with self._lock(name):
            rec = self.record(name)
            self._check_updatable(rec, revision_id)
            layers = self._layers.resolve(changes.layers) if changes.layers is not None else rec.latest.layers
            if changes.layers is not None:
                await self._check_size(rec.latest.code, layers)
            config = replace(
                _apply(rec.latest, changes, layers), revision_id=_new_revision(), last_modified=now_timestamp(), status=_UPDATING
            )
            await self._commit_latest(rec, self._on_update(config))
        self._spawn(self._finish_update(name, config.revision_id))
        return config

    async def _check_size(self, code: CodeRef, layers: tuple[LayerRef, ...]) -> None:
        """250 MB unzipped for the function and its layers together (spec 2.3, 11)."""
        if not layers:
            return  # the code alone was measured when it was stored
        total = await self._code.unzipped_size(code) + sum(layer.unzipped_size for layer in layers)
        if total > MAX_UNZIPPED:
            raise InvalidParameterValueException(
                f"Function code combined with layers exceeds the maximum allowed size of {MAX_UNZIPPED} bytes. "
                f"The actual size is {total} bytes."
            )

    def _on_update(self, config: FunctionConfig) -> FunctionConfig:
        """FunctionUpdate mode: an update moves the function to the newest runtime version (spec 10)."""
        rm = config.runtime_management
        if rm.update_on is not UpdateRuntimeOn.FUNCTION_UPDATE:
            return config
        current = self._versions.current(config.runtime)
        return replace(config, runtime_management=replace(rm, version_arn=current.arn if current else None))

    async def set_runtime_management(self, config: FunctionConfig, rm: RuntimeManagement) -> FunctionConfig:
        """Store a version's runtime management setting (spec 10). Not an update: no new RevisionId,
        no InProgress. For $LATEST, what invokes run changes with it, so environments started
        under the old setting are not reused. Call with `lock(config.name)` held."""
        rec = self.record(config.name)
        updated = replace(config, runtime_management=rm)
        await self._repo.put_version(updated)
        if updated.is_latest:
            rec.latest = updated
            if rec.runnable is not None:
                rec.runnable = replace(rec.runnable, runtime_management=rm)
        else:
            rec.versions[updated.version] = updated
        return updated

    async def _commit_latest(self, rec: FunctionRecord, config: FunctionConfig) -> None:
        await self._repo.put_version(config)
        rec.latest = config

    async def _finish_update(self, name: str, revision_id: str) -> None:
        """Unpack the code of $LATEST (and build its /opt from its layers, so the first cold start
        does not pay for it) and mark it Active / Successful (or Failed)."""
        rec = self._functions.get(name)
        if rec is None or rec.latest.revision_id != revision_id:
            return
        try:
            await self._code.unpack(rec.latest.code)
            if rec.latest.layers:
                await self._code.merged([layer.code for layer in rec.latest.layers])
            status = _ACTIVE
        except (OSError, ValueError) as exc:
            log.error("unpacking code of %s failed", name, exc_info=exc)
            status = replace(
                rec.latest.status,
                state=FunctionState.FAILED if rec.latest.status.state is FunctionState.PENDING else rec.latest.status.state,
                last_update_status=LastUpdateStatus.FAILED,
                last_update_reason=f"Could not unpack the code: {exc}",
                last_update_reason_code="InvalidZipFileException",
            )
        async with self._lock(name):
            rec = self._functions.get(name)
            if rec is None or rec.latest.revision_id != revision_id:
                return
            # Leaving Pending/InProgress is a change of its own: a new RevisionId, as Lambda does.
            config = replace(rec.latest, status=status, revision_id=_new_revision())
            await self._commit_latest(rec, config)
            if status is _ACTIVE:
                previous, rec.runnable = rec.runnable, config
                if previous is not None and not previous.runs_like(config):
                    await self._retirer.retire(name, LATEST)

    # --- versions ----------------------------------------------------------------------------

    async def publish_version(self, name: str, *, code_sha256: str | None = None, description: str | None = None,
                              revision_id: str | None = None) -> FunctionConfig:  # fmt: skip
        async with self._lock(name):
            rec = self.record(name)
            self._check_updatable(rec, revision_id)
            latest = rec.latest
            if code_sha256 is not None and code_sha256 != latest.code.sha256_b64:
                raise InvalidParameterValueException(
                    f"CodeSHA256 ({code_sha256}) is different from current CodeSHA256 in $LATEST "
                    f"({latest.code.sha256_b64}). Please try again with the CodeSHA256 in $LATEST."
                )
            if rec.versions:
                newest = rec.versions[max(rec.versions, key=int)]
                if newest.runs_like(latest) and newest.role == latest.role:
                    return newest  # unchanged since the last version: no new one (spec 2.3)
            number = str(rec.next_version)
            config = replace(
                latest,
                version=number,
                description=latest.description if description is None else description,
                revision_id=_new_revision(),
                last_modified=now_timestamp(),
                status=_ACTIVE,
            )
            await self._repo.put_version(config, next_version=rec.next_version + 1)
            rec.versions[number] = config
            rec.next_version += 1
            return config

    async def delete(self, name: str, qualifier: str | None = None) -> None:
        async with self._lock(name):
            rec = self.record(name, qualifier=qualifier)
            if qualifier is None:
                await self._repo.delete_function(name)
                del self._functions[name]
                self.total_reserved -= rec.reserved or 0
                await self._retirer.retire(name)
                return
            if qualifier == LATEST:
                raise InvalidParameterValueException("$LATEST version cannot be deleted without deleting the function.")
            if not VERSION_NUMBER.match(qualifier):
                raise InvalidParameterValueException("Deletion of aliases is not supported by DeleteFunction. Use DeleteAlias.")
            if qualifier not in rec.versions:
                raise ResourceNotFoundException(f"Function not found: {self.arns.function(name, qualifier)}")
            users = [a.name for a in rec.aliases.values() if a.function_version == qualifier or qualifier in a.additional_weights]
            if users:
                raise ResourceConflictException(
                    f"Unable to delete version because the following aliases reference it: {users}"
                )
            await self._repo.delete_version(name, qualifier)
            del rec.versions[qualifier]
            rec.event_configs.pop(qualifier, None)
            rec.policies.pop(qualifier, None)
            if rec.provisioned.pop(qualifier, None) is not None:
                await self._repo.delete_provisioned(name, qualifier)
            await self._retirer.retire(name, qualifier)

    # --- aliases -----------------------------------------------------------------------------

    def _check_alias_target(self, rec: FunctionRecord, version: str, weights: dict[str, float]) -> None:
        if version != LATEST and version not in rec.versions:
            raise ResourceNotFoundException(f"Function not found: {self.arns.function(rec.name, version)}")
        if not weights:
            return
        if len(weights) > 1:
            raise InvalidParameterValueException("Number of items in AdditionalVersionWeights cannot be greater than 1")
        if version == LATEST or LATEST in weights:
            raise InvalidParameterValueException("$LATEST is not supported for an alias pointing to more than 1 version")
        for extra, weight in weights.items():
            if extra == version:
                raise InvalidParameterValueException(
                    f"Invalid function version {extra}. Function version {extra} is already included in routing configuration."
                )
            if extra not in rec.versions:
                raise InvalidParameterValueException(f"Function version {extra} does not exist for function {rec.name}")
            if not 0.0 <= weight <= 1.0:
                raise validation_error(str(weight), "routingConfig.additionalVersionWeights", "Member must have value between 0.0 and 1.0")

    async def create_alias(self, name: str, alias: str, version: str, description: str = "",
                           weights: dict[str, float] | None = None) -> Alias:  # fmt: skip
        if not ALIAS_NAME.match(alias) or len(alias) > 128:
            raise validation_error(alias, "name", r"Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)")
        async with self._lock(name):
            rec = self.record(name)
            if alias in rec.aliases:
                raise ResourceConflictException(f"Alias already exists: {self.arns.function(name, alias)}")
            self._check_alias_target(rec, version, weights or {})
            a = Alias(function_name=name, name=alias, function_version=version, description=description,
                      additional_weights=dict(weights or {}), revision_id=_new_revision())  # fmt: skip
            await self._repo.put_alias(a)
            rec.aliases[alias] = a
            return a

    def get_alias(self, name: str, alias: str) -> Alias:
        rec = self.record(name)
        a = rec.aliases.get(alias)
        if a is None:
            raise ResourceNotFoundException(f"Cannot find alias arn: {self.arns.function(name, alias)}")
        return a

    async def update_alias(self, name: str, alias: str, *, version: str | None, description: str | None,
                           weights: dict[str, float] | None, revision_id: str | None) -> Alias:  # fmt: skip
        async with self._lock(name):
            a = self.get_alias(name, alias)
            validate.revision(revision_id, a.revision_id)
            new_version = version if version is not None else a.function_version
            new_weights = weights if weights is not None else a.additional_weights
            self._check_alias_target(self.record(name), new_version, new_weights)
            updated = replace(
                a,
                function_version=new_version,
                description=description if description is not None else a.description,
                additional_weights=dict(new_weights),
                revision_id=_new_revision(),
            )
            await self._repo.put_alias(updated)
            self.record(name).aliases[alias] = updated
            return updated

    async def delete_alias(self, name: str, alias: str) -> None:
        async with self._lock(name):
            rec = self.record(name)
            if alias in rec.aliases:
                if rec.provisioned.pop(alias, None) is not None:
                    await self._repo.delete_provisioned(name, alias)
                    self._retirer.provision(self._provisioned_version(rec, alias), 0)
                await self._repo.delete_alias(name, alias)
                del rec.aliases[alias]
                rec.event_configs.pop(alias, None)
                rec.urls.pop(alias, None)
                rec.policies.pop(alias, None)

    # --- concurrency ---------------------------------------------------------------------------

    @property
    def unreserved_concurrency(self) -> int:
        return self.account_concurrency - self.total_reserved

    async def put_concurrency(self, name: str, reserved: int) -> int:
        """Reserve concurrency for a function (spec 8); at least 100 must stay unreserved."""
        if reserved < 0:
            raise validation_error(str(reserved), "reservedConcurrentExecutions", "Member must have value greater than or equal to 0")
        async with self._lock(name):
            rec = self.record(name)
            others = self.total_reserved - (rec.reserved or 0)
            minimum = min(UNRESERVED_MINIMUM, self.account_concurrency)
            if self.account_concurrency - others - reserved < minimum:
                raise InvalidParameterValueException(
                    "Specified ReservedConcurrentExecutions for function decreases account's "
                    f"UnreservedConcurrentExecution below its minimum value of [{minimum}]."
                )
            await self._repo.set_reserved(name, reserved)
            self.total_reserved = others + reserved
            rec.reserved = reserved
            return reserved

    async def delete_concurrency(self, name: str) -> None:
        async with self._lock(name):
            rec = self.record(name)
            await self._repo.set_reserved(name, None)
            self.total_reserved -= rec.reserved or 0
            rec.reserved = None

    # --- provisioned concurrency -------------------------------------------------------------

    def _provisioned_version(self, rec: FunctionRecord, qualifier: str) -> FunctionConfig:
        """The published version a provisioned-concurrency qualifier stands for."""
        if qualifier == LATEST:
            raise InvalidParameterValueException("Provisioned Concurrency Configs cannot be applied to unpublished function versions.")
        if VERSION_NUMBER.match(qualifier):
            config = rec.versions.get(qualifier)
        else:
            alias = rec.aliases.get(qualifier)
            if alias is not None and alias.function_version == LATEST:
                raise InvalidParameterValueException("Provisioned Concurrency Configs cannot be applied to unpublished function versions.")
            config = rec.versions.get(alias.function_version) if alias is not None else None
        if config is None:
            raise ResourceNotFoundException(f"Function not found: {self.arns.function(rec.name, qualifier)}")
        return config

    async def put_provisioned(self, name: str, qualifier: str, count: int) -> ProvisionedConfig:
        if count < 1:
            raise validation_error(str(count), "provisionedConcurrentExecutions", "Member must have value greater than or equal to 1")
        async with self._lock(name):
            rec = self.record(name)
            config = self._provisioned_version(rec, qualifier)
            others = sum(p.requested for q, p in rec.provisioned.items() if q != qualifier)
            if rec.reserved is not None and others + count > rec.reserved:
                raise InvalidParameterValueException(
                    "Requested Provisioned Concurrency should not be greater than the reservedConcurrentExecution for function"
                )
            p = ProvisionedConfig(function_name=name, qualifier=qualifier, requested=count, last_modified=now_timestamp())
            await self._repo.put_provisioned(p)
            rec.provisioned[qualifier] = p
            self._retirer.provision(config, count, network=self.network_of(name))
            return p

    def get_provisioned(self, name: str, qualifier: str) -> tuple[ProvisionedConfig, ProvisionedState]:
        rec = self.record(name)
        p = rec.provisioned.get(qualifier)
        if p is None:
            raise ProvisionedConcurrencyConfigNotFoundException("No Provisioned Concurrency Config found for this function")
        config = self._provisioned_version(rec, qualifier)
        return p, self._retirer.provisioned_state(name, config.version)

    def list_provisioned(self, name: str) -> list[tuple[ProvisionedConfig, ProvisionedState]]:
        rec = self.record(name)
        return [self.get_provisioned(name, q) for q in sorted(rec.provisioned)]

    async def delete_provisioned(self, name: str, qualifier: str) -> None:
        async with self._lock(name):
            rec = self.record(name)
            p = rec.provisioned.pop(qualifier, None)
            if p is None:
                raise ProvisionedConcurrencyConfigNotFoundException("No Provisioned Concurrency Config found for this function")
            await self._repo.delete_provisioned(name, qualifier)
            self._retirer.provision(self._provisioned_version(rec, qualifier), 0)

    # --- tags --------------------------------------------------------------------------------

    def _tag_target(self, arn: str) -> FunctionRecord:
        ref = self.arns.parse_function_arn(arn)
        if ref is None:
            raise InvalidParameterValueException(f"Invalid resource ARN: {arn}")
        if ref.qualifier is not None:
            raise InvalidParameterValueException(
                "Tags on function aliases and versions are not supported. Please specify a function ARN."
            )
        return self.record(ref.name)

    def list_tags(self, arn: str) -> dict[str, str]:
        return dict(self._tag_target(arn).tags)

    async def tag(self, arn: str, tags: dict[str, str]) -> None:
        validate.tags(tags)
        rec = self._tag_target(arn)
        async with self._lock(rec.name):
            await self._set_tags(rec, {**rec.tags, **tags})

    async def untag(self, arn: str, keys: list[str]) -> None:
        rec = self._tag_target(arn)
        async with self._lock(rec.name):
            await self._set_tags(rec, {k: v for k, v in rec.tags.items() if k not in keys})

    async def _set_tags(self, rec: FunctionRecord, new: dict[str, str]) -> None:
        changed_network = new.get(validate.NETWORK_TAG) != rec.tags.get(validate.NETWORK_TAG)
        await self._repo.set_tags(rec.name, new)
        rec.tags = new
        if changed_network:
            await self._retirer.retire(rec.name)  # its environments were built with the old network

    def network_of(self, name: str) -> str | None:
        """The function's own network setting (the `lamina:network` tag), if it has one."""
        rec = self._functions.get(name)
        return rec.tags.get(validate.NETWORK_TAG) if rec is not None else None


def _apply(config: FunctionConfig, c: ConfigChanges, layers: tuple[LayerRef, ...]) -> FunctionConfig:
    """`config` with every member `c` gives replaced, and `layers` (what c.layers resolved to)."""
    logging_cfg = config.logging if c.logging is None else _logging(config.logging, c.logging)
    return replace(
        config,
        runtime=c.runtime if c.runtime is not None else config.runtime,
        handler=c.handler if c.handler is not None else config.handler,
        role=c.role if c.role is not None else config.role,
        description=c.description if c.description is not None else config.description,
        memory_size=c.memory_size if c.memory_size is not None else config.memory_size,
        timeout=c.timeout if c.timeout is not None else config.timeout,
        environment=dict(c.environment) if c.environment is not None else config.environment,
        architectures=c.architectures if c.architectures is not None else config.architectures,
        ephemeral_storage=c.ephemeral_storage if c.ephemeral_storage is not None else config.ephemeral_storage,
        tracing_mode=c.tracing_mode if c.tracing_mode is not None else config.tracing_mode,
        logging=logging_cfg,
        layers=layers,
        dead_letter_target=c.dead_letter_target if c.dead_letter_target is not None else config.dead_letter_target,
        kms_key_arn=c.kms_key_arn if c.kms_key_arn is not None else config.kms_key_arn,
        vpc=c.vpc if c.vpc is not None else config.vpc,
    )


def _logging(current: LoggingConfig, c: LoggingChanges) -> LoggingConfig:
    """A partial LoggingConfig update, as Lambda applies it: levels exist only with JSON (switching
    to JSON sets both to INFO unless given; switching to Text drops them)."""
    fmt = c.log_format or current.log_format
    validate.log_levels(fmt, c.application_log_level, c.system_log_level)
    group = current.log_group if c.log_group is None else c.log_group
    if fmt is LogFormat.TEXT:
        return LoggingConfig(log_format=fmt, log_group=group)
    return LoggingConfig(
        log_format=fmt,
        application_log_level=c.application_log_level or current.application_log_level or LogLevel.INFO,
        system_log_level=c.system_log_level or current.system_log_level or LogLevel.INFO,
        log_group=group,
    )
