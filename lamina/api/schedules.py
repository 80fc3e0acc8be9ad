"""Schedules under /lamina/v1/schedules (Lamina's own API; EventBridge's names for the members).

POST   /lamina/v1/schedules          {"Name", "ScheduleExpression", "FunctionName" (name or ARN),
                                      "Qualifier"?, "Input"?, "State"?: ENABLED|DISABLED} → 201
GET    /lamina/v1/schedules[?FunctionName=F]                               → {"Schedules": [...]}
GET    /lamina/v1/schedules/{name}
POST   /lamina/v1/schedules/{name}   {"State": ENABLED|DISABLED}           → the schedule
DELETE /lamina/v1/schedules/{name}                                          → 204
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from lamina.api.common import Services, empty_response, json_body, json_response
from lamina.model.errors import ValidationException
from lamina.model.ids import FunctionRef, validation_error
from lamina.model.schedules import NewSchedule, Schedule, ScheduleState


async def create_schedule(request: Request, s: Services) -> Response:
    body = await json_body(request)
    name = _string(body, "Name", "name")
    expression = _string(body, "ScheduleExpression", "scheduleExpression")
    ref = FunctionRef.parse(_string(body, "FunctionName", "functionName"), _optional(body, "Qualifier", "qualifier"))
    schedule = await s.scheduler.add(
        NewSchedule(
            name=name,
            expression=expression,
            function_name=ref.name,
            qualifier=ref.qualifier,
            input=_optional(body, "Input", "input"),
            state=_state(body) or ScheduleState.ENABLED,
        )
    )
    return json_response(_schedule(schedule, s), 201)


async def list_schedules(request: Request, s: Services) -> Response:
    function = request.query_params.get("FunctionName") or None
    if function is not None:
        function = FunctionRef.parse(function).name
        s.functions.record(function)  # 404 for a function that does not exist
    return json_response({"Schedules": [_schedule(x, s) for x in s.scheduler.list(function)]})


async def get_schedule(request: Request, s: Services) -> Response:
    return json_response(_schedule(s.scheduler.get(request.path_params["name"]), s))


async def update_schedule(request: Request, s: Services) -> Response:
    state = _state(await json_body(request))
    name = request.path_params["name"]
    schedule = s.scheduler.get(name) if state is None else await s.scheduler.set_state(name, state)
    return json_response(_schedule(schedule, s))


async def delete_schedule(request: Request, s: Services) -> Response:
    await s.scheduler.remove(request.path_params["name"])
    return empty_response(204)


def _schedule(x: Schedule, s: Services) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Name": x.name,
        "Arn": s.scheduler.rule_arn(x.name),
        "ScheduleExpression": x.expression,
        "State": x.state.value,
        "FunctionName": x.function_name,
        "FunctionArn": s.functions.arns.function(x.function_name, x.qualifier),
        "CreatedAt": round(x.created, 3),
        "LastFireAt": None if x.fired_until is None else round(x.fired_until, 3),
        "NextFireAt": _rounded(s.scheduler.next_fire(x)),
    }
    if x.qualifier is not None:
        out["Qualifier"] = x.qualifier
    if x.input is not None:
        out["Input"] = x.input
    return out


def _rounded(t: float | None) -> float | None:
    return None if t is None else round(t, 3)


def _string(body: dict[str, Any], key: str, member: str) -> str:
    value = body.get(key)
    if value is None:  # (AWS writes a missing value unquoted)
        raise ValidationException(
            f"1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
        )
    if not isinstance(value, str):
        raise validation_error(str(value), member, "Member must be a string")
    return value


def _optional(body: dict[str, Any], key: str, member: str) -> str | None:
    return None if body.get(key) is None else _string(body, key, member)


def _state(body: dict[str, Any]) -> ScheduleState | None:
    raw = _optional(body, "State", "state")
    if raw is None:
        return None
    try:
        return ScheduleState(raw)
    except ValueError:
        raise validation_error(raw, "state", "Member must satisfy enum value set: [ENABLED, DISABLED]") from None
