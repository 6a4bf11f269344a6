"""The outbox relay: publishes a source's stored events to its JetStream stream, in order.

Invariant: the stream's sequence number IS the store's position. Each publish carries
``Nats-Expected-Last-Sequence: position - 1``, so the server refuses anything that would
leave a gap or land out of order, and ``Nats-Msg-Id: event_id``, so a retried publish within
the duplicate window is acknowledged as a duplicate instead of stored twice. Publishes are
pipelined (up to `window` chunks in flight, acks gathered on one inbox), a chunk's messages
written at once with an ack asked for its last (which the stream can only hold at its
position if it holds every one before it); progress is written only after that ack.

A running relay (`run`) keeps its progress in memory and writes it down at most every
`save_every` seconds: a write per publish took the store's one writer (and a flush to disk)
once per group commit, as often as the commands themselves. Progress written late is the
case of acks lost before progress was written, which `reconcile` handles at start.

The invariant also makes the bus checkable against the store at any time (`reconcile`):
- stream behind the recorded progress: the bus lost a tail (a crash inside nats-server's
  fsync interval); the relay moves back and publishes the tail again, with the same ids and
  sequence numbers, so consumers that already saw it skip it;
- stream ahead of the progress: acks were lost before progress was written; the relay checks
  the last message is ours and moves forward;
- the stream's message at a position is not the store's event there: the stream belongs to
  another database. The relay stops with `StreamDiverged` rather than mix two histories.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from dataclasses import dataclass

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.errors import Error as JetStreamError
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from shared.bus.naming import Naming
from shared.eventstore.schema import outbox_progress
from shared.eventstore.store import EventStore, StoredBytes

log = logging.getLogger("kapok.relay")


class StreamDiverged(RuntimeError):
    """The stream does not hold this store's history: publishing on would mix two."""


class _ChunkFailed(Exception):
    pass


# Worth another try after a pause; anything else is a bug and ends the relay loudly.
RETRYABLE = (_ChunkFailed, NatsError, JetStreamError, DBAPIError, OSError, TimeoutError)


@dataclass(slots=True)
class RelayStats:
    published: int = 0
    duplicates: int = 0
    republished: int = 0
    failures: int = 0
    progress: int = 0
    head: int = 0
    stream_last: int = 0  # the stream's last sequence when last looked at
    verified: int = 0  # every message up to here was checked to be the store's event there
    stopped: str | None = None  # why the relay stopped, in an operator's words (None: running)

    @property
    def lag(self) -> int:
        return max(0, self.head - self.progress)


class OutboxRelay:
    def __init__(
        self,
        store: EventStore,
        nc: NATS,
        naming: Naming,
        *,
        chunk: int = 5000,
        window: int = 2,
        ack_timeout: float = 10.0,
        poll_interval: float = 0.5,
        reconcile_every: float = 30.0,
        save_every: float = 1.0,
        linger: float = 0.005,
    ) -> None:
        self.store = store
        self.nc = nc
        self.source = store.source
        self.stream = naming.stream(self.source)
        self._subject_prefix = naming.event_subject(self.source, "")
        self.chunk = chunk
        self.window = window
        self.ack_timeout = ack_timeout
        self.poll_interval = poll_interval
        self.reconcile_every = reconcile_every
        self.save_every = save_every
        self.linger = linger
        self._at_head = False  # the last read of `_publish` reached the store's head
        self.stats = RelayStats()
        self._saved = -1  # the progress last written down (-1: not known)
        self._save_due = 0.0  # loop time when `run` writes its progress down next
        self._inbox = nc.new_inbox()
        self._generation = 0
        # A chunk's last position -> its ack: a refusal, or 1 (duplicate) or 0 (stored now).
        self._results: dict[int, str | int] = {}
        self._awaited = 0  # the position whose ack (or any refusal) ends the wait
        self._acked = asyncio.Event()
        self._sub_ready = False

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Publish forever: catch up, then follow new commits. Only `StreamDiverged` ends it."""
        backoff = 0.2
        while True:
            try:
                await self._save_unsaved()
                await self.reconcile()
                loop = asyncio.get_running_loop()
                next_check = loop.time() + self.reconcile_every
                while True:
                    seen = self.store.db.commits
                    # What this process's commits just wrote comes from memory: another
                    # process's events after them wait for the next wake-up.
                    await self._publish(self.stats.progress, save=False, recent=True)
                    if self._at_head:
                        if loop.time() >= self._save_due:
                            await self._save_unsaved()
                        await self.store.db.wait_for_commit(seen, self.poll_interval)
                        # Commits of single commands come hundreds a second: a moment's
                        # wait lets them share one read and one ack.
                        await asyncio.sleep(self.linger)
                    if loop.time() >= next_check:
                        await self._save_unsaved()
                        await self.reconcile()
                        next_check = loop.time() + self.reconcile_every
                    backoff = 0.2
            except StreamDiverged:
                raise
            except (
                _ChunkFailed,
                NatsError,
                JetStreamError,
                DBAPIError,
                OSError,
                TimeoutError,
            ) as error:
                self.stats.failures += 1
                log.warning("relay %s: %s; retrying in %.1fs", self.source, error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def publish_pending(self) -> int:
        """Publish everything stored after the recorded progress; return how many.

        Up to `window` chunks are in flight: the next chunk is read from the store and
        published while the acks of the earlier ones come in, so nats-server never waits for
        the relay. The order holds all the same: each publish expects the previous sequence,
        so once one is refused or lost, every later one is refused too.
        """
        return await self._publish(await self._load_progress(), save=True)

    async def _publish(self, progress: int, *, save: bool, recent: bool = False) -> int:
        """`publish_pending` from ``progress``; the progress is written after each chunk if
        ``save``, else when due (`run`); ``recent``: see `EventStore.read_bytes_from`."""
        await self._subscribe()
        self._generation += 1
        prefix = f"{self._inbox}.{self._generation}."
        self._results = {}
        sent, in_flight, total = progress, collections.deque[int](), 0
        self._at_head = False
        while True:
            while len(in_flight) < self.window and not self._at_head:
                rows = await self.store.read_bytes_from(sent, self.chunk, recent=recent)
                # Short of a chunk: the store's head (as of the read; `run` reads again when
                # a commit follows).
                self._at_head = len(rows) < self.chunk
                if not rows:
                    break
                await self._send(rows, prefix)
                sent = rows[-1].position
                in_flight.append(sent)
            if not in_flight:
                self.stats.head = progress
                return total
            last = in_flight.popleft()
            acked = await self._acked_through(progress, last)
            if acked > progress:
                self.stats.progress = acked
                if save or asyncio.get_running_loop().time() >= self._save_due:
                    await self._save_progress(acked)
                total += acked - progress
                self.stats.published += acked - progress - int(self._results.pop(acked, 0))
                progress = acked
            if acked < last:
                raise _ChunkFailed(self._first_failure(acked))

    # -- pipelined publishing ---------------------------------------------------------------

    async def _send(self, rows: list[StoredBytes], prefix: str) -> None:
        """The chunk as one write of protocol frames, an ack asked for its last message only.

        nats-py's `publish` per message and an ack (a message through nats-py's subscription
        machinery) per message were most of the relay's cost, which the relay takes from the
        commands of its process. One ack per chunk says as much: each message expects the
        sequence before it, so the last one is stored at its position only if every one
        before it is there, and after a refusal every later one is refused too.
        """
        nc = self.nc
        if not nc.is_connected or max(len(row.body) for row in rows) > nc.max_payload:
            await self._send_each(rows, prefix)  # nats-py buffers while reconnecting, or refuses
            return
        subject_prefix = self._subject_prefix
        frames: list[bytes] = []
        last = rows[-1].position
        for row in rows:
            headers = (
                f"NATS/1.0\r\nNats-Msg-Id: {row.event_id}\r\n"
                f"Nats-Expected-Last-Sequence: {row.position - 1}\r\n\r\n"
            )
            reply = f" {prefix}{row.position}" if row.position == last else ""
            size = len(headers)  # ASCII: characters are bytes
            frames.append(
                f"HPUB {subject_prefix}{row.type}{reply} {size} {size + len(row.body)}\r\n"
                f"{headers}".encode()
            )
            frames.append(row.body)
            frames.append(b"\r\n")
        # nats-py's own buffer and flusher, as its `publish` uses them (no public API takes
        # ready-made frames).
        await nc._send_command(b"".join(frames))
        await nc._flush_pending()

    async def _send_each(self, rows: list[StoredBytes], prefix: str) -> None:
        publish = self.nc.publish
        subject_prefix = self._subject_prefix
        last = rows[-1].position
        for row in rows:
            await publish(
                subject_prefix + row.type,
                row.body,
                reply=prefix + str(row.position) if row.position == last else "",
                headers={
                    "Nats-Msg-Id": row.event_id,
                    "Nats-Expected-Last-Sequence": str(row.position - 1),
                },
            )

    async def _acked_through(self, progress: int, last: int) -> int:
        """Wait for the ack of `last` (a chunk's last message); return `last` if the stream
        holds it at its position, else ``progress``."""
        self._awaited = last
        self._acked.clear()
        if last not in self._results:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.ack_timeout):
                    await self._acked.wait()
        result = self._results.get(last, "no ack")
        return last if not isinstance(result, str) else progress

    def _first_failure(self, acked: int) -> str:
        failed = sorted(p for p, r in self._results.items() if p > acked and isinstance(r, str))
        reason = self._results[failed[0]] if failed else "no acknowledgement in time"
        return f"publish after position {acked} to {self.stream} failed: {reason}"

    async def _on_ack(self, msg: Msg) -> None:
        _, generation, position_text = msg.subject.rsplit(".", 2)
        if int(generation) != self._generation:
            return  # an ack of an abandoned run, arriving late
        position = int(position_text)
        if position in self._results:
            return
        self._results[position] = self._ack_error(msg, position)
        if position >= self._awaited:
            self._acked.set()

    def _ack_error(self, msg: Msg, position: int) -> str | int:
        """The refusal, or 1 for a duplicate and 0 for a message stored now."""
        if not msg.data:
            status = msg.headers.get("Status", "?") if msg.headers else "?"
            return f"status {status} (is the stream {self.stream} there?)"
        ack = orjson.loads(msg.data)
        if "error" in ack:
            error = ack["error"]
            return f"{error.get('description')} (err_code {error.get('err_code')})"
        if ack.get("seq") != position:
            return f"stored at sequence {ack.get('seq')}, not {position}"
        if ack.get("duplicate"):
            self.stats.duplicates += 1
            return 1
        return 0

    async def _subscribe(self) -> None:
        if not self._sub_ready:
            await self.nc.subscribe(f"{self._inbox}.>", cb=self._on_ack)
            self._sub_ready = True

    # -- checking the bus against the store --------------------------------------------------

    async def reconcile(self) -> None:
        js = self.nc.jetstream()
        info = await js.stream_info(self.stream)
        last = int(info.state.last_seq)
        head = await self.store.head()
        progress = await self._load_progress()
        self.stats.head = head
        if last > head:
            raise StreamDiverged(
                f"stream {self.stream} holds {last} messages but this {self.source} store "
                f"only {head} events: the stream belongs to another database"
            )
        if last > 0:
            message = await js.get_msg(self.stream, seq=last)
            on_bus = (message.headers or {}).get("Nats-Msg-Id")
            in_store = (await self.store.event_ids_at([last])).get(last)
            if on_bus != in_store:
                raise StreamDiverged(
                    f"stream {self.stream} sequence {last} is event {on_bus}, but this store's "
                    f"position {last} is {in_store}: the stream belongs to another database"
                )
        if last < progress:
            lost = progress - last
            self.stats.republished += lost
            log.warning(
                "relay %s: stream %s lost its last %d events (at %d, relay had %d): "
                "publishing them again from the store",
                self.source,
                self.stream,
                lost,
                last,
                progress,
            )
        if last != progress:
            await self._save_progress(last, republished=max(0, progress - last))

    # -- progress ---------------------------------------------------------------------------

    async def _load_progress(self) -> int:
        async with self.store.db.read() as conn:
            value = await conn.scalar(
                select(outbox_progress.c.position).where(outbox_progress.c.source == self.source)
            )
        self.stats.progress = self._saved = int(value or 0)
        return self.stats.progress

    async def _save_unsaved(self) -> None:
        if self._saved >= 0 and self._saved != self.stats.progress:
            await self._save_progress(self.stats.progress)

    async def _save_progress(self, position: int, republished: int = 0) -> None:
        async with self.store.db.write() as conn:
            updated = await conn.execute(
                update(outbox_progress)
                .where(outbox_progress.c.source == self.source)
                .values(
                    position=position,
                    republished=outbox_progress.c.republished + republished,
                )
            )
            if updated.rowcount == 0:
                await conn.execute(
                    outbox_progress.insert().values(
                        source=self.source, position=position, republished=republished
                    )
                )
        self.stats.progress = self._saved = position
        self._save_due = asyncio.get_running_loop().time() + self.save_every
