"""Function URL configs under /2021-10-31 (spec 2.2, 9): Create (POST), Get, Update (PUT),
Delete of `.../url`, and List (GET `.../urls`). The qualifier comes from the name
(`name:alias`, an ARN) or the Qualifier query parameter, and must name an alias."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from lamina.api import shapes
from lamina.api.common import Services, empty_response, json_body, json_response
from lamina.api.event_config import _max_items
from lamina.api.functions import _ref
from lamina.model.urls import FunctionUrlConfig


def _render(s: Services, c: FunctionUrlConfig, *, created: bool = False) -> shapes.Json:
    return shapes.function_url_config(c, s.functions.arns, s.url_gateway.addressing.url(c.url_id), created=created)


async def create_function_url_config(request: Request, s: Services) -> Response:
    changes = shapes.url_config_changes(await json_body(request))
    config = await s.function_urls.create(_ref(request), changes)
    return json_response(_render(s, config, created=True), 201)


async def get_function_url_config(request: Request, s: Services) -> Response:
    return json_response(_render(s, s.function_urls.get(_ref(request))))


async def update_function_url_config(request: Request, s: Services) -> Response:
    changes = shapes.url_config_changes(await json_body(request))
    return json_response(_render(s, await s.function_urls.update(_ref(request), changes)))


async def delete_function_url_config(request: Request, s: Services) -> Response:
    await s.function_urls.delete(_ref(request))
    return empty_response(204)


async def list_function_url_configs(request: Request, s: Services) -> Response:
    items = [_render(s, c) for c in s.function_urls.list(_ref(request))]
    page, marker = shapes.paginate(items, request.query_params.get("Marker"), _max_items(request), cap=50)
    body: dict[str, object] = {"FunctionUrlConfigs": page}
    if marker:
        body["NextMarker"] = marker
    return json_response(body)
