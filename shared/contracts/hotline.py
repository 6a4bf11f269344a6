"""Events of the hotline (the psychological protection net). PLACEHOLDER: being written."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime

from shared.contracts.envelope import Event
from shared.contracts.registry import event
from shared.contracts.types import Group, Place, Ref


class HotlineEvent(Event):
    source = "hotline"


@event
class CallReceived(HotlineEvent):
    call: Ref
    point: Ref
    place: Place
    category: str
    group: Group
    received_at: AwareDatetime


_ = datetime
