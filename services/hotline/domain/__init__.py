"""Aggregates of the hotline: pure, no I/O. Each is rebuilt from its events; its methods check
a rule and then record the event that says what happened."""

from services.hotline.domain.call import Call
from services.hotline.domain.follow_up import FollowUp
from services.hotline.domain.point import HotlinePoint
from services.hotline.domain.referral import Referral
from services.hotline.domain.shift import Shift

__all__ = [
    "Call",
    "FollowUp",
    "HotlinePoint",
    "Referral",
    "Shift",
]
