"""TagResource, UntagResource, ListTags (/2017-03-31/tags/{ARN})."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from lamina.api.common import Services, empty_response, json_body, json_response
from lamina.model.errors import InvalidParameterValueException


async def list_tags(request: Request, s: Services) -> Response:
    return json_response({"Tags": s.functions.list_tags(request.path_params["arn"])})


async def tag_resource(request: Request, s: Services) -> Response:
    tags = (await json_body(request)).get("Tags")
    if not isinstance(tags, dict):
        raise InvalidParameterValueException("Tags must be a map of strings.")
    await s.functions.tag(request.path_params["arn"], {str(k): str(v) for k, v in tags.items()})
    return empty_response(204)


async def untag_resource(request: Request, s: Services) -> Response:
    await s.functions.untag(request.path_params["arn"], request.query_params.getlist("tagKeys"))
    return empty_response(204)
