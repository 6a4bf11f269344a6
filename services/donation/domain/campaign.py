"""Campaign: a charity campaign (慈善) or a residents' self-help project (自助项目), launched by an
organisation, with everything that happens inside it on its one stream: pledges, goods and
funds received, volunteers linked, goods distributed, self-help outputs.

Why one stream: the rule that matters, "stock never goes negative", spans receipts and
distributions; with both on the campaign's stream, the append's expected version makes the
check and the draw one atomic decision (a racing distribution decides again on fresh stock).

Rules:
- nothing is recorded inside a campaign before it was launched (422 on the time field);
- no pledge or receipt after the campaign's last day (409 ``campaign_ended``);
- goods go out to the campaign's districts only (409 ``district_outside_campaign``);
- a distribution larger than the stock is refused (409 ``stock_never_negative``), per
  (kind, unit): "kg" of vegetables and "jin" of vegetables are two stocks;
- project outputs belong to self-help projects (409 ``outputs_belong_to_self_help``);
- a receipt against a pledge names one of this campaign's pledges (404 otherwise) and the
  pledge's donor kind;
- an aid delivery that drew on the campaign is never refused (it happened): what the stock
  has is drawn, the rest recorded as StockShortfallRecorded. Each delivery draws once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from shared.contracts.donation import (
    CampaignKind,
    CampaignLaunched,
    DistributionVoided,
    DonationPledged,
    DonorKind,
    FundsReceiptVoided,
    FundsReceived,
    GoodsDistributed,
    GoodsReceiptVoided,
    GoodsReceived,
    ProjectOutputRecorded,
    ProjectOutputVoided,
    RecipientKind,
    StockShortfallRecorded,
    VolunteersLinked,
    VolunteersLinkVoided,
)
from shared.contracts.envelope import Event
from shared.contracts.types import AidItem, District, GoodsKind, Group, Item, Unit
from shared.domain.aggregate import Aggregate, iso
from shared.domain.errors import InvalidInput, NotFound, RuleBroken
from shared.domain.voids import restate

StockKey = tuple[str, str]  # (kind, unit)
# Business days are Guangzhou's: a campaign ending on 2020-03-07 takes receipts until midnight
# there, not in UTC.
SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")
CENT = Decimal("0.01")

# Fixed forever: the distribution an aid delivery makes must come out the same in every
# process and after every restart, so a delivery seen twice is recognised.
_DELIVERY_NAMESPACE = uuid5(NAMESPACE_URL, "https://kapok/donation/delivery")


def distribution_id_for_delivery(delivery: str, campaign: str) -> str:
    return f"distribution:{uuid5(_DELIVERY_NAMESPACE, f'{delivery}|{campaign}')}"


def _key(item: Item | AidItem) -> StockKey:
    return (item.kind, item.unit)


def _merge(items: Iterable[Item | AidItem]) -> dict[StockKey, tuple[Decimal, Decimal | None]]:
    """Lines of one (kind, unit) added up: quantity, and value where every line has one."""
    merged: dict[StockKey, tuple[Decimal, Decimal | None]] = {}
    for item in items:
        quantity, value = merged.get(_key(item), (Decimal(0), Decimal(0)))
        line_value = item.value_yuan
        merged[_key(item)] = (
            quantity + item.quantity,
            None if value is None or line_value is None else value + line_value,
        )
    return merged


def _amount(value: Decimal) -> str:
    return str(value.quantize(CENT))


class Pledge:
    """A donor's promise inside a campaign, and what its receipts brought so far."""

    def __init__(self, data: DonationPledged, at: datetime) -> None:
        self.id = data.pledge
        self.donor = data.donor
        self.donor_kind: DonorKind = data.donor_kind
        self.pledged_at = at
        self.goods = {k: q for k, (q, _) in _merge(data.goods).items()}
        self.funds = data.funds_yuan or Decimal(0)
        self.received_goods: dict[StockKey, Decimal] = {}
        self.received_funds = Decimal(0)

    @property
    def fulfilled(self) -> bool:
        goods_in = all(self.received_goods.get(k, 0) >= q for k, q in self.goods.items())
        return goods_in and self.received_funds >= self.funds

    def view(self) -> dict[str, Any]:
        return {
            "pledge": self.id,
            "donor": self.donor,
            "donor_kind": self.donor_kind,
            "goods": _lines(self.goods),
            "funds_yuan": _amount(self.funds),
            "received_goods": _lines(self.received_goods),
            "received_funds_yuan": _amount(self.received_funds),
            "fulfilled": self.fulfilled,
            "pledged_at": self.pledged_at.isoformat(),
        }


def _lines(stock: dict[StockKey, Decimal]) -> list[dict[str, str]]:
    return [
        {"kind": kind, "unit": unit, "quantity": str(quantity)}
        for (kind, unit), quantity in sorted(stock.items())
    ]


class Campaign(Aggregate):
    kind = "campaign"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.campaign_kind: CampaignKind = "charity"
        self.organisation = ""
        self.title = ""
        self.districts: tuple[District, ...] = ()
        self.starts_on: date | None = None
        self.ends_on: date | None = None
        self.launched_at: datetime | None = None
        self.stock: dict[StockKey, Decimal] = {}
        self.received: dict[StockKey, Decimal] = {}
        self.distributed: dict[StockKey, Decimal] = {}
        self.goods_value = Decimal(0)
        self.funds = Decimal(0)
        self.pledges: dict[str, Pledge] = {}
        self.volunteers = 0
        self.recipients = 0
        self.outputs = 0
        self.beneficiaries = 0
        self.income = Decimal(0)
        self.shortfalls = 0
        self.deliveries: set[str] = set()  # aid deliveries already drawn: each draws once

    # -- decisions --------------------------------------------------------------------------

    @classmethod
    def launch(
        cls,
        id: str,
        campaign_kind: CampaignKind,
        organisation: str,
        title: str,
        districts: tuple[District, ...],
        starts_on: date,
        ends_on: date | None,
        at: datetime,
    ) -> Campaign:
        campaign = cls(id)
        campaign.record(
            CampaignLaunched(
                campaign=id,
                campaign_kind=campaign_kind,
                organisation=organisation,
                title=title,
                districts=districts,
                starts_on=starts_on,
                ends_on=ends_on,
            ),
            at,
        )
        return campaign

    def _tags(self) -> dict[str, Any]:
        """What every event inside the campaign carries, so reporting needs no lookup."""
        return {
            "campaign": self.id,
            "campaign_kind": self.campaign_kind,
            "organisation": self.organisation,
        }

    def pledge(
        self,
        pledge: str,
        donor: str,
        donor_kind: DonorKind,
        goods: tuple[Item, ...],
        funds_yuan: Decimal | None,
        at: datetime,
    ) -> None:
        self._must_take_in("pledged_at", at)
        self.record(
            DonationPledged(
                **self._tags(),
                pledge=pledge,
                donor=donor,
                donor_kind=donor_kind,
                goods=goods,
                funds_yuan=funds_yuan,
            ),
            at,
        )

    def receive_goods(
        self,
        receipt: str,
        donor_kind: DonorKind | None,
        items: tuple[Item, ...],
        district: District | None,
        pledge: str | None,
        at: datetime,
    ) -> None:
        self._must_take_in("received_at", at)
        donor_kind = self._donor_kind(donor_kind, pledge)
        if district is not None:
            self._must_cover(district)
        self.record(
            GoodsReceived(
                **self._tags(),
                receipt=receipt,
                donor_kind=donor_kind,
                items=items,
                district=district,
                pledge=pledge,
            ),
            at,
        )

    def receive_funds(
        self,
        receipt: str,
        donor_kind: DonorKind | None,
        amount_yuan: Decimal,
        district: District | None,
        pledge: str | None,
        at: datetime,
    ) -> None:
        self._must_take_in("received_at", at)
        donor_kind = self._donor_kind(donor_kind, pledge)
        if district is not None:
            self._must_cover(district)
        self.record(
            FundsReceived(
                **self._tags(),
                receipt=receipt,
                donor_kind=donor_kind,
                amount_yuan=amount_yuan,
                district=district,
                pledge=pledge,
            ),
            at,
        )

    def link_volunteers(
        self,
        volunteers: int,
        district: District,
        station: str | None,
        at: datetime,
        link: str | None = None,
    ) -> None:
        self._must_be_launched("linked_at", at)
        self._must_cover(district)
        self.record(
            VolunteersLinked(
                volunteers=volunteers,
                organisation=self.organisation,
                district=district,
                station=station,
                campaign=self.id,
                campaign_kind=self.campaign_kind,
                link=link,
            ),
            at,
        )

    def distribute(
        self,
        distribution: str,
        items: tuple[Item, ...],
        recipient_kind: RecipientKind,
        recipients: int,
        district: District,
        station: str | None,
        group: Group | None,
        at: datetime,
    ) -> None:
        self._must_be_launched("distributed_at", at)
        self._must_cover(district)
        for (kind, unit), (wanted, _) in _merge(items).items():
            held = self.stock.get((kind, unit), Decimal(0))
            if wanted > held:
                raise RuleBroken(
                    "stock_never_negative",
                    f"{self.id} holds {held} {unit} of {kind}: cannot distribute {wanted}",
                )
        self.record(
            GoodsDistributed(
                **self._tags(),
                distribution=distribution,
                items=items,
                recipient_kind=recipient_kind,
                recipients=recipients,
                district=district,
                station=station,
                group=group,
            ),
            at,
        )

    def draw(
        self,
        delivery: str,
        items: Iterable[AidItem],
        persons: int,
        district: District,
        station: str | None,
        group: Group | None,
        at: datetime,
    ) -> bool:
        """An aid delivery's items named this campaign: draw them, never refusing (the
        delivery happened). What the stock lacks is recorded as a shortfall. Returns False if
        this delivery had already drawn here (nothing recorded)."""
        if delivery in self.deliveries:
            return False
        drawn: list[Item] = []
        shortfalls: list[StockShortfallRecorded] = []
        for (kind, unit), (wanted, value) in _merge(items).items():
            held = self.stock.get((kind, unit), Decimal(0))
            taken = min(held, wanted)
            if taken > 0:
                # The delivery's value, prorated to what came out of this stock.
                share = None if value is None else (value * taken / wanted).quantize(CENT)
                drawn.append(
                    Item(kind=_goods(kind), quantity=taken, unit=_unit(unit), value_yuan=share)
                )
            if taken < wanted:
                shortfalls.append(
                    StockShortfallRecorded(
                        **self._tags(),
                        delivery=delivery,
                        kind=_goods(kind),
                        unit=_unit(unit),
                        requested=wanted,
                        drawn=taken,
                        short=wanted - taken,
                        district=district,
                        station=station,
                        group=group,
                    )
                )
        if drawn:
            self.record(
                GoodsDistributed(
                    **self._tags(),
                    distribution=distribution_id_for_delivery(delivery, self.id),
                    items=tuple(drawn),
                    recipient_kind="people",
                    recipients=persons,
                    district=district,
                    station=station,
                    group=group,
                    delivery=delivery,
                ),
                at,
            )
        for shortfall in shortfalls:
            self.record(shortfall, at)
        return True

    def record_output(
        self,
        output: str,
        kind: GoodsKind,
        quantity: Decimal,
        unit: Unit,
        beneficiaries: int,
        district: District,
        station: str | None,
        group: Group | None,
        income_yuan: Decimal | None,
        at: datetime,
    ) -> None:
        self._must_be_launched("produced_at", at)
        if self.campaign_kind != "self_help":
            raise RuleBroken(
                "outputs_belong_to_self_help",
                f"{self.id} is a charity campaign: outputs are recorded by self-help projects",
            )
        self._must_cover(district)
        self.record(
            ProjectOutputRecorded(
                **self._tags(),
                output=output,
                kind=kind,
                quantity=quantity,
                unit=unit,
                beneficiaries=beneficiaries,
                district=district,
                station=station,
                group=group,
                income_yuan=income_yuan,
            ),
            at,
        )

    # -- checks -----------------------------------------------------------------------------

    def _must_be_launched(self, field: str, at: datetime) -> None:
        self.must_exist()
        assert self.launched_at is not None
        if at < self.launched_at:
            raise RuleBroken(
                "campaign_takes_records_once_launched",
                f"{field} {iso(at)} is before {self.id} was launched",
            )

    def _must_take_in(self, field: str, at: datetime) -> None:
        self._must_be_launched(field, at)
        if self.ends_on is not None and at.astimezone(SHANGHAI).date() > self.ends_on:
            raise RuleBroken("campaign_ended", f"{self.id} ended on {self.ends_on}")

    def _must_cover(self, district: District) -> None:
        if district not in self.districts:
            raise RuleBroken(
                "district_outside_campaign",
                f"{self.id} runs in {', '.join(self.districts)}, not {district}",
            )

    def _donor_kind(self, given: DonorKind | None, pledge: str | None) -> DonorKind:
        if pledge is None:
            if given is None:
                raise InvalidInput("donor_kind", "required for a receipt without a pledge")
            return given
        promised = self.pledges.get(pledge)
        if promised is None:
            raise NotFound(pledge)
        if given is not None and given != promised.donor_kind:
            raise RuleBroken(
                "donor_kind_is_the_pledges", f"{pledge}'s donor is a {promised.donor_kind}"
            )
        return promised.donor_kind

    # -- state ------------------------------------------------------------------------------

    def apply(self, data: Event, at: datetime) -> None:
        match data:
            case CampaignLaunched():
                self.campaign_kind, self.organisation = data.campaign_kind, data.organisation
                self.title, self.districts = data.title, data.districts
                self.starts_on, self.ends_on, self.launched_at = data.starts_on, data.ends_on, at
            case DonationPledged():
                self.pledges[data.pledge] = Pledge(data, at)
            case GoodsReceived():
                for key, (quantity, _) in _merge(data.items).items():
                    self.stock[key] = self.stock.get(key, Decimal(0)) + quantity
                    self.received[key] = self.received.get(key, Decimal(0)) + quantity
                self.goods_value += sum(
                    (i.value_yuan or Decimal(0) for i in data.items), Decimal(0)
                )
                if data.pledge in self.pledges:
                    pledge = self.pledges[data.pledge]
                    for key, (quantity, _) in _merge(data.items).items():
                        pledge.received_goods[key] = pledge.received_goods.get(key, 0) + quantity
            case FundsReceived():
                self.funds += data.amount_yuan
                if data.pledge in self.pledges:
                    self.pledges[data.pledge].received_funds += data.amount_yuan
            case VolunteersLinked():
                self.volunteers += data.volunteers
            case GoodsDistributed():
                for key, (quantity, _) in _merge(data.items).items():
                    self.stock[key] = self.stock.get(key, Decimal(0)) - quantity
                    self.distributed[key] = self.distributed.get(key, Decimal(0)) + quantity
                self.recipients += data.recipients
                if data.delivery is not None:
                    self.deliveries.add(data.delivery)
            case StockShortfallRecorded():
                self.shortfalls += 1
                self.deliveries.add(data.delivery)
            case (
                GoodsReceiptVoided()
                | FundsReceiptVoided()
                | DistributionVoided()
                | ProjectOutputVoided()
                | VolunteersLinkVoided()
            ):
                restate(self, data)
            case ProjectOutputRecorded():
                self.outputs += 1
                self.beneficiaries += data.beneficiaries
                self.income += data.income_yuan or Decimal(0)

    def stock_view(self) -> dict[str, Any]:
        keys = sorted(set(self.stock) | set(self.received) | set(self.distributed))
        return {
            "campaign": self.id,
            "stock": [
                {
                    "kind": kind,
                    "unit": unit,
                    "quantity": str(self.stock.get((kind, unit), Decimal(0))),
                    "received": str(self.received.get((kind, unit), Decimal(0))),
                    "distributed": str(self.distributed.get((kind, unit), Decimal(0))),
                }
                for kind, unit in keys
            ],
            "version": self.latest_version,
        }

    def view(self) -> dict[str, Any]:
        return {
            "campaign": self.id,
            "campaign_kind": self.campaign_kind,
            "organisation": self.organisation,
            "title": self.title,
            "districts": list(self.districts),
            "starts_on": self.starts_on.isoformat() if self.starts_on else None,
            "ends_on": self.ends_on.isoformat() if self.ends_on else None,
            "launched_at": iso(self.launched_at),
            "stock": _lines({k: q for k, q in self.stock.items() if q > 0}),
            "goods_value_yuan": _amount(self.goods_value),
            "funds_yuan": _amount(self.funds),
            "pledges": [p.view() for p in self.pledges.values()],
            "volunteers": self.volunteers,
            "recipients": self.recipients,
            "outputs": self.outputs,
            "beneficiaries": self.beneficiaries,
            "income_yuan": _amount(self.income),
            "shortfalls": self.shortfalls,
            "version": self.latest_version,
        }


def _goods(kind: str) -> GoodsKind:
    return kind  # type: ignore[return-value]  # a stock key's kind came from a GoodsKind


def _unit(unit: str) -> Unit:
    return unit  # type: ignore[return-value]
