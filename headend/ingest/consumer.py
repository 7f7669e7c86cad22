"""MQTT consumer: MQTT 5 (shared) subscriptions → batches → one DB transaction → PUBACK.

Messages are acknowledged by hand (`askue.headend.mqtt`) only after
the transaction holding them committed, so a crash between receipt and commit
makes the broker deliver them again; the idempotent merge makes that harmless.
A payload that fails validation is stored whole in `dead_letters` (in the same
transaction) and acknowledged; the worker goes on.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec
import psycopg
from psycopg_pool import AsyncConnectionPool

from askue.contract import PayloadError, Topics, decode_data_fast, decode_health, decode_state
from askue.headend import metrics, mqtt
from askue.headend.config import Settings
from askue.headend.ingest import merge
from askue.headend.ingest.batch import Pending
from askue.headend.storage.values import InsertedBatch

log = logging.getLogger(__name__)

# errors that say "this data cannot be stored" rather than "the database is away"; the
# Python ones come from adapting a value (e.g. an integer beyond bigint) for COPY
_DATA_ERRORS = (psycopg.errors.DataError, psycopg.errors.IntegrityError, OverflowError, ValueError)


@dataclass
class IngestStats:
    messages: int = 0
    values: int = 0
    batches: int = 0
    dead_letters: int = 0
    inserted: int = 0
    last_commit: datetime | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)


def _classify(topics: Topics, topic: str, payload: bytes, pending: Pending) -> None:
    now = datetime.now(UTC)
    try:
        gw, kind = topics.parse(topic)
    except ValueError as e:
        pending.dead.append((topic, None, payload, str(e)))
        return
    pending.seen[gw] = now
    try:
        if kind == "data":
            msg = decode_data_fast(payload)
        elif kind == "state":
            msg = decode_state(payload)
        elif kind == "health":
            msg = decode_health(payload)
        else:
            raise PayloadError(f"topic kind {kind!r} is not ingested by the head-end")
    except PayloadError as e:
        pending.dead.append((topic, gw, payload, str(e)))
        return
    if msg.gateway_id != gw:
        pending.dead.append((topic, gw, payload, f"gateway_id {msg.gateway_id!r} in the payload differs from "
                                                  f"the topic's {gw!r}"))
        return
    if kind == "data":
        pending.data.append(msg)
        pending.n_values += len(msg.values)
    elif kind == "state":
        pending.states.append(msg)
    else:
        pending.healths.append(msg)


class Consumer:
    def __init__(self, settings: Settings, pool: AsyncConnectionPool, ctx: merge.MergeContext) -> None:
        self.s = settings
        self.pool = pool
        self.ctx = ctx
        self.topics = Topics(settings.mqtt_root)
        self.stats = IngestStats()
        self.client_id = mqtt.client_id(settings)
        self._link: mqtt.MqttLink | None = None
        # Messages are decoded straight into the batch being built (no object per message);
        # a full one waits in `_ready` (in arrival order) and a new one is started, so a batch
        # never grows past `batch_values` while the writers are busy: an oversized batch holds
        # its meters' rollup rows longer, and the next batch, sharing meters with it, waits.
        self._building = Pending()
        self._ready: deque[Pending] = deque()
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._unacked = 0  # values received and not yet acknowledged (decoded, batched or being written)
        self._kinds = {k: metrics.MESSAGES.labels(k) for k in ("data", "state", "health", "invalid")}

    async def run(self) -> None:
        """Consume until cancelled; reconnects to the broker and retries the database."""
        delay = 0.5
        while True:
            self._building = Pending()
            self._ready.clear()  # unacknowledged: the broker sends them again on the new session
            self._arrived.clear()
            self._full.clear()
            self._unacked = 0
            link = self._link = mqtt.link(self.s, self.client_id, self._on_message,
                                          receive_maximum=self.s.receive_maximum)
            consume: asyncio.Task | None = None
            try:
                await link.connect()
                # A resumed session's queued messages arrive before the SUBACK: batches must be
                # written (and reading resumed) meanwhile, or a full budget would hide the SUBACK.
                consume = asyncio.create_task(self._consume(link))
                subscribed = asyncio.ensure_future(
                    link.subscribe([self._topic(kind) for kind in ("data", "state", "health")]))
                await asyncio.wait({subscribed, consume}, return_when=asyncio.FIRST_COMPLETED)
                if not subscribed.done():
                    subscribed.cancel()
                    await consume  # ended first: raises why
                await subscribed
                log.info("ingest %s subscribed to %s", self.client_id,
                         self._topic("data").replace("/data", "/{data,state,health}"))
                self.stats.connected.set()
                delay = 0.5
                await consume
            except mqtt.LinkLost as e:
                self.stats.connected.clear()
                log.warning("MQTT connection to %s:%s lost (%s); retrying in %.1fs",
                            self.s.mqtt_host, self.s.mqtt_port, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
            finally:
                if consume is not None and not consume.done():
                    consume.cancel()
                    await asyncio.gather(consume, return_exceptions=True)
                await link.close()

    def _topic(self, kind: str) -> str:
        """A shared subscription when a group is set, else a plain one (restored by the broker
        from its persistence after a restart, unlike shared ones in mosquitto 2.0)."""
        g = self.s.mqtt_group
        return self.topics.shared(g, kind) if g else self.topics.all_of(kind)

    def _on_message(self, m: mqtt.Message) -> None:
        """Decode one message into the batch being built; stop reading while too many values wait."""
        b = self._building
        before = b.n_values
        self._add(m, b)
        self._unacked += b.n_values - before
        self._arrived.set()
        if b.n_values >= self.s.batch_values:
            self._ready.append(b)
            self._building = Pending()
            self._full.set()
        if self._unacked >= self.s.ingest_max_pending_values and self._link is not None:
            self._link.pause()

    def _acked(self, n_values: int) -> None:
        self._unacked -= n_values
        link = self._link
        if link is not None and link.paused and self._unacked < self.s.ingest_max_pending_values // 2:
            link.resume()

    async def _consume(self, link: mqtt.MqttLink) -> None:
        # Up to `ingest_writers` batches are written at once while the next one is built (acks
        # stay per message, so their order does not matter).
        writers = asyncio.Semaphore(self.s.ingest_writers)
        inflight: set[asyncio.Task] = set()
        loop = asyncio.get_running_loop()

        async def until(event: asyncio.Event, timeout: float | None) -> None:
            waiter = asyncio.ensure_future(event.wait())
            done, _ = await asyncio.wait({waiter, link.lost}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if link.lost in done:
                link.lost.result()  # raises the LinkLost that ended the session

        try:
            while True:
                await until(self._arrived, None)
                deadline = loop.time() + self.s.batch_linger_s
                while not self._ready and loop.time() < deadline:
                    await until(self._full, deadline - loop.time())
                if self._ready:
                    pending = self._ready.popleft()
                else:
                    pending, self._building = self._building, Pending()
                if not self._ready:
                    self._full.clear()
                    if not len(self._building):
                        self._arrived.clear()
                metrics.QUEUE_DEPTH.set(len(pending))
                if not len(pending):
                    continue
                await writers.acquire()
                task = asyncio.create_task(self._commit(pending))
                inflight.add(task)
                task.add_done_callback(lambda t: (inflight.discard(t), writers.release()))
        finally:
            for t in inflight:
                t.cancel()

    def _add(self, m: mqtt.Message, pending: Pending) -> None:
        self.stats.messages += 1
        n = (len(pending.data), len(pending.states), len(pending.healths))
        _classify(self.topics, m.topic, m.payload, pending)
        self._kinds["data" if len(pending.data) > n[0] else "state" if len(pending.states) > n[1] else
                    "health" if len(pending.healths) > n[2] else "invalid"].inc()
        if m.qos > 0:
            if not pending.mids:  # the batch's first: one write acknowledges them all after the commit
                link, mids = self._link, pending.mids
                pending.acks.append(lambda: link.ack_many(mids))
            pending.mids.append(m.mid)

    async def _commit(self, pending: Pending) -> None:
        metrics.IN_FLIGHT.inc()
        try:
            with metrics.COMMIT_SECONDS.time():
                batch = await self._write(pending)
        finally:
            metrics.IN_FLIGHT.dec()
        for ack in pending.acks:
            ack()
        self._acked(pending.n_values)
        self.stats.batches += 1
        self.stats.values += pending.n_values
        self.stats.dead_letters += len(pending.dead)
        self.stats.inserted += batch.count if batch else 0
        self.stats.last_commit = datetime.now(UTC)
        metrics.LAST_COMMIT.set(self.stats.last_commit.timestamp())  # before the count a reader waits on
        metrics.BATCHES.inc()
        metrics.VALUES.inc(pending.n_values)
        metrics.DEAD_LETTERS.inc(len(pending.dead))

    async def _write(self, pending: Pending) -> InsertedBatch | None:
        """Write the batch until it is committed; None when it had to go message by message."""
        delay = 0.5
        while True:
            try:
                async with self.pool.connection() as conn:
                    try:
                        batch = await merge.write(conn, self.ctx, pending)
                    except psycopg.OperationalError:
                        raise
                    except Exception as e:  # data the database refuses, or a bug: isolate, never loop
                        log.warning("batch refused (%s: %s); writing its messages one by one", type(e).__name__, e)
                        await self._write_singly(conn, pending)
                        batch = None
                return batch
            except psycopg.errors.TransactionRollback as e:
                # a deadlock with another writer of the same meters' rollup rows: PostgreSQL rolled
                # this batch back whole; write it again at once
                log.info("batch of %d messages rolled back (%s); writing it again", len(pending), e.sqlstate)
            except psycopg.OperationalError as e:
                log.warning("database unavailable (%s); batch of %d messages kept unacknowledged, retry in %.1fs",
                            e, len(pending), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    async def _write_singly(self, conn: psycopg.AsyncConnection, pending: Pending) -> None:
        """Isolate the message the database refuses: it goes to dead letters, the rest are stored."""
        for msg in pending.data:
            one = Pending(data=[msg], seen={msg.gateway_id: pending.seen.get(msg.gateway_id, datetime.now(UTC))},
                          n_values=len(msg.values))
            try:
                await merge.write(conn, self.ctx, one)
            except psycopg.OperationalError:
                raise
            except Exception as e:
                if not isinstance(e, _DATA_ERRORS):
                    log.exception("unexpected error writing one message; it goes to dead letters")
                pending.dead.append((self.topics.data(msg.gateway_id), msg.gateway_id,
                                     msgspec.json.encode(msg), f"database refused the payload: {e}"))
        # state and health messages can be refused too (a NUL in a text field, jsonb limits):
        # isolate them as well, or the batch would fail forever and never be acknowledged
        for st, topic in [(s, self.topics.state(s.gateway_id)) for s in pending.states] + \
                         [(h, self.topics.health(h.gateway_id)) for h in pending.healths]:
            one = Pending(states=[st] if topic.endswith("/state") else [],
                          healths=[st] if topic.endswith("/health") else [],
                          seen={st.gateway_id: pending.seen.get(st.gateway_id, datetime.now(UTC))})
            try:
                await merge.write(conn, self.ctx, one)
            except psycopg.OperationalError:
                raise
            except Exception as e:
                if not isinstance(e, _DATA_ERRORS):
                    log.exception("unexpected error writing one message; it goes to dead letters")
                pending.dead.append((topic, st.gateway_id, msgspec.json.encode(st),
                                     f"database refused the payload: {e}"))
        rest = Pending(dead=pending.dead, seen=pending.seen)
        await merge.write(conn, self.ctx, rest)
