"""The HTTP JSON API: commands are POSTs on resources, GETs return current state.

Bodies are validated from their raw bytes by the same command models as the NATS requests
(`parse`), so both transports accept and refuse exactly the same input with the same error
shape: ``{"status": 422, "error": "...", "field": "items.17.category"}``, ``{"status": 409,
"error": "...", "rule": "..."}``, ``{"status": 404, "error": "...", "resource": "..."}``.
The OpenAPI document is FastAPI's, with the command models' schemas added to it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from services.hotline.application import commands as c
from services.hotline.application.service import HotlineService, Reply
from services.hotline.domain import Call, FollowUp, HotlinePoint, Referral, Shift
from services.hotline.entrypoints.common import ACTOR, IDEMPOTENCY_KEY, handle
from shared.service.aggregate import Aggregate

JSON = "application/json"

# (path, command, path parameter that fills a command field, summary)
COMMAND_ROUTES: list[tuple[str, type[c.Command], str | None, str]] = [
    ("/points", c.OpenHotlinePoint, None, "Open a hotline point at a station or project site"),
    ("/points/{point}/close", c.ClosePoint, "point", "Close a hotline point"),
    ("/shifts", c.StartShift, None, "Start a social worker's shift at an open point"),
    ("/shifts:batch", c.StartShifts, None, "Record a day's shifts: all or nothing"),
    ("/shifts/{shift}/end", c.EndShift, "shift", "End a shift"),
    ("/calls", c.ReceiveCall, None, "Record a call received at an open point"),
    ("/calls:batch", c.ReceiveCalls, None, "Record a day's calls: all or nothing"),
    ("/calls/{call}/complete", c.CompleteCall, "call", "Complete a call with its outcome"),
    ("/calls/{call}/referrals", c.ReferToAid, "call", "Refer the person of a call to aid"),
    ("/follow-ups", c.ScheduleFollowUp, None, "Schedule a tracked follow-up"),
    ("/follow-ups:batch", c.ScheduleFollowUps, None, "Record a day's follow-ups: all or nothing"),
    ("/follow-ups/{follow_up}/complete", c.CompleteFollowUp, "follow_up", "Complete one"),
]

VIEW_ROUTES: list[tuple[str, type[Aggregate]]] = [
    ("/points/{id}", HotlinePoint),
    ("/shifts/{id}", Shift),
    ("/calls/{id}", Call),
    ("/follow-ups/{id}", FollowUp),
    ("/referrals/{id}", Referral),
]

ERROR = {
    "type": "object",
    "required": ["status", "error"],
    "properties": {
        "status": {"type": "integer"},
        "error": {"type": "string"},
        "field": {"type": "string", "description": "422: the offending field"},
        "rule": {"type": "string", "description": "409: the rule that refused"},
        "resource": {"type": "string", "description": "404: what was not found"},
    },
}


def respond(reply: Reply) -> Response:
    return Response(reply.body, status_code=reply.status, media_type=JSON)


def build_app(service: HotlineService) -> FastAPI:
    app = FastAPI(
        title="Kapok hotline",
        version="1",
        description="红棉守护热线: hotline points, shifts, calls, follow-ups and referrals.",
    )
    for path, model, path_field, summary in COMMAND_ROUTES:
        app.add_api_route(
            path,
            _command_endpoint(service, model, path_field),
            methods=["POST"],
            summary=summary,
            operation_id=model.name(),
            openapi_extra=_command_openapi(model, path_field),
            response_class=Response,
        )
    for path, kind in VIEW_ROUTES:
        app.add_api_route(
            path,
            _view_endpoint(service, kind),
            methods=["GET"],
            summary=f"Current state of a {kind.kind}, from its events",
            operation_id=f"get_{kind.kind.replace('-', '_')}",
            openapi_extra={
                "parameters": [_path_parameter("id", f"e.g. {kind.kind}:0192…")],
                "responses": _responses("200", "current state"),
            },
            response_class=Response,
        )
    app.add_exception_handler(Exception, _internal_error)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


async def _internal_error(request: Request, error: Exception) -> Response:
    # Same shape as every other error; the transaction rolled back, so nothing was stored.
    body = b'{"status":500,"error":"internal error: nothing was stored"}'
    return Response(body, status_code=500, media_type=JSON)


def _command_endpoint(service: HotlineService, model: type[c.Command], path_field: str | None):  # type: ignore[no-untyped-def]
    async def endpoint(request: Request) -> Response:
        path = {path_field: request.path_params[path_field]} if path_field else {}
        return respond(await handle(service, model, await request.body(), request.headers, **path))

    endpoint.__name__ = model.name()
    return endpoint


def _view_endpoint(service: HotlineService, kind: type[Aggregate]):  # type: ignore[no-untyped-def]
    async def endpoint(request: Request) -> Response:
        return respond(await service.view(kind, request.path_params["id"]))

    endpoint.__name__ = f"get_{kind.kind}"
    return endpoint


def _path_parameter(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": description,
    }


def _responses(ok: str, description: str) -> dict[str, Any]:
    error = {"content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {
        ok: {"description": description, "content": {JSON: {"schema": {"type": "object"}}}},
        "404": {"description": "unknown resource", **error},
        "409": {"description": "a rule refused, or a concurrency conflict", **error},
        "422": {"description": "invalid input; `field` names it", **error},
    }


def _command_openapi(model: type[c.Command], path_field: str | None) -> dict[str, Any]:
    schema: dict[str, Any] = {"$ref": f"#/components/schemas/{model.name()}"}
    parameters = [
        {
            "name": IDEMPOTENCY_KEY,
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": 200},
            "description": "a retried request with the same key gets the first response",
        },
        {
            "name": ACTOR,
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "who asks: worker:<ref>, service:<name>… (default: system)",
        },
    ]
    if path_field:
        parameters.append(_path_parameter(path_field, f"the {path_field} reference"))
        schema = {"$ref": f"#/components/schemas/{model.name()}Body"}
    return {
        "parameters": parameters,
        "requestBody": {"required": True, "content": {JSON: {"schema": schema}}},
        "responses": _responses("201" if path_field is None else "200", "done"),
    }


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    # FastAPI documents a 200 with an empty schema for routes without a response model.
    for item in document["paths"].values():
        for operation in item.values():
            if "201" in operation["responses"]:
                operation["responses"].pop("200", None)
    models = [(model, "validation") for _, model, _, _ in COMMAND_ROUTES]
    _, definitions = models_json_schema(models, ref_template="#/components/schemas/{model}")
    schemas = dict(definitions.get("$defs", {}))
    for _, model, path_field, _ in COMMAND_ROUTES:
        if path_field:
            body = dict(schemas[model.name()])
            body["properties"] = {k: v for k, v in body["properties"].items() if k != path_field}
            body["required"] = [r for r in body.get("required", []) if r != path_field]
            body["title"] = f"{model.name()} body"
            schemas[f"{model.name()}Body"] = body
    schemas["Error"] = ERROR
    document.setdefault("components", {}).setdefault("schemas", {}).update(schemas)
    app.openapi_schema = document
    return document
