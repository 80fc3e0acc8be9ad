"""Layer routes under /2018-10-31/layers (spec 2.2 layer rows): publish, get (by name and
version, or by ARN), list layers and versions with CompatibleRuntime/CompatibleArchitecture
filters, delete, and the version's permissions.

`Content.Location` points at Lamina's own download route for the zip (there is no S3 here), as
GetFunction's `Code.Location` does.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from lamina.api import shapes
from lamina.api.common import Services, empty_response, json_body, json_response, max_items
from lamina.model.ids import validation_error
from lamina.model.layers import LayerFilter, LayerVersion


def _version(request: Request) -> int:
    raw = request.path_params["version"]
    try:
        return int(raw)
    except ValueError:
        raise validation_error(raw, "versionNumber", "Member must be a number") from None


def _layer_version(request: Request, s: Services, v: LayerVersion) -> dict[str, object]:
    location = f"{str(request.base_url).rstrip('/')}/lamina/v1/code/{v.code.sha256_hex}.zip"
    return shapes.layer_version(v, s.layers.arns, location)


def _filter(request: Request) -> LayerFilter:
    q = request.query_params
    return LayerFilter(runtime=q.get("CompatibleRuntime"), architecture=q.get("CompatibleArchitecture"))


def _page(request: Request, key: str, items: list[shapes.Json]) -> Response:
    page, marker = shapes.paginate(items, request.query_params.get("Marker"), max_items(request, 50), cap=50)
    body: dict[str, object] = {key: page}
    if marker:
        body["NextMarker"] = marker
    return json_response(body)


async def publish_layer_version(request: Request, s: Services) -> Response:
    req = shapes.publish_layer_input(request.path_params["layer"], await json_body(request))
    return json_response(_layer_version(request, s, await s.layers.publish(req)), status=201)


async def get_layer_version(request: Request, s: Services) -> Response:
    return json_response(_layer_version(request, s, s.layers.get(request.path_params["layer"], _version(request))))


async def list_layers(request: Request, s: Services) -> Response:
    """GET /2018-10-31/layers: ListLayers, or GetLayerVersionByArn with `?find=LayerVersion`."""
    if request.query_params.get("find") == "LayerVersion":
        arn = request.query_params.get("Arn")
        if arn is None:
            raise validation_error("null", "arn", "Member must not be null")
        return json_response(_layer_version(request, s, s.layers.get_by_arn(arn)))
    items = [shapes.layers_list_item(v, s.layers.arns) for v in s.layers.list_layers(_filter(request))]
    return _page(request, "Layers", items)


async def list_layer_versions(request: Request, s: Services) -> Response:
    versions = s.layers.list_versions(request.path_params["layer"], _filter(request))
    return _page(request, "LayerVersions", [shapes.layer_version_list_item(v, s.layers.arns) for v in versions])


async def delete_layer_version(request: Request, s: Services) -> Response:
    await s.layers.delete(request.path_params["layer"], _version(request))
    return empty_response(204)


async def add_layer_version_permission(request: Request, s: Services) -> Response:
    req = shapes.layer_permission_input(await json_body(request), request.query_params.get("RevisionId"))
    version, statement = await s.layers.add_permission(request.path_params["layer"], _version(request), req)
    return json_response(shapes.layer_permission(version, statement, s.layers.arns), status=201)


async def get_layer_version_policy(request: Request, s: Services) -> Response:
    return json_response(shapes.layer_policy(s.layers.get_policy(request.path_params["layer"], _version(request)), s.layers.arns))


async def remove_layer_version_permission(request: Request, s: Services) -> Response:
    revision = request.query_params.get("RevisionId")
    await s.layers.remove_permission(request.path_params["layer"], _version(request), request.path_params["sid"], revision)
    return empty_response(204)
