"""The aid service's voids and corrections: a delivery recorded by mistake is voided with a
reason (its request is open again if it has no delivery left), or corrected: voided and
recorded again as it was, decided by the request's own rules, in one append."""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
    left = [d for d in request.deliveries if d["delivery"] != cmd.delivery]
    return _voided(request, cmd, request_reopened=not left)


async def correct_delivery(cmd: CorrectDelivery, load: Loader) -> Decision:
    request = await load.one(AidRequest, cmd.request)
    again = without(request, _delivery(cmd.delivery))
    assert isinstance(again, AidRequest)
    again.deliver(cmd.delivery, cmd.items, cmd.persons_served, cmd.delivered_at)
    return _voided(request, cmd, again.pending)


def _voided(
    request: AidRequest,
    cmd: VoidDelivery | CorrectDelivery,
    replacement: Sequence[NewEvent] = (),
    request_reopened: bool = False,
) -> Decision:
    belongs = _delivery(cmd.delivery)
    void(request, AidDeliveryVoided, cmd.delivery, belongs, cmd.reason, cmd.at, replacement,
         request=request.id, request_reopened=request_reopened)  # fmt: skip
    decision = Decision.changed_one(request)
    decision.correlation_id = request.correlation_id  # as every change to a request
    return decision


HANDLERS: dict[type[Command], Handler] = {
    VoidDelivery: void_delivery,
    CorrectDelivery: correct_delivery,
}
