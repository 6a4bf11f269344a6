"""The hotline's voids and corrections: a call, a follow-up, a shift or a referral recorded by
mistake is voided with a reason, or corrected (voided and recorded again as it was, in one
append on its own stream: all or nothing). The rules are `shared.domain.voids`'; a
correction is decided by the same aggregates' rules as the original record."""

from __future__ import annotations

from datetime import timedelta

from services.hotline.application import guards
from services.hotline.application.commands import (
    CorrectCall,
    CorrectFollowUp,
    VoidCall,
    VoidFollowUp,
    VoidReferral,
    VoidShift,
)
from services.hotline.application.loader import HotlineLoader
from services.hotline.domain import Call, FollowUp, HotlinePoint, Referral, Shift
from shared.contracts.envelope import Event
from shared.contracts.hotline import CallVoided, FollowUpVoided, ReferralVoided, ShiftVoided
from shared.domain.voids import void
from shared.service.application import Decision, Handler
from shared.service.commands import Command
from shared.service.corrections import voided


def _whole(_: Event) -> bool:
    """Every event of the stream is the fact's: a call, a follow-up, a shift, a referral."""
    return True


async def void_call(cmd: VoidCall, load: HotlineLoader) -> Decision:
    call = await load.one(Call, cmd.call)
    void(call, CallVoided, call.id, _whole, cmd.reason, cmd.at)
    return voided(call)


async def correct_call(cmd: CorrectCall, load: HotlineLoader) -> Decision:
    call = await load.one(Call, cmd.call)
    point = await load.one(HotlinePoint, cmd.point)
    again = Call.receive(
        call.id, point, cmd.category, cmd.group, cmd.channel, cmd.caller, cmd.received_at
    )
    if cmd.outcome is not None and cmd.duration_seconds is not None:
        ended = cmd.received_at + timedelta(seconds=cmd.duration_seconds)
        again.complete(cmd.outcome, cmd.duration_seconds, ended)
    void(call, CallVoided, call.id, _whole, cmd.reason, cmd.at, again.pending)
    return Decision.changed_one(call, guards.open_points([point], "calls"))


async def void_follow_up(cmd: VoidFollowUp, load: HotlineLoader) -> Decision:
    follow_up = await load.one(FollowUp, cmd.follow_up)
    void(follow_up, FollowUpVoided, follow_up.id, _whole, cmd.reason, cmd.at)
    return voided(follow_up)


async def correct_follow_up(cmd: CorrectFollowUp, load: HotlineLoader) -> Decision:
    follow_up = await load.one(FollowUp, cmd.follow_up)
    point = await load.one(HotlinePoint, cmd.point)
    call = await load.one(Call, cmd.call) if cmd.call else None
    again = FollowUp.schedule(
        follow_up.id,
        cmd.person,
        cmd.group,
        point,
        cmd.category,
        cmd.due_at,
        cmd.scheduled_at,
        call,
    )
    if cmd.completed_at is not None and cmd.channel is not None:
        again.complete(cmd.channel, cmd.completed_at)
    void(follow_up, FollowUpVoided, follow_up.id, _whole, cmd.reason, cmd.at, again.pending)
    return Decision.changed_one(follow_up, guards.open_points([point], "follow_ups"))


async def void_shift(cmd: VoidShift, load: HotlineLoader) -> Decision:
    shift = await load.one(Shift, cmd.shift)
    still_open = shift.is_open
    void(shift, ShiftVoided, shift.id, _whole, cmd.reason, cmd.at)
    decision = voided(shift)
    if still_open:  # a shift voided while open no longer holds its worker on duty
        decision.in_transaction = guards.end_shift(shift.id)
    return decision


async def void_referral(cmd: VoidReferral, load: HotlineLoader) -> Decision:
    referral = await load.one(Referral, cmd.referral)
    void(referral, ReferralVoided, referral.id, _whole, cmd.reason, cmd.at)
    return voided(referral)


HANDLERS: dict[type[Command], Handler] = {
    VoidCall: void_call,
    CorrectCall: correct_call,
    VoidFollowUp: void_follow_up,
    CorrectFollowUp: correct_follow_up,
    VoidShift: void_shift,
    VoidReferral: void_referral,
}
