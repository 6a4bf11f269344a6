"""One example of every event type, told as the article's stories, and envelopes around them.

The examples follow 卫姨 (a disabled woman living alone, Nanzhou street, Haizhu) from her call
to the medicine and vegetables at her door, and the campaigns whose goods reached her.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from shared.contracts import GENESIS, Event, uuid7
from shared.contracts.aid import (
    AidAssigned,
    AidCancelled,
    AidDelivered,
    AidDeliveryVoided,
    AidRequested,
    EmergencyCaseOpened,
)
from shared.contracts.corrections import Recorded
from shared.contracts.donation import (
    CampaignLaunched,
    DistributionVoided,
    DonationPledged,
    FundsReceiptVoided,
    FundsReceived,
    GoodsDistributed,
    GoodsReceiptVoided,
    GoodsReceived,
    ProjectOutputRecorded,
    ProjectOutputVoided,
    StockShortfallRecorded,
    VolunteersLinked,
    VolunteersLinkVoided,
)
from shared.contracts.envelope import seal
from shared.contracts.hotline import (
    CallCompleted,
    CallReceived,
    CallVoided,
    FollowUpCompleted,
    FollowUpScheduled,
    FollowUpVoided,
    HotlinePointClosed,
    HotlinePointOpened,
    ReferralVoided,
    ReferredToAid,
    ShiftEnded,
    ShiftStarted,
    ShiftVoided,
)
from shared.contracts.people import ContactDetailsChanged, PersonForgotten, PersonRecorded
from shared.contracts.types import AidItem, Item, Place

CST = timezone(timedelta(hours=8), "Asia/Shanghai")
NANZHOU = Place(
    district="haizhu", street="南洲街", station="station:nanzhou", organisation="org:haizhu-sw"
)
WEI_YI = "person:7f3a9c"  # 卫姨, as the bus knows her
WORKER = "worker:w17"
POINT = "point:nanzhou-1"
LUNCH = {"campaign": "campaign:warm-lunch", "campaign_kind": "charity", "organisation": "org:gzsw"}
PRODUCE = {"campaign": "campaign:qingyuan", "campaign_kind": "charity", "organisation": "org:gzsw"}
FARM = {"campaign": "campaign:chengjiao", "campaign_kind": "self_help", "organisation": "org:pysw"}


def _examples() -> list[Event]:
    call = {"call": "call:0001", "point": POINT, "place": NANZHOU}
    follow_up = {
        "follow_up": "follow-up:0001",
        "person": WEI_YI,
        "group": "disabled",
        "point": POINT,
        "place": NANZHOU,
        "category": "emotional_support",
    }
    shift = {"shift": "shift:0001", "worker": WORKER, "point": POINT, "place": NANZHOU}
    request = {"request": "request:0001", "person": WEI_YI, "group": "disabled", "place": NANZHOU}
    return [
        HotlinePointOpened(point=POINT, place=NANZHOU, site="station"),
        ShiftStarted(**shift),
        CallReceived(
            **call, category="help_request", group="disabled", channel="phone", caller=WEI_YI
        ),
        ReferredToAid(
            **call,
            referral="referral:0001",
            person=WEI_YI,
            group="disabled",
            needs=("medicine", "food"),
            urgency="today",
        ),
        CallCompleted(
            **call,
            category="help_request",
            group="disabled",
            outcome="referred_to_aid",
            duration_seconds=420,
        ),
        FollowUpScheduled(
            **follow_up, due_at=datetime(2020, 2, 12, 10, tzinfo=CST), call="call:0001"
        ),
        FollowUpCompleted(**follow_up, channel="phone"),
        ShiftEnded(**shift, minutes_on_duty=240),
        HotlinePointClosed(point=POINT, place=NANZHOU, reason="service_ended"),
        AidRequested(
            **request,
            needs=("medicine", "food"),
            urgency="today",
            origin="hotline_referral",
            referral="referral:0001",
        ),
        AidAssigned(request="request:0001", assignee=WORKER),
        AidDelivered(
            **request,
            delivery="delivery:0001",
            items=(
                AidItem(kind="medicine", quantity=2, unit="box", value_yuan="56.50"),
                AidItem(kind="vegetables", quantity="1.5", unit="kg", campaign=PRODUCE["campaign"]),
            ),
            persons_served=1,
        ),
        AidCancelled(
            request="request:0002", group="low_income", place=NANZHOU, reason="need_met_elsewhere"
        ),
        EmergencyCaseOpened(
            case="case:0001",
            request="request:0003",
            kind="fall",
            person="person:c41e02",
            group="elderly_alone",
            place=NANZHOU,
        ),
        CampaignLaunched(
            **LUNCH,
            title="暖心午餐",
            districts=("yuexiu", "tianhe", "haizhu", "liwan"),
            starts_on=date(2020, 2, 17),
            ends_on=date(2020, 2, 23),
        ),
        DonationPledged(
            **LUNCH,
            pledge="pledge:0001",
            donor="donor:rest-01",
            donor_kind="company",
            goods=(Item(kind="meals", quantity=15000, unit="meal"),),
        ),
        GoodsReceived(
            **PRODUCE,
            receipt="receipt:0001",
            donor_kind="company",
            items=(
                Item(kind="vegetables", quantity=1300, unit="kg"),
                Item(kind="poultry", quantity=345, unit="head", value_yuan="20700.00"),
            ),
        ),
        FundsReceived(
            **LUNCH, receipt="receipt:0002", donor_kind="individual", amount_yuan="136210"
        ),
        VolunteersLinked(
            volunteers=1864, organisation="org:gzsw", district="haizhu", station="station:nanzhou"
        ),
        GoodsDistributed(
            **PRODUCE,
            distribution="distribution:0001",
            items=(Item(kind="vegetables", quantity="1.0", unit="kg"),),
            recipient_kind="people",
            recipients=1,
            district="haizhu",
            station="station:nanzhou",
            group="disabled",
            delivery="delivery:0001",
        ),
        StockShortfallRecorded(
            **PRODUCE,
            delivery="delivery:0001",
            kind="vegetables",
            unit="kg",
            requested="1.5",
            drawn="1.0",
            short="0.5",
            district="haizhu",
            station="station:nanzhou",
            group="disabled",
        ),
        ProjectOutputRecorded(
            **FARM,
            output="output:0001",
            kind="vegetables",
            quantity=2000,
            unit="jin",
            beneficiaries=30,
            district="panyu",
            income_yuan="11000",
        ),
    ]


# Each void example takes out its fact's examples above; the call's is a correction.
VOIDED = {
    CallVoided: ("call", "call:0001", (CallReceived, CallCompleted)),
    FollowUpVoided: ("follow_up", "follow-up:0001", (FollowUpScheduled, FollowUpCompleted)),
    ShiftVoided: ("shift", "shift:0001", (ShiftStarted, ShiftEnded)),
    ReferralVoided: ("referral", "referral:0001", (ReferredToAid,)),
    AidDeliveryVoided: ("delivery", "delivery:0001", (AidDelivered,)),
    GoodsReceiptVoided: ("receipt", "receipt:0001", (GoodsReceived,)),
    FundsReceiptVoided: ("receipt", "receipt:0002", (FundsReceived,)),
    VolunteersLinkVoided: ("link", "volunteers:0001", (VolunteersLinked,)),
    DistributionVoided: ("distribution", "distribution:0001", (GoodsDistributed,)),
    ProjectOutputVoided: ("output", "output:0001", (ProjectOutputRecorded,)),
}


def _voids(recorded: list[Event]) -> list[Event]:
    at = datetime(2020, 2, 10, 9, 30, tzinfo=CST)
    out: list[Event] = []
    for void, (field, fact, types) in VOIDED.items():
        taken = tuple(Recorded(at=at, event=e) for e in recorded if type(e) in types)
        tags = {k: getattr(taken[0].event, k) for k in ("campaign", "campaign_kind", "organisation")
                if k in void.model_fields}  # fmt: skip
        extra = {"request": "request:0001"} if void is AidDeliveryVoided else {}
        replacement = taken if void is CallVoided else ()
        out.append(
            void(
                **{field: fact},
                **tags,
                **extra,
                reason="logged twice",
                voided=taken,
                replacement=replacement,
            )
        )
    return out


@pytest.fixture(scope="session")
def examples() -> dict[str, Event]:
    """One example per event type, by type name."""
    events = _examples()
    people = [
        PersonRecorded(person=WEI_YI, place=NANZHOU),
        ContactDetailsChanged(person=WEI_YI),
        PersonForgotten(person=WEI_YI, reason="request"),
    ]
    return {example.type_name(): example for example in [*events, *_voids(events), *people]}


Body = dict[str, Any]


def envelope_body(data: Event, *, position: int, prev_hash: str, version: int = 1) -> Body:
    """An envelope body as the store writes it, before it is sealed."""
    at = datetime(2020, 2, 10, 9, 30, tzinfo=CST) + timedelta(minutes=position)
    return {
        "event_id": str(uuid7()),
        "type": data.type_name(),
        "schema_version": data.schema_version,
        "source": data.source,
        "stream_id": f"{data.type_name().lower()}-{position}",
        "version": version,
        "position": position,
        "occurred_at": at.isoformat(),
        "recorded_at": (at + timedelta(seconds=2)).isoformat(),
        "correlation_id": str(uuid7()),
        "causation_id": None,
        "actor": WORKER,
        "prev_hash": prev_hash,
        "data": data.model_dump(mode="json"),
    }


@pytest.fixture(scope="session")
def sealed_chain() -> Callable[[list[Event]], list[tuple[Body, bytes]]]:
    """Seal events as one source's chain: positions 1.., each linked to the one before."""

    def chain(events: list[Event]) -> list[tuple[Body, bytes]]:
        out: list[tuple[Body, bytes]] = []
        prev = GENESIS
        for position, data in enumerate(events, start=1):
            body = envelope_body(data, position=position, prev_hash=prev)
            raw = seal(body)
            out.append((body, raw))
            prev = body["hash"]
        return out

    return chain


@pytest.fixture(scope="session")
def make_body() -> Callable[..., Body]:
    return envelope_body
