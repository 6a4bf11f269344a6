"""The aid service's HTTP JSON API, following the hotline's conventions (shared.service)."""

from __future__ import annotations

import re

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from services.aid.application import commands as c
from services.aid.domain import AidRequest, EmergencyCase, request_id_for_referral
from shared.auth.gate import Gate
from shared.service.application import CommandService
from shared.service.http import (
    REF_SCHEMA,
    CommandRoute,
    ViewRoute,
    build_app,
    path_parameter,
    reader,
    respond,
    responses,
    within,
)
from shared.service.replies import Refused

MAX_LOOKUP = 500  # referrals in one look-up: a day's, with room
_REF_PATTERN = re.compile(REF_SCHEMA["pattern"])


def _is_ref(text: str) -> bool:
    """A reference as the document states it: its pattern and lengths."""
    fits = REF_SCHEMA["minLength"] <= len(text) <= REF_SCHEMA["maxLength"]
    return fits and _REF_PATTERN.fullmatch(text) is not None


COMMAND_ROUTES = [
    CommandRoute("/requests", c.RequestAid, "Open an aid request for a person in hardship"),
    CommandRoute("/requests:batch", c.RequestAids, "Open a day's aid requests: all or none"),
    CommandRoute(
        "/requests/{request}/assign",
        c.AssignAid,
        "Assign it to a worker or volunteer",
        "request",
        200,
    ),
    CommandRoute(
        "/assignments:batch", c.AssignAids, "Assign a day's requests: all or none", status=200
    ),
    CommandRoute(
        "/requests/{request}/deliveries", c.RecordDelivery, "Record one aid action", "request"
    ),
    CommandRoute(
        "/requests/{request}/cancel", c.CancelAid, "Cancel it, with a reason", "request", 200
    ),
    CommandRoute("/deliveries:batch", c.RecordDeliveries, "Record a day's deliveries: all or none"),
    CommandRoute("/emergencies", c.OpenEmergency, "Open an emergency case and its urgent request"),
]

# Corrections (application/corrections.py): answered 200 with the request as it now stands.
COMMAND_ROUTES += [
    CommandRoute(
        "/deliveries/{delivery}/void",
        c.VoidDelivery,
        "Void a delivery (of the request named in the body), with a reason",
        "delivery",
        200,
    ),
    CommandRoute(
        "/deliveries/{delivery}/correct",
        c.CorrectDelivery,
        "Correct a delivery (of the request named in the body): void and record again",
        "delivery",
        200,
    ),
]

VIEW_ROUTES = [
    ViewRoute("/requests/{id}", AidRequest),
    ViewRoute("/emergencies/{id}", EmergencyCase),
]


def build_aid_app(service: CommandService, gate: Gate) -> FastAPI:
    app = build_app(
        service,
        COMMAND_ROUTES,
        VIEW_ROUTES,
        title="Kapok aid",
        description="抗疫救援服务网: aid requests, assignments, deliveries and emergency cases.",
        gate=gate,
    )

    async def request_of_referral(request: Request) -> Response:
        principal = reader(gate, request)
        referral = request.path_params["referral"]
        reply = await service.view(AidRequest, request_id_for_referral(referral), principal)
        if reply.status == 404:
            reply = Refused(
                404,
                f"no aid request from {referral} (yet: the aid service opens it once the "
                "hotline's ReferredToAid reaches it)",
                resource=referral,
            ).reply
        return respond(reply)

    async def requests_of_referrals(request: Request) -> Response:
        principal = reader(gate, request)
        referrals = request.query_params.getlist("referral")
        if not 1 <= len(referrals) <= MAX_LOOKUP:
            reply = Refused(
                422, f"referral: name 1 to {MAX_LOOKUP} referrals", field="referral"
            ).reply
            return respond(reply)
        if malformed := [r for r in referrals if not _is_ref(r)]:
            reply = Refused(422, f"referral: not a reference: {malformed[0]!r}", field="referral")
            return respond(reply.reply)
        ids = {r: request_id_for_referral(r) for r in referrals}
        found = await service.load.many(AidRequest, ids.values())
        for aid_request in found.values():
            if aid_request.exists:
                within(principal, lambda r=aid_request: principal.require_reach(r.id, r.where()))  # type: ignore[union-attr]
        opened = [found[ids[r]].view() for r in referrals if found[ids[r]].exists]
        missing = [r for r in referrals if not found[ids[r]].exists]
        return Response(
            orjson.dumps({"requests": opened, "missing": missing}), media_type="application/json"
        )

    app.add_api_route(
        "/requests",
        requests_of_referrals,
        methods=["GET"],
        summary="The aid requests these hotline referrals opened (?referral=…&referral=…), "
        "and which are not opened yet",
        operation_id="get_requests_of_referrals",
        openapi_extra={
            "parameters": [
                {
                    "name": "referral",
                    "in": "query",
                    "required": True,
                    "schema": {
                        "type": "array",
                        "items": REF_SCHEMA,
                        "minItems": 1,
                        "maxItems": MAX_LOOKUP,
                    },
                    "style": "form",
                    "explode": True,
                }
            ],
            "responses": responses(
                "200", "the requests opened, and the referrals missing", "401", "403", "422"
            ),
        },
        response_class=Response,
    )
    app.add_api_route(
        "/referrals/{referral}/request",
        request_of_referral,
        methods=["GET"],
        summary="The aid request a hotline referral opened (404 until it is opened)",
        operation_id="get_request_of_referral",
        openapi_extra={
            "parameters": [path_parameter("referral", "the hotline referral, e.g. referral:0192…")],
            "responses": responses("200", "the aid request", "401", "403", "404"),
        },
        response_class=Response,
    )
    return app
