"""One handler per command: load what the decision needs, let the aggregates decide, and say
what to append. Committing is `shared.service.CommandService`'s job."""

from __future__ import annotations

from services.aid.application import corrections
from services.aid.application.commands import (
    AssignAid,
    AssignAids,
    CancelAid,
    OpenEmergency,
    RecordDeliveries,
    RecordDelivery,
    RequestAid,
    RequestAids,
)
from services.aid.domain import AidRequest, EmergencyCase
from shared.domain.aggregate import Aggregate
from shared.service.application import Decision, Handler, Loader, batch_item, new_id
from shared.service.commands import Command


def in_flow(decision: Decision, request: AidRequest) -> Decision:
    """What happens to a request stays in its flow: an auditor follows 卫姨 by one
    correlation id from her call (the referral's) through the request to her door."""
    decision.correlation_id = request.correlation_id
    return decision


async def request_aid(cmd: RequestAid, load: Loader) -> Decision:
    request = AidRequest.request(
        new_id("request"),
        cmd.person,
        cmd.group,
        cmd.place,
        cmd.needs,
        cmd.urgency,
        cmd.origin,
        cmd.requested_at,
    )
    return Decision.created(request)


async def request_aids(cmd: RequestAids, load: Loader) -> Decision:
    requests: list[Aggregate] = []
    for index, asked in enumerate(cmd.items):
        with batch_item(index):
            requests.append((await request_aid(asked, load)).changed[0])
    return Decision(requests, 201, {"count": len(requests), "requests": [r.id for r in requests]})


async def assign_aid(cmd: AssignAid, load: Loader) -> Decision:
    request = await load.one(AidRequest, cmd.request)
    request.assign(cmd.assignee, cmd.assigned_at)
    return in_flow(Decision.changed_one(request), request)


async def assign_aids(cmd: AssignAids, load: Loader) -> Decision:
    # As with deliveries: a request named twice is decided on the state the first left.
    requests = await load.many(AidRequest, {i.request for i in cmd.items})
    for index, assigned in enumerate(cmd.items):
        with batch_item(index):
            requests[assigned.request].assign(assigned.assignee, assigned.assigned_at)
    changed: list[Aggregate] = [r for r in requests.values() if r.pending]
    return Decision(changed, 200, {"count": len(cmd.items)})


async def record_delivery(cmd: RecordDelivery, load: Loader) -> Decision:
    request = await load.one(AidRequest, cmd.request)
    delivery = new_id("delivery")
    request.deliver(delivery, cmd.items, cmd.persons_served, cmd.delivered_at)
    return in_flow(Decision([request], 201, {"delivery": delivery, **request.view()}), request)


async def cancel_aid(cmd: CancelAid, load: Loader) -> Decision:
    request = await load.one(AidRequest, cmd.request)
    request.cancel(cmd.reason, cmd.cancelled_at)
    return in_flow(Decision.changed_one(request), request)


async def open_emergency(cmd: OpenEmergency, load: Loader) -> Decision:
    case, request = EmergencyCase.open(
        new_id("emergency"),
        new_id("request"),
        cmd.kind,
        cmd.person,
        cmd.group,
        cmd.place,
        cmd.needs,
        cmd.origin,
        cmd.opened_at,
    )
    return Decision([case, request], 201, {**case.view(), "request_status": request.status})


async def record_deliveries(cmd: RecordDeliveries, load: Loader) -> Decision:
    # A day's log spans many requests' flows: its events keep the batch's own correlation.
    # One aggregate per request however many of its deliveries the log holds: the second
    # delivery is decided on the state the first left, and the request is appended once.
    requests = await load.many(AidRequest, {i.request for i in cmd.items})
    deliveries: list[str] = []
    for index, logged in enumerate(cmd.items):
        delivery = new_id("delivery")
        with batch_item(index):
            requests[logged.request].deliver(
                delivery, logged.items, logged.persons_served, logged.delivered_at
            )
        deliveries.append(delivery)
    changed: list[Aggregate] = [r for r in requests.values() if r.pending]
    return Decision(changed, 201, {"count": len(deliveries), "deliveries": deliveries})


HANDLERS: dict[type[Command], Handler] = {
    **corrections.HANDLERS,
    RequestAid: request_aid,
    RequestAids: request_aids,
    AssignAid: assign_aid,
    AssignAids: assign_aids,
    RecordDelivery: record_delivery,
    CancelAid: cancel_aid,
    OpenEmergency: open_emergency,
    RecordDeliveries: record_deliveries,
}
