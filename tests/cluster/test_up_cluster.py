"""`kapok up --cluster 3`: three nats-servers as one JetStream cluster and two instances of
each service, on one machine. The 2020 scenario played through it while one nats-server node
and one instance of each service are killed with -9: `kapok up` restarts them, and the
report, the auditor's replay and the streams all come out exact."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from harness.databases import for_kapok_up
from sqlalchemy.engine import make_url

# The fault stories' helpers (`kapok up`, the scenario, the proof), found beside them.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "up"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "faults"))
from fault_parts import Play, assert_exact, bus, said, sqlite_stores, status
from up_parts import Up, free_port, wait_until

from kapok.cli import SERVABLE
from kapok.cluster import SECOND_INSTANCE_OFFSET
from shared.bus.auth import ADMIN
from shared.bus.embedded import port_is_free
from shared.bus.naming import Naming
from shared.settings import PRODUCERS

pytestmark = pytest.mark.timeout(300)
NODES = ("nats-1", "nats-2", "nats-3")


def pair_of_ports() -> int:
    """A free port whose second instance's port is free too."""
    while True:
        port = free_port()
        if port_is_free(port + SECOND_INSTANCE_OFFSET):
            return port


def answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=2).is_success
    except httpx.HTTPError:
        return False


def stores(up: Up, database: list[str]) -> dict[str, str]:
    """Each producer's event store, where both its instances write."""
    if not database:
        return sqlite_stores(up)
    base = make_url(database[1])
    return {s: base.set(database=f"{base.database}_{s}").render_as_string(False) for s in PRODUCERS}


def node_pid(up: Up, node: str) -> int:
    return int(up.pids()["nats_nodes"][node]["pid"])


async def replicas(up: Up) -> dict[str, tuple[int, int]]:
    """Each stream's replicas as configured, and how many of its peers are current."""
    out: dict[str, tuple[int, int]] = {}
    async with bus(up, ADMIN) as nc:
        js = nc.jetstream()
        for source in PRODUCERS:
            info = await js.stream_info(Naming().stream(source))
            assert info.cluster is not None
            current = 1 + sum(1 for peer in info.cluster.replicas or [] if peer.current)
            out[source] = (int(info.config.num_replicas or 0), current)
    return out


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest) -> AsyncIterator[list[str]]:
    """`kapok up`'s flags for its databases: the SQLite files both instances of a service
    share, or `--postgres URL` (a database per service, both instances on it), dropped after."""
    async with for_kapok_up(request.param, SERVABLE) as url:
        yield [] if url is None else ["--postgres", url]


def test_the_scenario_on_three_nodes_survives_a_node_and_an_instance_killed(
    tmp_path: Path, database: list[str]
) -> None:
    ports = {name: pair_of_ports() for name in SERVABLE}
    up = Up(tmp_path / "state", ports, "up.log", "--cluster", "3", *database)
    try:
        up.wait_ready()
        for name, port in ports.items():
            second = port + SECOND_INSTANCE_OFFSET
            wait_until(f"{name}-2 answers", lambda p=second: answers(p), 90, up)
        log = said(up)
        assert "JetStream cluster of 3: streams and KV buckets with 3 replicas" in log
        # `kapok status`: a row per node and per instance, the cluster's name in each node's.
        rows = status(up)
        assert {*NODES, *ports, *(f"{n}-2" for n in ports)} <= rows.keys(), rows.keys()
        assert all(rows[node].status == "ok" for node in NODES), [r.lines() for r in rows.values()]
        assert asyncio.run(replicas(up)) == {source: (3, 3) for source in PRODUCERS}

        # At most 3 days a second: a fast machine must not end the scenario before the kills.
        play = Play(up, seed=7, speed=3.0)
        play.reaches(8)
        # A node killed outright: the streams keep their quorum on the other two, the
        # services connected to it fail over, and `kapok up` starts it again on its store.
        os.kill(node_pid(up, "nats-2"), signal.SIGKILL)
        wait_until("nats-2 restarted", lambda: "nats-2 restarted" in said(up), 60, up)
        play.reaches(20)
        # One instance of each service killed outright: the simulator retries what the
        # hotline's (which it sends to) did not answer until `kapok up` has restarted it; the
        # other instance holds or takes over the relay's, the consumer's or the fold's lease.
        killed = ["hotline", "aid-2", "donation-2", "reporting", "people-2"]
        pids = up.pids()["services"]
        for instance in killed:
            os.kill(int(pids[instance]), signal.SIGKILL)
        play.finish()
        for instance in killed:
            assert f"{instance} exited with code -9; restarting" in said(up), instance

        # No instance failed at its start (two making a fresh database's tables at once did).
        assert "exited with code 1" not in said(up)
        lengths = assert_exact(up, stores(up, database))
        assert all(n > 0 for n in lengths.values()), lengths
        # The restarted node caught up: every replica current again.
        wait_until(
            "every stream's three replicas current",
            lambda: asyncio.run(replicas(up)) == {s: (3, 3) for s in PRODUCERS},
            60,
            up,
        )
        assert up.ctrl_c() == 0, up.log()
        assert "the 3 nats-servers stopped" in said(up)
    finally:
        if up.proc.poll() is None:
            os.killpg(up.proc.pid, signal.SIGKILL)


async def test_a_comma_separated_nats_url_reaches_whichever_node_runs(tmp_path: Path) -> None:
    from shared.bus.embedded import EmbeddedNats
    from shared.runtime import connect, disconnect
    from shared.settings import Settings

    dead = free_port()  # nothing listens there: the first URL of the list fails
    async with EmbeddedNats(tmp_path, port=0) as server:
        settings = Settings(nats_url=f"nats://127.0.0.1:{dead}, {server.url}")
        for _ in range(3):  # nats-py shuffles the list: the dead one comes first sometimes
            nc = await connect(settings, "probe")
            assert nc.connected_url is not None and nc.connected_url.port == server.port
            await disconnect(nc)
