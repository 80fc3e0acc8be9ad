"""The ASGI app: Lambda's REST paths (spec 2.2) plus /lamina/v1, with Lambda's error shape.

Authentication is not checked yet (any SigV4 signature is accepted, as the foundation issue
asks); every request passes `Services.authorizer` (see `auth.py`), where it will be.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from lamina.api import (
    admin, concurrency, dev, event_config, function_urls, functions, invoke, layers, policy, runtime_management, schedules,
    tags, versions,
)  # fmt: skip
from lamina.api.common import Handler, Services, endpoint
from lamina.api.errors import error_response
from lamina.model.errors import LambdaError

F = "/2015-03-31/functions"
EIC = "/2019-09-25/functions/{name}/event-invoke-config"
LV = "/2018-10-31/layers/{layer}/versions"
RMC = "/2021-07-20/functions/{name}/runtime-management-config"
URL = "/2021-10-31/functions/{name}/url"


class UnknownOperationException(LambdaError):
    code, status, fault = "UnknownOperationException", 404, "User"


def build_app(services: Services) -> ASGIApp:
    """Starlette for every route, behind `InvokeRoute`, which answers Invoke itself (the hot path)."""
    table: list[tuple[str, str, Handler]] = [
        ("POST", F, functions.create_function),
        ("POST", F + "/", functions.create_function),
        ("GET", F, functions.list_functions),
        ("GET", F + "/", functions.list_functions),
        ("GET", F + "/{name}", functions.get_function),
        ("DELETE", F + "/{name}", functions.delete_function),
        ("GET", F + "/{name}/configuration", functions.get_configuration),
        ("PUT", F + "/{name}/configuration", functions.update_configuration),
        ("PUT", F + "/{name}/code", functions.update_code),
        ("POST", F + "/{name}/versions", versions.publish_version),
        ("GET", F + "/{name}/versions", versions.list_versions),
        ("POST", F + "/{name}/aliases", versions.create_alias),
        ("GET", F + "/{name}/aliases", versions.list_aliases),
        ("GET", F + "/{name}/aliases/{alias}", versions.get_alias),
        ("PUT", F + "/{name}/aliases/{alias}", versions.update_alias),
        ("DELETE", F + "/{name}/aliases/{alias}", versions.delete_alias),
        # POST F + "/{name}/invocations" (Invoke) is answered by invoke.InvokeRoute, in front.
        ("POST", "/2014-11-13/functions/{name}/invoke-async/", invoke.invoke_async),
        ("POST", "/2014-11-13/functions/{name}/invoke-async", invoke.invoke_async),
        ("PUT", "/2017-10-31/functions/{name}/concurrency", concurrency.put_function_concurrency),
        ("DELETE", "/2017-10-31/functions/{name}/concurrency", concurrency.delete_function_concurrency),
        ("GET", "/2019-09-30/functions/{name}/concurrency", concurrency.get_function_concurrency),
        ("PUT", "/2019-09-30/functions/{name}/provisioned-concurrency", concurrency.put_provisioned_concurrency),
        ("GET", "/2019-09-30/functions/{name}/provisioned-concurrency", concurrency.get_provisioned_concurrency),
        ("DELETE", "/2019-09-30/functions/{name}/provisioned-concurrency", concurrency.delete_provisioned_concurrency),
        ("PUT", EIC, event_config.put_event_invoke_config),
        ("POST", EIC, event_config.update_event_invoke_config),
        ("GET", EIC, event_config.get_event_invoke_config),
        ("DELETE", EIC, event_config.delete_event_invoke_config),
        ("GET", EIC + "/list", event_config.list_event_invoke_configs),
        ("GET", "/2018-10-31/layers", layers.list_layers),  # also GetLayerVersionByArn (?find=LayerVersion)
        ("POST", LV, layers.publish_layer_version),
        ("GET", LV, layers.list_layer_versions),
        ("GET", LV + "/{version}", layers.get_layer_version),
        ("DELETE", LV + "/{version}", layers.delete_layer_version),
        ("POST", LV + "/{version}/policy", layers.add_layer_version_permission),
        ("GET", LV + "/{version}/policy", layers.get_layer_version_policy),
        ("DELETE", LV + "/{version}/policy/{sid}", layers.remove_layer_version_permission),
        ("PUT", RMC, runtime_management.put_runtime_management_config),
        ("GET", RMC, runtime_management.get_runtime_management_config),
        ("POST", URL, function_urls.create_function_url_config),
        ("GET", URL, function_urls.get_function_url_config),
        ("PUT", URL, function_urls.update_function_url_config),
        ("DELETE", URL, function_urls.delete_function_url_config),
        ("GET", URL + "s", function_urls.list_function_url_configs),
        ("POST", F + "/{name}/policy", policy.add_permission),
        ("GET", F + "/{name}/policy", policy.get_policy),
        ("DELETE", F + "/{name}/policy/{sid}", policy.remove_permission),
        ("GET", "/2017-03-31/tags/{arn}", tags.list_tags),
        ("POST", "/2017-03-31/tags/{arn}", tags.tag_resource),
        ("DELETE", "/2017-03-31/tags/{arn}", tags.untag_resource),
        ("GET", "/2016-08-19/account-settings/", functions.get_account_settings),
        ("GET", "/2016-08-19/account-settings", functions.get_account_settings),
        ("GET", "/lamina/v1/health", admin.health),
        ("GET", "/lamina/v1/code/{sha}.zip", admin.download_code),
        ("GET", "/lamina/v1/logs/{name}", admin.read_logs),
        ("GET", "/lamina/v1/environments", admin.environments),
        ("GET", "/lamina/v1/runtimes", admin.runtimes),
        ("GET", "/lamina/v1/metrics", admin.metrics),
        ("GET", "/lamina/v1/events", admin.events),
        ("GET", "/lamina/v1/events/failed", admin.failed_events),
        ("POST", "/lamina/v1/events/failed/{id}/replay", admin.replay_event),
        ("PUT", "/lamina/v1/functions/{name}/source", dev.put_source),
        ("GET", "/lamina/v1/functions/{name}/source", dev.get_source),
        ("PUT", "/lamina/v1/functions/{name}/debug", dev.put_debug),
        ("DELETE", "/lamina/v1/functions/{name}/debug", dev.delete_debug),
        ("POST", "/lamina/v1/schedules", schedules.create_schedule),
        ("GET", "/lamina/v1/schedules", schedules.list_schedules),
        ("GET", "/lamina/v1/schedules/{name}", schedules.get_schedule),
        ("POST", "/lamina/v1/schedules/{name}", schedules.update_schedule),
        ("DELETE", "/lamina/v1/schedules/{name}", schedules.delete_schedule),
    ]
    # One Route per path, dispatching on method, so a wrong method is a 405 and not a 404.
    by_path: dict[str, dict[str, Handler]] = {}
    for method, path, handler in table:
        by_path.setdefault(path, {})[method] = handler
    routes = [Route(path, _dispatch(services, handlers), methods=list(handlers)) for path, handlers in by_path.items()]

    async def not_found(request: Request, exc: Exception) -> Response:
        return error_response(
            UnknownOperationException(f"Lamina does not implement {request.method} {request.url.path}.")
        )

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
    app.router.redirect_slashes = False
    return invoke.InvokeRoute(services, app)


async def _missing(request: Request) -> Response:
    return error_response(UnknownOperationException(f"Lamina does not implement {request.method} {request.url.path}."))


def _dispatch(services: Services, handlers: dict[str, Handler]) -> Callable[[Request], Awaitable[Response]]:
    wrapped = {method: endpoint(services, h) for method, h in handlers.items()}

    async def run(request: Request) -> Response:
        # Starlette answers HEAD on GET routes; serve it with the GET handler.
        return await wrapped.get(request.method, wrapped.get("GET", _missing))(request)

    return run
