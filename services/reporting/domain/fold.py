"""Every event folded into counter increments: pure, no I/O.

A counter is addressed by a `Key`: the metric, the business day (Asia/Shanghai date of the
envelope's ``occurred_at``) and the dimensions. Absent dimensions are ``""``, never None, so
that one unique index over all of them addresses exactly one row on every database (NULLs are
distinct in SQL unique constraints).

Values are integers, always: counts as they are, money in fen (metrics ending ``_fen``) and
goods quantities in thousandths of their unit (metrics ending ``_milli``), so nothing is
ever a float and sums are exact on SQLite and PostgreSQL alike.

Gauges ("open now") are counters of +1 / -1 deltas: the value as of a day is the same cheap
sum over daily buckets as every other figure. The only state the fold needs beyond its
counters is which aid requests are still open (a request is closed by its first delivery or
its cancellation, and a second delivery must not close it twice); the caller hands in what
it knows of the requests an event batch touches (`open_requests`) and persists the changes.

A void (`shared/contracts/corrections.py`) carries the events it takes out and any put in
their place, with their business times: `Fold._void` folds those, negated and as they are,
on their own days, so a void needs no state either, and as of any day the figure is the
corrected one. Each void is also kept as a `Revision` (who, when, why, what changed), which
the live fold stores beside the counters for `/api/revisions` and reports "as known at".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from shared.contracts.aid import (
    AidAssigned,
    AidCancelled,
    AidDelivered,
    AidDeliveryVoided,
    AidRequested,
    EmergencyCaseOpened,
)
from shared.contracts.corrections import Recorded, Voiding
from shared.contracts.donation import (
    CampaignLaunched,
    DonationPledged,
    FundsReceived,
    GoodsDistributed,
    GoodsReceived,
    ProjectOutputRecorded,
    StockShortfallRecorded,
    VolunteersLinked,
)
from shared.contracts.envelope import Envelope, Event
from shared.contracts.hotline import (
    CallCompleted,
    CallReceived,
    FollowUpCompleted,
    FollowUpScheduled,
    HotlinePointClosed,
    HotlinePointOpened,
    ReferredToAid,
    ShiftEnded,
    ShiftStarted,
)
from shared.contracts.registry import REGISTRY
from shared.contracts.types import Place

SHANGHAI = ZoneInfo("Asia/Shanghai")

# Units counted one by one: their quantities add up to the article's 件 (items). Weights
# (kg, jin) are goods too, but not items.
COUNTABLE_UNITS = frozenset({"piece", "box", "pack", "meal", "head", "device"})

DIMENSIONS = (
    "net",
    "district",
    "street",
    "station",
    "organisation",
    "point",
    "grp",
    "category",
    "unit",
    "campaign",
)
"""Every dimension a counter has, in key order. ``net`` is hotline, aid, charity or
self_help; ``grp`` the vulnerable group; ``category`` a hotline category, an aid or goods
kind, or another small code the metric documents."""


class Key(NamedTuple):
    metric: str
    day: date
    net: str = ""
    district: str = ""
    street: str = ""
    station: str = ""
    organisation: str = ""
    point: str = ""
    grp: str = ""
    category: str = ""
    unit: str = ""
    campaign: str = ""


Increments = Mapping[Key, int] | Mapping[tuple[Any, ...], int]
"""A batch's increments by `Key`, or by plain tuples in `Key`'s order (what the live fold's
worker sends back, `fold_stateless`): the writes read a key by position only."""


class Revision(NamedTuple):
    """A void or correction as the report lists it: what (its type and fact), when (the
    void's ``recorded_at``), who (its actor), why (its reason), and what it changed:
    ``(business day, metric, change)`` for each counter it moved. Plain values only, so it
    crosses from the live fold's worker as cheaply as the increments do."""

    event_id: str
    source: str
    type: str
    fact: str
    recorded_at: str
    actor: str
    reason: str
    changes: tuple[tuple[str, str, int], ...]


# Every void event type: folded by `Fold._void`, never by a handler of its own.
VOIDS = frozenset(t for t in REGISTRY.types() if issubclass(t, Voiding))


# The events whose fold reads or changes what earlier events left (the open aid requests):
# their sources' histories must be folded whole and in order. Every other event only adds to
# counters, which come out the same in any grouping (the audit replay cuts those streams into
# stretches folded side by side: services/reporting/slices.py).
STATEFUL_EVENTS = frozenset({AidRequested, AidDelivered, AidCancelled, AidDeliveryVoided})
ORDERED_SOURCES = frozenset(event.source for event in STATEFUL_EVENTS)


_CHINA_STANDARD_TIME = timedelta(hours=8)


def business_day(moment: datetime) -> date:
    """The Asia/Shanghai date of a timezone-aware instant: the day a figure belongs to."""
    # China has kept +08:00 all year since 1992 (no daylight saving): an instant already
    # written in that offset is on its own date. Checking so costs a quarter of going through
    # the zone's rules, a tenth of the fold's time per event when measured.
    if moment.utcoffset() == _CHINA_STANDARD_TIME and moment.year >= 1992:
        return moment.date()
    return moment.astimezone(SHANGHAI).date()


def fen(yuan: Decimal) -> int:
    """Exact: a Yuan has two places by contract."""
    return int(yuan * 100)


def milli(quantity: Decimal) -> int:
    """Thousandths of a unit. Quantities finer than that do not occur in the domain (grams,
    single masks); should one arrive, it rounds half-even here, the only rounding anywhere."""
    return int((quantity * 1000).to_integral_value())


def place_dims(place: Place) -> dict[str, str]:
    return {
        "district": place.district,
        "street": place.street,
        "station": place.station,
        "organisation": place.organisation,
    }


# A `Key` built from keywords runs the named tuple's Python-level ``__new__`` and a dict of
# the keywords per counter; the handlers of the frequent events (the hotline's, about nine
# in ten) build theirs positionally through tuple's own constructor, a C call. The tuple
# must hold every field, in `Key` order:
# (metric, day, net, district, street, station, organisation, point, grp, category, unit,
#  campaign).
_new = tuple.__new__


@dataclass
class Fold:
    """Folds events into ``increments`` (Key -> int). One instance per batch (live) or per
    replay (audit); the result does not depend on how the events were split into batches."""

    open_requests: MutableMapping[str, dict[str, str]] = field(default_factory=dict)
    increments: defaultdict[Key, int] = field(default_factory=lambda: defaultdict(int))
    applied: int = 0
    revisions: list[Revision] = field(default_factory=list)  # the voids folded, in order

    def add(self, metric: str, day: date, value: int = 1, **dims: str) -> None:
        if value:
            self.increments[Key(metric, day, **dims)] += value

    def apply_all(self, envelopes: Iterable[Envelope[Any]]) -> None:
        handlers, applied = _HANDLERS, 0
        for envelope in envelopes:
            data = envelope.data
            handler = handlers.get(type(data))
            if handler is not None:
                handler(self, data, business_day(envelope.occurred_at))
            elif type(data) in VOIDS:  # rare: looked up only for what has no handler
                self._void(envelope)
            applied += 1
        self.applied += applied

    def apply(self, envelope: Envelope[Any]) -> None:
        self.apply_all((envelope,))

    # -- corrections: a void takes its fact's counts off the days they fell on -------------

    def _void(self, envelope: Envelope[Voiding]) -> None:
        """The voided events' increments taken off, the replacement's added, each on its own
        business day (a figure as of any day is then what it would have been had the fact
        been recorded right); and the change kept as a revision, with who, when and why."""
        void = envelope.data
        change = Fold()
        change._fold_recorded(void.voided)
        for key in change.increments:
            change.increments[key] = -change.increments[key]
        change._fold_recorded(void.replacement)
        if type(void) is AidDeliveryVoided:
            self._request_after(void, change)
        by_day: defaultdict[tuple[str, str], int] = defaultdict(int)
        for key, value in change.increments.items():
            if value:
                self.increments[key] += value
                by_day[(key.day.isoformat(), key.metric)] += value
        self.revisions.append(
            Revision(
                event_id=str(envelope.event_id),
                source=envelope.source,
                type=envelope.type,
                fact=void.fact,
                recorded_at=envelope.recorded_at.isoformat(),
                actor=envelope.actor,
                reason=void.reason,
                changes=tuple((day, metric, value) for (day, metric), value in by_day.items()),
            )
        )

    def _fold_recorded(self, records: Iterable[Recorded[Event]]) -> None:
        for record in records:
            _HANDLERS[type(record.event)](self, record.event, business_day(record.at))

    def _request_after(self, void: AidDeliveryVoided, change: Fold) -> None:
        """Where the voided delivery had closed its request, the request is open from that
        day again (on the key its gauge was counted on), until the delivery that closes it
        now, if any: a part of the void's ``change``."""
        if not void.request_reopened and void.request_closed_again_at is None:
            return  # an earlier delivery closed it, and still does
        delivered, at = void.voided[0].event, void.voided[0].at
        dims = {"net": "aid", "grp": delivered.group, **place_dims(delivered.place)}
        change.add("aid_requests_open", business_day(at), **dims)
        if void.request_closed_again_at is not None:
            closed = business_day(void.request_closed_again_at)
            change.add("aid_requests_open", closed, value=-1, **dims)
        else:
            self.open_requests[delivered.request] = dims  # in `_aid_requested`'s order

    # -- hotline: the psychological protection net ---------------------------------------

    def _at_point(
        self, metric: str, day: date, point: str, p: Place, grp: str, category: str
    ) -> None:
        """One more at a hotline point: a shift, a call, a follow-up."""
        key = (metric, day, "hotline", p.district, p.street, p.station, p.organisation, point,
               grp, category, "", "")  # fmt: skip
        self.increments[_new(Key, key)] += 1

    def _point_opened(self, e: HotlinePointOpened, day: date) -> None:
        p, inc = e.place, self.increments
        where = (p.district, p.street, p.station, p.organisation, e.point, "")
        inc[_new(Key, ("hotline_points_opened", day, "hotline", *where, e.site, "", ""))] += 1
        inc[_new(Key, ("hotline_points_open", day, "hotline", *where, "", "", ""))] += 1

    def _point_closed(self, e: HotlinePointClosed, day: date) -> None:
        p, inc = e.place, self.increments
        where = (p.district, p.street, p.station, p.organisation, e.point, "")
        inc[_new(Key, ("hotline_points_closed", day, "hotline", *where, e.reason, "", ""))] += 1
        # The gauge is keyed without the site (a closure does not carry it), so its -1
        # lands on the very key its +1 did.
        inc[_new(Key, ("hotline_points_open", day, "hotline", *where, "", "", ""))] -= 1

    def _shift_started(self, e: ShiftStarted, day: date) -> None:
        self._at_point("hotline_shifts", day, e.point, e.place, "", "")

    def _shift_ended(self, e: ShiftEnded, day: date) -> None:
        p, inc = e.place, self.increments
        where = (p.district, p.street, p.station, p.organisation, e.point, "", "", "", "")
        inc[_new(Key, ("hotline_shifts_ended", day, "hotline", *where))] += 1
        if e.minutes_on_duty:
            inc[_new(Key, ("hotline_shift_minutes", day, "hotline", *where))] += e.minutes_on_duty

    def _call_received(self, e: CallReceived, day: date) -> None:
        self._at_point("calls_received", day, e.point, e.place, e.group, e.category)

    def _call_completed(self, e: CallCompleted, day: date) -> None:
        p, inc = e.place, self.increments
        where = (p.district, p.street, p.station, p.organisation, e.point, e.group)
        by_category = _new(Key, ("calls_completed", day, "hotline", *where, e.category, "", ""))
        inc[by_category] += 1
        if e.duration_seconds:
            seconds = _new(Key, ("call_seconds", day, "hotline", *where, e.category, "", ""))
            inc[seconds] += e.duration_seconds
        inc[_new(Key, ("call_outcomes", day, "hotline", *where, e.outcome, "", ""))] += 1

    def _follow_up_scheduled(self, e: FollowUpScheduled, day: date) -> None:
        self._at_point("follow_ups_scheduled", day, e.point, e.place, e.group, e.category)

    def _follow_up_completed(self, e: FollowUpCompleted, day: date) -> None:
        # A completed follow-up is a service given and a tracked service (跟踪服务).
        self._at_point("follow_ups_completed", day, e.point, e.place, e.group, e.category)

    def _referred(self, e: ReferredToAid, day: date) -> None:
        p, inc = e.place, self.increments
        where = (p.district, p.street, p.station, p.organisation, e.point, e.group)
        inc[_new(Key, ("referrals", day, "hotline", *where, e.urgency, "", ""))] += 1
        for need in e.needs:
            inc[_new(Key, ("referral_needs", day, "hotline", *where, need, "", ""))] += 1

    # -- aid: the rescue service net -----------------------------------------------------

    def _aid_requested(self, e: AidRequested, day: date) -> None:
        p, inc = e.place, self.increments
        where = (p.district, p.street, p.station, p.organisation, "", e.group)
        inc[_new(Key, ("aid_requests", day, "aid", *where, e.origin, "", ""))] += 1
        for need in e.needs:
            inc[_new(Key, ("aid_request_needs", day, "aid", *where, need, "", ""))] += 1
        if e.referral is not None:
            inc[_new(Key, ("referrals_to_aid", day, "aid", *where, "", "", ""))] += 1
        if e.request not in self.open_requests:
            # Persisted as JSON by the live fold (its open requests table), in this order.
            self.open_requests[e.request] = {
                "net": "aid",
                "grp": e.group,
                "district": p.district,
                "street": p.street,
                "station": p.station,
                "organisation": p.organisation,
            }
            inc[_new(Key, ("aid_requests_open", day, "aid", *where, "", "", ""))] += 1

    def _close_request(self, request: str, day: date) -> None:
        dims = self.open_requests.pop(request, None)
        if dims is not None:
            # Taken off the key it was put on, so the gauge is exact by every dimension.
            self.add("aid_requests_open", day, value=-1, **dims)

    def _aid_assigned(self, e: AidAssigned, day: date) -> None:
        category = e.assignee.split(":", 1)[0]
        self.increments[
            _new(Key, ("aid_assignments", day, "aid", "", "", "", "", "", "", category, "", ""))
        ] += 1

    def _aid_delivered(self, e: AidDelivered, day: date) -> None:
        p, inc = e.place, self.increments
        where = (p.district, p.street, p.station, p.organisation, "", e.group)
        inc[_new(Key, ("aid_actions", day, "aid", *where, "", "", ""))] += 1
        if e.persons_served:
            inc[_new(Key, ("aid_persons_served", day, "aid", *where, "", "", ""))] += (
                e.persons_served
            )
        for kind in e.kinds:  # an action counts once per kind it delivered
            inc[_new(Key, ("aid_actions_by_kind", day, "aid", *where, kind, "", ""))] += 1
        for item in e.items:
            line = (*where, item.kind, item.unit, item.campaign or "")
            quantity = milli(item.quantity)
            if quantity:
                inc[_new(Key, ("aid_delivered_milli", day, "aid", *line))] += quantity
            if item.value_yuan is not None:
                value = fen(item.value_yuan)
                if value:
                    inc[_new(Key, ("aid_delivered_value_fen", day, "aid", *line))] += value
        self._close_request(e.request, day)

    def _aid_cancelled(self, e: AidCancelled, day: date) -> None:
        self.add(
            "aid_cancellations",
            day,
            net="aid",
            grp=e.group,
            category=e.reason,
            **place_dims(e.place),
        )
        self._close_request(e.request, day)

    def _emergency(self, e: EmergencyCaseOpened, day: date) -> None:
        self.add(
            "emergency_cases",
            day,
            net="aid",
            grp=e.group,
            category=e.kind,
            **place_dims(e.place),
        )

    # -- donation: the charity net and the self-help net ---------------------------------

    def _campaign_launched(self, e: CampaignLaunched, day: date) -> None:
        self.add(
            "campaigns_launched",
            day,
            net=e.campaign_kind,
            organisation=e.organisation,
            campaign=e.campaign,
        )

    def _pledged(self, e: DonationPledged, day: date) -> None:
        dims = dict(net=e.campaign_kind, organisation=e.organisation, campaign=e.campaign)
        self.add("pledges", day, category=e.donor_kind, **dims)
        if e.funds_yuan:
            self.add("pledged_funds_fen", day, fen(e.funds_yuan), **dims)
        for item in e.goods:
            self.add("pledged_goods_milli", day, milli(item.quantity), **dims, unit=item.unit)

    def _goods_received(self, e: GoodsReceived, day: date) -> None:
        dims = dict(
            net=e.campaign_kind,
            organisation=e.organisation,
            campaign=e.campaign,
            district=e.district or "",
        )
        self.add("goods_receipts", day, **dims)
        for item in e.items:
            line = dict(category=item.kind, unit=item.unit, **dims)
            self.add("goods_received_milli", day, milli(item.quantity), **line)
            if item.unit in COUNTABLE_UNITS:
                self.add("donated_items_milli", day, milli(item.quantity), **line)
            if item.value_yuan is not None:
                self.add("goods_received_value_fen", day, fen(item.value_yuan), **line)

    def _funds_received(self, e: FundsReceived, day: date) -> None:
        self.add(
            "funds_received_fen",
            day,
            fen(e.amount_yuan),
            net=e.campaign_kind,
            organisation=e.organisation,
            campaign=e.campaign,
            district=e.district or "",
            category=e.donor_kind,
        )

    def _volunteers(self, e: VolunteersLinked, day: date) -> None:
        # Volunteers linked to a station alone are the liaison's (charity) work.
        self.add(
            "volunteers_linked",
            day,
            e.volunteers,
            net=e.campaign_kind or "charity",
            organisation=e.organisation,
            district=e.district,
            station=e.station or "",
            campaign=e.campaign or "",
        )

    def _distributed(self, e: GoodsDistributed, day: date) -> None:
        dims = dict(
            net=e.campaign_kind,
            organisation=e.organisation,
            campaign=e.campaign,
            district=e.district,
            station=e.station or "",
            grp=e.group or "",
        )
        self.add("distributions", day, category=e.recipient_kind, **dims)
        self.add("distribution_recipients", day, e.recipients, category=e.recipient_kind, **dims)
        for item in e.items:
            line = dict(category=item.kind, unit=item.unit, **dims)
            self.add("goods_distributed_milli", day, milli(item.quantity), **line)

    def _shortfall(self, e: StockShortfallRecorded, day: date) -> None:
        dims = dict(
            net=e.campaign_kind,
            organisation=e.organisation,
            campaign=e.campaign,
            district=e.district,
            station=e.station or "",
            grp=e.group or "",
            category=e.kind,
            unit=e.unit,
        )
        self.add("stock_shortfalls", day, **dims)
        self.add("stock_short_milli", day, milli(e.short), **dims)

    def _project_output(self, e: ProjectOutputRecorded, day: date) -> None:
        dims = dict(
            net=e.campaign_kind,
            organisation=e.organisation,
            campaign=e.campaign,
            district=e.district,
            station=e.station or "",
            grp=e.group or "",
            category=e.kind,
            unit=e.unit,
        )
        self.add("project_outputs", day, **dims)
        self.add("project_output_milli", day, milli(e.quantity), **dims)
        self.add("project_beneficiaries", day, e.beneficiaries, **dims)
        if e.income_yuan is not None:
            self.add("project_income_fen", day, fen(e.income_yuan), **dims)


_HANDLERS: dict[type, Any] = {
    HotlinePointOpened: Fold._point_opened,
    HotlinePointClosed: Fold._point_closed,
    ShiftStarted: Fold._shift_started,
    ShiftEnded: Fold._shift_ended,
    CallReceived: Fold._call_received,
    CallCompleted: Fold._call_completed,
    FollowUpScheduled: Fold._follow_up_scheduled,
    FollowUpCompleted: Fold._follow_up_completed,
    ReferredToAid: Fold._referred,
    AidRequested: Fold._aid_requested,
    AidAssigned: Fold._aid_assigned,
    AidDelivered: Fold._aid_delivered,
    AidCancelled: Fold._aid_cancelled,
    EmergencyCaseOpened: Fold._emergency,
    CampaignLaunched: Fold._campaign_launched,
    DonationPledged: Fold._pledged,
    GoodsReceived: Fold._goods_received,
    FundsReceived: Fold._funds_received,
    VolunteersLinked: Fold._volunteers,
    GoodsDistributed: Fold._distributed,
    StockShortfallRecorded: Fold._shortfall,
    ProjectOutputRecorded: Fold._project_output,
}


def totals(increments: Mapping[Key, int], as_of: date | None = None) -> dict[str, int]:
    """Every metric's cumulative value over the days up to ``as_of`` (None: all), from
    counters held in memory: the audit replay's equivalent of the SQL sum."""
    out: defaultdict[str, int] = defaultdict(int)
    for key, value in increments.items():
        if as_of is None or key.day <= as_of:
            out[key.metric] += value
    return dict(out)


def fold_stateless(
    events: list[Envelope[Any]],
) -> tuple[dict[tuple[Any, ...], int], list[Revision]]:
    """A batch of a source whose fold keeps no state (not one of `ORDERED_SOURCES`), as the
    live fold's worker process folds it (`shared/offload.py`): the increments, keyed by plain
    tuples, which cross to the service's process for a fraction of what named tuples cost,
    and the batch's revisions (voids; usually none).
    Defined here, with no I/O imported, so that the worker imports no database code."""
    fold = Fold()
    fold.apply_all(events)
    if fold.open_requests:
        raise ValueError("an aid request in a batch folded without the open requests")
    return {tuple(key): value for key, value in fold.increments.items()}, fold.revisions
