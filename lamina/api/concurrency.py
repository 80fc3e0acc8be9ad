"""Reserved concurrency: Put/Get/DeleteFunctionConcurrency (spec 2.2, 8).

Note the dated paths: Get lives under /2019-09-30, Put and Delete under /2017-10-31.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from lamina.api.common import Services, empty_response, json_body, json_response
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
