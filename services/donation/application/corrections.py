"""The donation service's voids and corrections: goods or money received, a distribution, a
self-help output (on their campaign's stream) or volunteers linked to a station (their own
stream), recorded by mistake, voided with a reason or corrected (voided and recorded again
as it was, by the campaign's own rules, in one append). Never an addition: a void is decided
on the campaign's version, as a distribution is (`additive`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
from shared.contracts.corrections import Voiding
from shared.contracts.donation import (
    DistributionVoided,
    FundsReceiptVoided,
    FundsReceived,
    GoodsDistributed,
    GoodsReceiptVoided,
    GoodsReceived,
    ProjectOutputRecorded,
    ProjectOutputVoided,
    VolunteersLinked,
    VolunteersLinkVoided,
)
from shared.contracts.envelope import Event, NewEvent
from shared.domain.errors import RuleBroken
from shared.domain.voids import void, without
from shared.service.application import Decision, Handler, Loader
from shared.service.commands import Command
from shared.service.corrections import Void, voided


def _goods(receipt: str) -> Callable[[Event], bool]:
    return lambda data: type(data) is GoodsReceived and data.receipt == receipt


def _funds(receipt: str) -> Callable[[Event], bool]:
    return lambda data: type(data) is FundsReceived and data.receipt == receipt


def _distribution(distribution: str) -> Callable[[Event], bool]:
    return lambda data: type(data) is GoodsDistributed and data.distribution == distribution


def _volunteers(link: str) -> Callable[[Event], bool]:
    return lambda data: type(data) is VolunteersLinked and data.link == link


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


def _voided(
    campaign: Campaign,
    kind: type[Voiding],
    fact: str,
    belongs: Callable[[Event], bool],
    cmd: Void,
    replacement: Sequence[NewEvent] = (),
) -> Decision:
    """``fact`` voided on its campaign (with ``replacement`` in its place), if the stock
    that leaves still covers what was handed out."""
    void(campaign, kind, fact, belongs, cmd.reason, cmd.at, replacement, **campaign._tags())
    _stock_stays_whole(campaign)
    return Decision.changed_one(campaign)


def _again(campaign: Campaign, belongs: Callable[[Event], bool]) -> Campaign:
    """The campaign without the fact, for its replacement to be decided on by the rules."""
    again = without(campaign, belongs)
    assert isinstance(again, Campaign)
    return again


async def void_goods_receipt(cmd: VoidGoodsReceipt, load: Loader) -> Decision:
    campaign = await load.one(Campaign, cmd.campaign)
    return _voided(campaign, GoodsReceiptVoided, cmd.receipt, _goods(cmd.receipt), cmd)


async def correct_goods_receipt(cmd: CorrectGoodsReceipt, load: Loader) -> Decision:
    campaign = await load.one(Campaign, cmd.campaign)
    again = _again(campaign, _goods(cmd.receipt))
    again.receive_goods(
        cmd.receipt, cmd.donor_kind, cmd.items, cmd.district, cmd.pledge, cmd.received_at
    )
    return _voided(
        campaign, GoodsReceiptVoided, cmd.receipt, _goods(cmd.receipt), cmd, again.pending
    )


async def void_funds_receipt(cmd: VoidFundsReceipt, load: Loader) -> Decision:
    campaign = await load.one(Campaign, cmd.campaign)
    return _voided(campaign, FundsReceiptVoided, cmd.receipt, _funds(cmd.receipt), cmd)


async def correct_funds_receipt(cmd: CorrectFundsReceipt, load: Loader) -> Decision:
    campaign = await load.one(Campaign, cmd.campaign)
    again = _again(campaign, _funds(cmd.receipt))
    again.receive_funds(
        cmd.receipt, cmd.donor_kind, cmd.amount_yuan, cmd.district, cmd.pledge, cmd.received_at
    )
    return _voided(
        campaign, FundsReceiptVoided, cmd.receipt, _funds(cmd.receipt), cmd, again.pending
    )


async def void_volunteers_link(cmd: VoidVolunteersLink, load: Loader) -> Decision:
    if cmd.campaign is not None:
        campaign = await load.one(Campaign, cmd.campaign)
        void(campaign, VolunteersLinkVoided, cmd.link, _volunteers(cmd.link), cmd.reason, cmd.at)
        return Decision.changed_one(campaign)
    link = await load.one(VolunteerLink, cmd.link)
    void(link, VolunteersLinkVoided, link.id, lambda _: True, cmd.reason, cmd.at)
    return voided(link)


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
    belongs = _distribution(cmd.distribution)
    return _voided(campaign, DistributionVoided, cmd.distribution, belongs, cmd)


async def correct_distribution(cmd: CorrectDistribution, load: Loader) -> Decision:
    campaign = await load.one(Campaign, cmd.campaign)
    _not_an_aid_draw(campaign, cmd.distribution)
    belongs = _distribution(cmd.distribution)
    again = _again(campaign, belongs)
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
    return _voided(campaign, DistributionVoided, cmd.distribution, belongs, cmd, again.pending)


async def void_project_output(cmd: VoidProjectOutput, load: Loader) -> Decision:
    campaign = await load.one(Campaign, cmd.campaign)
    return _voided(campaign, ProjectOutputVoided, cmd.output, _output(cmd.output), cmd)


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
