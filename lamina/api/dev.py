"""Lamina's own development endpoints under /lamina/v1 (issue #7): source-directory functions and
debug sessions. Not part of Lambda's API; `lamina dev` and `lamina invoke --debug` call them.

- PUT  /lamina/v1/functions/{name}/source   {"Directory": "/abs/dir", + CreateFunction's Runtime,
  Handler, Role, MemorySize, Timeout, Environment}: create the function from the directory, or
  point an existing one at it; it is watched and reloaded from then on. Answers the source state.
- GET  /lamina/v1/functions/{name}/source?generation=N&wait=S: the source state, long-polled
  until a reload newer than generation N (or S seconds, at most 60).
- PUT  /lamina/v1/functions/{name}/debug    {"Port": 0}: start a debug session (0: a free port).
- DELETE /lamina/v1/functions/{name}/debug: end it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from lamina.api import shapes
from lamina.api.admin import int_param
from lamina.api.common import Services, empty_response, json_body, json_response
from lamina.functions.sources import Reload, SourceDeploy
from lamina.invoke.debug import DebugSession
from lamina.model.errors import InvalidParameterValueException


def _source_state(name: str, r: Reload) -> dict[str, object]:
    return {
        "FunctionName": name,
        "Directory": r.code.source,
        "CodeSha256": r.code.sha256_hex,
        "CodeSize": r.code.size,
        "Generation": r.generation,
        "ChangedFiles": list(r.changed),
        "SnapshotMs": round(r.snapshot_ms, 3),
        "LiveAt": round(r.live_at, 6),
        "WriteToLiveMs": round(r.write_to_live_ms, 3) if r.write_to_live_ms is not None else None,
        "WriteToSeenMs": round(r.write_to_seen_ms, 3) if r.write_to_seen_ms is not None else None,
        "Error": r.error,
    }


async def put_source(request: Request, s: Services) -> Response:
    name = request.path_params["name"]
    body = await json_body(request)
    directory = body.get("Directory")
    if not isinstance(directory, str) or not directory:
        raise InvalidParameterValueException("Directory is required: the absolute path of the function's source directory.")
    changes = shapes.config_changes(body)
    if s.functions.find(name) is None and changes.role is None:
        changes = replace(changes, role=f"arn:aws:iam::{s.account_id}:role/lamina")
    _, reload = await s.sources.deploy(SourceDeploy(name=name, directory=Path(directory), changes=changes))
    return json_response(_source_state(name, reload))


async def get_source(request: Request, s: Services) -> Response:
    name = request.path_params["name"]
    after = int_param(request, "generation", 0, 0, 2**62)
    wait = int_param(request, "wait", 0, 0, 60)
    reload = await s.sources.wait_reload(name, after, wait) if wait else s.sources.current(name)
    return json_response(_source_state(name, reload))


def _debug_state(d: DebugSession) -> dict[str, object]:
    return {
        "FunctionName": d.function,
        "Runtime": d.runtime,
        "Host": d.host,
        "Port": d.port,
        "RemoteRoot": d.remote_root,
        "SourceDirectory": d.source,
        "TimeoutSeconds": d.timeout_s,
        "Isolation": "process",
    }


async def put_debug(request: Request, s: Services) -> Response:
    name = request.path_params["name"]
    body = await json_body(request)
    port = body.get("Port", 0)
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidParameterValueException("Port must be a whole number from 0 (any free port) to 65535.")
    return json_response(_debug_state(await s.debug.start(name, port)))


async def delete_debug(request: Request, s: Services) -> Response:
    await s.debug.stop(request.path_params["name"])
    return empty_response(204)
