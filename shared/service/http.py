"""The HTTP JSON API of a service: commands are POSTs on resources, GETs return current state.

Bodies are validated from their raw bytes by the same command models as the NATS requests,
so both transports accept and refuse exactly the same input with the same error shape. The
OpenAPI document is FastAPI's, with the command models' schemas, the headers and the error
shape added to it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException
from starlette.routing import Match

from shared.auth.gate import AUTHORIZATION, Gate
from shared.auth.principal import Forbidden, Permission, Principal
from shared.auth.registry import Unauthorized
from shared.contracts.types import Ref
from shared.domain.aggregate import Aggregate
from shared.service import browser
from shared.service.application import Service
from shared.service.commands import Command
from shared.service.replies import INTERNAL_ERROR, Refused, Reply
from shared.service.transport import IDEMPOTENCY_KEY, MAX_KEY, handle, unauthorized
from shared.settings import Settings

JSON = "application/json"
Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class CommandRoute:
    path: str
    command: type[Command]
    summary: str
    path_field: str | None = None  # a path parameter that fills the command's field of the name
    status: int = 201  # what it answers when done: 201 when it records something new, else 200


@dataclass(frozen=True, slots=True)
class ViewRoute:
    path: str  # with an {id} parameter
    kind: type[Aggregate]


ERROR = {
    "type": "object",
    "required": ["status", "error"],
    "properties": {
        "status": {"type": "integer"},
        "error": {"type": "string"},
        "field": {"type": "string", "description": "422: the offending field"},
        "resource": {"type": "string", "description": "404: what was not found"},
        "rule": {"type": "string", "description": "403: the role or scope rule; 409: the rule"},
    },
}


def respond(reply: Reply) -> Response:
    if reply.status == 401:
        # RFC 6750: say how to sign in.
        return Response(reply.body, 401, {"WWW-Authenticate": "Bearer"}, media_type=JSON)
    return Response(reply.body, status_code=reply.status, media_type=JSON)


def authorization(request: Request) -> str | None:
    for name, value in request.scope["headers"]:
        if name == b"authorization":
            return value.decode("latin-1")
    return None


def reader(
    gate: Gate, request: Request, permission: Permission = Permission.READ_RECORDS
) -> Principal | None:
    """Who reads, if their role may (`Refused` 401 or 403 otherwise, answered by the app's
    handler); None when sign-in is off. A route that reads records checks their scope too:
    `within`."""
    try:
        principal = gate.principal(authorization(request))
    except Unauthorized as error:
        raise Refused(401, str(error), field=AUTHORIZATION) from None
    if principal is not None and not principal.may(permission):
        within(principal, lambda: principal.require(permission))
    return principal


def within(principal: Principal | None, check: Callable[[], None]) -> None:
    """Run a principal's check, its refusal as a 403 `Refused`."""
    if principal is None:
        return
    try:
        check()
    except Forbidden as forbidden:
        raise Refused(403, forbidden.message, rule=forbidden.rule) from None


async def refused(request: Request, error: Exception) -> Response:
    assert isinstance(error, Refused)
    return respond(error.reply)


def build_app(
    service: Service,
    commands: Sequence[CommandRoute],
    views: Sequence[ViewRoute],
    *,
    title: str,
    description: str,
    gate: Gate,
) -> FastAPI:
    app = FastAPI(title=title, version="1", description=description)
    settings = Settings()
    limit = settings.max_body_bytes
    for route in commands:
        app.add_api_route(
            route.path,
            _command_endpoint(service, gate, route, limit),
            methods=["POST"],
            summary=route.summary,
            operation_id=route.command.name(),
            openapi_extra=_command_openapi(route),
            response_class=Response,
        )
    for view in views:
        app.add_api_route(
            view.path,
            _view_endpoint(service, gate, view.kind),
            methods=["GET"],
            summary=f"Current state of a {view.kind.kind}, from its events",
            operation_id=f"get_{view.kind.kind.replace('-', '_')}",
            openapi_extra={
                "parameters": [path_parameter("id", f"e.g. {view.kind.kind}:0192…")],
                "responses": responses("200", "current state", "401", "403", "404"),
            },
            response_class=Response,
        )
    app.add_exception_handler(Exception, _internal_error)
    app.add_exception_handler(Refused, refused)
    app.add_exception_handler(HTTPException, http_error)
    app.openapi = lambda: _openapi(app, commands, gate)  # type: ignore[method-assign]
    browser.guard(app, settings)
    return app


async def http_error(request: Request, error: Exception) -> Response:
    """Starlette's own refusals (no such route: 404; no such method: 405, with an Allow
    header naming every method of the path) in Kapok's error shape."""
    assert isinstance(error, HTTPException)
    detail = {"resource": request.url.path} if error.status_code == 404 else {}
    reply = Refused(error.status_code, str(error.detail).lower(), **detail).reply
    headers = dict(error.headers or {})
    if error.status_code == 405:
        # Starlette names the methods of the first route of the path only; a path can have
        # two (POST /requests opens one, GET /requests looks referrals up).
        headers["Allow"] = ", ".join(sorted(_methods_of(request)))
    return Response(reply.body, reply.status, headers, media_type=JSON)


def _methods_of(request: Request) -> set[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return methods


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request's body, or None as soon as it is known to exceed ``limit`` bytes: by its
    Content-Length before reading anything, or while it is read (a chunked body has none)."""
    for name, value in request.scope["headers"]:
        if name == b"content-length" and value.isdigit():
            # Known and within the limit: read whole, as before the limit (the stream's
            # generator cost a few µs a command for nothing).
            return None if int(value) > limit else await request.body()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def too_large(limit: int) -> Response:
    reply = Refused(413, f"the body is over {limit} bytes (KAPOK_MAX_BODY_BYTES)", field="body")
    return respond(reply.reply)


async def _internal_error(request: Request, error: Exception) -> Response:
    return Response(INTERNAL_ERROR, status_code=500, media_type=JSON)


# The request headers `handle` reads, as the ASGI scope names them (lower case).
_OURS = {name.lower().encode(): name.lower() for name in (IDEMPOTENCY_KEY, AUTHORIZATION)}
_CONTENT_TYPE = b"content-type"


def _our_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Our headers in one pass over the request's, by their lower-case names (the first of
    a name, as Starlette's `Headers.get`, and found by `handle` whatever case it asks in, an
    empty value too): each absent header cost two case-insensitive scans, each ending in a
    KeyError, about 4 µs of a single command."""
    found: dict[str, str] = {}
    for name, value in raw:
        if (ours := _OURS.get(name)) is not None and ours not in found:
            found[ours] = value.decode("latin-1")
    return found


def is_json(raw: list[tuple[bytes, bytes]]) -> bool:
    """Whether the request says its body is JSON (``application/json``, any parameters). A
    browser sends a cross-site ``text/plain`` or form POST without asking first; a JSON one
    needs the server's consent (CORS), so a command accepts JSON only."""
    for name, value in raw:
        if name == _CONTENT_TYPE:
            return value.split(b";", 1)[0].strip().lower() == b"application/json"
    return False


def not_json() -> Response:
    reply = Refused(415, "commands take Content-Type: application/json", field="Content-Type")
    return respond(reply.reply)


def _command_endpoint(service: Service, gate: Gate, route: CommandRoute, limit: int) -> Endpoint:
    model, path_field = route.command, route.path_field

    async def endpoint(request: Request) -> Response:
        raw = request.scope["headers"]
        if not is_json(raw):
            return not_json()
        if (body := await read_body(request, limit)) is None:
            return too_large(limit)
        path = {path_field: request.path_params[path_field]} if path_field else {}
        return respond(await handle(service, gate, model, body, _our_headers(raw), **path))

    endpoint.__name__ = model.name()
    return endpoint


def _view_endpoint(service: Service, gate: Gate, kind: type[Aggregate]) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            principal = gate.principal(authorization(request))
        except Unauthorized as error:
            return respond(unauthorized(error))
        return respond(await service.view(kind, request.path_params["id"], principal))

    endpoint.__name__ = f"get_{kind.kind}"
    return endpoint


REF_SCHEMA = TypeAdapter(Ref).json_schema()

# Every answer a service can give, each in the one error shape but the success.
_ANSWERS = {
    "401": "no valid token: sign in with Authorization: Bearer <token>",
    "403": "signed in, but the role or its scope does not allow it; `rule` names which",
    "404": "unknown resource; `resource` names it",
    "409": "a rule refused, or a concurrency conflict; `rule` names it",
    "413": "the body is over the service's limit (KAPOK_MAX_BODY_BYTES, default 4 MiB)",
    "415": "a command's body must be sent as Content-Type: application/json",
    "422": "invalid input; `field` names it, and the bound it broke",
    "503": "the database cannot be reached: nothing was stored, retry with the same key",
}


def path_parameter(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": REF_SCHEMA,
        "description": description,
    }


def error_responses(*statuses: str) -> dict[str, Any]:
    """The OpenAPI responses for these error statuses, with the error shape."""
    error = {"content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {status: {"description": _ANSWERS[status], **error} for status in statuses}


def responses(ok: str, description: str, *errors: str) -> dict[str, Any]:
    """A success with a JSON object, and these errors (default: every one a command can
    meet)."""
    success = {"description": description, "content": {JSON: {"schema": {"type": "object"}}}}
    return {ok: success, **error_responses(*(errors or tuple(_ANSWERS)))}


def _command_openapi(route: CommandRoute) -> dict[str, Any]:
    name = route.command.name()
    schema: dict[str, Any] = {"$ref": f"#/components/schemas/{name}"}
    parameters = [
        {
            "name": IDEMPOTENCY_KEY,
            "in": "header",
            "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY},
            "description": "a retried request with the same key gets the first response",
        },
    ]
    if route.path_field:
        parameters.append(path_parameter(route.path_field, f"the {route.path_field} reference"))
        schema = {"$ref": f"#/components/schemas/{name}Body"}
    return {
        "parameters": parameters,
        "requestBody": {"required": True, "content": {JSON: {"schema": schema}}},
        "responses": responses(str(route.status), "done"),
    }


def _openapi(app: FastAPI, commands: Sequence[CommandRoute], gate: Gate) -> dict[str, Any]:
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
    models = [(route.command, "validation") for route in commands]
    _, definitions = models_json_schema(models, ref_template="#/components/schemas/{model}")
    schemas = dict(definitions.get("$defs", {}))
    for route in commands:
        if route.path_field:
            name = route.command.name()
            body = dict(schemas[name])
            body["properties"] = {
                k: v for k, v in body["properties"].items() if k != route.path_field
            }
            body["required"] = [r for r in body.get("required", []) if r != route.path_field]
            body["title"] = f"{name} body"
            schemas[f"{name}Body"] = body
    schemas["Error"] = ERROR
    document.setdefault("components", {}).setdefault("schemas", {}).update(schemas)
    secured(document, gate)
    app.openapi_schema = document
    return document


BEARER = {
    "type": "http",
    "scheme": "bearer",
    "description": "a Kapok token (`kapok token create`), or the association's OpenID Connect "
    "provider's JWT where one is configured (README, 'Signing in')",
}


def secured(document: dict[str, Any], gate: Gate) -> None:
    """Every operation of the document signs in with a bearer token (unless sign-in is off),
    but those the document's ``x-kapok-open`` marks (liveness)."""
    if gate.open:
        return
    document.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = BEARER
    document["security"] = [{"bearer": []}]
    for item in document["paths"].values():
        for operation in item.values():
            if operation.pop("x-kapok-open", False):
                operation["security"] = []
