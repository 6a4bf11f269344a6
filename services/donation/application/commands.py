"""The donation service's commands: what a liaison (联络员), an enabler (赋能师) or a script
asks it to do. Identifiers HTTP takes from the path (``campaign``) are fields here, as NATS
requests carry them.

Checks that need no state are made here, at parse time, so a bad request is a 422 naming the
field before anything is loaded: money above zero, a pledge of something, dates in order.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from shared.contracts.donation import CampaignKind, DonorKind, RecipientKind
from shared.contracts.text import NoPersonalNumbers
from shared.contracts.types import (
    District,
    Districts,
    GoodsKind,
    Group,
    Item,
    Label,
    PositiveYuan,
    Quantity,
    Recipients,
    Ref,
    Unit,
    Volunteers,
    Yuan,
    given,
)
from shared.service.commands import MAX_BATCH, Command, Happened, PlannedDay
from shared.service.corrections import Void

Items = Annotated[tuple[Item, ...], Field(min_length=1, max_length=100)]


class LaunchCampaign(Command):
    """Launch a charity campaign or a self-help project."""

    campaign_kind: CampaignKind
    organisation: Ref
    title: Annotated[Label, NoPersonalNumbers]
    districts: Districts
    starts_on: PlannedDay
    ends_on: PlannedDay | None = Field(default=None, description="on or after starts_on")
    launched_at: Happened

    @model_validator(mode="after")
    def _ends_after_start(self) -> LaunchCampaign:
        if self.ends_on is not None and self.ends_on < self.starts_on:
            raise ValueError("ends_on: before starts_on")
        return self


class PledgeDonation(Command):
    """Record a donor's pledge of goods or money to a campaign."""

    campaign: Ref
    donor: Ref
    donor_kind: DonorKind
    goods: Annotated[tuple[Item, ...], Field(max_length=100)] = ()
    funds_yuan: PositiveYuan | None = None
    pledged_at: Happened

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["goods"], "properties": {"goods": {"minItems": 1}}},
                given("funds_yuan"),
            ]
        }
    )

    @model_validator(mode="after")
    def _pledges_something(self) -> PledgeDonation:
        if not self.goods and not self.funds_yuan:
            raise ValueError("goods: a pledge needs goods or funds_yuan above zero")
        return self


class ReceiveGoods(Command):
    """Record donated goods received into a campaign's stock. ``donor_kind`` comes from the
    pledge when one is named."""

    campaign: Ref
    items: Items
    donor_kind: DonorKind | None = None
    district: District | None = None
    pledge: Ref | None = None
    received_at: Happened

    # The donor's kind is the pledge's when one is named, else it must be said.
    model_config = ConfigDict(json_schema_extra={"anyOf": [given("pledge"), given("donor_kind")]})


class ReceiveGoodsBatch(Command):
    """Record a station's receipts in one request: all or nothing."""

    items: Annotated[list[ReceiveGoods], Field(min_length=1, max_length=MAX_BATCH)]


class ReceiveFunds(Command):
    """Record money received by a campaign (exact yuan)."""

    campaign: Ref
    amount_yuan: PositiveYuan
    donor_kind: DonorKind | None = None
    district: District | None = None
    pledge: Ref | None = None
    received_at: Happened

    model_config = ConfigDict(json_schema_extra={"anyOf": [given("pledge"), given("donor_kind")]})


class LinkVolunteers(Command):
    """Record volunteer person-times linked to a campaign, a station, or both.
    ``organisation`` is the campaign's when a campaign is named."""

    volunteers: Volunteers
    district: District
    campaign: Ref | None = None
    station: Ref | None = None
    organisation: Ref | None = None
    linked_at: Happened

    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                {"anyOf": [given("campaign"), given("station")]},
                {"anyOf": [given("campaign"), given("organisation")]},
            ]
        }
    )

    @model_validator(mode="after")
    def _for_campaign_or_station(self) -> LinkVolunteers:
        if self.campaign is None and self.station is None:
            raise ValueError("campaign: volunteers are linked to a campaign or a station")
        if self.campaign is None and self.organisation is None:
            raise ValueError("organisation: required when no campaign is named")
        return self


class DistributeGoods(Command):
    """Hand goods out of a campaign's stock to households, stations or people."""

    campaign: Ref
    items: Items
    recipient_kind: RecipientKind
    recipients: Recipients
    district: District
    station: Ref | None = None
    group: Group | None = None
    distributed_at: Happened


class RecordProjectOutput(Command):
    """Record what a self-help project produced, and its income where it sold something."""

    campaign: Ref
    kind: GoodsKind
    quantity: Quantity
    unit: Unit
    beneficiaries: Recipients
    district: District
    station: Ref | None = None
    group: Group | None = None
    income_yuan: Yuan | None = None
    produced_at: Happened


# -- corrections: a fact voided, or voided and recorded again (application/corrections.py) --


class VoidGoodsReceipt(Void):
    campaign: Ref
    receipt: Ref


class CorrectGoodsReceipt(ReceiveGoods, Void):
    """The receipt as it really came in, in place of what was recorded."""

    receipt: Ref


class VoidFundsReceipt(Void):
    campaign: Ref
    receipt: Ref


class CorrectFundsReceipt(ReceiveFunds, Void):
    """The money as it really came in, in place of what was recorded."""

    receipt: Ref


class VoidVolunteersLink(Void):
    """Volunteers linked by mistake: a station's ``volunteers:…`` link, or a campaign's
    (name the ``campaign``)."""

    link: Ref
    campaign: Ref | None = None


class VoidDistribution(Void):
    campaign: Ref
    distribution: Ref


class CorrectDistribution(DistributeGoods, Void):
    """The goods as they really went out, in place of what was recorded."""

    distribution: Ref


class VoidProjectOutput(Void):
    campaign: Ref
    output: Ref


CORRECTIONS: tuple[type[Command], ...] = (
    VoidGoodsReceipt,
    CorrectGoodsReceipt,
    VoidFundsReceipt,
    CorrectFundsReceipt,
    VoidVolunteersLink,
    VoidDistribution,
    CorrectDistribution,
    VoidProjectOutput,
)


COMMANDS: dict[str, type[Command]] = {
    c.name(): c
    for c in (
        LaunchCampaign,
        PledgeDonation,
        ReceiveGoods,
        ReceiveGoodsBatch,
        ReceiveFunds,
        LinkVolunteers,
        DistributeGoods,
        RecordProjectOutput,
        *CORRECTIONS,
    )
}
