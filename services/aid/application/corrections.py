"""The aid service's voids and corrections: a delivery recorded by mistake is voided with a
reason (its request is open again if it has no delivery left), or corrected: voided and
recorded again as it was, decided by the request's own rules, in one append."""

from __future__ import annotations

from collections.abc import Callable

from services.aid.application.commands import CorrectDelivery, VoidDelivery
from services.aid.domain import AidRequest
from shared.contracts.aid import AidDelivered, AidDeliveryVoided
from shared.contracts.envelope import Event
from shared.domain.voids import void, without
from shared.service.application import Decision, Handler, Loader
from shared.service.commands import Command


def _delivery(delivery: str) -> Callable[[Event], bool]:
    return lambda data: type(data) is AidDelivered and data.delivery == delivery


async def void_delivery(cmd: VoidDelivery, load: Loader) -> Decision:
    request = await load.one(AidRequest, cmd.request)
    others = [d for d in request.deliveries if d["delivery"] != cmd.delivery]
    void(
        request,
        AidDeliveryVoided,
        cmd.delivery,
        _delivery(cmd.delivery),
        cmd.reason,
        cmd.at,
        request=request.id,
        request_reopened=not others,
    )
    return _in_flow(request)


async def correct_delivery(cmd: CorrectDelivery, load: Loader) -> Decision:
    request = await load.one(AidRequest, cmd.request)
    again = without(request, _delivery(cmd.delivery))
    assert isinstance(again, AidRequest)
    again.deliver(cmd.delivery, cmd.items, cmd.persons_served, cmd.delivered_at)
    void(
        request,
        AidDeliveryVoided,
        cmd.delivery,
        _delivery(cmd.delivery),
        cmd.reason,
        cmd.at,
        again.pending,
        request=request.id,
    )
    return _in_flow(request)


def _in_flow(request: AidRequest) -> Decision:
    decision = Decision.changed_one(request)
    decision.correlation_id = request.correlation_id  # as every change to a request
    return decision


HANDLERS: dict[type[Command], Handler] = {
    VoidDelivery: void_delivery,
    CorrectDelivery: correct_delivery,
}
