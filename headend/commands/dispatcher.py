"""The command dispatcher: a background task of the head-end (composition.BACKGROUND_TASKS).

- publishes pending commands of online gateways to `<root>/v1/<gateway>/cmd` (QoS 1, with
  the MQTT 5 message expiry set to the time the command has left) and marks them sent once
  the broker acknowledged them;
- records every `…/cmd/result` with its command, acknowledging the message only after the
  database committed it (an answer to no command of ours becomes a dead letter);
- expires commands that waited or went unanswered past their `expires_at`.

It wakes on the database's NOTIFY (a command stored, a gateway online again), at the next
expiry, and every `command_poll_s` at the latest.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import psycopg
from psycopg_pool import AsyncConnectionPool

from askue.contract import PayloadError, Topics, decode_command_result
from askue.headend import metrics, mqtt
from askue.headend.commands import queue
from askue.headend.config import Settings
from askue.headend.ingest import dead_letters

log = logging.getLogger(__name__)
CHANNEL = "askue_commands"


@dataclass
class DispatcherStats:
    sent: int = 0
    results: int = 0
    expired: int = 0
    unknown: int = 0


class Dispatcher:
    def __init__(self, settings: Settings, pool: AsyncConnectionPool) -> None:
        self.s = settings
        self.pool = pool
        self.topics = Topics(settings.mqtt_root)
        self.client_id = mqtt.client_id(settings, "-cmd")
        self.stats = DispatcherStats()
        self.connected = asyncio.Event()
        self._wake = asyncio.Event()
        self._results: asyncio.Queue[mqtt.Message] = asyncio.Queue()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled: keeps the broker connection, the LISTEN connection and the expiry
        sweep going, each recovering on its own."""
        side = [asyncio.create_task(self._listen(), name="commands-listen"),
                asyncio.create_task(self._expire_loop(), name="commands-expire")]
        try:
            delay = 0.5
            while True:
                self._results = asyncio.Queue()
                link = mqtt.link(self.s, self.client_id, self._results.put_nowait)
                try:
                    await link.connect()
                    await link.subscribe([self._result_topic()])
                    log.info("command dispatcher %s subscribed to %s", self.client_id, self._result_topic())
                    self.connected.set()
                    delay = 0.5
                    self.wake()
                    await _first_failure(self._read_results(link), self._send_loop(link), link.lost)
                except mqtt.LinkLost as e:
                    self.connected.clear()
                    log.warning("command dispatcher: MQTT connection to %s:%s lost (%s); retrying in %.1fs",
                                self.s.mqtt_host, self.s.mqtt_port, e, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10)
                finally:
                    await link.close()
        finally:
            for t in side:
                t.cancel()
            await asyncio.gather(*side, return_exceptions=True)

    def _result_topic(self) -> str:
        g = self.s.mqtt_group
        return self.topics.shared(g, "cmd/result") if g else self.topics.all_of("cmd/result")

    # ---- publishing --------------------------------------------------------------------
    async def _send_loop(self, link: mqtt.MqttLink) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.s.command_poll_s)
            self._wake.clear()
            try:
                more = await self.send_due(link)
            except psycopg.OperationalError as e:
                log.warning("command dispatcher: database unavailable (%s); retrying", e)
                await asyncio.sleep(1)
                more = True
            if more:
                self._wake.set()

    async def send_due(self, link: mqtt.MqttLink, limit: int = 100) -> bool:
        """Publish what can go now; True when there may be more."""
        failure: mqtt.LinkLost | None = None
        async with self.pool.connection() as conn, conn.transaction():
            due = await queue.claim_due(conn, limit)
            sent: list[int] = []
            for d in due:
                try:
                    await link.publish(self.topics.cmd(d.gateway_id), d.payload(), qos=1,
                                       expiry_s=max(1, int(d.left_s)), timeout=10)
                except mqtt.LinkLost as e:
                    failure = e  # the published ones are marked sent; the rest wait for the reconnection
                    break
                sent.append(d.id)
                log.info("command %s (%s) sent to gateway %s", d.mqtt_id, d.command, d.gateway_id)
            await queue.mark_sent(conn, sent)
        self.stats.sent += len(sent)
        metrics.COMMANDS.labels("sent").inc(len(sent))
        if failure is not None:
            raise failure
        return len(due) == limit

    # ---- results -----------------------------------------------------------------------
    async def _read_results(self, link: mqtt.MqttLink) -> None:
        while True:
            m = await self._results.get()
            await self.take_result(m.topic, m.payload)
            link.ack(m.mid, m.qos)

    async def take_result(self, topic: str, payload: bytes) -> int | None:
        """Record one `…/cmd/result` message (retrying while the database is away); the
        command's id, or None when it went to dead letters."""
        reason, fresh = None, False
        try:
            gw, kind = self.topics.parse(topic)
            if kind != "cmd/result":
                raise ValueError(f"topic {topic!r} carries no command result")
            res = decode_command_result(payload)
        except (ValueError, PayloadError) as e:
            gw, res, reason = None, None, str(e)
        delay = 0.5
        while True:
            try:
                async with self.pool.connection() as conn, conn.transaction():
                    if res is not None:
                        cid, fresh = await queue.record_result(conn, gw, res)
                        if cid is not None:
                            break
                        reason = f"result for command {res.id!r}, which this head-end did not send to {gw}"
                    await dead_letters.store(conn, [(topic, gw, payload, reason or "")])
                    cid = None
                    break
            except psycopg.OperationalError as e:
                log.warning("command dispatcher: database unavailable (%s); result kept unacknowledged", e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
        if cid is None:
            self.stats.unknown += 1
            metrics.COMMANDS.labels("unknown_result").inc()
            metrics.DEAD_LETTERS.inc()
            log.warning("command result on %s kept as a dead letter: %s", topic, reason)
        elif fresh:
            self.stats.results += 1
            metrics.COMMANDS.labels("done" if res.ok else "failed").inc()
            log.info("command %s (%s) on gateway %s: %s", res.id, res.cmd, gw, "done" if res.ok else res.error)
        return cid

    # ---- expiry and wake-ups -----------------------------------------------------------
    async def _expire_loop(self) -> None:
        while True:
            try:
                async with self.pool.connection() as conn:
                    gone = await queue.expire_due(conn)
                    left = await queue.seconds_to_next_expiry(conn)
                if gone:
                    self.stats.expired += len(gone)
                    metrics.COMMANDS.labels("expired").inc(len(gone))
                    log.info("commands expired: %s", ", ".join(map(str, gone)))
            except psycopg.OperationalError as e:
                log.warning("command dispatcher: cannot expire commands (%s)", e)
                left = None
            wait = self.s.command_poll_s if left is None else min(self.s.command_poll_s, left + 0.05)
            await asyncio.sleep(wait)

    async def _listen(self) -> None:
        delay = 0.5
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.s.dsn, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    delay = 0.5
                    self.wake()  # whatever was notified while we were not listening
                    async for _ in conn.notifies():
                        self.wake()
            except psycopg.OperationalError as e:
                log.warning("command dispatcher: LISTEN connection lost (%s); retrying in %.1fs", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)


async def _first_failure(*coros) -> None:
    """Run until one ends; re-raise its error (a LinkLost reconnects)."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            t.result()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def command_task(pool: AsyncConnectionPool, settings: Settings) -> None:
    """The background task: the dispatcher for the life of the head-end."""
    await Dispatcher(settings, pool).run()
