"""`kapok simulate guangzhou-2020`: the domain README's story, played through the services'
public HTTP APIs only (never by writing events), so what reporting shows is what the
services decided.

The plan is computed first, from the seed and the scale alone (deterministic), then played
day by day from 23 January to 7 March 2020: hotline points open over the first ten days;
each open station keeps its day's log of shifts, calls and follow-ups, and each district's
social-work centre sends its stations' logs in one batch per kind (a station's alone is a
few dozen lines); the evening's referrals go in one batch and become aid requests in the
aid service's referral consumer; a day's direct requests, assignments and deliveries go in
one batch each, emergencies one by one; donations, funds and volunteers come in per
district. Volumes ramp up after the outbreak and dip at weekends.

Two lines of work run side by side: the stations' logs, up to two days ahead, and the aid
teams and charity desks, which need a day's logs (their referrals) before its aid. Every
request carries an Idempotency-Key derived from its content, so a second run with the same
seed on the same data appends nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

from kapok.simulate import figures as f
from kapok.simulate.client import Client, signed_in_headers
from kapok.simulate.shape import (
    AID_FROM,
    AID_ITEMS,
    CATEGORIES,
    DAYS,
    DISTRICTS,
    FIRST,
    FOLLOW_UP_CHANNELS,
    GROUPS,
    LAST,
    VULNERABLE,
    WEI_YI_DAY,
    at,
    pick,
    spread,
    spread_fen,
    weights,
)
from shared.contracts import places
from shared.contracts.refs import person_ref

# 卫姨, as Kapok knows her: the reference it issued, the same in every run.
WEI_YI = person_ref("weiyi")


def catalogued(i: int) -> tuple[str, str, str]:
    """The i-th point's district, street and station, from Kapok's catalogue: the districts
    in turn, each district's stations in turn (several points at one station once a
    district's are all used); the first is 南洲街社工站."""
    if i == 0:
        return "haizhu", "南洲街", "station:nanzhou"
    district = DISTRICTS[(i + 1) % len(DISTRICTS)][0]
    stations = places.stations_in(district)
    station = stations[(i // len(DISTRICTS)) % len(stations)]
    return station.district, station.street, station.ref


@dataclass
class Station:
    index: int
    district: str
    street: str
    ref: str
    opens: date
    point: str = ""  # the hotline point's id, once opened

    @property
    def place(self) -> dict[str, str]:
        return {
            "district": self.district,
            "street": self.street,
            "station": self.ref,
            "organisation": f"org:{self.district}-sw",
        }


@dataclass
class Sheet:
    """A station's log of a day: the items of its three batches, and each call's caller."""

    shifts: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    callers: list[tuple[Station, str, str, str]] = field(default_factory=list)
    follow_ups: list[dict[str, Any]] = field(default_factory=list)


Referable = tuple[str, Station, str, str]  # (call, station, person, group) of a help request
Opened = tuple[str, Station, tuple[str, ...], str]  # (request, station, needs, person)


@dataclass
class AidDay:
    """A day's aid requests as decided: the bodies to send and who each is for."""

    direct: list[dict[str, Any]] = field(default_factory=list)
    direct_for: list[Opened] = field(default_factory=list)
    emergencies: list[dict[str, Any]] = field(default_factory=list)
    emergency_for: list[Opened] = field(default_factory=list)
    # (call, station, needs, person, urgency), and the referral ids once made
    referrals: list[tuple[str, Station, tuple[str, ...], str, str]] = field(default_factory=list)
    referred: list[str] = field(default_factory=list)


# Synthetic people's names (contacts): common surnames and given names, no one in particular.
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗梁"
GIVEN_NAMES = ("秀英", "桂英", "秀兰", "玉兰", "建华", "志强", "丽娟", "国强", "淑珍", "海燕")

# Days of station logs sent ahead of the aid line (flat out; at a pace, days come in turn).
LOOKAHEAD_DAYS = 2


@dataclass
class Scenario:
    seed: int
    scale: Decimal
    target: dict[str, int | str] = field(init=False)

    def __post_init__(self) -> None:
        self.target = f.targets(self.scale)
        self.rng = random.Random(self.seed)
        points = int(self.target["hotline_points_opened"])
        if points < 1:
            raise ValueError(
                f"--scale {self.scale} leaves no hotline point (229 × scale rounds to 0), and "
                "calls need one: use --scale 0.0022 or more"
            )
        self.stations = [
            Station(
                i,
                *catalogued(i),
                # Point 0 first: it is 南洲街社工站, where 卫姨's call comes in.
                opens=FIRST + timedelta(days=0 if i == 0 else self.rng.randrange(10)),
            )
            for i in range(points)
        ]

    def rng_for(self, *parts: object) -> random.Random:
        """A generator of its own for each station's day (and each day's aid, donations):
        those run concurrently, so one shared generator would be drawn from in a different
        order on every run, and the same seed would not give the same requests."""
        return random.Random(f"{self.seed}:{':'.join(map(str, parts))}")

    # -- the plan: every count per day, fixed before anything is sent -----------------------

    def plan(self) -> None:
        t, rng = self.target, self.rng
        hot_w = weights(DAYS, rng)
        aid_w = weights(DAYS, rng, AID_FROM)
        tracked = int(t["tracked_services"])
        self.calls = spread(int(t["services_given"]) - tracked, hot_w)
        self.follow_ups = spread(tracked, weights(DAYS, rng, date(2020, 1, 25)))
        self.shifts = spread(int(t["hotline_shifts"]), hot_w)
        actions, persons = int(t["aid_actions"]), int(t["aid_persons_served"])
        if persons < actions:
            raise ValueError(f"--scale {self.scale}: fewer persons served than aid actions")
        # Requests: most get one delivery, some a second; 30% come from hotline referrals,
        # 5% are emergencies (sudden illness, falls), the rest direct (station visits…).
        requests = min(actions, max(1, round(actions * 0.8))) if actions else 0
        referrals = min(requests, max(1, round(requests * 0.3))) if requests else 0
        emergencies = min(requests - referrals, round(requests * 0.05))
        kinds = ["referral"] * referrals + ["emergency"] * emergencies
        kinds += ["direct"] * (requests - referrals - emergencies)
        rng.shuffle(kinds)
        if "referral" in kinds:  # 卫姨's comes on top of her day's: see plan_aid
            kinds.remove("referral")
        per_day = spread(len(kinds), aid_w)
        starts = [0, *itertools.accumulate(per_day)]
        # Each day's kinds, fixed here: the days' plans are made as their logs come in,
        # which need not be in order.
        self.kinds_by_day = [kinds[a:b] for a, b in itertools.pairwise(starts)]
        self.wei_yi = bool(referrals)  # hers comes on top of her day's
        self.deliveries_extra = actions - requests
        self.persons_extra = persons - actions
        self.items = spread(int(t["donated_items"]), weights(DAYS, rng, date(2020, 1, 25)))
        self.value = Decimal(str(t["donated_value_yuan"]))
        self.funds = Decimal(str(t["funds_raised_yuan"]))
        self.volunteers = spread(int(t["volunteers_linked"]), weights(DAYS, rng, AID_FROM))

    # -- playing it ----------------------------------------------------------------------

    async def play(
        self,
        client: Client,
        speed: float = 0.0,
        progress: Callable[[int, date, Client], None] | None = None,
    ) -> None:
        self.plan()
        self.client = client
        self.delivered: list[Opened] = []
        await self.launch_campaigns()
        value_parts = spread_fen(self.value, max(1, len(DAYS)), self.rng) if self.value else []
        fund_parts = spread_fen(self.funds, max(1, len(DAYS) // 2), self.rng) if self.funds else []
        self.value_by_day = self._deal(value_parts, self.items)
        self.funds_by_day = {DAYS[2 + 2 * i]: amount for i, amount in enumerate(fund_parts)}
        # Two lines of work, as in the city: the stations' day logs on the hotline, and the
        # aid teams and charity desks. A day's aid needs that day's logs (its referrals come
        # from their help requests); the next days' logs need not wait for it.
        loop = asyncio.get_running_loop()
        logs: dict[date, asyncio.Future[AidDay]] = {d: loop.create_future() for d in DAYS}
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.hotline_days(logs, speed, tasks))
            tasks.create_task(self.aid_days(logs, progress))
        await self.named_outputs()

    def _deal(self, amounts: list[Decimal], items: list[int]) -> dict[date, list[Decimal]]:
        """Goods values to the days that receive goods (any day, if none has items)."""
        days = [d for d, n in zip(DAYS, items, strict=True) if n] or [DAYS[5]]
        out: dict[date, list[Decimal]] = {}
        for k, amount in enumerate(amounts):
            out.setdefault(days[k % len(days)], []).append(amount)
        return out

    async def hotline_days(
        self,
        logs: dict[date, asyncio.Future[AidDay]],
        speed: float,
        tasks: asyncio.TaskGroup,
    ) -> None:
        started = time.monotonic()
        ahead = asyncio.Semaphore(LOOKAHEAD_DAYS)
        for i, day in enumerate(DAYS):
            if speed > 0:  # `speed` days per second
                await asyncio.sleep(max(0.0, started + i / speed - time.monotonic()))
            await ahead.acquire()
            await self.open_points(day)
            tasks.create_task(self.log_day(i, day, logs[day], ahead))

    async def log_day(
        self,
        i: int,
        day: date,
        logged: asyncio.Future[AidDay],
        ahead: asyncio.Semaphore,
    ) -> None:
        """A day on the hotline: the stations' logs, then that evening's referrals to aid,
        so the bus carries them before the next days' logs (the aid line waits on them)."""
        try:
            plan = self.plan_aid(i, day, await self.hotline_day(i, day))
            await self.refer(day, plan)
            logged.set_result(plan)
        except asyncio.CancelledError:
            logged.cancel()
            raise
        except Exception as error:  # the aid line awaits it, and fails the play with it
            logged.set_exception(error)
        finally:
            ahead.release()

    async def aid_days(
        self,
        logs: dict[date, asyncio.Future[AidDay]],
        progress: Callable[[int, date, Client], None] | None,
    ) -> None:
        for i, day in enumerate(DAYS):
            requests = await self.open_requests(day, await logs[day])
            await asyncio.gather(
                self.deliver(day, requests, last_day=(day == DAYS[-1])), self.donations(i, day)
            )
            if progress is not None:
                progress(i + 1, day, self.client)

    async def open_points(self, day: date) -> None:
        opening = [s for s in self.stations if s.opens == day]
        opened = await asyncio.gather(
            *(
                # Each at a minute of its own from 07:00, before the day's first shift: two
                # points of one station opened on one day are two points, not one request
                # sent twice (one Idempotency-Key; the catalogue has fewer stations than the
                # article has points).
                self.client.post(
                    "hotline", "/points", {"place": s.place, "opened_at": at(day, 7, s.index % 60)}
                )
                for s in opening
            )
        )
        for station, body in zip(opening, opened, strict=True):
            station.point = body["point"]

    async def hotline_day(self, i: int, day: date) -> list[Referable]:
        """Every open station's log of the day; the calls a referral can come from (help
        requests with a caller) are returned, 卫姨's first."""
        rng = self.rng_for("day", day)
        open_now = [s for s in self.stations if s.opens <= day]
        shares = [rng.uniform(0.5, 1.5) for _ in open_now]
        calls = spread(self.calls[i], shares)
        shifts = spread(self.shifts[i], shares)
        follow_ups = spread(self.follow_ups[i], shares)
        wei_yi_today = self.wei_yi and day == WEI_YI_DAY
        districts: dict[str, list[Sheet]] = {}
        for station, n_calls, n_shifts, n_fu in zip(
            open_now, calls, shifts, follow_ups, strict=True
        ):
            sheet = self.station_day(station, day, n_calls, n_shifts, n_fu, wei_yi_today)
            districts.setdefault(station.district, []).append(sheet)
        logged = await asyncio.gather(*(self.district_day(d) for d in districts.values()))
        referable = [call for district in logged for call in district]
        referable.sort(key=lambda r: r[2] != WEI_YI)
        return referable

    async def district_day(self, sheets: list[Sheet]) -> list[Referable]:
        """A district's stations' logs of a day, sent together by its social-work centre:
        shifts, calls and follow-ups, a batch each (a station's alone is a few dozen lines,
        and 30,000 requests of a few dozen lines would measure HTTP, not Kapok)."""
        c = self.client
        _, calls, _ = await asyncio.gather(
            c.post_items("hotline", "/shifts:batch", [x for s in sheets for x in s.shifts]),
            c.post_items("hotline", "/calls:batch", [x for s in sheets for x in s.calls], "calls"),
            c.post_items("hotline", "/follow-ups:batch", [x for s in sheets for x in s.follow_ups]),
        )
        callers = [caller for s in sheets for caller in s.callers]
        return [
            (call, station, person, group)
            for call, (station, person, category, group) in zip(calls, callers, strict=True)
            if category == "help_request"
        ]

    def station_day(
        self, s: Station, day: date, n_calls: int, n_shifts: int, n_fu: int, wei_yi: bool
    ) -> Sheet:
        """One station's log of the day: its shifts, calls and follow-ups."""
        rng = self.rng_for("station", s.index, day)
        sheet = Sheet()
        sheet.shifts = [
            {
                "point": s.point,
                "worker": f"worker:s{s.index:03d}-{k}",
                "started_at": at(day, 8 + k % 4),
                "ended_at": at(day, 12 + k % 4),
            }
            for k in range(n_shifts)
        ]
        for k in range(n_calls):
            category, group = pick(rng, CATEGORIES), pick(rng, GROUPS)
            person = person_ref(f"s{s.index:03d}-{day:%m%d}-{k}")
            if wei_yi and s.index == 0 and k == 0:
                category, group, person = "help_request", "disabled", WEI_YI
            sheet.calls.append(
                {
                    "point": s.point,
                    "category": category,
                    "group": group,
                    "channel": "phone" if rng.random() < 0.85 else "online",
                    "caller": person,
                    "received_at": at(day, 8 + k * 11 // max(1, n_calls), k % 60),
                    "outcome": "referred_to_aid" if category == "help_request" else "advice_given",
                    "duration_seconds": rng.randint(120, 1500),
                }
            )
            sheet.callers.append((s, person, category, group))
        for k in range(n_fu):
            sheet.follow_ups.append(
                {
                    "person": person_ref(f"f{s.index:03d}-{day:%m%d}-{k}"),
                    "group": pick(rng, VULNERABLE),
                    "point": s.point,
                    "category": "emotional_support" if k % 3 else "psychological_counselling",
                    "scheduled_at": at(day, 9, k % 60),
                    "due_at": at(day, 17),
                    "completed_at": at(day, 14 + k % 3, k % 60),
                    "channel": pick(rng, FOLLOW_UP_CHANNELS),
                }
            )
        return sheet

    def plan_aid(self, i: int, day: date, referable: list[Referable]) -> AidDay:
        """Today's aid requests, decided: direct ones, emergencies, and which help-request
        calls are referred (卫姨's first, on her day)."""
        rng, plan = self.rng_for("aid", day), AidDay()
        if self.wei_yi and day == WEI_YI_DAY:
            call, s, person, _ = referable.pop(0)
            needs: tuple[str, ...] = ("medicine", "food")  # her medicine, fresh vegetables
            plan.referrals.append((call, s, needs, person, "today"))
        for kind in self.kinds_by_day[i]:
            needs = tuple(
                sorted(rng.sample(["medicine", "food", "masks", "relief"], 1 + rng.randrange(2)))
            )
            if kind == "referral" and referable:
                call, s, person, _ = referable.pop(rng.randrange(len(referable)))
                urgency = rng.choice(["today", "within_days"])
                plan.referrals.append((call, s, needs, person, urgency))
                continue
            s = rng.choice([x for x in self.stations if x.opens <= day])
            n = len(plan.direct) + len(plan.emergencies)
            person, group = person_ref(f"a{s.index:03d}-{day:%m%d}-{n}"), pick(rng, VULNERABLE)
            if kind == "emergency":
                plan.emergencies.append(
                    {
                        "kind": rng.choice(["sudden_illness", "fall"]),
                        "person": person,
                        "group": group,
                        "place": s.place,
                        "opened_at": at(day, 10, n % 60),
                    }
                )
                plan.emergency_for.append(("", s, ("escort_to_hospital",), person))
            else:
                plan.direct.append(
                    {
                        "person": person,
                        "group": group,
                        "place": s.place,
                        "needs": list(needs),
                        "urgency": "today",
                        "origin": rng.choice(["station_visit", "residents_committee"]),
                        "requested_at": at(day, 10, n % 60),
                    }
                )
                plan.direct_for.append(("", s, needs, person))
        return plan

    async def refer(self, day: date, plan: AidDay) -> None:
        """The evening's referrals on the hotline, in one batch: the aid service opens their
        requests."""
        items = [
            {
                "call": call,
                "needs": list(needs),
                "urgency": urgency,
                # after the call's end (18:59 + 25 min at the latest)
                "referred_at": at(day, 19, 30 + k % 30),
            }
            for k, (call, _, needs, _, urgency) in enumerate(plan.referrals)
        ]
        plan.referred = await self.client.post_items(
            "hotline", "/referrals:batch", items, "referrals"
        )

    async def open_requests(self, day: date, plan: AidDay) -> list[Opened]:
        """Today's aid requests: direct ones in one batch, emergencies one by one (each opens
        a case), the referrals' once the aid service has opened them; then all of them
        assigned in one batch."""
        c = self.client
        made, cases, opened, _ = await asyncio.gather(
            c.post_items("aid", "/requests:batch", plan.direct, "requests"),
            asyncio.gather(*(c.post("aid", "/emergencies", body) for body in plan.emergencies)),
            # Referrals become requests in the aid service's consumer: wait until each exists.
            self.requests_of(plan.referred),
            # The people aid serves, their contact details kept by the people service.
            c.post_items("people", "/people:batch", self.contacts(day, plan)),
        )
        out = [
            (r, s, needs, person)
            for r, (_, s, needs, person) in zip(made, plan.direct_for, strict=True)
        ]
        out += [
            (case["request"], s, needs, person)
            for case, (_, s, needs, person) in zip(cases, plan.emergency_for, strict=True)
        ]
        out += [
            (request, s, needs, person)
            for request, (_, s, needs, person, _) in zip(opened, plan.referrals, strict=True)
        ]
        # Every request is handed to a worker before its delivery.
        assignments = [
            {"request": r, "assignee": f"worker:s{s.index:03d}-0", "assigned_at": at(day, 20, 30)}
            for r, s, _, _ in out
        ]
        await c.post_items("aid", "/assignments:batch", assignments)
        return out

    def contacts(self, day: date, plan: AidDay) -> list[dict[str, Any]]:
        """Synthetic contact details (deterministic by seed) of the day's people served."""
        rng = self.rng_for("people", day)
        served = [(s, p) for _, s, _, p in plan.direct_for + plan.emergency_for]
        served += [(s, p) for _, s, _, p, _ in plan.referrals]
        return [
            {
                "person": person,
                "place": s.place,
                "full_name": rng.choice(SURNAMES) + rng.choice(GIVEN_NAMES),
                "phone": f"1{rng.choice('3589')}{rng.randrange(10**9):09d}",
                "address": f"{s.street} {rng.randint(1, 400)}号{rng.randint(1, 12)}栋"
                f"{rng.randint(1, 30)}{rng.randint(1, 8):02d}",
                "recorded_at": at(day, 9, k % 60),
            }
            for k, (s, person) in enumerate(served)
        ]

    async def requests_of(self, referrals: list[str], within_s: float = 120) -> list[str]:
        """The aid request each referral opened, once all have: one look-up for the day's
        referrals, repeated for those the consumer has not reached yet."""
        deadline = time.monotonic() + within_s
        opened: dict[str, str] = {}
        while missing := [r for r in referrals if r not in opened]:
            query = "&".join(f"referral={quote(r)}" for r in missing)
            found = await self.client.get("aid", f"/requests?{query}")
            for request in found["requests"] if found else []:
                opened[request["referral"]] = request["request"]
            if len(opened) == len(referrals):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{missing[0]} did not become an aid request in {within_s:g}s")
            await asyncio.sleep(0.02)
        return [opened[r] for r in referrals]

    async def deliver(
        self, day: date, requests: list[tuple[str, Station, tuple[str, ...], str]], last_day: bool
    ) -> None:
        """Each of today's requests delivered once; some get a second action and some
        actions serve more than one person. The last day takes whatever is left (on any
        request delivered so far), so the totals are exact."""
        rng = self.rng_for("deliver", day)
        self.delivered.extend(requests)
        plan = list(requests)
        if requests:
            extra = min(self.deliveries_extra, rng.randrange(len(requests) // 3 + 2))
            plan += [requests[k % len(requests)] for k in range(extra)]
            self.deliveries_extra -= extra
        if last_day and self.deliveries_extra:
            plan += [
                self.delivered[-1 - k % len(self.delivered)] for k in range(self.deliveries_extra)
            ]
            self.deliveries_extra = 0
        items = []
        for k, (request, _, needs, person) in enumerate(plan):
            persons = 1
            if person == WEI_YI:
                # Her medicine and fresh vegetables, to her door: one action, one person.
                lines = [
                    {"kind": "medicine", "quantity": "1", "unit": "box"},
                    {"kind": "vegetables", "quantity": "2", "unit": "kg"},
                ]
            else:
                lines = [
                    {"kind": kind, "quantity": "1", "unit": units[0]}
                    for need, kind, units in AID_ITEMS
                    if need in needs
                ]
                more = min(self.persons_extra, rng.choice([0, 0, 1, 1, 2, 3]))
                if last_day and k == len(plan) - 1:
                    more = self.persons_extra
                persons += more
                self.persons_extra -= more
            items.append(
                {
                    "request": request,
                    "items": lines,
                    "persons_served": persons,
                    "delivered_at": at(day, 21, k % 60),
                }
            )
        if last_day and self.persons_extra and items:
            items[-1]["persons_served"] += self.persons_extra  # even if the last was hers
            self.persons_extra = 0
        await self.client.post_items("aid", "/deliveries:batch", items)

    # -- donation: the charity net and the self-help net -----------------------------------

    async def launch_campaigns(self) -> None:
        c = self.client
        day = date(2020, 1, 25)

        async def launch(
            kind: str, org: str, title: str, districts: list[str], starts: date
        ) -> str:
            body = {
                "campaign_kind": kind,
                "organisation": org,
                "title": title,
                "districts": districts,
                "starts_on": starts.isoformat(),
                "launched_at": at(starts, 9),
            }
            return str((await c.post("donation", "/campaigns", body))["campaign"])

        self.drives = {}
        for district, _ in DISTRICTS:
            self.drives[district] = await launch(
                "charity", f"org:{district}-sw", f"{district} 社工站物资链接", [district], day
            )
        self.named = {
            "lunch": await launch(
                "charity",
                "org:gz-sw-assoc",
                "暖心午餐",
                ["yuexiu", "tianhe", "haizhu", "liwan"],
                date(2020, 2, 10),
            ),
            "fund": await launch(
                "charity",
                "org:gz-charity",
                "暖社区基金",
                [d for d, _ in DISTRICTS],
                date(2020, 2, 3),
            ),
            "masks": await launch(
                "charity", "org:gz-sw-assoc", "口罩募集", [d for d, _ in DISTRICTS], day
            ),
            "qingyuan": await launch(
                "charity", "org:gz-qy-coop", "广清农产品", ["conghua", "huadu"], date(2020, 2, 15)
            ),
            "angel": await launch(
                "self_help", "org:baiyun-sw", "天使爱心包", ["baiyun"], date(2020, 2, 5)
            ),
            "devices": await launch(
                "self_help", "org:zengcheng-sw", "网课设备", ["zengcheng"], date(2020, 2, 17)
            ),
            "farm": await launch(
                "self_help", "org:conghua-sw", "城郊街助农", ["conghua"], date(2020, 2, 8)
            ),
            "love_farm": await launch(
                "self_help", "org:liwan-sw", "华林街爱心农场", ["liwan"], date(2020, 2, 12)
            ),
        }

    async def donations(self, i: int, day: date) -> None:
        rng, c = self.rng_for("donate", day), self.client
        n_items = self.items[i]
        values = self.value_by_day.get(day, [])
        receipts = []
        if n_items or values:
            # Items and values dealt over a few receipts at districts' stations.
            n = max(1, min(len(DISTRICTS), n_items or 1, max(len(values), 1 + n_items // 40)))
            counts = spread(n_items, [rng.uniform(0.5, 1.5) for _ in range(n)])
            worth = [Decimal(0)] * n
            for k, v in enumerate(values):
                worth[k % n] += v
            for k in range(n):
                district = DISTRICTS[(i + k) % len(DISTRICTS)][0]
                if counts[k]:
                    line = {
                        "kind": rng.choice(["masks", "protective_supplies", "food", "medicine"]),
                        "quantity": str(counts[k]),
                        "unit": "piece",
                    }
                else:  # value with no counted item: goods by weight
                    line = {"kind": "food", "quantity": "1", "unit": "kg"}
                if worth[k]:
                    line["value_yuan"] = str(worth[k])
                if not counts[k] and not worth[k]:
                    continue
                receipts.append(
                    {
                        "campaign": self.drives[district],
                        "items": [line],
                        "donor_kind": rng.choice(["company", "individual", "residents"]),
                        "district": district,
                        "received_at": at(day, 15, k),
                    }
                )
        if receipts:
            await c.post("donation", "/receipts:batch", {"items": receipts})
        amount = self.funds_by_day.get(day)
        if amount:
            district = DISTRICTS[i % len(DISTRICTS)][0]
            await c.post(
                "donation",
                f"/campaigns/{self.drives[district]}/funds",
                {
                    "amount_yuan": str(amount),
                    "donor_kind": "individual",
                    "district": district,
                    "received_at": at(day, 16),
                },
            )
        if self.volunteers[i]:
            district = DISTRICTS[(i + 3) % len(DISTRICTS)][0]
            await c.post(
                "donation",
                "/volunteers",
                {
                    "volunteers": self.volunteers[i],
                    "district": district,
                    "campaign": self.drives[district],
                    "linked_at": at(day, 17),
                },
            )

    async def named_outputs(self) -> None:
        """The named campaigns' pledges and the self-help projects' outputs, scaled (those
        that scale to nothing are left out). Pledges are not receipts: the article's goods
        and money totals are the receipts above (see the report in the README)."""
        c, s = self.client, self.scale
        n = self.named

        def count(x: int) -> int:
            return int(f.scaled(x, s))

        def money(x: Decimal) -> Decimal:
            return Decimal(f.scaled(x, s))

        pledges = [
            (
                "lunch",
                "company",
                [("meals", count(f.WARM_LUNCHES), "meal")],
                None,
                date(2020, 2, 10),
            ),
            ("fund", "foundation", [], money(f.WARM_FUND_YUAN), date(2020, 2, 3)),
            (
                "masks",
                "company",
                [("masks", count(f.MASKS_RAISED), "piece")],
                None,
                date(2020, 2, 1),
            ),
            (
                "qingyuan",
                "company",
                [
                    ("vegetables", int(f.scaled(f.QINGYUAN_KG, s)), "kg"),
                    ("poultry", count(f.QINGYUAN_CHICKENS), "head"),
                ],
                None,
                date(2020, 2, 15),
            ),
        ]
        for key, donor_kind, goods, funds, day in pledges:
            lines = [{"kind": k, "quantity": str(q), "unit": u} for k, q, u in goods if q]
            if not lines and not funds:
                continue
            body: dict[str, Any] = {
                "donor": f"donor:{key}",
                "donor_kind": donor_kind,
                "goods": lines,
                "pledged_at": at(day, 11),
            }
            if funds:
                body["funds_yuan"] = str(funds)
            await c.post("donation", f"/campaigns/{n[key]}/pledges", body)
        outputs = [
            (
                "angel",
                "care_packs",
                count(f.ANGEL_PACKS),
                "pack",
                count(f.ANGEL_PACKS),
                "baiyun",
                None,
                date(2020, 2, 20),
            ),
            (
                "devices",
                "devices",
                count(f.DEVICES),
                "device",
                count(f.DEVICES),
                "zengcheng",
                None,
                date(2020, 2, 24),
            ),
            (
                "farm",
                "vegetables",
                int(f.scaled(f.FARM_JIN, s)),
                "jin",
                max(1, count(30)),
                "conghua",
                money(f.FARM_INCOME_YUAN),
                date(2020, 2, 28),
            ),
            (
                "love_farm",
                "vegetables",
                count(f.LOVE_FARM_PERSON_TIMES),
                "kg",
                count(f.LOVE_FARM_PERSON_TIMES),
                "liwan",
                None,
                date(2020, 3, 2),
            ),
        ]
        for key, kind, quantity, unit, beneficiaries, district, income, day in outputs:
            if not quantity or not beneficiaries:
                continue
            body = {
                "kind": kind,
                "quantity": str(quantity),
                "unit": unit,
                "beneficiaries": beneficiaries,
                "district": district,
                "produced_at": at(day, 15),
            }
            if income:
                body["income_yuan"] = str(income)
            await c.post("donation", f"/campaigns/{n[key]}/outputs", body)


def progress_bar(total: int) -> Callable[[int, date, Client], None]:
    def show(done: int, day: date, client: Client) -> None:
        width = 30
        filled = width * done // total
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {day} ({done}/{total} days) "
            f"{client.requests:,} requests"
        )
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


async def wait_for_report(
    reporting: str, target: dict[str, int | str], within_s: float = 120
) -> tuple[bool, dict[str, Any]]:
    """Poll reporting until its figures as of 2020-03-07 equal ``target`` (or time out)."""
    deadline = time.monotonic() + within_s
    figures: dict[str, Any] = {}
    async with httpx.AsyncClient(timeout=10, headers=signed_in_headers()) as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
                got = await http.get(f"{reporting}/api/report", params={"as_of": LAST.isoformat()})
                figures = got.json()["figures"]
                if all(figures.get(k) == v for k, v in target.items()):
                    return True, figures
            await asyncio.sleep(0.1)
    return False, figures


async def simulate(
    urls: dict[str, str],
    seed: int,
    scale: Decimal,
    speed: float,
    show_progress: bool,
    retry_for: float | None = None,
) -> int:
    scenario = Scenario(seed, scale)
    async with Client.open(urls, f"gz2020-{seed}-{scale}", retry_for) as client:
        started = time.monotonic()
        await scenario.play(client, speed, progress_bar(len(DAYS)) if show_progress else None)
        played = time.monotonic() - started
    print(f"simulate: {client.requests:,} requests in {played:.1f}s; waiting for reporting…")
    ok, figures = await wait_for_report(urls["reporting"], scenario.target)
    for key, want in scenario.target.items():
        mark = "=" if figures.get(key) == want else "≠"
        print(f"  {key:<22} {figures.get(key)!s:>12} {mark} {want}")
    print(
        "simulate: reporting shows the scaled figures exactly"
        if ok
        else "simulate: reporting does NOT show the scaled figures"
    )
    return 0 if ok else 1
