"""/2015-03-31/functions: CreateFunction, Get/List/Update/Delete, configuration and code."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from lamina.api import shapes
from lamina.api.common import Services, empty_response, json_body, json_response, max_items
from lamina.model.errors import InvalidParameterValueException
from lamina.model.function import FunctionConfig
from lamina.model.ids import FunctionRef
from lamina.model.parity import ignored_fields, strict_message


def _ref(request: Request) -> FunctionRef:
    return FunctionRef.parse(request.path_params["name"], request.query_params.get("Qualifier"))


def configuration(config: FunctionConfig, s: Services) -> shapes.Json:
    """FunctionConfiguration with the runtime version its next environment starts with (spec 2.1, 10)."""
    rc = s.runtime_configs
    return shapes.function_configuration(
        config, s.functions.arns, runtime_version_arn=rc.version_arn(config), runtime_version_error=rc.version_error(config)
    )


def _max_items(request: Request) -> int | None:
    return max_items(request, 10000)


def _check_strict(body: shapes.Json, s: Services) -> None:
    """Strict mode: a property Lamina accepts without effect (VpcConfig, KMSKeyArn...) is refused."""
    if s.strict:
        for entry in ignored_fields(body):
            raise InvalidParameterValueException(strict_message(entry))


async def create_function(request: Request, s: Services) -> Response:
    body = await json_body(request)
    _check_strict(body, s)
    config = await s.functions.create(shapes.create_input(body))
    return json_response(configuration(config, s), 201)


async def list_functions(request: Request, s: Services) -> Response:
    all_versions = request.query_params.get("FunctionVersion") == "ALL"
    items = []
    for rec in s.functions.list_functions():
        configs = [rec.latest, *(rec.versions[v] for v in sorted(rec.versions, key=int))] if all_versions else [rec.latest]
        items += [shapes.function_configuration(c, s.functions.arns, listing=True, qualified_latest=all_versions) for c in configs]
    page, marker = shapes.paginate(items, request.query_params.get("Marker"), _max_items(request), cap=50)
    body: dict[str, object] = {"Functions": page}
    if marker:
        body["NextMarker"] = marker
    return json_response(body)


async def get_function(request: Request, s: Services) -> Response:
    ref = _ref(request)
    config = s.functions.get_config(ref)
    rec = s.functions.record(ref.name)
    location = f"{str(request.base_url).rstrip('/')}/lamina/v1/code/{config.code.sha256_hex}.zip"
    body: dict[str, object] = {
        "Configuration": configuration(config, s),
        "Code": {"RepositoryType": "S3", "Location": location},
    }
    if rec.tags:
        body["Tags"] = dict(rec.tags)
    if rec.reserved is not None:
        body["Concurrency"] = {"ReservedConcurrentExecutions": rec.reserved}
    return json_response(body)


async def get_configuration(request: Request, s: Services) -> Response:
    config = s.functions.get_config(_ref(request))
    return json_response(configuration(config, s))


async def update_configuration(request: Request, s: Services) -> Response:
    ref = _ref(request)
    body = await json_body(request)
    _check_strict(body, s)
    config = await s.functions.update_configuration(ref.name, shapes.config_changes(body), revision_id=body.get("RevisionId"))
    return json_response(configuration(config, s))


async def update_code(request: Request, s: Services) -> Response:
    ref = _ref(request)
    body = await json_body(request)
    zip_file = shapes.zip_bytes(body)
    if zip_file is None:
        raise InvalidParameterValueException("Please provide a source for function code: ZipFile.")
    config = await s.functions.update_code(
        ref.name, zip_file, publish=bool(body.get("Publish")), revision_id=body.get("RevisionId")
    )
    return json_response(configuration(config, s))


async def delete_function(request: Request, s: Services) -> Response:
    ref = _ref(request)
    await s.functions.delete(ref.name, ref.qualifier)
    if ref.qualifier is None:
        s.scheduler.forget_function(ref.name)  # the store dropped its schedules with it
    return empty_response(204)


async def get_account_settings(request: Request, s: Services) -> Response:
    recs = s.functions.list_functions()
    total = sum(r.latest.code.size + sum(v.code.size for v in r.versions.values()) for r in recs)
    return json_response(
        {
            "AccountLimit": {
                "TotalCodeSize": 80530636800,
                "CodeSizeUnzipped": 262144000,
                "CodeSizeZipped": 52428800,
                "ConcurrentExecutions": s.concurrency_limit,
                "UnreservedConcurrentExecutions": s.functions.unreserved_concurrency,
            },
            "AccountUsage": {"TotalCodeSize": total, "FunctionCount": len(recs)},
        }
    )
