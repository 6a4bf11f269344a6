"""The hotline's HTTP JSON API: its routes, on the toolkit's app (`shared.service.http`)."""

from __future__ import annotations

from fastapi import FastAPI

from services.hotline.application import commands as c
from services.hotline.domain import Call, FollowUp, HotlinePoint, Referral, Shift
from shared.auth.gate import Gate
from shared.service.application import Service
from shared.service.http import CommandRoute, ViewRoute, build_app

COMMAND_ROUTES = [
    CommandRoute(
        "/points", c.OpenHotlinePoint, "Open a hotline point at a station or project site"
    ),
    CommandRoute("/points/{point}/close", c.ClosePoint, "Close a hotline point", "point", 200),
    CommandRoute("/shifts", c.StartShift, "Start a social worker's shift at an open point"),
    CommandRoute("/shifts:batch", c.StartShifts, "Record a day's shifts: all or nothing"),
    CommandRoute("/shifts/{shift}/end", c.EndShift, "End a shift", "shift", 200),
    CommandRoute("/calls", c.ReceiveCall, "Record a call received at an open point"),
    CommandRoute("/calls:batch", c.ReceiveCalls, "Record a day's calls: all or nothing"),
    CommandRoute(
        "/calls/{call}/complete", c.CompleteCall, "Complete a call with its outcome", "call", 200
    ),
    CommandRoute(
        "/calls/{call}/referrals", c.ReferToAid, "Refer the person of a call to aid", "call"
    ),
    CommandRoute("/referrals:batch", c.ReferToAids, "Refer a day's callers to aid: all or nothing"),
    CommandRoute("/follow-ups", c.ScheduleFollowUp, "Schedule a tracked follow-up"),
    CommandRoute(
        "/follow-ups:batch", c.ScheduleFollowUps, "Record a day's follow-ups: all or nothing"
    ),
    CommandRoute(
        "/follow-ups/{follow_up}/complete", c.CompleteFollowUp, "Complete one", "follow_up", 200
    ),
]

# Corrections (application/corrections.py): answered 200 with the fact as it now stands.
COMMAND_ROUTES += [
    CommandRoute("/calls/{call}/void", c.VoidCall, "Void a call, with a reason", "call", 200),
    CommandRoute(
        "/calls/{call}/correct", c.CorrectCall, "Correct a call: void and record again", "call", 200
    ),
    CommandRoute(
        "/follow-ups/{follow_up}/void", c.VoidFollowUp, "Void a follow-up", "follow_up", 200
    ),
    CommandRoute(
        "/follow-ups/{follow_up}/correct",
        c.CorrectFollowUp,
        "Correct a follow-up: void and record again",
        "follow_up",
        200,
    ),
    CommandRoute("/shifts/{shift}/void", c.VoidShift, "Void a shift", "shift", 200),
    CommandRoute(
        "/referrals/{referral}/void", c.VoidReferral, "Void a referral to aid", "referral", 200
    ),
]

VIEW_ROUTES = [
    ViewRoute("/points/{id}", HotlinePoint),
    ViewRoute("/shifts/{id}", Shift),
    ViewRoute("/calls/{id}", Call),
    ViewRoute("/follow-ups/{id}", FollowUp),
    ViewRoute("/referrals/{id}", Referral),
]


def build_hotline_app(service: Service, gate: Gate) -> FastAPI:
    return build_app(
        service,
        COMMAND_ROUTES,
        VIEW_ROUTES,
        title="Kapok hotline",
        description="红棉守护热线: hotline points, shifts, calls, follow-ups and referrals.",
        gate=gate,
    )
