"""The donation service's voids and corrections: goods or money received, a distribution, a
self-help output (on their campaign's stream) or volunteers linked to a station (their own
stream), recorded by mistake, voided with a reason or corrected (voided and recorded again
as it was, by the campaign's own rules, in one append). Never an addition: a void is decided
on the campaign's version, as a distribution is (`additive`)."""

from __future__ import annotations

from collections.abc import Callable

from services.donation.application.commands import (
    CorrectDistribution,
    CorrectFundsReceipt,
    CorrectGoodsReceipt,
    VoidDistribution,
    VoidFundsReceipt,
    VoidGoodsReceipt,
    VoidProjectOutput,
    VoidVolunteersLink,
)
from services.donation.domain import Campaign, VolunteerLink
from shared.contracts.donation import (
    DistributionVoided,
    FundsReceiptVoided,
    FundsReceived,
    GoodsDistributed,
    GoodsReceiptVoided,
    GoodsReceived,
    ProjectOutputRecorded,
    ProjectOutputVoided,
    VolunteersLinkVoided,
)
from shared.contracts.envelope import Event
from shared.domain.errors import RuleBroken
from shared.domain.voids import void, without
from shared.service.application import Decision, Handler, Loader
from shared.service.commands import Command


def _goods(receipt: str) -> Callable[[Event], bool]:
    return lambda data: type(data) is GoodsReceived and data.receipt == receipt


def _funds(receipt: str) -> Callable[[Event], bool]:
    return lambda data: type(data) is FundsReceived and data.receipt == receipt


def _distribution(distribution: str) -> Callable[[Event], bool]:
    return lambda data: type(data) is GoodsDistributed and data.distribution == distribution


def _output(output: str) -> Callable[[Event], bool]:
    return lambda data: type(data) is ProjectOutputRecorded and data.output == output


def _stock_stays_whole(campaign: Campaign) -> None:
    """Goods voided out of the stock must not have been handed out already."""
    for (kind, unit), held in sorted(campaign.stock.items()):
        if held < 0:
            raise RuleBroken(
                "stock_never_negative",
                f"{campaign.id} has handed out {-held} {unit} of {kind} more than it would "
                "have received: void or correct those distributions first",
            )


def _decided(campaign: Campaign) -> Decision:
    return Decision.changed_one(campaign)


async def void_goods_receipt(cmd: VoidGoodsReceipt, load: Loader) -> Decision:
    campaign = await load.one(Campaign, cmd.campaign)
    void(
        campaign,
        GoodsReceiptVoided,
        cmd.receipt,
        _goods(cmd.receipt),
        cmd.reason,
        cmd.at,
        **campaign._tags(),
    )
    _stock_stays_whole(campaign)
    return _decided(campaign)


async def correct_goods_receipt(cmd: CorrectGoodsReceipt, load: Loader) -> Decision:
    campaign = await load.one(Campaign, cmd.campaign)
    again = without(campaign, _goods(cmd.receipt))
    assert isinstance(again, Campaign)
    again.receive_goods(
        cmd.receipt, cmd.donor_kind, cmd.items, cmd.district, cmd.pledge, cmd.received_at
    )
    void(
        campaign,
        GoodsReceiptVoided,
        cmd.receipt,
        _goods(cmd.receipt),
        cmd.reason,
        cmd.at,
        again.pending,
        **campaign._tags(),
    )
    _stock_stays_whole(campaign)
    return _decided(campaign)


async def void_funds_receipt(cmd: VoidFundsReceipt, load: Loader) -> Decision:
    campaign = await load.one(Campaign, cmd.campaign)
    void(
        campaign,
        FundsReceiptVoided,
        cmd.receipt,
        _funds(cmd.receipt),
        cmd.reason,
        cmd.at,
        **campaign._tags(),
    )
    return _decided(campaign)


async def correct_funds_receipt(cmd: CorrectFundsReceipt, load: Loader) -> Decision:
    campaign = await load.one(Campaign, cmd.campaign)
    again = without(campaign, _funds(cmd.receipt))
    assert isinstance(again, Campaign)
    again.receive_funds(
        cmd.receipt, cmd.donor_kind, cmd.amount_yuan, cmd.district, cmd.pledge, cmd.received_at
    )
    void(
        campaign,
        FundsReceiptVoided,
        cmd.receipt,
        _funds(cmd.receipt),
        cmd.reason,
        cmd.at,
        again.pending,
        **campaign._tags(),
    )
    return _decided(campaign)


async def void_volunteers_link(cmd: VoidVolunteersLink, load: Loader) -> Decision:
    link = await load.one(VolunteerLink, cmd.link)
    void(link, VolunteersLinkVoided, link.id, lambda _: True, cmd.reason, cmd.at)
    return Decision.changed_one(link)


def _not_an_aid_draw(campaign: Campaign, distribution: str) -> None:
    # An aid delivery's draw is recognised by its delivery when the delivery is seen again:
    # voided here, a redelivered AidDelivered would draw a second time.
    for data, _ in campaign.history:
        if _distribution(distribution)(data) and getattr(data, "delivery", None):
            raise RuleBroken(
                "aid_draws_stand",
                f"{distribution} is what aid delivery {data.delivery} drew: it happened",
            )


async def void_distribution(cmd: VoidDistribution, load: Loader) -> Decision:
    campaign = await load.one(Campaign, cmd.campaign)
    _not_an_aid_draw(campaign, cmd.distribution)
    void(
        campaign,
        DistributionVoided,
        cmd.distribution,
        _distribution(cmd.distribution),
        cmd.reason,
        cmd.at,
        **campaign._tags(),
    )
    return _decided(campaign)


async def correct_distribution(cmd: CorrectDistribution, load: Loader) -> Decision:
    campaign = await load.one(Campaign, cmd.campaign)
    _not_an_aid_draw(campaign, cmd.distribution)
    again = without(campaign, _distribution(cmd.distribution))
    assert isinstance(again, Campaign)
    again.distribute(
        cmd.distribution,
        cmd.items,
        cmd.recipient_kind,
        cmd.recipients,
        cmd.district,
        cmd.station,
        cmd.group,
        cmd.distributed_at,
    )
    void(
        campaign,
        DistributionVoided,
        cmd.distribution,
        _distribution(cmd.distribution),
        cmd.reason,
        cmd.at,
        again.pending,
        **campaign._tags(),
    )
    return _decided(campaign)


async def void_project_output(cmd: VoidProjectOutput, load: Loader) -> Decision:
    campaign = await load.one(Campaign, cmd.campaign)
    void(
        campaign,
        ProjectOutputVoided,
        cmd.output,
        _output(cmd.output),
        cmd.reason,
        cmd.at,
        **campaign._tags(),
    )
    return _decided(campaign)


HANDLERS: dict[type[Command], Handler] = {
    VoidGoodsReceipt: void_goods_receipt,
    CorrectGoodsReceipt: correct_goods_receipt,
    VoidFundsReceipt: void_funds_receipt,
    CorrectFundsReceipt: correct_funds_receipt,
    VoidVolunteersLink: void_volunteers_link,
    VoidDistribution: void_distribution,
    CorrectDistribution: correct_distribution,
    VoidProjectOutput: void_project_output,
}
