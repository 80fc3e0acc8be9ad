"""Put/GetRuntimeManagementConfig under /2021-07-20 (spec 2.2, 10). The qualifier comes from the
name (`name:3`, an ARN) or the Qualifier query parameter; none means $LATEST."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from lamina.api import shapes
from lamina.api.common import Services, json_body, json_response
from lamina.api.functions import _ref


async def put_runtime_management_config(request: Request, s: Services) -> Response:
    mode, arn = shapes.runtime_management_input(await json_body(request))
    config = await s.runtime_configs.put(_ref(request), mode, arn)
    return json_response(shapes.runtime_management_config(config, s.functions.arns))


async def get_runtime_management_config(request: Request, s: Services) -> Response:
    return json_response(shapes.runtime_management_config(s.runtime_configs.get(_ref(request)), s.functions.arns))
