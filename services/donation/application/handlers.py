"""One handler per command: load what the decision needs, let the aggregates decide, and say
what to append. Committing is `shared.service.CommandService`'s job."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.donation.application import corrections
from services.donation.application.additive import Additive
from services.donation.application.commands import (
    DistributeGoods,
    LaunchCampaign,
    LinkVolunteers,
    PledgeDonation,
    ReceiveFunds,
    ReceiveGoods,
    ReceiveGoodsBatch,
    RecordProjectOutput,
)
from services.donation.domain import Campaign, VolunteerLink
from shared.contracts.types import Item
from shared.domain.errors import RuleBroken
from shared.service.application import Decision, Handler, Loader, batch_item, new_id
from shared.service.commands import Command


def additive(changed: Sequence[Campaign], status: int, body: dict[str, Any]) -> Additive:
    """A decision that only adds to campaigns, appended on their latest version (see
    `Additive`). Its reply says what was recorded, not the campaign's running state (read
    before the lock, it may be behind by the time the events land): GET the campaign."""
    return Additive(list(changed), status, body)


async def launch_campaign(cmd: LaunchCampaign, load: Loader) -> Decision:
    campaign = Campaign.launch(
        new_id("campaign"),
        cmd.campaign_kind,
        cmd.organisation,
        cmd.title,
        cmd.districts,
        cmd.starts_on,
        cmd.ends_on,
        cmd.launched_at,
    )
    return Decision.created(campaign)


async def pledge_donation(cmd: PledgeDonation, load: Loader) -> Decision:
    campaign = await load.one(Campaign, cmd.campaign)
    pledge = new_id("pledge")
    campaign.pledge(pledge, cmd.donor, cmd.donor_kind, cmd.goods, cmd.funds_yuan, cmd.pledged_at)
    return additive([campaign], 201, campaign.pledges[pledge].view() | {"campaign": campaign.id})


async def receive_goods(cmd: ReceiveGoods, load: Loader) -> Decision:
    campaign = await load.one(Campaign, cmd.campaign)
    receipt = new_id("receipt")
    campaign.receive_goods(
        receipt, cmd.donor_kind, cmd.items, cmd.district, cmd.pledge, cmd.received_at
    )
    body = {"receipt": receipt, "campaign": campaign.id, "items": _items(cmd.items)}
    return additive([campaign], 201, body)


async def receive_goods_batch(cmd: ReceiveGoodsBatch, load: Loader) -> Decision:
    # One aggregate per campaign however many of its receipts the batch holds, appended once.
    campaigns = await load.many(Campaign, {i.campaign for i in cmd.items})
    receipts: list[str] = []
    for index, logged in enumerate(cmd.items):
        receipt = new_id("receipt")
        with batch_item(index):
            campaigns[logged.campaign].receive_goods(
                receipt,
                logged.donor_kind,
                logged.items,
                logged.district,
                logged.pledge,
                logged.received_at,
            )
        receipts.append(receipt)
    changed = [c for c in campaigns.values() if c.pending]
    return additive(changed, 201, {"count": len(receipts), "receipts": receipts})


async def receive_funds(cmd: ReceiveFunds, load: Loader) -> Decision:
    campaign = await load.one(Campaign, cmd.campaign)
    receipt = new_id("receipt")
    campaign.receive_funds(
        receipt, cmd.donor_kind, cmd.amount_yuan, cmd.district, cmd.pledge, cmd.received_at
    )
    body = {"receipt": receipt, "campaign": campaign.id, "amount_yuan": str(cmd.amount_yuan)}
    return additive([campaign], 201, body)


async def link_volunteers(cmd: LinkVolunteers, load: Loader) -> Decision:
    if cmd.campaign is not None:
        campaign = await load.one(Campaign, cmd.campaign)
        if (
            cmd.organisation is not None
            and campaign.exists
            and cmd.organisation != campaign.organisation
        ):
            raise RuleBroken(
                "volunteers_of_the_campaigns_organisation",
                f"{campaign.id} is {campaign.organisation}'s",
            )
        link = new_id("volunteers")
        campaign.link_volunteers(cmd.volunteers, cmd.district, cmd.station, cmd.linked_at, link)
        body = {
            "volunteers": cmd.volunteers,
            "campaign": campaign.id,
            "station": cmd.station,
            "link": link,
        }
        return additive([campaign], 201, body)
    assert cmd.station is not None and cmd.organisation is not None  # the command's check
    link = VolunteerLink.link(
        new_id("volunteers"),
        cmd.volunteers,
        cmd.organisation,
        cmd.district,
        cmd.station,
        cmd.linked_at,
    )
    return Decision.created(link)


async def distribute_goods(cmd: DistributeGoods, load: Loader) -> Decision:
    campaign = await load.one(Campaign, cmd.campaign)
    distribution = new_id("distribution")
    campaign.distribute(
        distribution,
        cmd.items,
        cmd.recipient_kind,
        cmd.recipients,
        cmd.district,
        cmd.station,
        cmd.group,
        cmd.distributed_at,
    )
    return Decision([campaign], 201, {"distribution": distribution, **campaign.stock_view()})


async def record_project_output(cmd: RecordProjectOutput, load: Loader) -> Decision:
    campaign = await load.one(Campaign, cmd.campaign)
    output = new_id("output")
    campaign.record_output(
        output,
        cmd.kind,
        cmd.quantity,
        cmd.unit,
        cmd.beneficiaries,
        cmd.district,
        cmd.station,
        cmd.group,
        cmd.income_yuan,
        cmd.produced_at,
    )
    body = {"output": output, "campaign": campaign.id, **cmd.model_dump(mode="json")}
    return additive([campaign], 201, body)


def _items(items: Sequence[Item]) -> list[dict[str, Any]]:
    return [item.model_dump(mode="json") for item in items]


HANDLERS: dict[type[Command], Handler] = {
    **corrections.HANDLERS,
    LaunchCampaign: launch_campaign,
    PledgeDonation: pledge_donation,
    ReceiveGoods: receive_goods,
    ReceiveGoodsBatch: receive_goods_batch,
    ReceiveFunds: receive_funds,
    LinkVolunteers: link_volunteers,
    DistributeGoods: distribute_goods,
    RecordProjectOutput: record_project_output,
}
