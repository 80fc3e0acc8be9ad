"""FunctionRef → the configuration to run and the ARN it was invoked as (spec 3.1)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from lamina.functions.service import FunctionRecord, FunctionService
from lamina.functions.validate import NETWORK_TAG
from lamina.model.errors import ResourceConflictException, ResourceNotFoundException
from lamina.model.function import FunctionConfig, FunctionState
from lamina.model.ids import LATEST, VERSION_NUMBER, FunctionRef


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    config: FunctionConfig
    invoked_arn: str
    network: str | None = None  # the function's own network setting (tag), if any
    reserved: int | None = None  # the function's reserved concurrency, if any


def resolve(functions: FunctionService, ref: FunctionRef, *, pick: float | None = None) -> Route:
    """Resolve for invoke. `pick` in [0, 1) chooses between an alias's weighted versions.

    One lookup of the function's record gives everything the invoke path needs from it.
    """
    q = ref.qualifier
    rec = functions.record(ref.name, qualifier=q or LATEST)
    invoked_arn = functions.arns.function(ref.name, q)
    return Route(
        config=_config(rec, q, invoked_arn, pick),
        invoked_arn=invoked_arn,
        network=rec.tags.get(NETWORK_TAG),
        reserved=rec.reserved,
    )


def _config(rec: FunctionRecord, q: str | None, invoked_arn: str, pick: float | None) -> FunctionConfig:
    if q is None or q == LATEST:
        if rec.runnable is None:
            state = rec.latest.status.state
            if state is FunctionState.FAILED:
                raise ResourceConflictException(
                    f"Lambda is unable to invoke the function because its last update failed: {rec.latest.status.last_update_reason}"
                )
            raise ResourceConflictException(
                f"The operation cannot be performed at this time. The function is currently in the following state: {state.value}"
            )
        return rec.runnable
    if VERSION_NUMBER.match(q):
        config = rec.versions.get(q)
        if config is None:
            raise ResourceNotFoundException(f"Function not found: {invoked_arn}")
        return config
    alias = rec.aliases.get(q)
    if alias is None:
        raise ResourceNotFoundException(f"Function not found: {invoked_arn}")
    version = alias.function_version
    if alias.additional_weights:
        roll = random.random() if pick is None else pick
        for extra, weight in alias.additional_weights.items():
            if roll < weight:
                version = extra
    if version == LATEST:
        return _config(rec, None, invoked_arn, pick)
    return rec.versions[version]
