"""Events of the donation service: the charity mass-prevention net (慈善力量群防网) and the
community self-help net (社区抗疫自助网).

Every event about a campaign carries the campaign, its kind and its organisation, and where
the goods went, its district: reporting folds by any of them with no lookup. Goods are
``Item`` lines (kind, quantity, unit, value), the unit of a campaign's stock being
(kind, unit). The time an event happened is the envelope's ``occurred_at``.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import Field, model_validator

from shared.contracts.corrections import Recorded, Voiding
from shared.contracts.envelope import Event
from shared.contracts.registry import event
from shared.contracts.types import (
    District,
    Districts,
    GoodsKind,
    Group,
    Item,
    Label,
    Quantity,
    Recipients,
    Ref,
    Stock,
    Unit,
    Volunteers,
    Yuan,
)

CampaignKind = Literal["charity", "self_help"]
DonorKind = Literal["company", "foundation", "individual", "residents"]
RecipientKind = Literal["households", "stations", "people"]

Goods = Annotated[tuple[Item, ...], Field(max_length=100)]


class DonationEvent(Event):
    source = "donation"


class CampaignEvent(DonationEvent):
    """An event inside one campaign, tagged with what reporting splits campaigns by."""

    campaign: Ref
    campaign_kind: CampaignKind
    organisation: Ref


@event
class CampaignLaunched(CampaignEvent):
    """An organisation launched a charity campaign or a residents' self-help project, e.g.
    the warm lunches (暖心午餐) or the love farm (爱心农场). ``title`` is the campaign's
    public name, never a person's."""

    title: Label
    districts: Districts
    starts_on: date
    ends_on: date | None = None

    @model_validator(mode="after")
    def _ends_after_start(self) -> CampaignLaunched:
        if self.ends_on is not None and self.ends_on < self.starts_on:
            raise ValueError("ends_on: before starts_on")
        return self


@event
class DonationPledged(CampaignEvent):
    """A donor promised goods or money to a campaign; receipts fulfil it."""

    pledge: Ref
    donor: Ref
    donor_kind: DonorKind
    goods: Goods = ()
    funds_yuan: Yuan | None = None

    @model_validator(mode="after")
    def _pledges_something(self) -> DonationPledged:
        if not self.goods and not self.funds_yuan:
            raise ValueError("goods: a pledge needs goods or funds_yuan above zero")
        return self


@event
class GoodsReceived(CampaignEvent):
    """Donated goods came into a campaign's stock (捐赠物资). ``district`` is where they
    arrived, absent for a city-wide receipt."""

    receipt: Ref
    donor_kind: DonorKind
    items: Goods = Field(min_length=1)
    district: District | None = None
    pledge: Ref | None = None


@event
class FundsReceived(CampaignEvent):
    """Money came into a campaign (筹款)."""

    receipt: Ref
    donor_kind: DonorKind
    amount_yuan: Yuan
    district: District | None = None
    pledge: Ref | None = None

    @model_validator(mode="after")
    def _some_money(self) -> FundsReceived:
        if self.amount_yuan == 0:
            raise ValueError("amount_yuan: must be above zero")
        return self


@event
class VolunteersLinked(DonationEvent):
    """Volunteer person-times (志愿者人次) linked to a campaign, a station, or both. ``link``:
    its reference inside a campaign's stream, by which it is voided (absent on a station's
    own link, whose stream is its reference, and on links recorded before it was given)."""

    volunteers: Volunteers
    organisation: Ref
    district: District
    station: Ref | None = None
    campaign: Ref | None = None
    campaign_kind: CampaignKind | None = None
    link: Ref | None = None

    @model_validator(mode="after")
    def _for_campaign_or_station(self) -> VolunteersLinked:
        if self.campaign is None and self.station is None:
            raise ValueError("campaign: volunteers are linked to a campaign or a station")
        if (self.campaign is None) != (self.campaign_kind is None):
            raise ValueError("campaign_kind: given exactly when campaign is")
        return self


@event
class GoodsDistributed(CampaignEvent):
    """Goods went out of a campaign's stock to households, stations or people. When an aid
    delivery drew them, ``delivery`` names it (and the envelope's causation is that event)."""

    distribution: Ref
    items: Goods = Field(min_length=1)
    recipient_kind: RecipientKind
    recipients: Recipients
    district: District
    station: Ref | None = None
    group: Group | None = None
    delivery: Ref | None = None


@event
class StockShortfallRecorded(CampaignEvent):
    """An aid delivery drew more of one (kind, unit) than the campaign held. The delivery
    had already happened, so it is never refused: what the stock had was drawn and the rest
    is recorded here for reporting and operations to see."""

    delivery: Ref
    kind: GoodsKind
    unit: Unit
    requested: Quantity
    drawn: Stock
    short: Quantity
    district: District
    station: Ref | None = None
    group: Group | None = None

    @model_validator(mode="after")
    def _adds_up(self) -> StockShortfallRecorded:
        if self.drawn + self.short != self.requested:
            raise ValueError("short: drawn + short must equal requested")
        return self


@event
class ProjectOutputRecorded(CampaignEvent):
    """What a self-help project (自助项目) produced: love packs, vegetables grown, produce
    sold for poor farmers; ``income_yuan`` where it sold something."""

    output: Ref
    kind: GoodsKind
    quantity: Quantity
    unit: Unit
    beneficiaries: Recipients
    district: District
    station: Ref | None = None
    group: Group | None = None
    income_yuan: Yuan | None = None

    @model_validator(mode="after")
    def _self_help_only(self) -> ProjectOutputRecorded:
        if self.campaign_kind != "self_help":
            raise ValueError("campaign_kind: project outputs belong to self_help campaigns")
        return self


# -- corrections (shared/contracts/corrections.py) ---------------------------------------


@event
class GoodsReceiptVoided(CampaignEvent, Voiding):
    """Goods recorded as received by mistake: out of the stock and the figures, or recorded
    again as they really came (``replacement``)."""

    fact_field = "receipt"
    receipt: Ref
    voided: tuple[Recorded[GoodsReceived], ...] = Field(min_length=1, max_length=1)
    replacement: tuple[Recorded[GoodsReceived], ...] = Field(default=(), max_length=1)


@event
class FundsReceiptVoided(CampaignEvent, Voiding):
    """Money recorded as received by mistake, taken out or recorded again."""

    fact_field = "receipt"
    receipt: Ref
    voided: tuple[Recorded[FundsReceived], ...] = Field(min_length=1, max_length=1)
    replacement: tuple[Recorded[FundsReceived], ...] = Field(default=(), max_length=1)


@event
class VolunteersLinkVoided(DonationEvent, Voiding):
    """Volunteers linked by mistake (a station's ``volunteers:…`` link, or a ``link`` in a
    campaign, on the campaign's stream), taken out or recorded again."""

    fact_field = "link"
    link: Ref
    voided: tuple[Recorded[VolunteersLinked], ...] = Field(min_length=1, max_length=1)
    replacement: tuple[Recorded[VolunteersLinked], ...] = Field(default=(), max_length=1)


@event
class DistributionVoided(CampaignEvent, Voiding):
    """Goods recorded as handed out by mistake: back in the stock and out of the figures, or
    recorded again as they really went."""

    fact_field = "distribution"
    distribution: Ref
    voided: tuple[Recorded[GoodsDistributed], ...] = Field(min_length=1, max_length=1)
    replacement: tuple[Recorded[GoodsDistributed], ...] = Field(default=(), max_length=1)


@event
class ProjectOutputVoided(CampaignEvent, Voiding):
    """A self-help project's output recorded by mistake, taken out or recorded again."""

    fact_field = "output"
    output: Ref
    voided: tuple[Recorded[ProjectOutputRecorded], ...] = Field(min_length=1, max_length=1)
    replacement: tuple[Recorded[ProjectOutputRecorded], ...] = Field(default=(), max_length=1)
