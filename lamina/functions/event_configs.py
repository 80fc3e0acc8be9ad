"""EventConfigs: Put/Get/Update/Delete/ListFunctionEventInvokeConfigs (spec 2.2, 7); no HTTP.

Configs live on the function's record in memory (`FunctionRecord.event_configs`, keyed by
"$LATEST", a version or an alias), so the dispatcher reads them without the database; every
change is written to the store first. They go with their version, alias or function when that
is deleted.

Order of checks and the messages follow AWS-recorded responses: ranges and the destination ARN
pattern (ValidationException) first, then "at least one setting", then whether the function and
qualifier exist ("The function doesn't exist."), then what the destinations name.

Lamina delivers destinations to Lamina functions only: an SQS, SNS, EventBridge or S3 ARN is
well formed but has nowhere to go here, so it is refused with a message saying so.
"""

from __future__ import annotations

import time
from dataclasses import replace

from lamina.functions import validate
from lamina.functions.service import FunctionRecord, FunctionService
from lamina.model.errors import InvalidParameterValueException, ResourceNotFoundException
from lamina.model.events import DestinationConfig, EventConfigChanges, EventInvokeConfig
from lamina.model.ids import LATEST, VERSION_NUMBER, FunctionRef
from lamina.store.functions import FunctionRepo

_ON_SUCCESS = "destinationConfig.onSuccess.destination"
_ON_FAILURE = "destinationConfig.onFailure.destination"


class EventConfigs:
    def __init__(self, *, functions: FunctionService, repo: FunctionRepo) -> None:
        self._functions = functions
        self._repo = repo

    # --- reads -------------------------------------------------------------------------------

    def get(self, ref: FunctionRef) -> EventInvokeConfig:
        config = self._find(ref)
        if config is None:
            raise self._no_config(ref)
        return config

    def list(self, name: str) -> list[EventInvokeConfig]:
        rec = self._record(name)
        return [rec.event_configs[q] for q in sorted(rec.event_configs, key=_qualifier_order)]

    def find(self, name: str, qualifier: str | None) -> EventInvokeConfig | None:
        """The config that applies to an event invoked as name[:qualifier], if any (no errors)."""
        rec = self._functions.find(name)
        return rec.event_configs.get(qualifier or LATEST) if rec is not None else None

    # --- changes -----------------------------------------------------------------------------

    async def put(self, ref: FunctionRef, changes: EventConfigChanges) -> EventInvokeConfig:
        """Create or replace: members left out are removed."""
        self._validate(changes)
        async with self._functions.lock(ref.name):
            rec, qualifier = self._target(ref)
            self._check_destinations(rec.name, changes.destinations)
            config = EventInvokeConfig(
                function_name=rec.name,
                qualifier=qualifier,
                maximum_retry_attempts=changes.maximum_retry_attempts,
                maximum_event_age_s=changes.maximum_event_age_s,
                destinations=changes.destinations or DestinationConfig(),
                last_modified=time.time(),
            )
            await self._repo.put_event_config(config)
            rec.event_configs[qualifier] = config
            return config

    async def update(self, ref: FunctionRef, changes: EventConfigChanges) -> EventInvokeConfig:
        """Merge into an existing config: members left out keep their values."""
        self._validate(changes)
        async with self._functions.lock(ref.name):
            rec, qualifier = self._target(ref)
            current = rec.event_configs.get(qualifier)
            if current is None:
                raise self._no_config(ref)
            self._check_destinations(rec.name, changes.destinations)
            config = replace(
                current,
                maximum_retry_attempts=_given(changes.maximum_retry_attempts, current.maximum_retry_attempts),
                maximum_event_age_s=_given(changes.maximum_event_age_s, current.maximum_event_age_s),
                destinations=changes.destinations if changes.destinations is not None else current.destinations,
                last_modified=time.time(),
            )
            await self._repo.put_event_config(config)
            rec.event_configs[qualifier] = config
            return config

    async def delete(self, ref: FunctionRef) -> None:
        async with self._functions.lock(ref.name):
            if self._find(ref) is None:
                raise self._no_config(ref)
            rec = self._record(ref.name)
            qualifier = ref.qualifier or LATEST
            await self._repo.delete_event_config(rec.name, qualifier)
            del rec.event_configs[qualifier]

    # --- helpers -----------------------------------------------------------------------------

    def _validate(self, changes: EventConfigChanges) -> None:
        if changes.maximum_retry_attempts is not None:
            validate.maximum_retry_attempts(changes.maximum_retry_attempts)
        if changes.maximum_event_age_s is not None:
            validate.maximum_event_age(changes.maximum_event_age_s)
        d = changes.destinations
        if d is not None:
            if d.on_success is not None:
                validate.destination_shape(d.on_success, _ON_SUCCESS)
            if d.on_failure is not None:
                validate.destination_shape(d.on_failure, _ON_FAILURE)
        if changes.empty:
            raise InvalidParameterValueException("You must specify at least one of error handling or destination setting.")

    def _record(self, name: str) -> FunctionRecord:
        rec = self._functions.find(name)
        if rec is None:
            raise ResourceNotFoundException("The function doesn't exist.")
        return rec

    def _target(self, ref: FunctionRef) -> tuple[FunctionRecord, str]:
        """The record and the qualifier a change addresses; 404 if either does not exist."""
        rec = self._record(ref.name)
        q = ref.qualifier or LATEST
        if q != LATEST and q not in (rec.versions if VERSION_NUMBER.match(q) else rec.aliases):
            raise ResourceNotFoundException("The function doesn't exist.")
        return rec, q

    def _find(self, ref: FunctionRef) -> EventInvokeConfig | None:
        rec = self._functions.find(ref.name)
        return rec.event_configs.get(ref.qualifier or LATEST) if rec is not None else None

    def _no_config(self, ref: FunctionRef) -> ResourceNotFoundException:
        arn = self._functions.arns.function(ref.name, ref.qualifier or LATEST)
        return ResourceNotFoundException(f"The function {arn} doesn't have an EventInvokeConfig")

    def _check_destinations(self, source: str, d: DestinationConfig | None) -> None:
        """What each destination ARN names: another Lamina function (spec 7)."""
        if d is None:
            return
        for arn, on_failure in ((d.on_success, False), (d.on_failure, True)):
            if not arn:
                continue
            service = validate.arn_service(arn)
            if service == "lambda":
                ref = self._functions.arns.local_function(arn)
                if ref is None or self._functions.find(ref.name) is None:
                    raise InvalidParameterValueException(f"The destination ARN {arn} is invalid.")
                if ref.name == source:
                    raise InvalidParameterValueException("You can't specify the function as a destination for itself.")
            elif service in validate.FOREIGN_TARGETS and (service != "s3" or on_failure):
                raise InvalidParameterValueException(
                    f"The destination ARN {arn} names {validate.FOREIGN_TARGETS[service]}: Lamina delivers "
                    "invocation records to Lamina functions only. Use a function ARN."
                )
            else:
                raise InvalidParameterValueException(f"The provided destination config {_describe(d)} is invalid.")


def _given(new: int | None, old: int | None) -> int | None:
    return new if new is not None else old


def _describe(d: DestinationConfig) -> str:
    """Lambda's rendering of a DestinationConfig in its error message."""
    success = f"OnSuccess(destination={d.on_success})" if d.on_success else "null"
    failure = f"OnFailure(destination={d.on_failure})" if d.on_failure else "null"
    return f"DestinationConfig(onSuccess={success}, onFailure={failure})"


def _qualifier_order(q: str) -> tuple[int, int, str]:
    """$LATEST, then versions by number, then aliases by name."""
    if q == LATEST:
        return (0, 0, q)
    if VERSION_NUMBER.match(q):
        return (1, int(q), q)
    return (2, 0, q)
