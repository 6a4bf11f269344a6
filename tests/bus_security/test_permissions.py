"""Each identity on a bus configured as `kapok up` configures it: every forbidden action is
refused by the server with a permission violation, and what the identity needs works."""

from __future__ import annotations

import json
from pathlib import Path

import nats
import pytest
from bus_parts import Identity, SecuredBus
from nats.js import api

from services.reporting.audit import replay_consumer
from shared.bus.auth import ADMIN, AUDITOR, Keyring
from shared.settings import PRODUCERS

OTHER = {"hotline": "aid", "aid": "donation", "donation": "hotline"}
SERVICES = [*PRODUCERS, "reporting"]
EVERYONE = [*SERVICES, ADMIN, AUDITOR]
VIOLATION = "permissions violation"  # as nats-py hands the server's -ERR on, lower case
JS = "$JS.API"


async def refused_publish(who: Identity, subject: str, body: bytes = b"{}") -> None:
    refusal = await who.refused(lambda: who.nc.publish(subject, body))
    assert f'{VIOLATION} for publish to "{subject.lower()}"' in refusal, refusal


async def refused_subscribe(who: Identity, subject: str, queue: str = "") -> None:
    refusal = await who.refused(lambda: who.nc.subscribe(subject, queue=queue))
    assert f'{VIOLATION} for subscription to "{subject.lower()}"' in refusal, refusal


async def answer(who: Identity, subject: str, body: dict[str, object] | None = None) -> dict:
    reply = await who.nc.request(subject, json.dumps(body or {}).encode(), timeout=2)
    return json.loads(reply.data)


async def test_nobody_gets_in_without_a_known_key(secured: SecuredBus, tmp_path: Path) -> None:
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(secured.url, allow_reconnect=False, max_reconnect_attempts=0)
    stranger = Keyring.of(tmp_path)  # a key of the right kind that the server does not know
    stranger.ensure(["hotline"])
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(
            secured.url,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            nkeys_seed=str(stranger.seed_path("hotline")),
        )


@pytest.mark.parametrize("identity", [*SERVICES, AUDITOR])
async def test_only_the_administrator_creates_updates_deletes_or_purges_a_stream(
    secured: SecuredBus, identity: str
) -> None:
    async with secured.connect(identity) as who:
        for stream in ("HOTLINE", "AID", "DONATION", "DEADLETTER", "KV_REPORTING_TOTALS"):
            for op in ("UPDATE", "DELETE", "PURGE"):
                await refused_publish(who, f"{JS}.STREAM.{op}.{stream}")
        await refused_publish(who, f"{JS}.STREAM.CREATE.FORGED")
        # What the 2020 attack did with an anonymous connection: shrink a stream to 5.
        js = who.nc.jetstream()
        config = api.StreamConfig(name="HOTLINE", subjects=["kapok.hotline.*"], max_msgs=5)
        await refused_publish(
            who, f"{JS}.STREAM.UPDATE.HOTLINE", json.dumps(config.as_dict()).encode()
        )
        assert (await js.stream_info("HOTLINE")).config.max_msgs in (-1, None)


async def test_the_administrator_may_make_and_remove_a_stream_but_not_serve_commands(
    secured: SecuredBus,
) -> None:
    async with secured.connect(ADMIN) as admin:
        js = admin.nc.jetstream()
        await admin.allowed(lambda: js.add_stream(name="SCRATCH", subjects=["scratch.>"]))
        await admin.allowed(lambda: js.delete_stream("SCRATCH"))
        for service in PRODUCERS:
            await refused_subscribe(admin, f"kapok.{service}.cmd.>")
            await refused_subscribe(admin, f"kapok.{service}.cmd.RecordCall", queue=service)
            await refused_subscribe(admin, f"_INBOX.{service}.>")


@pytest.mark.parametrize("identity", [*SERVICES, AUDITOR])
async def test_nobody_writes_another_s_history(secured: SecuredBus, identity: str) -> None:
    async with secured.connect(identity) as who:
        for source in PRODUCERS:
            if source != identity:
                await refused_publish(who, f"kapok.{source}.CallReceived")
        await refused_publish(
            who,
            "kapok.deadletter.reporting"
            if identity != "reporting"
            else "kapok.deadletter.aid-referrals",
        )


@pytest.mark.parametrize("identity", EVERYONE)
async def test_nobody_but_a_service_takes_its_commands_or_reads_another_s_inbox(
    secured: SecuredBus, identity: str
) -> None:
    async with secured.connect(identity) as who:
        await refused_subscribe(who, "kapok.>")
        await refused_subscribe(who, ">")
        for service in PRODUCERS:
            if service != identity:
                await refused_subscribe(who, f"kapok.{service}.cmd.>")
                await refused_subscribe(who, f"kapok.{service}.cmd.RecordCall", queue=service)
        for other in EVERYONE:
            if other != identity:
                await refused_subscribe(who, f"_INBOX.{other}.>")
        await refused_subscribe(who, "_INBOX.>")


@pytest.mark.parametrize("identity", [*PRODUCERS, AUDITOR])
async def test_nobody_reads_or_moves_another_s_durable(secured: SecuredBus, identity: str) -> None:
    async with secured.connect("reporting") as reporting:
        js = reporting.nc.jetstream()
        durable = api.ConsumerConfig(durable_name="reporting", ack_policy=api.AckPolicy.ALL)
        await reporting.allowed(lambda: js.add_consumer("HOTLINE", durable))
    async with secured.connect(identity) as who:
        for op in ("INFO", "DELETE", "MSG.NEXT"):
            await refused_publish(who, f"{JS}.CONSUMER.{op}.HOTLINE.reporting")
        await refused_publish(who, f"{JS}.CONSUMER.CREATE.HOTLINE.reporting")
        # Unnamed, the name would come from the body: a way to rewrite reporting's durable.
        await refused_publish(who, f"{JS}.CONSUMER.CREATE.HOTLINE")
        await refused_publish(who, f"{JS}.CONSUMER.DURABLE.CREATE.HOTLINE.reporting")
        await refused_publish(who, "$JS.ACK.HOTLINE.reporting.1.1.1.1.0")


async def test_a_service_publishes_its_own_events_and_answers_its_commands(
    secured: SecuredBus,
) -> None:
    async with secured.connect("hotline") as hotline, secured.connect(ADMIN) as admin:
        js = hotline.nc.jetstream()
        ack = await hotline.allowed(lambda: js.publish("kapok.hotline.CallReceived", b"{}"))
        assert ack.stream == "HOTLINE"
        await hotline.allowed(lambda: js.get_msg("HOTLINE", ack.seq))

        async def reply(msg: nats.aio.msg.Msg) -> None:
            await msg.respond(b'{"status": 201}')

        subject = "kapok.hotline.cmd.RecordCall"
        await hotline.allowed(lambda: hotline.nc.subscribe(subject, queue="hotline", cb=reply))
        # The requester's inbox is its own: the reply is allowed because it answers a request.
        assert await answer(admin, subject) == {"status": 201}


async def test_a_consumer_runs_its_own_durable_and_dead_letters(secured: SecuredBus) -> None:
    async with secured.connect("hotline") as hotline:
        await hotline.nc.jetstream().publish("kapok.hotline.ReferredToAid", b"{}")
    async with secured.connect("aid") as aid:
        js = aid.nc.jetstream()
        config = api.ConsumerConfig(
            durable_name="aid-referrals",
            filter_subjects=["kapok.hotline.ReferredToAid"],
            ack_policy=api.AckPolicy.ALL,
        )
        await aid.allowed(lambda: js.add_consumer("HOTLINE", config))
        sub = await aid.allowed(lambda: js.pull_subscribe_bind("aid-referrals", stream="HOTLINE"))
        (msg,) = await sub.fetch(1, timeout=2)
        await aid.allowed(msg.ack)
        await aid.allowed(lambda: js.publish("kapok.deadletter.aid-referrals", b"{}"))
        await aid.allowed(lambda: js.consumer_info("HOTLINE", "aid-referrals"))
        await aid.allowed(lambda: js.delete_consumer("HOTLINE", "aid-referrals"))


async def test_reporting_writes_its_totals_bucket_and_nothing_else(secured: SecuredBus) -> None:
    async with secured.connect("reporting") as reporting:
        kv = await reporting.allowed(lambda: reporting.nc.jetstream().key_value("REPORTING_TOTALS"))
        await reporting.allowed(lambda: kv.put("services_given", b"3000"))
        assert (await kv.get("services_given")).value == b"3000"
        await refused_publish(reporting, "$KV.OTHER_BUCKET.services_given")
        await refused_publish(reporting, "kapok.reporting.Anything")


async def test_the_auditor_reads_every_stream_and_changes_nothing(secured: SecuredBus) -> None:
    async with secured.connect("hotline") as hotline:
        seq = (await hotline.nc.jetstream().publish("kapok.hotline.CallReceived", b"{}")).seq
    async with secured.connect(AUDITOR) as auditor:
        js = auditor.nc.jetstream()
        for stream in ("HOTLINE", "AID", "DONATION"):
            await auditor.allowed(lambda s=stream: js.stream_info(s))
        read = replay_consumer()
        info = await auditor.allowed(lambda: js.add_consumer("HOTLINE", read))
        assert info.name == read.name
        sub = await auditor.allowed(lambda: js.pull_subscribe_bind(info.name, stream="HOTLINE"))
        assert (await sub.fetch(1, timeout=2))[0].metadata.sequence.stream == 1
        assert (await auditor.allowed(lambda: js.get_msg("HOTLINE", seq))).seq == seq
        await auditor.allowed(lambda: js.delete_consumer("HOTLINE", info.name))
        await refused_publish(auditor, "kapok.hotline.CallReceived")
