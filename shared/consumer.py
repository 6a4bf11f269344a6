"""The consumer runner: a durable JetStream pull consumer per source stream, feeding ordered
batches to a handler whose state and checkpoint commit in one database transaction.

Why it is safe to redeliver anything: the checkpoint (per consumer and source: the last
applied position, which is the stream sequence) commits with the handler's writes, and only
then is the batch acknowledged. Whatever arrives at or below the checkpoint is skipped, so a
crash between commit and ack, a redelivery or a duplicate never applies twice.

Ack behaviour, on purpose: the consumer uses AckPolicy.ALL, one ack per committed batch.
Nothing is ever acked before its effect is committed; nothing is terminated. A message that
cannot be decoded, or on which the handler keeps failing, is published to the dead-letter
stream with the reason (awaiting the server's ack), counted in the checkpoint row, and
stepped over, so it never blocks the stream. Infrastructure failures (the database or NATS
unreachable) are not the message's fault: the batch is kept and retried, never dead-lettered.

With an `Offload` (`shared/offload.py`), the batches of the sources it names, from a size on,
are decoded and prepared in a worker process while the runner receives the next batch and
commits the previous one; what the worker made is written in the same transaction as the
checkpoint. A batch the worker cannot prepare whole is applied here, event by event, as above.

Every event is checked before it is applied: its bytes are those its hash was made of
(`EventRegistry.decode_at`), and, for a consumer of every event of a source, its prev_hash is
the hash of the event applied before it (kept with the checkpoint). An event that fails
either is dead-lettered with the reason, counted (`SourceStats.chain_breaks` for a broken
link) and never applied; the chain goes on from the last event that was in it. A consumer
of some event types only sees gaps in the chain by design, so only the hashes are checked.

With a `Ring` of the sources' verification keys, a consumer of every event of a source also
applies only what its source signed (`shared.contracts.signatures`): events are held back
until the signature over a later hash of the chain arrives (at most `signatures.EVERY` of
them), and a message with a bad signature, or none where its source always signs, is
dead-lettered as forged with the unsigned ones before it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.js import api
from nats.js.errors import Error as JetStreamError
from nats.js.errors import NotFoundError
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.bus.acks import stream_seq_and_time
from shared.bus.frames import Frame, subscribe_frames, unsubscribe_frames
from shared.bus.naming import Naming
from shared.contracts import signatures
from shared.contracts.envelope import GENESIS, Envelope
from shared.contracts.registry import REGISTRY, EventRegistry, MisplacedEvent, UndecodableEvent
from shared.eventstore.database import Database
from shared.eventstore.schema import checkpoints
from shared.offload import Offload, Worker

log = logging.getLogger("kapok.consumer")

Handler = Callable[[AsyncConnection, Sequence[Envelope[Any]]], Awaitable[None]]
"""Applies events in the caller's transaction. Raising rolls back the whole batch."""

INFRASTRUCTURE = (OperationalError, InterfaceError, ConnectionError, OSError, TimeoutError)


def _is_infrastructure(error: BaseException) -> bool:
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, (*INFRASTRUCTURE, NatsError, JetStreamError))


class CheckpointMoved(RuntimeError):
    """The checkpoint row is not where this runner last left it: another writer (a second
    instance folding the same consumer) moved it. The batch is rolled back, nothing is
    overwritten, and the runner stops with this error (README, "Two instances of a
    service")."""


@dataclass(slots=True)
class SourceStats:
    applied: int = 0
    prepared_elsewhere: int = 0  # of those applied, how many the offload's worker prepared
    skipped: int = 0
    dead_letters: int = 0
    checkpoint: int = 0
    last_seq: int = 0  # the stream's last sequence when last looked at
    lag: int = 0  # this consumer's events on the stream not yet committed (after refresh_lag)
    last_dead_letter: str | None = None  # the reason of the last message dead-lettered
    chain_breaks: int = 0  # events whose prev_hash was not the hash of the event before
    # The hash of the last event in the chain at the checkpoint (None: not known, the next
    # event is trusted to link; see `checkpoints.c.hash`).
    chain_head: str | None = GENESIS
    genuine: int = 0  # the last position that held the source's own event (`checkpoints`)
    forged: int = 0  # messages dead-lettered for a bad or missing signature
    unsigned_held: int = 0  # delivered, waiting for the signature that covers them
    unsigned_since: float | None = None  # since when (loop time) some have been waiting
    failing: str | None = None  # the database or NATS away: what the last attempt met
    failing_since: float | None = None  # since when (loop time), until a batch commits
    moved: str | None = None  # a checkpoint write found another writer's position (loud)

    @property
    def checkpoint_moved(self) -> int:
        """1 once a checkpoint write found another writer's position (`moved`)."""
        return int(self.moved is not None)

    @property
    def diverged(self) -> int:
        """1 while what the stream holds after the last of the source's own events is all
        set aside as not the source's (a stranger's: its relay has stopped on it)."""
        return int(self.genuine < self.checkpoint)


@dataclass(slots=True)
class _Delivery:
    seq: int
    reply: bytes  # the ack subject, as it came off the wire
    data: bytes
    subject: bytes
    # The hash its successor must name as prev_hash (the chain's head once it is applied),
    # and the last position up to it that held the source's own event.
    head: str | None = None
    genuine: int = 0
    # Decoded as it arrives (or why it cannot be); None if it was already applied then, and
    # so is skipped, or if its source's batches may go to the offload's worker (decoded
    # there, or in `_apply` if the runner applies it itself).
    event: Envelope[Any] | str | None = None


@dataclass(slots=True)
class _Prepared:
    """A batch's fresh events as sent to the worker, and what it will make of them."""

    first: int  # the first one's sequence
    count: int
    result: asyncio.Future[Any]

    @property
    def covers(self) -> tuple[int, int]:
        return self.first, self.count


class ConsumerRunner:
    def __init__(
        self,
        *,
        nc: NATS,
        db: Database,
        naming: Naming,
        name: str,
        sources: Sequence[str],
        handler: Handler,
        event_types: Sequence[str] | None = None,
        registry: EventRegistry = REGISTRY,
        batch: int = 1000,
        expires: float = 1.0,
        linger: float = 0.002,
        retries: int = 3,
        retry_delay: float = 0.2,
        offload: Offload | None = None,
        ring: signatures.Ring | None = None,
    ) -> None:
        self.nc = nc
        self.db = db
        self.naming = naming
        self.name = name
        self.sources = list(sources)
        # Only these event types are delivered (a server-side filter); None: every type.
        self.event_types = sorted(event_types) if event_types else None
        self.handler = handler
        self.registry = registry
        self.batch = batch
        self.expires = expires
        self.linger = linger
        self.retries = retries
        self.retry_delay = retry_delay
        # The worker decodes with the one registry (it is not sent across).
        assert offload is None or registry is REGISTRY, "offload decodes with REGISTRY"
        self.offload = offload
        # The sources' verification keys: each event must be covered by its source's signature
        # (consumers of every event of a source only; None: hashes and links only).
        self.ring = ring
        self._worker = Worker(offload.prepare) if offload is not None else None
        self.stats = {source: SourceStats() for source in self.sources}
        self._db_lock = asyncio.Lock()  # one writer per database at a time (SQLite)
        self._set_up = False
        self._stopping = False
        self._wakers: set[asyncio.Event] = set()  # one per running drain: stop() wakes them
        self.active = False  # `run` runs (a stand-by instance's runner does not)

    # -- set-up -----------------------------------------------------------------------------

    async def setup(self) -> None:
        await self.db.create_schema()
        for source in self.sources:
            await self._load_checkpoint(source)
            await self._ensure_consumer(source)
        self._set_up = True

    def _filter(self, source: str) -> list[str] | None:
        if self.event_types is None:
            return None
        return [self.naming.event_subject(source, t) for t in self.event_types]

    def _consumer_config(self, start: int, source: str | None = None) -> api.ConsumerConfig:
        return api.ConsumerConfig(
            filter_subjects=self._filter(source) if source else None,
            durable_name=self.name,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            ack_policy=api.AckPolicy.ALL,
            ack_wait=60.0,
            max_deliver=-1,
            max_ack_pending=max(20_000, self.batch * 4),
            max_waiting=64,
            replay_policy=api.ReplayPolicy.INSTANT,
        )

    async def _ensure_consumer(self, source: str) -> None:
        """Create the durable, or re-create it when its config or position would lose events.

        A durable consumer's config is not updated by the server when the code changes, and
        its position may be ahead of ours (a database restored from a backup): the database
        checkpoint is the truth, so the consumer is re-created from it in both cases.
        """
        js = self.nc.jetstream()
        stream = self.naming.stream(source)
        start = self.stats[source].checkpoint + 1
        wanted = self._consumer_config(start, source)
        try:
            info = await js.consumer_info(stream, self.name)
        except NotFoundError:
            await self._reexamine(source)
            await js.add_consumer(
                stream, self._consumer_config(self.stats[source].checkpoint + 1, source)
            )
            return
        have = info.config
        stale = (
            have.ack_policy != wanted.ack_policy
            or have.max_ack_pending != wanted.max_ack_pending
            or (have.filter_subject or None) is not None
            or sorted(have.filter_subjects or []) != (wanted.filter_subjects or [])
            # Delivered past our checkpoint: unacked messages would wait out ack_wait before
            # redelivery; acked past it: the database lost what the consumer thinks is done.
            or info.delivered.stream_seq > self.stats[source].checkpoint
        )
        if stale:
            why = (
                "it had delivered what was not committed here"
                if info.delivered.stream_seq > self.stats[source].checkpoint
                else "its config changed"
            )
            log.info("consumer %s on %s re-created from position %d: %s", self.name, stream,
                     start, why)  # fmt: skip
            await js.delete_consumer(stream, self.name)
            await js.add_consumer(stream, wanted)

    async def _reexamine(self, source: str) -> None:
        """The durable is gone: the stream may have been re-created from the store (`kapok bus
        repair`), where a position that held a stranger's message, dead-lettered here, now
        holds the source's own event. Those positions are taken again; nothing applied is."""
        stats = self.stats[source]
        if stats.genuine >= stats.checkpoint:
            return
        log.warning(
            "consumer %s on %s: its durable is gone; positions %d to %d, dead-lettered as not "
            "%s's own events, are examined again",
            self.name,
            self.naming.stream(source),
            stats.genuine + 1,
            stats.checkpoint,
            source,
        )
        async with self._db_lock, self.db.write() as conn:
            await self._move_checkpoint(conn, source, {"position": stats.genuine})
        stats.checkpoint = stats.genuine

    # -- running ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Apply every source until `stop()`: set up first unless that was done already."""
        if not self._set_up:
            await self.setup()
        self.active = True
        try:
            async with asyncio.TaskGroup() as group:
                for source in self.sources:
                    group.create_task(self._run_source(source))
        except* CheckpointMoved as moved:
            raise moved.exceptions[0] from None  # as itself, for health and the logs
        finally:
            self.active = False
            self.close()

    async def take_over(self) -> None:
        """`run`, from the checkpoints as the database holds them now: for an instance that
        takes the fold over from another (`shared.lease.hold`), or takes it again."""
        self._stopping = False
        await self.setup()
        await self.run()

    async def start_worker(self) -> None:
        """Start the offload's worker process now and return once it takes batches (without
        this, it starts at the first batch it could take, and takes them from when it is
        ready, about half a second later)."""
        if self._worker is not None:
            await self._worker.ready()

    def close(self) -> None:
        """Stop the worker process, if one was started (`run` does so when it ends; a caller
        of `drain` with an offload, when done)."""
        if self._worker is not None:
            self._worker.close()

    def stop(self) -> None:
        """Ask `run()` and every `drain` to return after the batch in hand is committed and
        acknowledged. Cancelling instead can interrupt a transaction half-way, which on
        SQLite may leave the database locked for the next writer."""
        self._stopping = True
        for waker in self._wakers:
            waker.set()

    async def _run_source(self, source: str) -> None:
        backoff = 0.2
        stats = self.stats[source]
        while not self._stopping:
            try:
                await self.drain(source, forever=True)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if not _is_infrastructure(error):
                    raise
                stats.failing = f"{type(error).__name__}: {error}"
                if stats.failing_since is None:  # once an outage; its end is said on commit
                    stats.failing_since = asyncio.get_running_loop().time()
                    log.warning(
                        "consumer %s/%s: %s; retrying until it works",
                        self.name,
                        source,
                        stats.failing,
                    )
                await self._pause(backoff)
                if self._stopping:
                    return
                backoff = min(backoff * 2, 5.0)
                try:
                    await self._ensure_consumer(source)
                except Exception as again:
                    if not _is_infrastructure(again):
                        raise

    async def _pause(self, seconds: float) -> None:
        """Sleep, unless `stop()` comes first (an instance that lost the fold's lease while
        its database was away stops at once, not after the backoff)."""
        waker = asyncio.Event()
        self._wakers.add(waker)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await waker.wait()
        finally:
            self._wakers.discard(waker)

    async def drain(self, source: str, *, forever: bool = False) -> int:
        """Pull and apply until the stream has nothing more (or forever); return how many.

        A batch is what one burst of deliveries brings: up to `batch` messages, or fewer once
        no more arrive for `linger` seconds, so a quiet stream is applied within milliseconds
        and a busy one in large transactions. The next pull request goes out before a batch
        is applied, so the server streams the next batch while this one commits; and the
        next batch is decoded as it arrives, while this one commits (the database's work
        runs outside the interpreter's lock), though committed only after it: commits and
        acks stay in stream order, one batch in flight.
        """
        stream = self.naming.stream(source)
        inbox = self.nc.new_inbox()
        buffer: list[_Delivery] = []
        arrived = asyncio.Event()
        state = {"open": False, "delivered": 0}

        stats = self.stats[source]
        # A source whose batches may go to the worker is decoded there, or (a batch too small
        # for it) when applied.
        decode_on_arrival = self.offload is None or source not in self.offload.sources

        def on_frames(frames: list[Frame]) -> None:
            # Each read's deliveries are decoded as they arrive, while the rest of the batch
            # is still on its way, and while their bytes are fresh in the cache: the batch
            # is then ready to fold when its last delivery is in. The checkpoint only grows,
            # so what is fresh when applied was decoded here (unless `decode_on_arrival` is
            # off for this source).
            for subject, reply, data, _ in frames:
                if not reply:
                    # A status (404 no messages, 408 expired, 409 consumer changed): the pull
                    # is over.
                    state["open"] = False
                    continue
                delivery = _Delivery(stream_seq_and_time(reply)[0], reply, data, subject)
                if decode_on_arrival and delivery.seq > stats.checkpoint:
                    delivery.event = self._decode(source, delivery)
                buffer.append(delivery)
                state["delivered"] += 1
                if state["delivered"] >= self.batch:
                    state["open"] = False
            arrived.set()

        request_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{self.name}"
        request = {"batch": self.batch}
        request.update({"expires": int(self.expires * 1e9)} if forever else {"no_wait": True})
        payload = orjson.dumps(request)

        async def pull() -> None:
            state.update(open=True, delivered=0)
            await self.nc.publish(request_subject, payload, reply=inbox)

        sub = await subscribe_frames(self.nc, inbox, on_frames)
        self._wakers.add(arrived)
        applied = idle = 0
        committing: asyncio.Future[int] | None = None  # the batch in flight
        held: list[_Delivery] = []  # delivered, not yet covered by a signature (`ring`)

        async def settle() -> int:
            nonlocal committing
            done, committing = committing, None
            return 0 if done is None else await done

        try:
            while not self._stopping:
                if not state["open"]:
                    await pull()
                try:
                    # A request the server forgot (NATS restarted meanwhile) never reports
                    # its end: past its expiry it is over all the same.
                    async with asyncio.timeout(self.expires + 2.0):
                        await arrived.wait()
                except TimeoutError:
                    state["open"] = False
                arrived.clear()
                # Woken by each read's frames, not by a fixed sleep: a batch that completes is
                # taken at once, not at the end of a sleep.
                while state["open"] and len(buffer) < self.batch and not self._stopping:
                    arrived.clear()
                    try:
                        async with asyncio.timeout(self.linger):
                            await arrived.wait()
                    except TimeoutError:
                        break
                if buffer:
                    taken = buffer[: self.batch]
                    del buffer[: self.batch]
                    if self.ring is not None and self.event_types is None:
                        # What no signature covers yet waits for the one that will.
                        taken, held = self._signed_part(source, held + taken)
                        stats.unsigned_held = len(held)
                        if not held:
                            stats.unsigned_since = None
                        elif stats.unsigned_since is None or taken:
                            stats.unsigned_since = asyncio.get_running_loop().time()
                        if not taken:
                            if not state["open"]:
                                await pull()
                            continue
                    if not state["open"]:
                        await pull()
                    # Sent to the worker now, so that it works while the previous batch commits.
                    prepared = self._prepare_elsewhere(source, taken)
                    applied += await settle()
                    committing = asyncio.ensure_future(self._apply(source, taken, prepared))
                    idle = 0
                elif not state["open"]:
                    applied += await settle()
                    if not forever:
                        return applied
                    idle += 1
                    if idle % 10 == 0:
                        await self._unstall(source)
            return applied + await settle()
        finally:
            # The batch in flight is committed and acknowledged, or has failed, before the
            # drain ends, whatever ends it (a cancel mid-transaction could leave SQLite locked).
            if committing is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(committing)
            self._wakers.discard(arrived)
            await unsubscribe_frames(self.nc, sub)

    async def _unstall(self, source: str) -> None:
        """Nothing arrives for a while: make sure it is not because the consumer's state on
        the server ran ahead of our checkpoint (a crash of nats-server inside its fsync
        interval can leave it so). `_ensure_consumer` re-creates it from the checkpoint then;
        otherwise it changes nothing."""
        await self.refresh_lag()
        stats = self.stats[source]
        if stats.lag == 0 and stats.failing_since is not None:
            stats.failing = stats.failing_since = None  # the bus answers, nothing waits
            log.warning("consumer %s/%s: the bus answers again, nothing waits", self.name, source)
        if stats.last_seq > stats.checkpoint:
            await self._ensure_consumer(source)

    def _signed_part(
        self, source: str, taken: list[_Delivery]
    ) -> tuple[list[_Delivery], list[_Delivery]]:
        """(the deliveries up to the last one whose signature verifies, the rest to hold back).

        A signature by the source's key over the hash at position P vouches for every event
        up to P of the chain `_apply` checks link by link. A bad signature, or none at a
        position the source always signs (`signatures.EVERY`), marks that message forged and
        the unsigned ones before it since the last good signature unsigned: dead-lettered by
        `_apply`, never folded. A redelivered copy of a held message is dropped."""
        ring, every, checkpoint = self.ring, signatures.EVERY, self.stats[source].checkpoint
        assert ring is not None
        kept: list[_Delivery] = []
        covered, highest = 0, 0
        for delivery in taken:
            if delivery.seq <= highest:
                continue  # redelivered while held (its ack waited for a signature)
            highest = delivery.seq
            kept.append(delivery)
            if delivery.seq <= checkpoint:
                covered = len(kept)
                continue
            found = signatures.signature_in(delivery.data)
            if found is None:
                if delivery.seq % every:
                    continue
                reason = f"unsigned at position {delivery.seq}, which {source} always signs"
            else:
                reason = ring.check(source, delivery.seq, *found)
            if reason is not None:
                # Committing past it passes those before it too: set aside, not folded, and
                # examined again should the stream be repaired (they are not `genuine`).
                for unsigned in kept[covered:-1]:
                    unsigned.event = (
                        f"unsigned: no signature of {source}'s key covers it before the "
                        f"forged message at {delivery.seq}"
                    )
                delivery.event = f"{_FORGED}: {reason}"
            covered = len(kept)
        return kept[:covered], kept[covered:]

    def _prepare_elsewhere(self, source: str, deliveries: list[_Delivery]) -> _Prepared | None:
        """The batch's fresh events sent to the worker, when it takes them."""
        if self._worker is None or self.offload is None or source not in self.offload.sources:
            return None
        if any(isinstance(d.event, str) for d in deliveries):
            return None  # a forgery in it: the runner dead-letters it, and applies the rest
        checkpoint = self.stats[source].checkpoint
        fresh = [d for d in deliveries if d.seq > checkpoint]
        if len(fresh) < self.offload.min_batch:
            return None
        seqs = [d.seq for d in fresh]
        result = self._worker.submit(source, seqs, [d.data for d in fresh])
        return None if result is None else _Prepared(seqs[0], len(seqs), result)

    async def _apply(
        self, source: str, deliveries: list[_Delivery], prepared: _Prepared | None = None
    ) -> int:
        stats = self.stats[source]
        fresh = [d for d in deliveries if d.seq > stats.checkpoint]
        stats.skipped += len(deliveries) - len(fresh)
        if prepared is not None and await self._commit_prepared(source, fresh, prepared):
            await self._ack(deliveries[-1])
            return len(fresh)
        run: list[tuple[_Delivery, Envelope[Any]]] = []
        # As committed: a batch that fails is checked again whole.
        head, genuine = stats.chain_head, stats.genuine
        for delivery in fresh:
            if delivery.event is None:  # not decoded on arrival (see `drain`)
                delivery.event = self._decode(source, delivery)
            decoded = delivery.event
            if not isinstance(decoded, str):
                if self.event_types is None and head is not None and decoded.prev_hash != head:
                    decoded = _broken_link(decoded, head)
                else:
                    head, genuine = decoded.hash, delivery.seq
            delivery.head, delivery.genuine = head, genuine
            if isinstance(decoded, str):
                await self._commit_isolating(source, run)
                run = []
                await self._dead_letter(source, delivery, decoded)
                await self._commit(source, [], delivery.seq, dead=1, head=head, genuine=genuine)
            else:
                run.append((delivery, decoded))
        await self._commit_isolating(source, run)
        await self._ack(deliveries[-1])
        return len(fresh)

    async def _commit_prepared(
        self, source: str, fresh: list[_Delivery], prepared: _Prepared
    ) -> bool:
        """Commit what the worker made of ``fresh``; False if it made nothing of them (the
        caller then applies them itself, and so dead-letters or isolates what failed)."""
        assert self.offload is not None
        try:
            result = await prepared.result
        except Exception as error:
            log.warning("consumer %s/%s: the worker failed (%r)", self.name, source, error)
            return False
        if result is None or not fresh or (fresh[0].seq, len(fresh)) != prepared.covers:
            return False
        # The worker checked each link inside the batch; the first is checked here.
        first_prev, last_hash, made = result
        head = self.stats[source].chain_head
        if self.event_types is None and head is not None and first_prev != head:
            return False
        write = self.offload.write
        try:
            await self._commit(
                source,
                [],
                fresh[-1].seq,
                write=lambda c: write(c, made),
                applied=len(fresh),
                head=last_hash,
                genuine=fresh[-1].seq,
            )
        except Exception as error:
            if _is_infrastructure(error) or isinstance(error, CheckpointMoved):
                raise
            return False  # rolled back whole: applied event by event, the culprit is found
        self.stats[source].prepared_elsewhere += len(fresh)
        return True

    def _decode(self, source: str, delivery: _Delivery) -> Envelope[Any] | str:
        """The event, or the reason it cannot be applied."""
        try:
            return self.registry.decode_at(delivery.data, source, delivery.seq)
        except MisplacedEvent as error:
            return str(error)
        except UndecodableEvent as error:
            return f"undecodable: {error}"

    async def _commit_isolating(
        self, source: str, run: list[tuple[_Delivery, Envelope[Any]]]
    ) -> None:
        """Commit a run of events; if the handler fails, halve the run until the failing event
        stands alone, retry it, and dead-letter it if it still fails."""
        if not run:
            return
        try:
            last = run[-1][0]
            await self._commit(
                source, [e for _, e in run], last.seq, head=last.head, genuine=last.seq
            )
            return
        except Exception as error:
            if _is_infrastructure(error) or isinstance(error, CheckpointMoved):
                raise
            failure = error
        if len(run) > 1:
            middle = len(run) // 2
            await self._commit_isolating(source, run[:middle])
            await self._commit_isolating(source, run[middle:])
            return
        delivery, envelope = run[0]
        for attempt in range(1, self.retries):
            await asyncio.sleep(self.retry_delay * attempt)
            try:
                await self._commit(
                    source, [envelope], delivery.seq, head=delivery.head, genuine=delivery.seq
                )
                return
            except Exception as error:
                if _is_infrastructure(error) or isinstance(error, CheckpointMoved):
                    raise
                failure = error
        reason = "handler failed: " + "".join(traceback.format_exception_only(failure)).strip()
        log.error("consumer %s/%s seq %d: %s", self.name, source, delivery.seq, reason)
        await self._dead_letter(source, delivery, reason)
        await self._commit(
            source, [], delivery.seq, dead=1, head=delivery.head, genuine=delivery.seq
        )

    async def _commit(
        self,
        source: str,
        events: Sequence[Envelope[Any]],
        position: int,
        *,
        dead: int = 0,
        write: Callable[[AsyncConnection], Awaitable[None]] | None = None,
        applied: int | None = None,
        head: str | None = None,
        genuine: int = 0,
    ) -> None:
        """One transaction: the handler's writes of ``events`` (or ``write``, which applies
        ``applied`` events prepared elsewhere) and the checkpoint at ``position``, where the
        chain's head is ``head`` and the last of the source's own events ``genuine``."""
        stats = self.stats[source]
        if position <= stats.checkpoint:
            return
        values: dict[str, Any] = {
            "position": position,
            "dead_letters": checkpoints.c.dead_letters + dead,
            "hash": head,
            "genuine": genuine,
        }
        if dead:
            values["last_dead_letter"] = stats.last_dead_letter
        async with self._db_lock, self.db.write() as conn:
            if write is not None:
                await write(conn)
            elif events:
                await self.handler(conn, events)
            await self._move_checkpoint(conn, source, values)
        stats.checkpoint, stats.chain_head, stats.genuine = position, head, genuine
        if stats.failing_since is not None:
            took = asyncio.get_running_loop().time() - stats.failing_since
            log.warning("consumer %s/%s: applying again after %.1f s", self.name, source, took)
            stats.failing = stats.failing_since = None
        stats.applied += len(events) if applied is None else applied
        stats.dead_letters += dead

    async def _dead_letter(self, source: str, delivery: _Delivery, reason: str) -> None:
        stats = self.stats[source]
        stats.last_dead_letter = reason
        if reason.startswith(_BROKEN_LINK):
            stats.chain_breaks += 1
        elif reason.startswith(_FORGED):
            stats.forged += 1
        try:
            original: Any = delivery.data.decode()
        except UnicodeDecodeError:
            original = {"base64": base64.b64encode(delivery.data).decode()}
        entry = {
            "consumer": self.name,
            "source": source,
            "stream": self.naming.stream(source),
            "stream_seq": delivery.seq,
            "subject": delivery.subject.decode(errors="replace"),
            "reason": reason,
            "dead_lettered_at": datetime.now(UTC).isoformat(),
            "original": original,
        }
        await self.nc.jetstream().publish(
            self.naming.dead_letter_subject(self.name),
            orjson.dumps(entry),
            stream=self.naming.dead_letter_stream,
            headers={
                "Nats-Msg-Id": f"{self.name}:{source}:{delivery.seq}",
                "Kapok-Reason": reason[:200].replace("\r", " ").replace("\n", " "),
            },
        )

    async def _ack(self, last: _Delivery) -> None:
        # AckPolicy.ALL: acknowledging the batch's last message acknowledges the batch.
        await self.nc.publish(last.reply.decode(), b"+ACK")

    # -- checkpoints ------------------------------------------------------------------------

    async def _move_checkpoint(
        self, conn: AsyncConnection, source: str, values: dict[str, Any]
    ) -> None:
        """Write the checkpoint row, on condition that it is still where this runner read or
        last wrote it: two writers of one consumer (two reporting instances folding at once)
        would otherwise each overwrite the other's position, and events would be counted
        twice or never. A row elsewhere raises `CheckpointMoved`, rolling back the
        transaction (the batch's writes with it)."""
        expected = self.stats[source].checkpoint
        updated = await conn.execute(
            update(checkpoints)
            .where(
                checkpoints.c.consumer == self.name,
                checkpoints.c.source == source,
                checkpoints.c.position == expected,
            )
            .values(**values)
        )
        if updated.rowcount != 1:
            found = await conn.scalar(
                select(checkpoints.c.position).where(
                    checkpoints.c.consumer == self.name, checkpoints.c.source == source
                )
            )
            why = (
                f"consumer {self.name} on {source}: the checkpoint is at {found}, not at "
                f"{expected} where this runner left it: another writer (a second instance "
                "folding the same consumer?) moved it; nothing was overwritten, this runner "
                "stops"
            )
            self.stats[source].moved = why
            log.critical("%s", why)
            raise CheckpointMoved(why)

    async def observe(self) -> None:
        """Read every source's checkpoint as the database holds it (a stand-by instance's
        runner, which does not fold, shows the folding instance's progress so)."""
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(
                    checkpoints.c.source,
                    checkpoints.c.position,
                    checkpoints.c.dead_letters,
                    checkpoints.c.genuine,
                ).where(checkpoints.c.consumer == self.name)
            )
            for source, position, dead, genuine in rows:
                if (stats := self.stats.get(source)) is not None:
                    stats.checkpoint, stats.dead_letters = int(position), int(dead)
                    # Else `diverged` would say the stream diverges after position 0.
                    stats.genuine = int(genuine) if genuine is not None else stats.checkpoint

    async def _load_checkpoint(self, source: str) -> None:
        async with self._db_lock, self.db.write() as conn:
            row = (
                await conn.execute(
                    select(
                        checkpoints.c.position,
                        checkpoints.c.dead_letters,
                        checkpoints.c.hash,
                        checkpoints.c.last_dead_letter,
                        checkpoints.c.genuine,
                    ).where(checkpoints.c.consumer == self.name, checkpoints.c.source == source)
                )
            ).first()
            if row is None:
                await conn.execute(
                    checkpoints.insert().values(
                        consumer=self.name, source=source, position=0, dead_letters=0
                    )
                )
        stats = self.stats[source]
        # Dead letters over the consumer's whole life, not only this process's.
        stats.checkpoint, stats.dead_letters = (int(row[0]), int(row[1])) if row else (0, 0)
        stats.last_dead_letter = row[3] if row else None
        stats.chain_head = row[2] if row and row[2] else (GENESIS if not stats.checkpoint else None)
        stats.genuine = int(row[4]) if row and row[4] is not None else stats.checkpoint

    async def refresh_lag(self) -> dict[str, int]:
        """Per source, the events for this consumer that are on the stream but not yet
        committed here: undelivered plus delivered-but-unacknowledged (acks follow commits)."""
        js = self.nc.jetstream()
        for source in self.sources:
            stream = self.naming.stream(source)
            stats = self.stats[source]
            stats.last_seq = int((await js.stream_info(stream)).state.last_seq)
            info = await js.consumer_info(stream, self.name)
            stats.lag = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
        if not self.active:
            # The instance that folds moves the checkpoints. After the lag: a database that
            # does not answer (its checkpoints locked) leaves the lag known, and a stall seen.
            await self.observe()
        return {source: stats.lag for source, stats in self.stats.items()}


_BROKEN_LINK = "chain broken"
_FORGED = "forged"


def _broken_link(event: Envelope[Any], head: str) -> str:
    return (
        f"{_BROKEN_LINK}: {event.type} {event.event_id} at stream sequence {event.position} "
        f"names {event.prev_hash[:16]}… as the hash before it, but the event applied before it "
        f"hashes to {head[:16]}… (an event inserted, dropped or forged)"
    )
