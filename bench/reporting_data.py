"""The reporting benchmark's history: a realistic mix of the three sources' events, sealed and
chained exactly as each source's store seals them, published straight onto their streams.

The 2020 mix: mostly calls (received and completed), follow-ups and shifts on the hotline;
aid requests, assignments and deliveries (each request closed by its delivery a little
later, so the open requests stay a bounded set, as in life); pledges, goods, funds,
volunteers and distributions on the donation side. 229 hotline points in the eleven
districts, 60 business days from 26 January 2020.

Speed: a payload is validated by its contract once per variant (point, group, category …)
and dumped to JSON-ready dicts; each event then copies its variant and sets its own
references, and is sealed (canonical bytes, SHA-256, chain) with the contracts' own `seal`.
Events are made and published a chunk at a time, so the bench never holds the million
bodies in memory.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from nats.aio.client import Client as NATS
from sqlalchemy import create_engine

from bench.data import Message
from bench.publish import raw_publish
from shared.bus.naming import Naming
from shared.contracts import GENESIS, uuid7
from shared.contracts import aid as a
from shared.contracts import donation as d
from shared.contracts import hotline as h
from shared.contracts.envelope import Event, seal
from shared.contracts.signatures import Signer
from shared.contracts.types import AidItem, Item, Place
from shared.eventstore import schema

CST = timezone(timedelta(hours=8))
START = datetime(2020, 1, 26, 8, tzinfo=CST)
DAYS = 60
POINTS = 229
CAMPAIGNS = 20
DISTRICTS = (
    "yuexiu", "haizhu", "liwan", "tianhe", "baiyun", "huangpu",
    "panyu", "huadu", "nansha", "conghua", "zengcheng",
)  # fmt: skip
GROUPS = ("elderly_alone", "disabled", "low_income", "child", "general")
VULNERABLE = GROUPS[:4]
CATEGORIES = (
    "psychological_counselling", "emotional_support", "epidemic_consultation", "help_request",
)  # fmt: skip
OUTCOMES = ("advice_given", "follow_up_scheduled", "referred_elsewhere", "caller_hung_up")

# Out of every 1,000 events (after the points and campaigns that open the history).
MIX: tuple[tuple[str, int], ...] = (
    ("CallReceived", 340),
    ("CallCompleted", 330),
    ("FollowUpScheduled", 60),
    ("FollowUpCompleted", 55),
    ("ShiftStarted", 25),
    ("ShiftEnded", 25),
    ("ReferredToAid", 10),
    ("AidRequested", 25),
    ("AidAssigned", 25),
    ("AidDelivered", 25),
    ("EmergencyCaseOpened", 3),
    ("AidCancelled", 2),
    ("DonationPledged", 12),
    ("GoodsReceived", 15),
    ("FundsReceived", 20),
    ("VolunteersLinked", 8),
    ("GoodsDistributed", 15),
    ("ProjectOutputRecorded", 5),
)
WHEEL: tuple[str, ...] = tuple(
    itertools.chain.from_iterable(itertools.repeat(name, n) for name, n in MIX)
)
# Spread over the wheel so each chunk holds the mix, not runs of one type.
WHEEL = tuple(WHEEL[(i * 617) % len(WHEEL)] for i in range(len(WHEEL)))
assert len(set(WHEEL)) == len(MIX) and len(WHEEL) == 1000


def _place(n: int) -> Place:
    district = DISTRICTS[n % len(DISTRICTS)]
    return Place(
        district=district,  # type: ignore[arg-type]
        street=f"{district}-street-{n % 17}",
        station=f"station:{district}-{n % 23}",
        organisation=f"org:{district}-sw-{n % 3}",
    )


def _json(event: Event) -> dict[str, Any]:
    return event.model_dump(mode="json", exclude_none=True)


@dataclass
class Variants:
    """Validated payload dicts, a few hundred per type: point × group × category and so on."""

    points: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    completed: list[dict[str, Any]] = field(default_factory=list)
    scheduled: list[dict[str, Any]] = field(default_factory=list)
    followed: list[dict[str, Any]] = field(default_factory=list)
    shifts: list[dict[str, Any]] = field(default_factory=list)
    ended: list[dict[str, Any]] = field(default_factory=list)
    referred: list[dict[str, Any]] = field(default_factory=list)
    requested: list[dict[str, Any]] = field(default_factory=list)
    delivered: list[dict[str, Any]] = field(default_factory=list)
    cancelled: list[dict[str, Any]] = field(default_factory=list)
    emergencies: list[dict[str, Any]] = field(default_factory=list)
    campaigns: list[dict[str, Any]] = field(default_factory=list)
    pledged: list[dict[str, Any]] = field(default_factory=list)
    goods: list[dict[str, Any]] = field(default_factory=list)
    funds: list[dict[str, Any]] = field(default_factory=list)
    volunteers: list[dict[str, Any]] = field(default_factory=list)
    distributed: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)


def variants() -> Variants:
    v = Variants()
    for p in range(POINTS):
        place, point = _place(p), f"point:p{p}"
        v.points.append(_json(h.HotlinePointOpened(point=point, place=place, site="station")))
        v.shifts.append(
            _json(h.ShiftStarted(shift="shift:0", worker="worker:w0", point=point, place=place))
        )
        v.ended.append(
            _json(
                h.ShiftEnded(
                    shift="shift:0",
                    worker="worker:w0",
                    point=point,
                    place=place,
                    minutes_on_duty=240,
                )
            )
        )
        group, category = GROUPS[p % 5], CATEGORIES[p % 4]
        for g, c in itertools.product(range(2), range(2)):
            group, category = GROUPS[(p + g) % 5], CATEGORIES[(p + c) % 4]
            common = dict(point=point, place=place, category=category, group=group)
            v.calls.append(_json(h.CallReceived(call="call:0", channel="phone", **common)))
            v.completed.append(
                _json(
                    h.CallCompleted(
                        call="call:0",
                        outcome=OUTCOMES[(p + g + c) % 4],
                        duration_seconds=300 + p,
                        **common,
                    )
                )
            )
        vulnerable = VULNERABLE[p % 4]
        follow = dict(point=point, place=place, group=vulnerable, person="person:0")
        v.scheduled.append(
            _json(
                h.FollowUpScheduled(
                    follow_up="follow-up:0",
                    category=category,  # type: ignore[arg-type]
                    due_at=START + timedelta(days=3),
                    **follow,  # type: ignore[arg-type]
                )
            )
        )
        v.followed.append(
            _json(
                h.FollowUpCompleted(
                    follow_up="follow-up:0",
                    category=category,  # type: ignore[arg-type]
                    channel="phone",
                    **follow,  # type: ignore[arg-type]
                )
            )
        )
        v.referred.append(
            _json(
                h.ReferredToAid(
                    referral="referral:0",
                    call="call:0",
                    point=point,
                    person="person:0",
                    group=group,  # type: ignore[arg-type]
                    place=place,
                    needs=("medicine", "food"),
                    urgency="today",
                )
            )
        )
    for n in range(60):
        place, group = _place(n * 7), GROUPS[n % 5]
        v.requested.append(
            _json(
                a.AidRequested(
                    request="request:0",
                    person="person:0",
                    group=group,  # type: ignore[arg-type]
                    place=place,
                    needs=("food",) if n % 2 else ("medicine", "masks"),
                    urgency="today",
                    origin="station_visit",
                )
            )
        )
        items = (AidItem(kind="medicine", quantity=Decimal(2), unit="box"),)
        if n % 3 == 0:
            items += (AidItem(kind="relief_cash", quantity=Decimal(1), unit="payment",
                              value_yuan=Decimal("500.00")),)  # fmt: skip
        v.delivered.append(
            _json(
                a.AidDelivered(
                    request="request:0",
                    delivery="delivery:0",
                    person="person:0",
                    group=group,  # type: ignore[arg-type]
                    place=place,
                    items=items,
                    persons_served=1 + n % 3,
                )
            )
        )
        v.cancelled.append(
            _json(
                a.AidCancelled(
                    request="request:0",
                    group=group,  # type: ignore[arg-type]
                    place=place,
                    reason="need_met_elsewhere",
                )
            )
        )
        v.emergencies.append(
            _json(
                a.EmergencyCaseOpened(
                    case="case:0",
                    request="request:0",
                    kind="fall",
                    person="person:0",
                    group=group,  # type: ignore[arg-type]
                    place=place,
                )
            )
        )
    for c in range(CAMPAIGNS):
        kind = "self_help" if c % 5 == 4 else "charity"
        district = DISTRICTS[c % len(DISTRICTS)]
        campaign = dict(campaign=f"campaign:c{c}", campaign_kind=kind, organisation=f"org:f{c}")
        v.campaigns.append(
            _json(
                d.CampaignLaunched(
                    title=f"campaign {c}",
                    districts=(district,),  # type: ignore[arg-type]
                    starts_on=START.date(),
                    **campaign,  # type: ignore[arg-type]
                )
            )
        )
        masks = Item(
            kind="masks", quantity=Decimal(500), unit="piece", value_yuan=Decimal("750.00")
        )
        food = Item(kind="food", quantity=Decimal("12.5"), unit="kg")
        v.pledged.append(
            _json(
                d.DonationPledged(
                    pledge="pledge:0",
                    donor="donor:0",
                    donor_kind="company",
                    goods=(masks,),
                    funds_yuan=Decimal("1000.00"),
                    **campaign,  # type: ignore[arg-type]
                )
            )
        )
        v.goods.append(
            _json(
                d.GoodsReceived(
                    receipt="receipt:0",
                    donor_kind="residents",
                    items=(masks, food),
                    district=district,  # type: ignore[arg-type]
                    **campaign,  # type: ignore[arg-type]
                )
            )
        )
        v.funds.append(
            _json(
                d.FundsReceived(
                    receipt="receipt:0",
                    donor_kind="individual",
                    amount_yuan=Decimal(f"{100 + c}.{c % 100:02d}"),
                    district=district,  # type: ignore[arg-type]
                    **campaign,  # type: ignore[arg-type]
                )
            )
        )
        v.volunteers.append(
            _json(
                d.VolunteersLinked(
                    volunteers=1 + c % 4,
                    organisation=f"org:f{c}",
                    district=district,  # type: ignore[arg-type]
                    station=f"station:{district}-{c % 23}",
                    campaign=f"campaign:c{c}",
                    campaign_kind=kind,  # type: ignore[arg-type]
                )
            )
        )
        v.distributed.append(
            _json(
                d.GoodsDistributed(
                    distribution="distribution:0",
                    items=(masks,),
                    recipient_kind="households",
                    recipients=10 + c,
                    district=district,  # type: ignore[arg-type]
                    **campaign,  # type: ignore[arg-type]
                )
            )
        )
        if kind != "self_help":
            continue
        v.outputs.append(
            _json(
                d.ProjectOutputRecorded(
                    output="output:0",
                    kind="masks",
                    quantity=Decimal(200),
                    unit="piece",
                    beneficiaries=20,
                    district=district,  # type: ignore[arg-type]
                    income_yuan=Decimal("88.00"),
                    **campaign,  # type: ignore[arg-type]
                )
            )
        )
    return v


SOURCE_OF = {
    **dict.fromkeys(
        ("HotlinePointOpened", "CallReceived", "CallCompleted", "FollowUpScheduled",
         "FollowUpCompleted", "ShiftStarted", "ShiftEnded", "ReferredToAid"), "hotline"),
    **dict.fromkeys(
        ("AidRequested", "AidAssigned", "AidDelivered", "EmergencyCaseOpened", "AidCancelled"),
        "aid"),
    **dict.fromkeys(
        ("CampaignLaunched", "DonationPledged", "GoodsReceived", "FundsReceived",
         "VolunteersLinked", "GoodsDistributed", "ProjectOutputRecorded"), "donation"),
}  # fmt: skip


class History:
    """Makes the events in order, ``count`` in all, a chunk at a time: each source's chain,
    positions and open aid requests carried from one chunk to the next."""

    def __init__(self, count: int, signers: dict[str, Signer] | None = None) -> None:
        self.count = count
        # Each source's signatures, where its store would put them: every `EVERY`th event
        # and (a chunk being an append) each chunk's last.
        self.signers = signers or {}
        self.v = variants()
        self.made = 0
        self.heads = {"hotline": GENESIS, "aid": GENESIS, "donation": GENESIS}
        self.positions = dict.fromkeys(self.heads, 0)
        self.requests = 0  # aid requests opened so far
        self.closed = 0  # the oldest requests, closed by delivery or cancellation
        self.recorded = START.isoformat()
        self.by_type: dict[str, int] = {}
        self.stream_ids: dict[str, list[str]] = {}  # of the last chunk's events, by source

    def _opening(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for p in self.v.points:
            yield "HotlinePointOpened", p
        for c in self.v.campaigns:
            yield "CampaignLaunched", c

    def _payload(self, kind: str, i: int) -> dict[str, Any]:
        v = self.v
        if kind == "CallReceived":
            return {**v.calls[i % len(v.calls)], "call": f"call:{i}"}
        if kind == "CallCompleted":
            return {**v.completed[i % len(v.completed)], "call": f"call:{i - 7}"}
        if kind == "FollowUpScheduled":
            return {**v.scheduled[i % POINTS], "follow_up": f"follow-up:{i}",
                    "person": f"person:{i % 50_000:x}"}  # fmt: skip
        if kind == "FollowUpCompleted":
            return {**v.followed[i % POINTS], "follow_up": f"follow-up:{i - 40}",
                    "person": f"person:{i % 50_000:x}"}  # fmt: skip
        if kind == "ShiftStarted":
            return {**v.shifts[i % POINTS], "shift": f"shift:{i}", "worker": f"worker:w{i % 900}"}
        if kind == "ShiftEnded":
            return {
                **v.ended[i % POINTS],
                "shift": f"shift:{i - 3}",
                "worker": f"worker:w{i % 900}",
            }
        if kind == "ReferredToAid":
            return {**v.referred[i % POINTS], "referral": f"referral:{i}", "call": f"call:{i - 1}",
                    "person": f"person:{i % 50_000:x}"}  # fmt: skip
        if kind == "AidRequested":
            self.requests += 1
            return {**v.requested[i % 60], "request": f"request:{self.requests}",
                    "person": f"person:{i % 50_000:x}"}  # fmt: skip
        if kind == "AidAssigned":
            return {"request": f"request:{max(1, self.requests)}", "assignee": f"worker:w{i % 900}"}
        if kind in ("AidDelivered", "AidCancelled", "EmergencyCaseOpened"):
            # Close the oldest open request (as long as a few hundred stay open), else leave
            # an unknown one: the fold must not close what it never opened.
            if kind != "EmergencyCaseOpened" and self.requests - self.closed > 200:
                self.closed += 1
                request = f"request:{self.closed}"
            else:
                request = f"request:{self.requests}"
            if kind == "AidDelivered":
                return {**v.delivered[i % 60], "request": request, "delivery": f"delivery:{i}",
                        "person": f"person:{i % 50_000:x}"}  # fmt: skip
            if kind == "AidCancelled":
                return {**v.cancelled[i % 60], "request": request}
            return {**v.emergencies[i % 60], "request": request, "case": f"case:{i}",
                    "person": f"person:{i % 50_000:x}"}  # fmt: skip
        c = i % CAMPAIGNS
        if kind == "DonationPledged":
            return {**v.pledged[c], "pledge": f"pledge:{i}", "donor": f"donor:{i % 3000}"}
        if kind == "GoodsReceived":
            return {**v.goods[c], "receipt": f"receipt:{i}"}
        if kind == "FundsReceived":
            return {**v.funds[c], "receipt": f"receipt:{i}"}
        if kind == "VolunteersLinked":
            return v.volunteers[c]
        if kind == "GoodsDistributed":
            return {**v.distributed[c], "distribution": f"distribution:{i}"}
        return {**v.outputs[c % len(v.outputs)], "output": f"output:{i}"}

    def chunk(self, size: int) -> dict[str, list[Message]]:
        """The next ``size`` events (fewer at the end), by source, in position order."""
        out: dict[str, list[Message]] = {s: [] for s in self.heads}
        self.stream_ids = {s: [] for s in self.heads}
        opening = list(self._opening()) if self.made == 0 else []
        end = min(self.count, self.made + size)
        span = 86_400 * DAYS
        for i in range(self.made, end):
            if i < len(opening):
                kind, data = opening[i]
            else:
                kind = WHEEL[i % 1000]
                data = self._payload(kind, i)
            source = SOURCE_OF[kind]
            self.positions[source] += 1
            position = self.positions[source]
            event_id = str(uuid7())
            body: dict[str, Any] = {
                "event_id": event_id,
                "type": kind,
                "schema_version": 1,
                "source": source,
                "stream_id": f"{source}-{i}",
                "version": 1,
                "position": position,
                "occurred_at": (START + timedelta(seconds=i * span // self.count)).isoformat(),
                "recorded_at": self.recorded,
                "correlation_id": str(uuid7()),
                "causation_id": None,
                "actor": "worker:w17",
                "prev_hash": self.heads[source],
                "data": data,
            }
            raw = seal(body)
            signer = self.signers.get(source)
            if signer is not None and position % signer.every == 0:
                raw = signer.sign(raw, position, body["hash"])
            out[source].append((kind, raw, event_id))
            self.stream_ids[source].append(body["stream_id"])
            self.heads[source] = body["hash"]
            self.by_type[kind] = self.by_type.get(kind, 0) + 1
        for source, signer in self.signers.items():
            msgs, position = out[source], self.positions[source]
            if msgs and position % signer.every:
                kind, raw, event_id = msgs[-1]
                msgs[-1] = (kind, signer.sign(raw, position, self.heads[source]), event_id)
        self.made = end
        return out


class OwnStore:
    """A source's event store holding exactly the events the bench put on its stream, as if
    the service had recorded them: so the real service can be started on top of that history
    (its relay finds the stream where its progress says, and chains on from the head)."""

    def __init__(self, path: Path, source: str) -> None:
        self.source = source
        self.engine = create_engine(f"sqlite:///{path}")
        schema.metadata.create_all(self.engine)
        self.position = 0
        self.hash = GENESIS

    def add(self, msgs: list[Message], stream_ids: list[str]) -> None:
        rows = []
        for (kind, body, event_id), stream_id in zip(msgs, stream_ids, strict=True):
            self.position += 1
            rows.append(
                {"position": self.position, "stream_id": stream_id, "version": 1,
                 "event_id": event_id, "type": kind, "body": body.decode()}
            )  # fmt: skip
        if rows:
            self.hash = orjson.loads(msgs[-1][1])["hash"]
            with self.engine.begin() as conn:
                conn.execute(schema.events.insert(), rows)

    def close(self) -> None:
        with self.engine.begin() as conn:
            head = {"source": self.source, "position": self.position}
            conn.execute(schema.log_head.insert(), [{**head, "hash": self.hash}])
            conn.execute(schema.outbox_progress.insert(), [{**head, "republished": 0}])
        self.engine.dispose()


async def fill(
    nc: NATS,
    naming: Naming,
    count: int,
    own: OwnStore | None = None,
    chunk: int = 20_000,
    signers: dict[str, Signer] | None = None,
) -> dict[str, int]:
    """Publish ``count`` events onto the (empty) HOTLINE, AID and DONATION streams, a chunk
    made while the previous one is acknowledged; returns the events per source. ``own``
    also gets its source's events; ``signers`` sign them as the sources' stores do."""
    history = History(count, signers)
    pending: asyncio.Task[None] | None = None

    async def publish(batch: dict[str, list[Message]]) -> None:
        for source, msgs in batch.items():
            if msgs:
                await raw_publish(nc, naming, source, msgs)

    while history.made < count:
        batch = history.chunk(chunk)
        if own is not None:
            own.add(batch[own.source], history.stream_ids[own.source])
        if pending is not None:
            await pending
        pending = asyncio.create_task(publish(batch))
    if pending is not None:
        await pending
    if own is not None:
        own.close()
    return dict(history.positions)
