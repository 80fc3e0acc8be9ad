"""Function event invoke configs under /2019-09-25 (spec 2.2, 7): retries, event age, destinations.

Put is a PUT and replaces; Update is a POST and merges; Get, Delete; List is the GET of
`.../event-invoke-config/list`. All take the qualifier from the name (`name:alias`, an ARN) or
the Qualifier query parameter; none means $LATEST.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from lamina.api import shapes
from lamina.api.common import Services, empty_response, json_body, json_response, max_items
from lamina.api.functions import _ref


async def put_event_invoke_config(request: Request, s: Services) -> Response:
    changes = shapes.event_config_changes(await json_body(request))
    config = await s.event_configs.put(_ref(request), changes)
    return json_response(shapes.event_invoke_config(config, s.functions.arns))


async def update_event_invoke_config(request: Request, s: Services) -> Response:
    changes = shapes.event_config_changes(await json_body(request))
    config = await s.event_configs.update(_ref(request), changes)
    return json_response(shapes.event_invoke_config(config, s.functions.arns))


async def get_event_invoke_config(request: Request, s: Services) -> Response:
    return json_response(shapes.event_invoke_config(s.event_configs.get(_ref(request)), s.functions.arns))


async def delete_event_invoke_config(request: Request, s: Services) -> Response:
    await s.event_configs.delete(_ref(request))
    return empty_response(204)


async def list_event_invoke_configs(request: Request, s: Services) -> Response:
    items = [shapes.event_invoke_config(c, s.functions.arns) for c in s.event_configs.list(_ref(request).name)]
    page, marker = shapes.paginate(items, request.query_params.get("Marker"), _max_items(request), cap=50)
    body: dict[str, object] = {"FunctionEventInvokeConfigs": page}
    if marker:
        body["NextMarker"] = marker
    return json_response(body)


def _max_items(request: Request) -> int | None:
    return max_items(request, 50)
