"""PublishVersion, ListVersionsByFunction and the alias routes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from lamina.api import shapes
from lamina.api.common import Services, empty_response, json_body, json_response
from lamina.api.functions import _max_items, _ref, configuration
from lamina.model.ids import validation_error


async def publish_version(request: Request, s: Services) -> Response:
    ref = _ref(request)
    body = await json_body(request)
    config = await s.functions.publish_version(
        ref.name, code_sha256=body.get("CodeSha256"), description=body.get("Description"), revision_id=body.get("RevisionId")
    )
    return json_response(configuration(config, s), 201)


async def list_versions(request: Request, s: Services) -> Response:
    rec = s.functions.record(_ref(request).name)
    configs = [rec.latest, *(rec.versions[v] for v in sorted(rec.versions, key=int))]
    items = [shapes.function_configuration(c, s.functions.arns, listing=True, qualified_latest=True) for c in configs]
    page, marker = shapes.paginate(items, request.query_params.get("Marker"), _max_items(request), cap=50)
    body: dict[str, object] = {"Versions": page}
    if marker:
        body["NextMarker"] = marker
    return json_response(body)


def _version_param(body: dict[str, object], required: bool) -> str | None:
    version = body.get("FunctionVersion")
    if version is None:
        if required:
            raise validation_error("null", "functionVersion", "Member must not be null")
        return None
    if not isinstance(version, str) or not (version == "$LATEST" or version.isdigit()):
        raise validation_error(str(version), "functionVersion", r"Member must satisfy regular expression pattern: (\$LATEST|[0-9]+)")
    return version


async def create_alias(request: Request, s: Services) -> Response:
    ref = _ref(request)
    body = await json_body(request)
    name = body.get("Name")
    if not isinstance(name, str):
        raise validation_error("null", "name", "Member must not be null")
    alias = await s.functions.create_alias(
        ref.name,
        name,
        _version_param(body, True) or "",
        description=str(body.get("Description") or ""),
        weights=shapes.routing_weights(body),
    )
    return json_response(shapes.alias_configuration(alias, s.functions.arns), 201)


async def get_alias(request: Request, s: Services) -> Response:
    alias = s.functions.get_alias(_ref(request).name, request.path_params["alias"])
    return json_response(shapes.alias_configuration(alias, s.functions.arns))


async def update_alias(request: Request, s: Services) -> Response:
    body = await json_body(request)
    description = body.get("Description")
    alias = await s.functions.update_alias(
        _ref(request).name,
        request.path_params["alias"],
        version=_version_param(body, False),
        description=description if isinstance(description, str) else None,
        weights=shapes.routing_weights(body),
        revision_id=body.get("RevisionId") if isinstance(body.get("RevisionId"), str) else None,
    )
    return json_response(shapes.alias_configuration(alias, s.functions.arns))


async def delete_alias(request: Request, s: Services) -> Response:
    await s.functions.delete_alias(_ref(request).name, request.path_params["alias"])
    return empty_response(204)


async def list_aliases(request: Request, s: Services) -> Response:
    rec = s.functions.record(_ref(request).name)
    version = request.query_params.get("FunctionVersion")
    aliases = [a for _, a in sorted(rec.aliases.items()) if version is None or a.function_version == version]
    items = [shapes.alias_configuration(a, s.functions.arns) for a in aliases]
    page, marker = shapes.paginate(items, request.query_params.get("Marker"), _max_items(request), cap=50)
    body: dict[str, object] = {"Aliases": page}
    if marker:
        body["NextMarker"] = marker
    return json_response(body)
