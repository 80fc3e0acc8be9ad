"""FunctionRef → the configuration to run and the ARN it was invoked as (spec 3.1)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from lamina.functions.service import FunctionService
from lamina.model.errors import ResourceConflictException, ResourceNotFoundException
from lamina.model.function import FunctionConfig, FunctionState
from lamina.model.ids import LATEST, VERSION_NUMBER, FunctionRef


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    config: FunctionConfig
    invoked_arn: str
    network: str | None = None  # the function's own network setting, if any


def resolve(functions: FunctionService, ref: FunctionRef, *, pick: float | None = None) -> Route:
    """Resolve for invoke. `pick` in [0, 1) chooses between an alias's weighted versions."""
    route = _resolve(functions, ref, pick=pick)
    network = functions.network_of(ref.name)
    return route if network is None else Route(config=route.config, invoked_arn=route.invoked_arn, network=network)


def _resolve(functions: FunctionService, ref: FunctionRef, *, pick: float | None = None) -> Route:
    arns = functions.arns
    q = ref.qualifier
    rec = functions.record(ref.name, qualifier=q or LATEST)
    invoked_arn = arns.function(ref.name, q)
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
        return Route(config=rec.runnable, invoked_arn=invoked_arn)
    if VERSION_NUMBER.match(q):
        config = rec.versions.get(q)
        if config is None:
            raise ResourceNotFoundException(f"Function not found: {invoked_arn}")
        return Route(config=config, invoked_arn=invoked_arn)
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
        return Route(config=_resolve(functions, FunctionRef(name=ref.name)).config, invoked_arn=invoked_arn)
    return Route(config=rec.versions[version], invoked_arn=invoked_arn)
