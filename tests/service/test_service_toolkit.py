"""The service toolkit as stories, on a toy tally service: the one error shape, the commit
loop (retries on a stale version, nothing stored on any error), the Idempotency-Key, and the
HTTP and NATS plumbing on real parts (both databases, the session's nats-server)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import nats
import orjson
import pytest
from harness import signin
from service_parts import (
    COMMANDS,
    Count,
    CountAgainstAnother,
    CountGuarded,
    CountSlowly,
    OpenTally,
    Tally,
)

from shared.auth.gate import OPEN
from shared.bus.naming import Naming
from shared.contracts.envelope import Context
from shared.service import idempotency
from shared.service.application import ATTEMPTS, CommandService
from shared.service.http import CommandRoute, ViewRoute, _our_headers, build_app
from shared.service.nats import build_broker, start
from shared.service.replies import Refused, parse
from shared.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")

CST = timezone(timedelta(hours=8))
AT = datetime(2020, 2, 10, 9, tzinfo=CST)


def count(n: int = 1, tally: str = "tally:a") -> Count:
    return Count(tally=tally, n=n, counted_at=AT)


async def opened(service: CommandService, tally: str = "tally:a") -> None:
    reply = await service.execute(OpenTally(tally=tally, opened_at=AT), Context())
    assert reply.status == 201, reply.json()


# -- the one error shape -------------------------------------------------------------------


def refusal(model: type, raw: bytes, **path: str) -> object:
    with pytest.raises(Refused) as refused:
        parse(model, raw, **path)
    return refused.value.reply.json()


async def test_invalid_input_names_the_field() -> None:
    assert (
        refusal(Count, b'{"tally":"tally:a","n":0,"counted_at":"2020-02-10T09:00:00+08:00"}')[
            "field"
        ]
        == "n"
    )
    assert refusal(Count, b'{"tally":"tally:a","n":"1"}')["field"] in ("n", "counted_at")
    naive = refusal(Count, b'{"tally":"tally:a","n":1,"counted_at":"2020-02-10T09:00:00"}')
    assert naive["status"] == 422 and naive["field"] == "counted_at"
    assert refusal(Count, b"{not json")["field"] == "body"
    assert refusal(Count, b"[]", tally="tally:a")["field"] == "body"
    taken = refusal(Count, b'{"tally":"tally:b"}', tally="tally:a")
    assert taken == {"status": 422, "error": "tally is taken from the path", "field": "tally"}


async def test_a_bad_item_in_a_tuple_is_named_not_the_tuple() -> None:
    from shared.contracts.types import AidItem
    from shared.service.commands import Command

    class Deliver(Command):
        items: tuple[AidItem, ...]

    good = b'{"kind":"medicine","quantity":"1","unit":"box"}'
    raw = b'{"items":[%s,{"kind":"food","quantity":1.5,"unit":"kg"}]}' % good
    assert refusal(Deliver, raw)["field"] == "items.1.quantity"


# -- the commit loop -----------------------------------------------------------------------


async def test_a_command_stores_its_events_and_answers(tally: CommandService) -> None:
    await opened(tally)
    reply = await tally.execute(count(3), Context(actor="worker:w1"))
    assert (reply.status, reply.json()) == (200, {"tally": "tally:a", "total": 3, "version": 2})
    [_, counted] = await tally.store.load("tally:a")
    assert counted.actor == "worker:w1" and counted.occurred_at == AT
    assert (await tally.view(Tally, "tally:a")).json() == reply.json()


async def test_a_rule_a_guard_or_an_unknown_aggregate_stores_nothing(
    tally: CommandService,
) -> None:
    await opened(tally)
    broken = await tally.execute(count(11), Context())
    assert broken.json() == {
        "status": 409,
        "error": "tally:a would pass ten",
        "rule": "tally_caps_at_ten",
    }
    guarded = await tally.execute(CountGuarded(tally="tally:a", n=1, counted_at=AT), Context())
    assert guarded.json() == {"status": 409, "error": "the guard said no", "rule": "guarded"}
    missing = await tally.execute(count(tally="tally:x"), Context())
    assert missing.json() == {"status": 404, "error": "tally:x not found", "resource": "tally:x"}
    assert (await tally.view(Tally, "nope:x")).status == 404
    assert await tally.store.head() == 1


async def test_a_decision_on_a_stale_version_is_decided_again(tally: CommandService) -> None:
    await opened(tally)
    slow = CountSlowly(tally="tally:a", n=2, counted_at=AT)
    replies = await asyncio.gather(*(tally.execute(slow, Context()) for _ in range(2)))
    # Both loaded version 1; the second's append met version 2, so it decided again on it.
    assert sorted(r.json()["total"] for r in replies) == [2, 4]
    assert await tally.store.head() == 3


async def test_a_decision_stale_every_time_is_a_409_naming_the_conflict(
    tally: CommandService,
) -> None:
    await opened(tally)
    contested = CountAgainstAnother(tally="tally:a", n=1, counted_at=AT)
    reply = await tally.execute(contested, Context())
    assert reply.status == 409 and reply.json()["rule"] == "concurrency_conflict", reply.json()
    assert "tally:a" in reply.json()["error"]
    # Decided again on each newer version, ATTEMPTS times; only the other writer's counts
    # were stored.
    history = await tally.store.load("tally:a")
    assert [e.actor for e in history[1:]] == ["worker:other"] * ATTEMPTS


async def test_a_retried_key_gets_the_first_answer_and_stores_nothing(
    tally: CommandService,
) -> None:
    await opened(tally)
    first = await tally.execute(count(9), Context(), key="k-1")
    # The retry would now break the rule (9 + 9 > 10): the key's answer wins over the rule.
    again = await tally.execute(count(9), Context(), key="k-1")
    assert first == again
    other = await tally.execute(count(1), Context(), key="k-1")
    assert (other.status, other.json()["field"]) == (422, "Idempotency-Key")
    racing = await asyncio.gather(
        *(tally.execute(count(1), Context(), key="k-2") for _ in range(6))
    )
    assert len(set(racing)) == 1 and racing[0].status == 200
    assert await tally.store.head() == 3


async def test_a_key_fingerprints_the_raw_request(tally: CommandService) -> None:
    """The transports fingerprint the JSON received (`idempotency.raw_fingerprint`)."""
    await opened(tally)
    body = orjson.dumps({"tally": "tally:a", "n": 2, "counted_at": AT.isoformat()})
    raw = idempotency.raw_fingerprint(Count, body, {})
    first = await tally.execute(count(2), Context(), "k-raw", raw)
    assert first.status == 200
    assert await tally.execute(count(2), Context(), "k-raw", raw) == first
    # Keys in another order, or an identifier from the path instead of the body: the same.
    reordered = orjson.dumps({"counted_at": AT.isoformat(), "n": 2})
    assert idempotency.raw_fingerprint(Count, reordered + b" ", {"tally": "tally:a"}) == raw
    # Another body, or the same body for another resource of the path: another request.
    other = idempotency.raw_fingerprint(Count, reordered, {"tally": "tally:b"})
    refused = await tally.execute(count(2), Context(), "k-raw", other)
    assert (refused.status, refused.json()["field"]) == (422, "Idempotency-Key")
    assert await tally.store.head() == 2


async def test_concurrent_requests_share_transactions_each_answered_as_if_alone(
    tally: CommandService,
) -> None:
    """One durable flush per request would cap a service at the disk's flush rate: decisions
    queued meanwhile commit together, and a refusal in the group refuses only its request."""
    for n in range(40):
        await opened(tally, f"tally:{n}")
    transactions = 0
    write = tally.db.write

    def counted() -> Any:
        nonlocal transactions
        transactions += 1
        return write()

    tally.db.write = counted  # type: ignore[method-assign]
    try:
        commands: list[Count] = [count(2, f"tally:{n}") for n in range(40)]
        commands[7] = count(11, "tally:7")  # breaks the rule in its handler
        commands[20] = CountGuarded(tally="tally:20", n=1, counted_at=AT)  # refused in-group
        commands[30] = count(1, "tally:30")
        commands.append(count(1, "tally:30"))  # the same tally twice in one group
        replies = await asyncio.gather(*(tally.execute(c, Context()) for c in commands))
    finally:
        tally.db.write = write  # type: ignore[method-assign]
    assert replies[7].json()["rule"] == "tally_caps_at_ten"
    assert replies[20].json()["rule"] == "guarded"
    assert sorted([replies[30].json()["total"], replies[40].json()["total"]]) == [1, 2]
    assert [r.status for i, r in enumerate(replies) if i not in (7, 20)] == [200] * 39
    assert transactions < len(commands) // 2
    assert await tally.store.head() == 40 + 39


# -- HTTP and NATS plumbing ----------------------------------------------------------------


def app(service: CommandService) -> httpx.AsyncClient:
    routes = [
        CommandRoute("/tallies", OpenTally, "Open a tally"),
        CommandRoute("/tallies/{tally}/count", Count, "Count", "tally"),
        CommandRoute("/crash", COMMANDS["Crash"], "A handler bug"),
    ]
    gate = signin.gate()
    application = build_app(
        service, routes, [ViewRoute("/tallies/{id}", Tally)], title="t", description="t", gate=gate
    )
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application, raise_app_exceptions=False),
        base_url="http://localhost",
        headers=signin.bearer(signin.grant(gate, "administrator", actor="volunteer:v1")),
    )


async def test_over_http_headers_paths_and_a_bug_keep_the_shape(tally: CommandService) -> None:
    async with app(tally) as http:
        made = await http.post("/tallies", json={"tally": "tally:a", "opened_at": AT.isoformat()})
        assert made.status_code == 201
        body = {"n": 2, "counted_at": AT.isoformat()}
        # Who did it is the token's, whatever a header claims.
        counted = await http.post(
            "/tallies/tally:a/count", json=body, headers={"Kapok-Actor": "worker:forged"}
        )
        assert counted.json()["total"] == 2
        long_key = await http.post(
            "/tallies/tally:a/count", json=body, headers={"Idempotency-Key": "k" * 201}
        )
        assert (long_key.status_code, long_key.json()["field"]) == (422, "Idempotency-Key")
        bug = await http.post("/crash", json={})
        assert bug.status_code == 500
        assert bug.json() == {"status": 500, "error": "internal error: nothing was stored"}
        assert (await http.get("/tallies/tally:a")).json()["version"] == 2
        schema = (await http.get("/openapi.json")).json()
        assert "tally" not in schema["components"]["schemas"]["CountBody"]["properties"]
    [counted_event] = (await tally.store.load("tally:a"))[1:]
    assert counted_event.actor == "volunteer:v1"


async def test_over_nats_in_a_queue_group_that_never_stops_reconnecting(
    tally: CommandService, settings: Settings
) -> None:
    naming = Naming.of(settings)
    broker = build_broker(settings.nats_url, tally, OPEN, naming, COMMANDS)
    await start(broker)
    # nats-py's default gives up after 60 reconnect attempts; a service must not.
    assert broker.connection.options["max_reconnect_attempts"] == -1
    nc = await nats.connect(settings.nats_url)
    try:

        async def ask(command: str, body: object) -> dict[str, object]:
            reply = await nc.request(
                naming.command_subject("tally", command), orjson.dumps(body), timeout=10
            )
            return orjson.loads(reply.data)  # type: ignore[no-any-return]

        made = await ask("OpenTally", {"tally": "tally:a", "opened_at": AT.isoformat()})
        assert made == {"status": 201, "result": {"tally": "tally:a", "total": 0, "version": 1}}
        refused = await ask("Count", {"tally": "tally:a", "n": 11, "counted_at": AT.isoformat()})
        assert refused["rule"] == "tally_caps_at_ten"
        assert await ask("Crash", {}) == {
            "status": 500,
            "error": "internal error: nothing was stored",
        }
    finally:
        await nc.close()
        await broker.stop()


async def test_http_reads_the_first_of_each_of_its_headers_whatever_else_is_sent() -> None:
    """As Starlette's case-insensitive `Headers.get` would (ASGI names come lower case)."""
    raw = [
        (b"host", b"x"),
        (b"authorization", b"Bearer a"),
        (b"idempotency-key", b"k\xe9"),
        (b"authorization", b"Bearer b"),
    ]
    assert _our_headers(raw) == {"authorization": "Bearer a", "idempotency-key": "k\u00e9"}
    assert _our_headers([(b"content-type", b"application/json")]) == {}
