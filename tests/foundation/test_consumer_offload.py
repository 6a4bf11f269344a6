"""The consumer runner with an offload: batches decoded and prepared in a worker process.

Each row the stories' handler writes names the process that prepared it, so a story sees
which batches the worker took and which the runner applied itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import nats
import orjson
import pytest
from harness.calls import calls, published
from harness.processes import alive, descendants
from harness.waits import until_now
from sqlalchemy import Column, Integer, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.bus.naming import Naming
from shared.consumer import ConsumerRunner
from shared.contracts import Context, Envelope
from shared.contracts.envelope import seal
from shared.eventstore import Database, EventStore
from shared.offload import Offload
from shared.relay import OutboxRelay

state = MetaData()
applied = Table(
    "applied_calls_by",
    state,
    Column("position", Integer, primary_key=True),
    Column("call", String(64), nullable=False),
    Column("pid", Integer, nullable=False),  # the process that decoded and prepared it
)
TRAP = 777  # the position neither `handler_with_a_bug` nor `prepare_with_a_bug` can apply


def prepare(events: list[Envelope[Any]]) -> tuple[int, list[tuple[int, str]]]:
    """Runs in the worker: what `write` will insert."""
    return os.getpid(), [(e.position, e.data.call) for e in events]


def prepare_with_a_bug(events: list[Envelope[Any]]) -> tuple[int, list[tuple[int, str]]]:
    if any(e.position == TRAP for e in events):
        raise ValueError(f"a bug at position {TRAP}")
    return prepare(events)


async def write(conn: AsyncConnection, prepared: tuple[int, list[tuple[int, str]]]) -> None:
    pid, rows = prepared
    await conn.execute(applied.insert(), [{"position": p, "call": c, "pid": pid} for p, c in rows])


async def handler(conn: AsyncConnection, events: Sequence[Envelope[Any]]) -> None:
    """The same, in the runner's process."""
    await write(conn, (os.getpid(), [(e.position, e.data.call) for e in events]))


async def handler_with_a_bug(conn: AsyncConnection, events: Sequence[Envelope[Any]]) -> None:
    if any(e.position == TRAP for e in events):
        raise ValueError(f"a bug at position {TRAP}")
    await handler(conn, events)


async def rows(db: Database) -> list[tuple[int, int]]:
    """(position, preparing process) of every applied event, in order."""
    async with db.read() as conn:
        result = await conn.execute(select(applied.c.position, applied.c.pid).order_by("position"))
        return [(int(p), int(pid)) for p, pid in result]


async def runner_on(db: Database, nc: nats.NATS, naming: Naming, **kw: Any) -> ConsumerRunner:
    await db.create_schema(state)
    offload = Offload(prepare=kw.pop("prepare", prepare), write=kw.pop("write", write),
                      sources=frozenset({"hotline"}), min_batch=kw.pop("min_batch", 1))  # fmt: skip
    runner = ConsumerRunner(
        nc=nc, db=db, naming=naming, name="reporting", sources=["hotline"],
        handler=kw.pop("handler", handler), offload=offload, retry_delay=0.01, **kw,
    )  # fmt: skip
    await runner.setup()
    return runner


async def test_the_worker_prepares_each_batch_once_in_order_with_its_checkpoint(
    store: EventStore, nc: nats.NATS, naming: Naming, reporting_db: Database
) -> None:
    await published(store, nc, naming, 2000)
    runner = await runner_on(reporting_db, nc, naming, batch=250)
    await runner.start_worker()

    assert await runner.drain("hotline") == 2000

    applied_rows = await rows(reporting_db)
    assert [p for p, _ in applied_rows] == list(range(1, 2001))
    assert {pid for _, pid in applied_rows} - {os.getpid()}, "the worker prepared none"
    assert os.getpid() not in {pid for _, pid in applied_rows}
    assert runner.stats["hotline"].checkpoint == 2000
    assert runner.stats["hotline"].applied == 2000
    runner.close()
    await reporting_db.dispose()


async def test_small_batches_and_those_before_the_worker_is_ready_are_applied_in_process(
    store: EventStore, nc: nats.NATS, naming: Naming, reporting_db: Database
) -> None:
    await published(store, nc, naming, 300)
    runner = await runner_on(reporting_db, nc, naming, batch=100, min_batch=150)
    await runner.start_worker()

    await runner.drain("hotline")

    assert await rows(reporting_db) == [(p, os.getpid()) for p in range(1, 301)]
    runner.close()
    await reporting_db.dispose()


async def test_redelivered_events_are_skipped_and_the_fresh_rest_of_their_batch_applied_once(
    store: EventStore, nc: nats.NATS, naming: Naming, reporting_db: Database
) -> None:
    await published(store, nc, naming, 500)
    first = await runner_on(reporting_db, nc, naming, batch=300)
    await first.start_worker()
    await first.drain("hotline")
    first.close()
    # Everything delivered again from the start, as to a consumer whose acks were lost, and
    # 300 events more: one batch holds both old and new ones.
    await store.append_all(calls(500, 300), Context())
    await OutboxRelay(store, nc, naming).publish_pending()
    js = nc.jetstream()
    await js.delete_consumer(naming.stream("hotline"), "reporting")
    await js.add_consumer(naming.stream("hotline"), first._consumer_config(start=1))

    again = await runner_on(reporting_db, nc, naming, batch=300)
    await again.start_worker()
    await again.drain("hotline")

    applied_rows = await rows(reporting_db)
    assert [p for p, _ in applied_rows] == list(range(1, 801))
    assert again.stats["hotline"].skipped == 500 and again.stats["hotline"].applied == 300
    assert again.stats["hotline"].prepared_elsewhere > 0
    again.close()
    await reporting_db.dispose()


async def test_a_batch_the_worker_fails_is_applied_in_process_and_the_culprit_dead_lettered(
    store: EventStore,
    nc: nats.NATS,
    naming: Naming,
    reporting_db: Database,
    last_dead_letter: Callable[[], Awaitable[dict[str, Any]]],
) -> None:
    await published(store, nc, naming, 1000)
    runner = await runner_on(
        reporting_db, nc, naming, batch=250, prepare=prepare_with_a_bug, handler=handler_with_a_bug
    )
    await runner.start_worker()

    await runner.drain("hotline")

    applied_rows = dict(await rows(reporting_db))
    assert sorted(applied_rows) == [p for p in range(1, 1001) if p != TRAP]
    # The trap's batch in this process, event by event; the others by the worker.
    here = sorted({p for p, pid in applied_rows.items() if pid == os.getpid()} | {TRAP})
    assert here == list(range(here[0], here[-1] + 1)) and len(here) > 1
    assert len(here) < 1000, "the worker prepared none"
    assert runner.stats["hotline"].dead_letters == 1
    letter = await last_dead_letter()
    assert letter["stream_seq"] == TRAP and f"a bug at position {TRAP}" in letter["reason"]
    runner.close()
    await reporting_db.dispose()


async def test_an_event_out_of_its_place_in_a_worker_batch_is_dead_lettered(
    store: EventStore,
    nc: nats.NATS,
    naming: Naming,
    reporting_db: Database,
    last_dead_letter: Callable[[], Awaitable[dict[str, Any]]],
) -> None:
    await published(store, nc, naming, 600)
    js = nc.jetstream()
    fifth = await js.get_msg(naming.stream("hotline"), seq=5)
    await js.publish(fifth.subject, fifth.data)  # a valid event, again, at sequence 601
    runner = await runner_on(reporting_db, nc, naming, batch=250)
    await runner.start_worker()

    await runner.drain("hotline")

    assert [p for p, _ in await rows(reporting_db)] == list(range(1, 601))
    assert runner.stats["hotline"].dead_letters == 1
    assert runner.stats["hotline"].checkpoint == 601
    letter = await last_dead_letter()
    assert letter["stream_seq"] == 601 and "not from the hotline outbox" in letter["reason"]
    runner.close()
    await reporting_db.dispose()


async def test_a_worker_killed_half_way_is_replaced_and_nothing_is_lost_or_doubled(
    store: EventStore, nc: nats.NATS, naming: Naming, reporting_db: Database
) -> None:
    await published(store, nc, naming, 3000)
    killed: list[int] = []

    async def write_then_kill(conn: AsyncConnection, prepared: Any) -> None:
        await write(conn, prepared)
        if not killed:
            killed.append(prepared[0])
            os.kill(prepared[0], signal.SIGKILL)  # while it prepares the next batch

    runner = await runner_on(reporting_db, nc, naming, batch=200, write=write_then_kill)
    await runner.start_worker()

    await runner.drain("hotline")

    applied_rows = await rows(reporting_db)
    assert [p for p, _ in applied_rows] == list(range(1, 3001))
    assert killed and any(pid == killed[0] for _, pid in applied_rows)
    assert runner.stats["hotline"].dead_letters == 0
    runner.close()
    await reporting_db.dispose()


class PrepareThatCannotStart:
    """Travels to the worker, and fails there on arrival (as a prepare function whose module
    cannot be imported there would)."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return _cannot_start, ()

    def __call__(self, events: list[Envelope[Any]]) -> Any:
        raise AssertionError("never called")


def _cannot_start() -> None:
    raise RuntimeError("no such module here")


async def test_a_worker_that_cannot_start_leaves_every_batch_to_the_runner(
    store: EventStore,
    nc: nats.NATS,
    naming: Naming,
    reporting_db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await published(store, nc, naming, 600)
    runner = await runner_on(reporting_db, nc, naming, batch=100, prepare=PrepareThatCannotStart())
    with pytest.raises(Exception):  # noqa: B017 (whatever the pool makes of it)
        await runner.start_worker()

    await runner.drain("hotline")

    assert await rows(reporting_db) == [(p, os.getpid()) for p in range(1, 601)]
    assert [r.message for r in caplog.records if "cannot start" in r.message] == [
        "offload: the worker cannot start; batches are applied in process"
    ]
    runner.close()
    await reporting_db.dispose()


def test_the_worker_ends_when_the_runners_process_is_killed() -> None:
    script = textwrap.dedent(
        """
        import asyncio, os
        from shared.offload import Worker

        async def main():
            worker = Worker(len)
            await worker.ready()
            print(os.getpid(), flush=True)
            await asyncio.sleep(600)

        asyncio.run(main())
        """
    )
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )  # fmt: skip
    assert process.stdout is not None
    parent = int(process.stdout.readline())
    workers = descendants(parent)
    assert workers, "no worker process was started"

    process.kill()
    process.wait(timeout=10)

    def gone() -> bool:
        return not any(alive(pid) for pid in workers)

    until_now("the worker ended with the runner's process", gone, 10)


async def test_an_event_that_breaks_the_chain_in_a_worker_batch_is_dead_lettered(
    store: EventStore,
    nc: nats.NATS,
    naming: Naming,
    reporting_db: Database,
    last_dead_letter: Callable[[], Awaitable[dict[str, Any]]],
) -> None:
    await published(store, nc, naming, 600)
    js = nc.jetstream()
    fifth = orjson.loads((await js.get_msg(naming.stream("hotline"), seq=5)).data)
    fifth.update(position=601)  # in its place, sealed, but linked to event 4
    await js.publish(naming.event_subject("hotline", "CallReceived"), seal(fifth))
    runner = await runner_on(reporting_db, nc, naming, batch=250)
    await runner.start_worker()

    await runner.drain("hotline")

    assert [p for p, _ in await rows(reporting_db)] == list(range(1, 601))
    assert runner.stats["hotline"].prepared_elsewhere >= 500
    assert runner.stats["hotline"].chain_breaks == 1
    assert (await last_dead_letter())["reason"].startswith("chain broken")
    runner.close()
    await reporting_db.dispose()
