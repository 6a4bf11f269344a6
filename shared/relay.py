"""The outbox relay: publishes a source's stored events to its JetStream stream, in order.

Invariant: the stream's sequence number IS the store's position, and the relay's progress
only ever moves to a position whose every message up to it is proven to be the store's event
there. Each publish carries ``Nats-Msg-Id: event_id`` (a retry within the duplicate window is
acknowledged as a duplicate instead of stored twice) and ``Nats-Expected-Last-Sequence:
position - 1``; every publish but a chunk's first also carries
``Nats-Expected-Last-Msg-Id: <the previous event's id>``. So a message someone else slips in
anywhere in a chunk makes every later message of it refused, not only the one whose place it
took: without the id, the message after the stranger found the sequence it expected (the
stranger's) and was stored, the chunk's last ack was fine and the event the stranger
displaced was lost. A chunk's first message needs no id: the one before it was proven by its
own chunk's ack (and the server forgets the last id across a restart once the duplicate
window has passed, which would refuse a good publish). Publishes are pipelined (up to
`window` chunks in flight, acks gathered on one inbox), a chunk's messages written at once
with an ack asked for its last.

A running relay (`run`) keeps its progress in memory and writes it down at most every
`save_every` seconds: a write per publish took the store's one writer (and a flush to disk)
once per group commit, as often as the commands themselves. Progress written late is the
case of acks lost before progress was written, which `reconcile` handles at start.

`reconcile` checks the bus against the store (at start, after any failure, every 30 s):
- stream behind the recorded progress: the bus lost a tail (a crash inside nats-server's
  fsync interval); the relay moves back and publishes the tail again, with the same ids and
  sequence numbers, so consumers that already saw it skip it;
- stream ahead of the progress: every message past the progress is compared with the store
  (id, subject and bytes); if all are ours (acks lost), the progress moves to the stream's end;
- a message that is not the store's event at its position (a stray or forged publish on the
  source's subjects, or a stream of another database): `StreamDiverged`, naming the sequence,
  the subject and what was found. The relay then stops publishing (mixing two histories would
  make the stream unprovable), says so once, shows it in `stats.stopped` (the service's
  health), keeps every event safe in the store, and looks again every `reconcile_every`
  seconds, so a repaired stream is caught up without a restart.

Two instances of a service on one database (README, "Two instances of a service"): with a
`lease` (`shared.lease`), only its holder publishes; the other's relay stands by, trying to
take the lease every half second. Taking it starts as any start does, with `reconcile`: what
the previous holder published but had not yet written down as progress (killed mid-chunk,
say) is verified on the stream and stepped over, so nothing is published twice or skipped.
A holder cut off from the database while the other takes over is fenced by the stream itself
(the expected sequence and id above): its publishes are refused or acknowledged as
duplicates, never stored twice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from dataclasses import dataclass

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.api import RawStreamMsg
from nats.js.client import JetStreamContext
from nats.js.errors import Error as JetStreamError
from nats.js.errors import NotFoundError
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from shared.bus.naming import Naming
from shared.compat import natspy
from shared.eventstore.schema import outbox_progress
from shared.eventstore.store import EventStore, StoredBytes
from shared.lease import Lease, hold

log = logging.getLogger("kapok.relay")


class StreamDiverged(RuntimeError):
    """The stream does not hold this store's history: publishing on would mix two."""


class _ChunkFailed(Exception):
    pass


@dataclass(slots=True)
class RelayStats:
    published: int = 0
    duplicates: int = 0
    republished: int = 0
    failures: int = 0
    progress: int = 0
    head: int = 0
    stream_last: int = 0  # the stream's last sequence when last looked at
    stopped: str | None = None  # why the relay stopped, in an operator's words (None: running)

    @property
    def verified(self) -> int:
        """Every message up to here is proven the store's event there: the relay's progress
        moves only to such a position (see the module's doc)."""
        return self.progress

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
        lease: Lease | None = None,
    ) -> None:
        self.store = store
        # Held while this instance publishes; None: the only instance, it always publishes.
        self.lease = lease
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
        """Publish forever (while this instance holds the `lease`, if it has one): catch up,
        then follow new commits. A diverged stream pauses it (`stats.stopped`) until a later
        check finds the stream repaired; nothing ends it."""
        if self.lease is None:
            await self._run()
        else:
            await hold(self.lease, self._run)

    @property
    def standing_by(self) -> bool:
        """Another instance holds the lease: this relay waits to take it over."""
        return self.lease is not None and not self.lease.held

    async def _run(self) -> None:
        # Whatever the progress in memory (another holder's may have moved on since this one
        # last held the lease), the database's is the one to start from (`reconcile`).
        self._saved = -1
        backoff, failing_since = 0.2, None
        while True:
            try:
                await self._save_unsaved()
                await self.reconcile()
                self._resumed()
                if failing_since is not None:
                    log.warning(
                        "relay %s: publishing again after %.1f s of failures",
                        self.source,
                        time.monotonic() - failing_since,
                    )
                    failing_since = None
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
            except StreamDiverged as diverged:
                if self.stats.stopped != str(diverged):
                    log.critical("relay %s stopped: %s", self.source, diverged)
                self.stats.stopped = str(diverged)
                # Soon enough to follow a repair (`kapok bus repair`) within seconds.
                await asyncio.sleep(min(self.reconcile_every, 5.0))
            except (
                _ChunkFailed,
                NatsError,
                JetStreamError,
                DBAPIError,
                OSError,
                TimeoutError,
            ) as error:
                self.stats.failures += 1
                if failing_since is None:  # once an outage, and once when it ends (above)
                    failing_since = time.monotonic()
                    log.warning("relay %s: %s; retrying until it works", self.source, error)
                else:
                    log.debug("relay %s: %s; retrying in %.1fs", self.source, error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _resumed(self) -> None:
        if self.stats.stopped is not None:
            log.warning(
                "relay %s: the stream %s is whole again; publishing", self.source, self.stream
            )
            self.stats.stopped = None

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
                self.stats.head = max(self.stats.head, rows[-1].position)
                await self._send(rows, prefix)
                sent = rows[-1].position
                in_flight.append(sent)
            if not in_flight:
                self.stats.head = max(self.stats.head, progress)
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
        sequence and (but the first) the id of the one before it, so the last one is stored
        at its position only if every one before it is there, each right after its
        predecessor, and after a refusal every later one is refused too.
        """
        nc = self.nc
        write = natspy.frame_writer(nc)  # None: nats-py's internals not as expected, or off
        too_big = max(len(row.body) for row in rows) > nc.max_payload
        if write is None or not nc.is_connected or too_big:
            await self._send_each(rows, prefix)  # nats-py buffers while reconnecting, or refuses
            return
        subject_prefix = self._subject_prefix
        frames: list[bytes] = []
        last = rows[-1].position
        previous = ""  # the chunk's first expects only a sequence (see the module's doc)
        for row in rows:
            headers = (
                f"NATS/1.0\r\nNats-Msg-Id: {row.event_id}\r\n"
                f"Nats-Expected-Last-Sequence: {row.position - 1}\r\n"
                f"{previous}\r\n"
            )
            previous = f"Nats-Expected-Last-Msg-Id: {row.event_id}\r\n"
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
        await write(nc, b"".join(frames))

    async def _send_each(self, rows: list[StoredBytes], prefix: str) -> None:
        publish = self.nc.publish
        subject_prefix = self._subject_prefix
        last = rows[-1].position
        previous: str | None = None
        for row in rows:
            headers = {
                "Nats-Msg-Id": row.event_id,
                "Nats-Expected-Last-Sequence": str(row.position - 1),
            }
            if previous is not None:
                headers["Nats-Expected-Last-Msg-Id"] = previous
            previous = row.event_id
            await publish(
                subject_prefix + row.type,
                row.body,
                reply=prefix + str(row.position) if row.position == last else "",
                headers=headers,
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
        """Compare the stream with the store past what is proven (see the module's doc)."""
        js = self.nc.jetstream()
        info = await js.stream_info(self.stream)
        last = int(info.state.last_seq)
        head = await self.store.head()
        progress = await self._load_progress()
        self.stats.head, self.stats.stream_last = head, last
        if last > progress:
            await self._verify(progress, last)
        elif last < progress:
            lost = progress - last
            self.stats.republished += lost
            log.warning(
                "relay %s: stream %s holds %d events fewer than were published (it ends at %d, "
                "the relay had reached %d; a crash of nats-server, or the stream made again): "
                "publishing them again from the store",
                self.source,
                self.stream,
                lost,
                last,
                progress,
            )
        if last != progress:
            await self._save_progress(last, republished=max(0, progress - last))

    async def _verify(self, after: int, last: int) -> None:
        """Every message at sequences ``after``+1 .. ``last`` is the store's event there (its
        id, subject and bytes), or `StreamDiverged` names the first that is not."""
        js = self.nc.jetstream()
        position = after
        while position < last:
            rows = await self.store.read_bytes_from(position, min(500, last - position))
            count = max(len(rows), 1)  # past the store's head: one message, to name it
            seqs = range(position + 1, min(position + count, last) + 1)
            messages = await asyncio.gather(*(self._message_at(js, seq) for seq in seqs))
            for seq, message in zip(seqs, messages, strict=True):
                row = rows[seq - position - 1] if seq - position <= len(rows) else None
                if row is None or not self._is_ours(message, row):
                    raise StreamDiverged(self._foreign(seq, message, row))
            position = seqs[-1]

    async def _message_at(self, js: JetStreamContext, seq: int) -> RawStreamMsg | None:
        try:
            return await js.get_msg(self.stream, seq=seq)
        except NotFoundError:
            return None  # deleted, despite the stream's deny-delete

    def _is_ours(self, message: RawStreamMsg | None, row: StoredBytes) -> bool:
        return (
            message is not None
            and (message.headers or {}).get("Nats-Msg-Id") == row.event_id
            and message.subject == self._subject_prefix + row.type
            and message.data == row.body
        )

    def _foreign(self, seq: int, message: RawStreamMsg | None, row: StoredBytes | None) -> str:
        if message is None:
            found = "no message (deleted)"
        else:
            msg_id = (message.headers or {}).get("Nats-Msg-Id")
            data = message.data or b""
            found = (
                f"a message on {message.subject} ({len(data)} bytes: {data[:40]!r}"
                f"{'…' if len(data) > 40 else ''}; Nats-Msg-Id {msg_id or 'none'})"
            )
        expected = (
            f"this {self.source} store's event {row.event_id} ({row.type})"
            if row is not None
            else f"nothing: this {self.source} store holds {seq - 1} events at most so far"
        )
        return (
            f"stream {self.stream} holds at sequence {seq} {found}, where it should hold "
            f"{expected}. Something other than Kapok's {self.source} service published on "
            f"{self._subject_prefix}* (a stray or forged publish), or the stream belongs to "
            f"another database. Publishing to {self.stream} is paused so the two histories are "
            f"not mixed; every event stays in the {self.source} database and commands still "
            f"succeed. Repair: see the README, 'When a relay stops'."
        )

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
