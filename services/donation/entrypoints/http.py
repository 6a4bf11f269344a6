"""The donation service's HTTP JSON API, following the hotline's conventions (shared.service)."""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request, Response

from services.donation.application import commands as c
from services.donation.domain import Campaign, VolunteerLink
from shared.auth.gate import Gate
from shared.domain.errors import NotFound
from shared.service.application import CommandService
from shared.service.http import (
    CommandRoute,
    ViewRoute,
    build_app,
    path_parameter,
    reader,
    respond,
    responses,
    within,
)
from shared.service.replies import Reply, refusal_from

COMMAND_ROUTES = [
    CommandRoute("/campaigns", c.LaunchCampaign, "Launch a charity campaign or self-help project"),
    CommandRoute(
        "/campaigns/{campaign}/pledges", c.PledgeDonation, "Record a donor's pledge", "campaign"
    ),
    CommandRoute(
        "/campaigns/{campaign}/receipts", c.ReceiveGoods, "Record goods received", "campaign"
    ),
    CommandRoute(
        "/receipts:batch", c.ReceiveGoodsBatch, "Record a station's receipts: all or none"
    ),
    CommandRoute(
        "/campaigns/{campaign}/funds", c.ReceiveFunds, "Record money received", "campaign"
    ),
    CommandRoute("/volunteers", c.LinkVolunteers, "Link volunteers to a campaign or a station"),
    CommandRoute(
        "/campaigns/{campaign}/distributions",
        c.DistributeGoods,
        "Hand goods out of the campaign's stock",
        "campaign",
    ),
    CommandRoute(
        "/campaigns/{campaign}/outputs",
        c.RecordProjectOutput,
        "Record a self-help project's output",
        "campaign",
    ),
]

# Corrections (application/corrections.py): answered 200 with what now stands. The campaign
# of a receipt, distribution or output is named in the body.
COMMAND_ROUTES += [
    CommandRoute(
        "/receipts/{receipt}/void", c.VoidGoodsReceipt, "Void goods received", "receipt", 200
    ),
    CommandRoute(
        "/receipts/{receipt}/correct",
        c.CorrectGoodsReceipt,
        "Correct goods received: void and record again",
        "receipt",
        200,
    ),
    CommandRoute(
        "/funds/{receipt}/void", c.VoidFundsReceipt, "Void money received", "receipt", 200
    ),
    CommandRoute(
        "/funds/{receipt}/correct",
        c.CorrectFundsReceipt,
        "Correct money received: void and record again",
        "receipt",
        200,
    ),
    CommandRoute(
        "/volunteers/{link}/void",
        c.VoidVolunteersLink,
        "Void volunteers linked to a station",
        "link",
        200,
    ),
    CommandRoute(
        "/distributions/{distribution}/void",
        c.VoidDistribution,
        "Void a distribution",
        "distribution",
        200,
    ),
    CommandRoute(
        "/distributions/{distribution}/correct",
        c.CorrectDistribution,
        "Correct a distribution: void and record again",
        "distribution",
        200,
    ),
    CommandRoute(
        "/outputs/{output}/void", c.VoidProjectOutput, "Void a self-help output", "output", 200
    ),
]

VIEW_ROUTES = [
    ViewRoute("/campaigns/{id}", Campaign),
    ViewRoute("/volunteers/{id}", VolunteerLink),
]


def build_donation_app(service: CommandService, gate: Gate) -> FastAPI:
    app = build_app(
        service,
        COMMAND_ROUTES,
        VIEW_ROUTES,
        title="Kapok donation",
        description=(
            "慈善力量群防网 and 社区抗疫自助网: campaigns, pledges, goods and funds received, "
            "volunteers linked, distributions, self-help outputs."
        ),
        gate=gate,
    )

    # The toolkit's views return an aggregate's `view()`; the stock is a second view of the
    # campaign, so it gets its own route here.
    async def get_stock(request: Request) -> Response:
        principal = reader(gate, request)
        campaign = await service.load.one(Campaign, request.path_params["id"])
        if not campaign.exists:
            return respond(refusal_from(NotFound(campaign.id)).reply)
        within(principal, lambda: principal.require_reach(campaign.id, campaign.where()))  # type: ignore[union-attr]
        return respond(Reply(200, orjson.dumps(campaign.stock_view())))

    app.add_api_route(
        "/campaigns/{id}/stock",
        get_stock,
        methods=["GET"],
        summary="A campaign's running stock per item kind and unit",
        operation_id="get_campaign_stock",
        openapi_extra={
            "parameters": [path_parameter("id", "the campaign, e.g. campaign:0192…")],
            "responses": responses("200", "the stock per kind and unit", "401", "403", "404"),
        },
        response_class=Response,
    )
    return app
