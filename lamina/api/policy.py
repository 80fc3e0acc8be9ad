"""Resource-based policies of functions, versions and aliases (spec 2.2): AddPermission (POST),
GetPolicy (GET) and RemovePermission (DELETE `.../policy/{StatementId}`) under /2015-03-31."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response

from lamina.api import shapes
from lamina.api.common import Services, empty_response, json_body, json_response
from lamina.api.functions import _ref


async def add_permission(request: Request, s: Services) -> Response:
    statement = await s.policies.add(_ref(request), shapes.permission_input(await json_body(request)))
    # Statement is a JSON document inside a JSON string (spec 12).
    return json_response({"Statement": json.dumps(shapes.policy_statement(statement))}, 201)


async def get_policy(request: Request, s: Services) -> Response:
    policy = s.policies.get(_ref(request))
    return json_response({"Policy": json.dumps(shapes.policy_document(policy)), "RevisionId": policy.revision_id})


async def remove_permission(request: Request, s: Services) -> Response:
    await s.policies.remove(_ref(request), request.path_params["sid"], request.query_params.get("RevisionId"))
    return empty_response(204)
