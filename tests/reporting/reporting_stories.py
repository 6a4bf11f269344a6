"""The events of the reporting stories: who did what where, and when (Asia/Shanghai).

`chain` seals events exactly as a source's store does (canonical bytes, hash chain), so pure
tests fold real envelopes and the audit tests can put them on a stream of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from services.reporting.domain.fold import Fold
from shared.contracts import GENESIS, REGISTRY, Envelope, NewEvent, uuid7
from shared.contracts import aid as a
from shared.contracts import donation as d
from shared.contracts import hotline as h
from shared.contracts.corrections import Recorded
from shared.contracts.envelope import seal
from shared.contracts.types import AidItem, Item, Place

CST = timezone(timedelta(hours=8))
NANZHOU = Place(
    district="haizhu", street="南洲街", station="station:nanzhou", organisation="org:haizhu-sw"
)
HUALIN = Place(
    district="liwan", street="华林街", station="station:hualin", organisation="org:liwan-sw"
)


def at(day: int, hour: int = 9, month: int = 3, minute: int = 0) -> datetime:
    return datetime(2020, month, day, hour, minute, tzinfo=CST)


def point_opened(point: str, when: datetime, place: Place = NANZHOU) -> NewEvent:
    return NewEvent(h.HotlinePointOpened(point=point, place=place, site="station"), when)


def point_closed(point: str, when: datetime, place: Place = NANZHOU) -> NewEvent:
    return NewEvent(h.HotlinePointClosed(point=point, place=place, reason="service_ended"), when)


def shift(n: int, when: datetime, point: str = "point:nanzhou-1") -> NewEvent:
    return NewEvent(
        h.ShiftStarted(shift=f"shift:{n}", worker=f"worker:w{n % 7}", point=point, place=NANZHOU),
        when,
    )


def call(
    n: int,
    when: datetime,
    group: str = "elderly_alone",
    category: str = "emotional_support",
    place: Place = NANZHOU,
) -> NewEvent:
    return NewEvent(
        h.CallReceived(
            call=f"call:{n}",
            point="point:nanzhou-1",
            place=place,
            category=category,  # type: ignore[arg-type]
            group=group,  # type: ignore[arg-type]
            channel="phone",
        ),
        when,
    )


def follow_up_done(n: int, when: datetime, group: str = "disabled") -> NewEvent:
    return NewEvent(
        h.FollowUpCompleted(
            follow_up=f"follow-up:{n}",
            person=f"person:p{n}",
            group=group,  # type: ignore[arg-type]
            point="point:nanzhou-1",
            place=NANZHOU,
            category="psychological_counselling",
            channel="phone",
        ),
        when,
    )


def referred(n: int, when: datetime) -> NewEvent:
    return NewEvent(
        h.ReferredToAid(
            referral=f"referral:{n}",
            call=f"call:{n}",
            point="point:nanzhou-1",
            person=f"person:p{n}",
            group="disabled",
            place=NANZHOU,
            needs=("medicine", "food"),
            urgency="today",
        ),
        when,
    )


def aid_requested(n: int, when: datetime, referral: bool = True) -> NewEvent:
    return NewEvent(
        a.AidRequested(
            request=f"request:{n}",
            person=f"person:p{n}",
            group="disabled",
            place=NANZHOU,
            needs=("medicine", "food"),
            urgency="today",
            origin="hotline_referral" if referral else "station_visit",
            referral=f"referral:{n}" if referral else None,
        ),
        when,
    )


def aid_delivered(n: int, when: datetime, delivery: int = 0, persons: int = 1) -> NewEvent:
    return NewEvent(
        a.AidDelivered(
            request=f"request:{n}",
            delivery=f"delivery:{n}-{delivery}",
            person=f"person:p{n}",
            group="disabled",
            place=NANZHOU,
            items=(
                AidItem(
                    kind="medicine", quantity=Decimal(2), unit="box", value_yuan=Decimal("38.50")
                ),
                AidItem(kind="vegetables", quantity=Decimal("1.5"), unit="kg"),
            ),
            persons_served=persons,
        ),
        when,
    )


def aid_cancelled(n: int, when: datetime) -> NewEvent:
    return NewEvent(
        a.AidCancelled(
            request=f"request:{n}", group="disabled", place=NANZHOU, reason="need_met_elsewhere"
        ),
        when,
    )


def goods_received(n: int, when: datetime, masks: int, value: str) -> NewEvent:
    return NewEvent(
        d.GoodsReceived(
            campaign="campaign:masks",
            campaign_kind="charity",
            organisation="org:gz-charity",
            receipt=f"receipt:{n}",
            donor_kind="company",
            items=(
                Item(
                    kind="masks", quantity=Decimal(masks), unit="piece", value_yuan=Decimal(value)
                ),
                Item(kind="vegetables", quantity=Decimal("650.5"), unit="kg"),
            ),
            district="yuexiu",
        ),
        when,
    )


def funds_received(n: int, when: datetime, amount: str) -> NewEvent:
    return NewEvent(
        d.FundsReceived(
            campaign="campaign:warm-community",
            campaign_kind="charity",
            organisation="org:gz-charity",
            receipt=f"funds:{n}",
            donor_kind="individual",
            amount_yuan=Decimal(amount),
        ),
        when,
    )


def volunteers(n: int, when: datetime) -> NewEvent:
    return NewEvent(
        d.VolunteersLinked(
            volunteers=n, organisation="org:haizhu-sw", district="haizhu", station="station:nanzhou"
        ),
        when,
    )


def project_output(n: int, when: datetime) -> NewEvent:
    return NewEvent(
        d.ProjectOutputRecorded(
            campaign="campaign:love-farm",
            campaign_kind="self_help",
            organisation="org:liwan-sw",
            output=f"output:{n}",
            kind="vegetables",
            quantity=Decimal(20),
            unit="jin",
            beneficiaries=3,
            district="liwan",
            station="station:hualin",
            group="elderly_alone",
            income_yuan=Decimal("110.00"),
        ),
        when,
    )


def chain(
    source: str, news: Sequence[NewEvent], *, first: int = 1, prev_hash: str = GENESIS
) -> list[bytes]:
    """The canonical bytes a source's store would hold for these events, in this order."""
    out = []
    for position, new in enumerate(news, start=first):
        body: dict[str, Any] = {
            "event_id": str(uuid7()),
            "type": type(new.data).type_name(),
            "schema_version": type(new.data).schema_version,
            "source": source,
            "stream_id": f"s-{position}",
            "version": 1,
            "position": position,
            "occurred_at": new.occurred_at.isoformat(),
            "recorded_at": new.occurred_at.isoformat(),
            "correlation_id": str(uuid7()),
            "causation_id": None,
            "actor": "system",
            "prev_hash": prev_hash,
            "data": new.data.model_dump(mode="json"),
        }
        out.append(seal(body))
        prev_hash = body["hash"]
    return out


def envelopes(source: str, news: Sequence[NewEvent]) -> list[Envelope[Any]]:
    return [REGISTRY.decode(raw) for raw in chain(source, news)]


def folded(source: str, news: Sequence[NewEvent], fold: Fold | None = None) -> Fold:
    """These events of ``source`` folded into ``fold`` (a new `Fold` if None)."""
    fold = fold or Fold()
    fold.apply_all(envelopes(source, news))
    return fold


def day(d: int, month: int = 3) -> date:
    return date(2020, month, d)


def voided(
    originals: Sequence[NewEvent],
    when: datetime,
    replacement: Sequence[NewEvent] = (),
    reason: str = "logged twice",
    **extra: Any,
) -> NewEvent:
    """The void of the fact these events recorded (its type and reference taken from the
    first: a CallReceived gives a CallVoided of its call), made at ``when``."""
    first = originals[0].data
    void: Any = VOID_OF[type(first)]
    tags = {name: getattr(first, name) for name in void.model_fields if hasattr(first, name)}
    tags.pop("reason", None)  # a cancellation's reason is not the void's
    return NewEvent(
        void(
            **{**tags, **extra},
            reason=reason,
            voided=tuple(Recorded(at=n.occurred_at, event=n.data) for n in originals),
            replacement=tuple(Recorded(at=n.occurred_at, event=n.data) for n in replacement),
        ),
        when,
    )


VOID_OF: dict[type, type] = {
    h.CallReceived: h.CallVoided,
    h.ShiftStarted: h.ShiftVoided,
    h.FollowUpScheduled: h.FollowUpVoided,
    h.FollowUpCompleted: h.FollowUpVoided,
    h.ReferredToAid: h.ReferralVoided,
    a.AidDelivered: a.AidDeliveryVoided,
    d.GoodsReceived: d.GoodsReceiptVoided,
    d.FundsReceived: d.FundsReceiptVoided,
    d.VolunteersLinked: d.VolunteersLinkVoided,
    d.GoodsDistributed: d.DistributionVoided,
    d.ProjectOutputRecorded: d.ProjectOutputVoided,
}
