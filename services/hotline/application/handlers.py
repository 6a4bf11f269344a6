"""One handler per command: load what the decision needs, let the aggregates decide, and say
what to append and which cross-aggregate rules the commit re-checks (`guards`). Committing is
`shared.service.CommandService`'s job."""

from __future__ import annotations

from datetime import timedelta

from services.hotline.application import corrections, guards
from services.hotline.application.commands import (
    ClosePoint,
    CompleteCall,
    CompleteFollowUp,
    EndShift,
    OpenHotlinePoint,
    ReceiveCall,
    ReceiveCalls,
    ReferToAid,
    ReferToAids,
    ScheduleFollowUp,
    ScheduleFollowUps,
    StartShift,
    StartShifts,
)
from services.hotline.application.loader import HotlineLoader
from services.hotline.domain import Call, FollowUp, HotlinePoint, Referral, Shift
from services.hotline.domain.shift import ShiftsOverlap
from shared.domain.aggregate import Aggregate
from shared.domain.errors import DomainError
from shared.service.application import Decision, Handler, batch_item, new_id
from shared.service.commands import Command, gc_paused
from shared.service.commit import Guard


async def open_point(cmd: OpenHotlinePoint, load: HotlineLoader) -> Decision:
    return Decision.created(HotlinePoint.open(new_id("point"), cmd.place, cmd.site, cmd.opened_at))


async def close_point(cmd: ClosePoint, load: HotlineLoader) -> Decision:
    point = await load.one(HotlinePoint, cmd.point, fresh=True)
    last, read = await load.last_record_at(point.id)
    point.close(cmd.reason, cmd.closed_at, last)
    return Decision.changed_one(point, guards.closing_after_records(point.id, cmd.closed_at, read))


async def start_shift(cmd: StartShift, load: HotlineLoader) -> Decision:
    point = await load.one(HotlinePoint, cmd.point)
    open_shift = (await load.open_shifts([cmd.worker])).get(cmd.worker)
    shift = Shift.start(new_id("shift"), cmd.worker, point, cmd.started_at, open_shift)
    return Decision.created(shift, guards.start_shifts([point], {cmd.worker: shift.id}))


async def end_shift(cmd: EndShift, load: HotlineLoader) -> Decision:
    shift = await load.one(Shift, cmd.shift)
    shift.end(cmd.ended_at)
    return Decision.changed_one(shift, guards.end_shift(shift.id))


async def start_shifts(cmd: StartShifts, load: HotlineLoader) -> Decision:
    points = await load.many(HotlinePoint, {i.point for i in cmd.items})
    open_now = await load.open_shifts(sorted({i.worker for i in cmd.items}))
    # The shifts the log's workers are on now, which its ended shifts must not overlap.
    ended = {i.worker for i in cmd.items if i.ended_at is not None}
    on_duty = await load.many(Shift, [s for w, s in open_now.items() if w in ended])
    shifts: list[Shift] = []
    claims: dict[str, str] = {}
    index = 0
    with gc_paused():
        # One try around the loop, not `batch_item` per item: a context manager per item
        # cost more than a tenth of deciding it.
        try:
            for index, logged in enumerate(cmd.items):  # noqa: B007 (the except names it)
                still_open = logged.ended_at is None
                busy = (
                    (open_now.get(logged.worker) or claims.get(logged.worker))
                    if still_open
                    else None
                )
                shift = Shift.start(
                    new_id("shift"), logged.worker, points[logged.point], logged.started_at, busy
                )
                if logged.ended_at is not None:
                    shift.end(logged.ended_at)
                else:
                    claims[logged.worker] = shift.id
                shifts.append(shift)
        except DomainError:
            with batch_item(index):
                raise
        try:
            Shift.refuse_overlaps(shifts, on_duty.values())
        except ShiftsOverlap as overlap:
            with batch_item(overlap.later):
                raise
    return batch("shifts", list(shifts), guards.start_shifts(points.values(), claims))


async def receive_call(cmd: ReceiveCall, load: HotlineLoader) -> Decision:
    point = await load.one(HotlinePoint, cmd.point)
    call = Call.receive(
        new_id("call"), point, cmd.category, cmd.group, cmd.channel, cmd.caller, cmd.received_at
    )
    return Decision.created(call, guards.open_points([point], "calls"))


async def complete_call(cmd: CompleteCall, load: HotlineLoader) -> Decision:
    call = await load.one(Call, cmd.call)
    call.complete(cmd.outcome, cmd.duration_seconds, cmd.completed_at)
    return Decision.changed_one(call)


async def receive_calls(cmd: ReceiveCalls, load: HotlineLoader) -> Decision:
    points = await load.many(HotlinePoint, {i.point for i in cmd.items})
    calls: list[Aggregate] = []
    index = 0
    with gc_paused():
        try:  # one try, not `batch_item` per item: see start_shifts
            for index, logged in enumerate(cmd.items):  # noqa: B007 (the except names it)
                call = Call.receive(
                    new_id("call"),
                    points[logged.point],
                    logged.category,
                    logged.group,
                    logged.channel,
                    logged.caller,
                    logged.received_at,
                )
                if logged.outcome is not None and logged.duration_seconds is not None:
                    ended = logged.received_at + timedelta(seconds=logged.duration_seconds)
                    call.complete(logged.outcome, logged.duration_seconds, ended)
                calls.append(call)
        except DomainError:
            with batch_item(index):
                raise
    return batch("calls", calls, guards.open_points(points.values(), "calls"))


def _referral(cmd: ReferToAid, call: Call) -> Referral:
    return Referral.from_call(
        new_id("referral"),
        call,
        cmd.needs,
        cmd.urgency,
        cmd.referred_at,
        person=cmd.person,
        group=cmd.group,
        place=cmd.place,
    )


async def refer_to_aid(cmd: ReferToAid, load: HotlineLoader) -> Decision:
    return Decision.created(_referral(cmd, await load.one(Call, cmd.call)))


async def refer_to_aids(cmd: ReferToAids, load: HotlineLoader) -> Decision:
    calls = await load.many(Call, {i.call for i in cmd.items})
    referrals: list[Aggregate] = []
    for index, item in enumerate(cmd.items):
        with batch_item(index):
            referrals.append(_referral(item, calls[item.call]))
    return batch("referrals", referrals, None)


async def schedule_follow_up(cmd: ScheduleFollowUp, load: HotlineLoader) -> Decision:
    point = await load.one(HotlinePoint, cmd.point)
    call = await load.one(Call, cmd.call) if cmd.call else None
    follow_up = FollowUp.schedule(
        new_id("follow-up"),
        cmd.person,
        cmd.group,
        point,
        cmd.category,
        cmd.due_at,
        cmd.scheduled_at,
        call,
    )
    return Decision.created(follow_up, guards.open_points([point], "follow_ups"))


async def complete_follow_up(cmd: CompleteFollowUp, load: HotlineLoader) -> Decision:
    follow_up = await load.one(FollowUp, cmd.follow_up)
    follow_up.complete(cmd.channel, cmd.completed_at)
    return Decision.changed_one(follow_up)


async def schedule_follow_ups(cmd: ScheduleFollowUps, load: HotlineLoader) -> Decision:
    points = await load.many(HotlinePoint, {i.point for i in cmd.items})
    calls = await load.many(Call, {i.call for i in cmd.items if i.call})
    follow_ups: list[Aggregate] = []
    index = 0
    with gc_paused():
        try:  # one try, not `batch_item` per item: see start_shifts
            for index, logged in enumerate(cmd.items):  # noqa: B007 (the except names it)
                follow_up = FollowUp.schedule(
                    new_id("follow-up"),
                    logged.person,
                    logged.group,
                    points[logged.point],
                    logged.category,
                    logged.due_at,
                    logged.scheduled_at,
                    calls[logged.call] if logged.call else None,
                )
                if logged.completed_at is not None and logged.channel is not None:
                    follow_up.complete(logged.channel, logged.completed_at)
                follow_ups.append(follow_up)
        except DomainError:
            with batch_item(index):
                raise
    return batch("follow_ups", follow_ups, guards.open_points(points.values(), "follow_ups"))


def batch(name: str, aggregates: list[Aggregate], guard: Guard | None) -> Decision:
    body = {"count": len(aggregates), name: [a.id for a in aggregates]}
    return Decision(aggregates, 201, body, guard)


HANDLERS: dict[type[Command], Handler] = {
    **corrections.HANDLERS,
    OpenHotlinePoint: open_point,
    ClosePoint: close_point,
    StartShift: start_shift,
    EndShift: end_shift,
    StartShifts: start_shifts,
    ReceiveCall: receive_call,
    CompleteCall: complete_call,
    ReceiveCalls: receive_calls,
    ReferToAid: refer_to_aid,
    ReferToAids: refer_to_aids,
    ScheduleFollowUp: schedule_follow_up,
    CompleteFollowUp: complete_follow_up,
    ScheduleFollowUps: schedule_follow_ups,
}
