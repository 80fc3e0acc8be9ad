"""What every API module shares: the services it calls and the handler wrapper."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from lamina.api.auth import AllowAll, Authorizer
from lamina.api.errors import error_response
from lamina.api.url_gateway import UrlGateway
from lamina.asyncq.dispatcher import Dispatcher
from lamina.envs.manager import EnvironmentManager
from lamina.functions.event_configs import EventConfigs
from lamina.functions.layers import LayerService
from lamina.functions.runtime_management import RuntimeManagementConfigs
from lamina.functions.policies import Policies
from lamina.functions.urls import FunctionUrls
from lamina.functions.service import FunctionService
from lamina.functions.sources import SourceFunctions
from lamina.invoke.debug import DebugSessions
from lamina.invoke.invoker import Invoker
from lamina.logs.store import LogStore
from lamina.model.errors import InvalidRequestContentException, LambdaError, ServiceException
from lamina.model.ids import validation_error
from lamina.runtimes.lifecycle import RuntimeCalendar
from lamina.runtimes.versions import RuntimeVersions
from lamina.store.code import CodeStore
from lamina.schedules.scheduler import Scheduler
from lamina.store.queue import EventQueue

log = logging.getLogger("lamina.api")
Handler = Callable[[Request, "Services"], Awaitable[Response]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Services:
    functions: FunctionService
    invoker: Invoker
    dispatcher: Dispatcher
    event_configs: EventConfigs
    layers: LayerService
    runtime_configs: RuntimeManagementConfigs
    runtimes: RuntimeVersions
    calendar: RuntimeCalendar
    queue: EventQueue
    scheduler: Scheduler
    environments: EnvironmentManager
    logs: LogStore
    code: CodeStore
    account_id: str
    region: str
    concurrency_limit: int
    sources: SourceFunctions
    debug: DebugSessions
    function_urls: FunctionUrls
    policies: Policies
    url_gateway: UrlGateway
    strict: bool = False  # refuse properties Lamina ignores (Settings.strict)
    authorizer: Authorizer = field(default_factory=AllowAll)


def json_response(data: Any, status: int = 200, request_id: str | None = None) -> Response:
    return Response(
        json.dumps(data),
        status_code=status,
        media_type="application/json",
        headers={"x-amzn-RequestId": request_id or str(uuid.uuid4())},
    )


def empty_response(status: int, request_id: str | None = None) -> Response:
    return Response(b"", status_code=status, headers={"x-amzn-RequestId": request_id or str(uuid.uuid4())})


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise InvalidRequestContentException(f"Could not parse request body into json: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidRequestContentException("Could not parse request body into json: expected an object")
    return body


def endpoint(services: Services, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler: Lambda errors become Lambda's error shape; anything else a ServiceException."""

    operation = handler.__name__

    async def run(request: Request) -> Response:
        try:
            services.authorizer.authorize(request, operation)
            return await handler(request, services)
        except Exception as exc:
            return failure_response(exc, request.method, request.url.path)

    return run


def failure_response(exc: Exception, method: str, path: str) -> Response:
    """The answer to what a handler raised: a LambdaError in Lambda's shape; anything else is the
    boundary's (logged whole, answered 500 as Lambda would)."""
    if isinstance(exc, LambdaError):
        return error_response(exc)
    log.error("unhandled error in %s %s", method, path, exc_info=exc)
    return error_response(ServiceException(f"Lamina hit an internal error: {type(exc).__name__}: {exc}"))


def max_items(request: Request, limit: int) -> int | None:
    """The `MaxItems` query parameter of a List call, 1 to `limit` (Lambda's ValidationException)."""
    raw = request.query_params.get("MaxItems")
    if raw is None:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= limit:
        raise validation_error(raw, "maxItems", f"Member must have value between 1 and {limit}")
    return int(raw)
