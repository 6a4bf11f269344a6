"""The aid service's voids and corrections: a delivery recorded by mistake is voided with a
reason (its request is open again if it has no delivery left), or corrected: voided and
recorded again as it was, decided by the request's own rules, in one append."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from services.aid.application.commands import CorrectDelivery, VoidDelivery
from services.aid.domain import AidRequest
from shared.contracts.aid import AidDelivered, AidDeliveryVoided
from shared.contracts.envelope import Event, NewEvent
from shared.domain.voids import void, without
from shared.service.application import Decision, Handler, Loader
from shared.service.commands import Command


def _delivery(delivery: str) -> Callable[[Event], bool]:
    return lambda data: type(data) is AidDelivered and data.delivery == delivery


async def void_delivery(cmd: VoidDelivery, load: Loader) -> Decision:
    request = await load.one(AidRequest, cmd.request)
    return _voided(request, cmd)


async def correct_delivery(cmd: CorrectDelivery, load: Loader) -> Decision:
    request = await load.one(AidRequest, cmd.request)
    again = without(request, _delivery(cmd.delivery))
    assert isinstance(again, AidRequest)
    again.deliver(cmd.delivery, cmd.items, cmd.persons_served, cmd.delivered_at)
    return _voided(request, cmd, again.pending)


def _voided(
    request: AidRequest, cmd: VoidDelivery | CorrectDelivery, replacement: Sequence[NewEvent] = ()
) -> Decision:
    belongs = _delivery(cmd.delivery)
    closing = _closing(request, cmd.delivery, replacement)
    void(request, AidDeliveryVoided, cmd.delivery, belongs, cmd.reason, cmd.at, replacement,
         request=request.id, **closing)  # fmt: skip
    decision = Decision.changed_one(request)
    decision.correlation_id = request.correlation_id  # as every change to a request
    return decision


def _closing(request: AidRequest, delivery: str, replacement: Sequence[NewEvent]) -> dict[str, Any]:
    """What becomes of the request's closing: a request is closed by its first delivery
    recorded (as reporting counts it); if that is the one voided, it is open again, or closed
    from the delivery first recorded now (the replacement takes the voided one's place)."""
    delivered = [(data, at) for data, at in request.history if type(data) is AidDelivered]
    if not delivered or delivered[0][0].delivery != delivery:
        return {}  # another delivery closed it, and still does
    instead = [(new.data, new.occurred_at) for new in replacement]
    now = [*instead, *delivered[1:]]
    return {"request_closed_again_at": now[0][1]} if now else {"request_reopened": True}


HANDLERS: dict[type[Command], Handler] = {
    VoidDelivery: void_delivery,
    CorrectDelivery: correct_delivery,
}
