"""`kapok serve donation` as an operator runs it: one process that provisions the streams,
serves HTTP and NATS, relays events, draws aid deliveries from campaign stock, and stops on
Ctrl-C."""

from __future__ import annotations

from pathlib import Path

import httpx
import nats
import orjson
import pytest
from donation_stories import at, campaign_body, receipt_body
from harness import parts, processes
from harness.processes import ADMIN

from shared.bus.naming import Naming
from shared.contracts.aid import AidDelivered
from shared.contracts.envelope import Context, NewEvent
from shared.contracts.types import AidItem, Place
from shared.relay import OutboxRelay
from shared.runtime import provision
from shared.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_serve_donation_runs_http_nats_the_relay_and_the_delivery_consumer(
    settings: Settings, tmp_path: Path
) -> None:
    port = processes.free_port()
    env = processes.serve_env(settings, tmp_path)
    process = await processes.serve("donation", env, tmp_path / "serve.log", port)
    base = f"http://127.0.0.1:{port}"
    naming = Naming.of(settings)
    nc = await nats.connect(settings.nats_url)
    aid = await parts.sqlite_store(tmp_path, "aid")
    try:
        async with httpx.AsyncClient(base_url=base, headers=ADMIN) as client:
            await processes.until_answering(client, process)
            launched = await client.post("/campaigns", json=campaign_body())
            assert launched.status_code == 201, launched.text
            campaign = launched.json()["campaign"]
            reply = await nc.request(
                naming.command_subject("donation", "ReceiveGoods"),
                orjson.dumps({"campaign": campaign, **receipt_body()}),
                timeout=10,
                headers=ADMIN,
            )
            assert orjson.loads(reply.data)["status"] == 201

            await provision(nc, settings)
            item = {"kind": "meals", "quantity": "3", "unit": "meal", "campaign": campaign}
            delivery = AidDelivered(
                request="request:serve",
                delivery="delivery:serve",
                person="person:p1",
                group="elderly_alone",
                place=Place(
                    district="yuexiu",
                    street="北京街",
                    station="station:beijing-road",
                    organisation="org:yuexiu-sw",
                ),
                items=(AidItem.model_validate(item),),
                persons_served=3,
            )
            await aid.append(
                "request:serve", 0, [NewEvent(delivery, at(90))], Context("worker:w17")
            )
            await OutboxRelay(aid, nc, naming).publish_pending()

            async def drawn() -> bool:
                stock = (await client.get(f"/campaigns/{campaign}/stock")).json()
                return bool(stock["stock"][0]["quantity"] == "497")

            await processes.wait_for("the delivery drew three lunches from the stock", drawn)

        js = nc.jetstream()

        async def relayed() -> bool:
            return (await js.stream_info(naming.stream("donation"))).state.messages == 3

        await processes.wait_for("the relay published launch, receipt and draw", relayed, 10)
    finally:
        await nc.close()
        await aid.db.dispose()
        code = await processes.stop(process)
    assert code == 0, (tmp_path / "serve.log").read_text()
    assert (tmp_path / "donation.db").exists()
