"""The people service's HTTP API: the only place a person's details are ever shown, and only
to a role entitled to them (README, "Personal data")."""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from services.people.adapters.contacts import may_serve
from services.people.application import commands as c
from services.people.application.service import PeopleService
from services.people.domain import Person
from shared.auth.gate import Gate
from shared.auth.principal import Principal, Role
from shared.service.http import (
    CommandRoute,
    build_app,
    path_parameter,
    reader,
    respond,
    responses,
)
from shared.service.replies import Refused
from shared.service.transport import handle

GONE = {
    "410": {
        "description": "the person's details were forgotten: their key is destroyed",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
}

COMMAND_ROUTES = [
    CommandRoute("/people", c.RecordPerson, "Keep a person's contact details (encrypted)"),
    CommandRoute("/people:batch", c.RecordPeople, "Keep a day's people: all or none"),
    CommandRoute(
        "/people/{person}/details",
        c.ChangeContactDetails,
        "Replace a person's contact details",
        "person",
        200,
    ),
]


async def entitled(service: PeopleService, principal: Principal | None, person: Person) -> bool:
    """The station that serves the person, their district's coordinator, the administrator,
    and whoever is assigned to an aid request for them; nobody else (auditors and ops read
    figures and records, never a person's details)."""
    if principal is None or principal.role is Role.ADMINISTRATOR:
        return True
    if principal.role is Role.COORDINATOR:
        return principal.reaches(person.where())
    if principal.role is Role.STATION_WORKER:
        if principal.reaches(person.where()):
            return True
        async with service.db.read() as conn:
            return await may_serve(conn, person.id, principal.actor)
    return False


def build_people_app(service: PeopleService, gate: Gate) -> FastAPI:
    app = build_app(
        service,
        COMMAND_ROUTES,
        [],
        title="Kapok people",
        description="People's contact details, encrypted per person, shown only to the roles "
        "that serve them, and forgotten on request or after the retention period.",
        gate=gate,
    )

    async def person_details(request: Request) -> Response:
        principal = reader(gate, request)
        ref = request.path_params["person"]
        person = await service.load.one(Person, ref)
        if not person.exists:
            return respond(Refused(404, f"{ref} not found", resource=ref).reply)
        if not await entitled(service, principal, person):
            assert principal is not None
            reply = Refused(
                403,
                f"{ref}'s details are for the station that serves them, its district's "
                "coordinator and whoever is assigned to serve them",
                rule="not_entitled_to_personal_data",
            ).reply
            return respond(reply)
        if person.forgotten:
            gone = f"{ref}'s details were forgotten ({person.forgotten_because})"
            return respond(Refused(410, gone, resource=ref).reply)
        async with service.db.read() as conn:
            details = await service.vault.read(conn, ref)
        if details is None:  # forgotten, the event not yet folded here
            return respond(Refused(410, f"{ref}'s details were forgotten", resource=ref).reply)
        body = {
            **person.view(),
            "full_name": details.name,
            "phone": details.phone,
            "address": details.address,
        }
        headers = {"Cache-Control": "no-store"}
        return Response(orjson.dumps(body), 200, headers, media_type="application/json")

    async def forget(request: Request) -> Response:
        ref = request.path_params["person"]
        # Starlette's headers are case-insensitive, as `handle` asks them.
        headers = request.headers
        return respond(await handle(service, gate, c.ForgetPerson, b"{}", headers, person=ref))

    app.add_api_route(
        "/people/{person}",
        person_details,
        methods=["GET"],
        summary="A person's contact details, to a role entitled to them (410 once forgotten)",
        operation_id="get_person",
        openapi_extra={
            "parameters": [path_parameter("person", "e.g. person:k3v…")],
            "responses": {
                **responses("200", "the person's record and details", "401", "403", "404"),
                **GONE,
            },
        },
        response_class=Response,
    )
    app.add_api_route(
        "/people/{person}",
        forget,
        methods=["DELETE"],
        summary="Forget a person's details (PIPL art. 47): their data key is destroyed",
        operation_id="ForgetPerson",
        openapi_extra={
            "parameters": [path_parameter("person", "e.g. person:k3v…")],
            "responses": responses(
                "200", "the person's record, forgotten", "401", "403", "404", "409"
            ),
        },
        response_class=Response,
    )
    return app
