"""aiomqtt consumer: MQTT 5 shared subscriptions → batches → one DB transaction → PUBACK.

Messages are acknowledged by hand (paho's manual ack under aiomqtt) only after
the transaction holding them committed, so a crash between receipt and commit
makes the broker deliver them again; the idempotent merge makes that harmless.
A payload that fails validation is stored whole in `dead_letters` (in the same
transaction) and acknowledged; the worker goes on.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiomqtt
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

    def _client(self) -> aiomqtt.Client:
        return mqtt.make_client(self.s, self.client_id, receive_maximum=self.s.receive_maximum)

    async def run(self) -> None:
        """Consume until cancelled; reconnects to the broker and retries the database."""
        delay = 0.5
        while True:
            try:
                async with self._client() as client:
                    for kind in ("data", "state", "health"):
                        await client.subscribe(self._topic(kind), qos=1)
                    log.info("ingest %s subscribed to %s", self.client_id,
                             self._topic("data").replace("/data", "/{data,state,health}"))
                    self.stats.connected.set()
                    delay = 0.5
                    await self._consume(client)
            except aiomqtt.MqttError as e:
                self.stats.connected.clear()
                log.warning("MQTT connection to %s:%s lost (%s); retrying in %.1fs",
                            self.s.mqtt_host, self.s.mqtt_port, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    def _topic(self, kind: str) -> str:
        """A shared subscription when a group is set, else a plain one (restored by the broker
        from its persistence after a restart, unlike shared ones in mosquitto 2.0)."""
        g = self.s.mqtt_group
        return self.topics.shared(g, kind) if g else self.topics.all_of(kind)

    async def _consume(self, client: aiomqtt.Client) -> None:
        # The reader decodes while writers wait on the database; up to `ingest_writers`
        # batches are written at once (acks stay per message, so their order does not matter).
        queue: asyncio.Queue[tuple[Pending, int]] = asyncio.Queue()

        async def reader() -> None:
            async for m in client.messages:
                one = Pending()
                self._add(client, m, one)
                queue.put_nowait((one, one.n_values))
                metrics.QUEUE_DEPTH.set(queue.qsize())

        reader_task = asyncio.create_task(reader())
        writers = asyncio.Semaphore(self.s.ingest_writers)
        inflight: set[asyncio.Task] = set()
        try:
            while True:
                first = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({first, reader_task}, return_when=asyncio.FIRST_COMPLETED)
                if reader_task in done:
                    first.cancel()
                    reader_task.result()  # re-raises the MqttError that ended the reader
                    return
                pending = Pending()
                pending.extend(first.result()[0])
                loop = asyncio.get_running_loop()
                deadline = loop.time() + self.s.batch_linger_s
                while pending.n_values < self.s.batch_values:
                    timeout = deadline - loop.time()
                    if queue.empty() and timeout <= 0:
                        break
                    try:
                        item = queue.get_nowait() if not queue.empty() else await asyncio.wait_for(queue.get(), timeout)
                    except TimeoutError:
                        break
                    pending.extend(item[0])
                metrics.QUEUE_DEPTH.set(queue.qsize())
                await writers.acquire()
                task = asyncio.create_task(self._commit(pending))
                inflight.add(task)
                task.add_done_callback(lambda t: (inflight.discard(t), writers.release()))
        finally:
            reader_task.cancel()
            for t in inflight:
                t.cancel()

    def _add(self, client: aiomqtt.Client, m: aiomqtt.Message, pending: Pending) -> None:
        payload = m.payload if isinstance(m.payload, bytes | bytearray) else str(m.payload or "").encode()
        _classify(self.topics, m.topic.value, bytes(payload), pending)
        self.stats.messages += 1
        metrics.MESSAGES.labels("data" if pending.data else "state" if pending.states else
                                "health" if pending.healths else "invalid").inc()
        if m.qos > 0:
            pending.acks.append(mqtt.acker(client, m))

    async def _commit(self, pending: Pending) -> None:
        metrics.IN_FLIGHT.inc()
        try:
            with metrics.COMMIT_SECONDS.time():
                batch = await self._write(pending)
        finally:
            metrics.IN_FLIGHT.dec()
        for ack in pending.acks:
            ack()
        self.stats.batches += 1
        self.stats.values += pending.n_values
        self.stats.dead_letters += len(pending.dead)
        self.stats.inserted += batch.count if batch else 0
        self.stats.last_commit = datetime.now(UTC)
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
