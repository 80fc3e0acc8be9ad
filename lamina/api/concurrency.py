"""Reserved and provisioned concurrency (spec 2.2, 8).

Note the dated paths: GetFunctionConcurrency lives under /2019-09-30, Put and Delete under
/2017-10-31; provisioned concurrency is all under /2019-09-30 (List is the GET with ?List=ALL).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from lamina.api.common import Services, empty_response, json_body, json_response
from lamina.model.function import ProvisionedConfig, ProvisionedState
from lamina.model.ids import FunctionRef, validation_error


def _name(request: Request) -> str:
    return FunctionRef.parse(request.path_params["name"]).name


async def put_function_concurrency(request: Request, s: Services) -> Response:
    value = (await json_body(request)).get("ReservedConcurrentExecutions")
    if isinstance(value, bool) or not isinstance(value, int):
        raise validation_error(str(value), "reservedConcurrentExecutions", "Member must not be null")
    reserved = await s.functions.put_concurrency(_name(request), value)
    return json_response({"ReservedConcurrentExecutions": reserved})


async def get_function_concurrency(request: Request, s: Services) -> Response:
    rec = s.functions.record(_name(request))
    return json_response({} if rec.reserved is None else {"ReservedConcurrentExecutions": rec.reserved})


async def delete_function_concurrency(request: Request, s: Services) -> Response:
    await s.functions.delete_concurrency(_name(request))
    return empty_response(204)


def _qualifier(request: Request) -> str:
    ref = FunctionRef.parse(request.path_params["name"], request.query_params.get("Qualifier"))
    if ref.qualifier is None:
        raise validation_error("null", "qualifier", "Member must not be null")
    return ref.qualifier


def _provisioned_json(s: Services, p: ProvisionedConfig, state: ProvisionedState, *, with_arn: bool = False) -> dict[str, object]:
    if state.failure:
        status = "FAILED"
    elif state.allocated >= p.requested:
        status = "READY"
    else:
        status = "IN_PROGRESS"
    out: dict[str, object] = {
        "RequestedProvisionedConcurrentExecutions": p.requested,
        "AvailableProvisionedConcurrentExecutions": min(state.allocated, p.requested),
        "AllocatedProvisionedConcurrentExecutions": min(state.allocated, p.requested),
        "Status": status,
        "LastModified": p.last_modified,
    }
    if state.failure:
        out["StatusReason"] = state.failure
    if with_arn:
        out["FunctionArn"] = s.functions.arns.function(p.function_name, p.qualifier)
    return out


async def put_provisioned_concurrency(request: Request, s: Services) -> Response:
    value = (await json_body(request)).get("ProvisionedConcurrentExecutions")
    if isinstance(value, bool) or not isinstance(value, int):
        raise validation_error(str(value), "provisionedConcurrentExecutions", "Member must not be null")
    name, qualifier = _name(request), _qualifier(request)
    p = await s.functions.put_provisioned(name, qualifier, value)
    _, state = s.functions.get_provisioned(name, qualifier)
    return json_response(_provisioned_json(s, p, state), 202)


async def get_provisioned_concurrency(request: Request, s: Services) -> Response:
    name = _name(request)
    if request.query_params.get("List") == "ALL":
        items = [_provisioned_json(s, p, state, with_arn=True) for p, state in s.functions.list_provisioned(name)]
        return json_response({"ProvisionedConcurrencyConfigs": items})
    p, state = s.functions.get_provisioned(name, _qualifier(request))
    return json_response(_provisioned_json(s, p, state))


async def delete_provisioned_concurrency(request: Request, s: Services) -> Response:
    await s.functions.delete_provisioned(_name(request), _qualifier(request))
    return empty_response(204)
