"""MQTT uplink: publishes stored values and deletes them only on PUBACK.

paho-mqtt 2.x runs the network loop in its own thread and calls `on_publish`
with the message id when the broker's PUBACK arrives — exact per-message
acknowledgement, which the store needs. Callbacks are handed to the asyncio
loop with call_soon_threadsafe. MQTT 5, QoS 1, persistent session
(clean_start=False with a session expiry), Last Will on `…/state` (retained,
offline) and a retained birth message. Messages handed to paho but not yet
acknowledged when the link drops are re-sent by paho on reconnect; values not
yet handed over stay in the store, so polling goes on while the uplink is down.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from askue import __version__
from askue.contract.payloads import SCHEMA_VERSION, DataMessage, MeterStatus, State, encode
from askue.contract.topics import Topics
from askue.gateway.config import BrokerSection, GatewaySection
from askue.gateway.store import AsyncStore, Batch

log = logging.getLogger("askue.gateway.mqtt")

LINGER_S = 0.2  # longest a value waits for a fuller message once the uplink is idle
NO_MATCHING_SUBSCRIBERS = 0x10  # MQTT 5 PUBACK reason code
UNROUTED_HOLD_S = 2.0  # pause before sending again what nobody subscribed to


def build_data_payload(gateway_id: str, seq: int, bodies: list[bytes], meters: list[MeterStatus]) -> bytes:
    """A DataMessage whose values are the stored JSON bodies spliced in as they are
    (no decode/encode round trip per value)."""
    head = encode(DataMessage(v=SCHEMA_VERSION, gateway_id=gateway_id, seq=seq, sent_at=datetime.now(UTC),
                              values=[], meters=meters))
    marker = b'"values":[]'
    i = head.index(marker)
    return head[:i] + b'"values":[' + b",".join(bodies) + b"]" + head[i + len(marker):]


class Publisher:
    def __init__(self, gw: GatewaySection, broker: BrokerSection, store: AsyncStore,
                 statuses: Callable[[set[str]], list[MeterStatus]],
                 on_command: Callable[[bytes], None], meters_count: Callable[[], int] = lambda: 0):
        self.gw, self.broker, self.store = gw, broker, store
        self.topics = Topics(gw.topic_root)
        self.statuses = statuses
        self.on_command = on_command
        self.meters_count = meters_count
        self.started_at = datetime.now(UTC)
        self.connected = asyncio.Event()
        self._acked = asyncio.Event()
        self._wake = asyncio.Event()
        self._inflight: dict[int, Batch | None] = {}
        self._bg: set[asyncio.Task] = set()
        self._inflight_values = 0
        self._last_publish = 0.0
        self._dirty: set[str] = set()
        self._running = False
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.sent_messages = 0
        self.acked_messages = 0
        self.acked_values = 0
        self.refused = 0
        self.unrouted = 0  # data messages nobody subscribed to (kept and sent again)
        self._hold_until = 0.0
        self.connects = 0
        self.last_error: str | None = None
        self.client = self._make_client()

    # ---- paho client and its callbacks (network thread) ----------------------------------
    def _make_client(self) -> mqtt.Client:
        b = self.broker
        cid = b.client_id or f"askue-gw-{self.gw.id}"
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
        c.max_inflight_messages_set(b.max_inflight)
        c.max_queued_messages_set(0)
        c.reconnect_delay_set(1, int(b.reconnect_max_s))
        if b.username:
            c.username_pw_set(b.username, b.password)
        if b.tls is not None:
            c.tls_set(ca_certs=b.tls.ca_file, certfile=b.tls.cert_file, keyfile=b.tls.key_file,
                      cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
            c.tls_insecure_set(b.tls.insecure)
        c.will_set(self.topics.state(self.gw.id), self._state(False), qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        return c

    def _state(self, online: bool) -> bytes:
        return encode(State(v=SCHEMA_VERSION, gateway_id=self.gw.id, online=online, at=datetime.now(UTC),
                            version=__version__, started_at=self.started_at, meters=self.meters_count()))

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker refused the connection: {reason_code}"
            log.error("mqtt %s:%s: %s", self.broker.host, self.broker.port, self.last_error)
            return
        client.subscribe(self.topics.cmd(self.gw.id), qos=1)
        client.publish(self.topics.state(self.gw.id), self._state(True), qos=1, retain=True)
        self._call(self._set_connected, True, bool(flags.session_present))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._call(self._set_connected, False, str(reason_code))

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        if reason_code.value == NO_MATCHING_SUBSCRIBERS:
            self._call(self._unrouted, mid)
        else:
            self._call(self._ack, mid, reason_code.is_failure, str(reason_code))

    def _on_message(self, client, userdata, msg) -> None:
        # Only the gateway's own command topic is acted on, whatever else arrives.
        if msg.topic == self.topics.cmd(self.gw.id):
            self._call(self.on_command, bytes(msg.payload))
        else:
            log.warning("ignoring a message on %s: only %s carries commands", msg.topic, self.topics.cmd(self.gw.id))

    def _call(self, fn, *args) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)

    # ---- asyncio side --------------------------------------------------------------------
    def _set_connected(self, up: bool, detail) -> None:
        if up:
            self.connects += 1
            self.last_error = None
            log.info("mqtt connected to %s:%s (session present: %s, %d messages awaiting PUBACK)",
                     self.broker.host, self.broker.port, detail, len(self._inflight))
            self.connected.set()
        else:
            if self.connected.is_set() and self._running:
                log.warning("mqtt connection to %s:%s lost: %s; values stay in the store",
                            self.broker.host, self.broker.port, detail)
            self.last_error = f"disconnected: {detail}"
            self.connected.clear()

    def _ack(self, mid: int, failed: bool, reason: str) -> None:
        if mid not in self._inflight:
            return  # birth/state/health/result messages
        batch = self._inflight.pop(mid)
        if batch is not None:
            self._inflight_values -= len(batch)
            if failed:
                self.refused += 1
                log.error("broker refused data message seq %d (%s); it stays in the store", batch.seq, reason)
                self._spawn(self.store.release(batch))
            else:
                self._spawn(self.store.batch_done(batch))
                self.acked_values += len(batch)
        self.acked_messages += 1
        self._acked.set()

    def _unrouted(self, mid: int) -> None:
        """The broker took the message but nobody subscribes to it (MQTT 5 PUBACK 0x10): no
        head-end got it. Typical after a mosquitto restart with the head-end's workers in a
        shared-subscription group, which mosquitto 2.0 does not restore from persistence until
        the workers subscribe again. The values stay in the store and go again shortly."""
        batch = self._inflight.get(mid)
        if batch is None:
            self._ack(mid, False, "no matching subscribers")  # birth/state/health/status only
            return
        if time.monotonic() >= self._hold_until:
            log.warning("broker has no subscriber for %s; values stay in the store and are sent again in %.0f s",
                        self.topics.data(self.gw.id), UNROUTED_HOLD_S)
        self._hold_until = time.monotonic() + UNROUTED_HOLD_S
        self.unrouted += 1
        self._inflight.pop(mid)
        self._inflight_values -= len(batch)
        self._spawn(self.store.release(batch))
        self.acked_messages += 1
        self._acked.set()

    def _spawn(self, coro) -> None:
        t = asyncio.ensure_future(coro)
        self._bg.add(t)
        t.add_done_callback(self._bg_done)

    def _bg_done(self, t: asyncio.Task) -> None:
        self._bg.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.error("store update after PUBACK failed (the values will be sent again): %s", t.exception())

    def mark_status(self, meter_id: str) -> None:
        """A meter's status changed: send it with the next data message."""
        self._dirty.add(meter_id)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._running = True
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=int(self.broker.keepalive_s),
                                  clean_start=False, properties=self._connect_props())
        self.client.loop_start()
        self._task = asyncio.create_task(self._run(), name="mqtt-publisher")

    def _connect_props(self) -> Properties:
        p = Properties(PacketTypes.CONNECT)
        p.SessionExpiryInterval = self.broker.session_expiry_s
        return p

    async def _run(self) -> None:
        next_slot = time.monotonic()  # pacing of the catch-up throttle
        while self._running:
            await self.connected.wait()
            hold = self._hold_until - time.monotonic()
            if hold > 0:
                await asyncio.sleep(min(hold, 1.0))
                continue
            if len(self._inflight) >= self.broker.max_inflight:
                self._acked.clear()
                await _wait(self._acked, 1.0)
                continue
            # Linger a moment for a fuller message: fewer messages, PUBACKs and store commits
            # per value; a full batch goes at once.
            linger = LINGER_S - (time.monotonic() - self._last_publish)
            if linger > 0 and self.store.store.depth - self._inflight_values < self.broker.batch_values:
                await asyncio.sleep(linger)
            try:
                batch = await self.store.get_batch(self.broker.batch_values)
            except Exception as e:  # StoreError, sqlite3.Error: keep trying, polling goes on
                log.error("cannot read the store: %s", e)
                await asyncio.sleep(1.0)
                continue
            if batch is None and not self._dirty:
                self._wake.clear()
                await _wait(self._wake, 1.0)
                continue
            meters = set(self._dirty)
            self._dirty.clear()
            if batch is not None:
                meters |= batch.meter_ids
            statuses = self.statuses(meters)
            if batch is None:
                # Status only (a meter stopped answering): not stored, regenerated after a restart.
                payload = build_data_payload(self.gw.id, await self.store.next_seq(), [], statuses)
            else:
                payload = build_data_payload(self.gw.id, batch.seq, batch.bodies, statuses)
            info = self.client.publish(self.topics.data(self.gw.id), payload, qos=1)
            self._inflight[info.mid] = batch
            self._last_publish = time.monotonic()
            if batch is not None:
                self._inflight_values += len(batch)
            self.sent_messages += 1
            if batch is not None:
                # Catch-up throttle: keep CPU and the SD card for polling. Each batch books
                # len/rate seconds of the line after the previous booking (pacing), so the
                # rate holds over any window, pauses included.
                now = time.monotonic()
                next_slot = max(next_slot, now) + len(batch) / self.gw.catchup_values_per_s
                if next_slot - now > 0:
                    await asyncio.sleep(next_slot - now)
            else:
                await asyncio.sleep(0)

    def publish_aux(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Health and command results: sent when connected, not stored (they are regenerated)."""
        self.client.publish(topic, payload, qos=qos, retain=retain)

    async def flush(self, timeout: float) -> bool:
        """Publish what is stored and wait for the acknowledgements (clean shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._inflight and not self._bg and not self.store.store.pending_unsent() and not self._dirty:
                return True
            await asyncio.sleep(0.05)
        return False

    async def stop(self, flush_timeout: float = 0.0) -> None:
        flushed = True
        if flush_timeout > 0 and self.connected.is_set():
            flushed = await self.flush(flush_timeout)
        self._running = False
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self.connected.is_set():
            info = self.client.publish(self.topics.state(self.gw.id), self._state(False), qos=1, retain=True)
            try:
                await asyncio.wait_for(asyncio.to_thread(info.wait_for_publish, 3.0), 4.0)
            except (TimeoutError, RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()
        if self._bg:
            await asyncio.gather(*self._bg, return_exceptions=True)
        if not flushed:
            log.warning("shutdown: %d values not acknowledged yet; they stay in the store", self.store.store.depth)

    def stats(self) -> dict[str, float]:
        return {"connected": float(self.connected.is_set()), "sent_messages": self.sent_messages,
                "acked_messages": self.acked_messages, "acked_values": self.acked_values,
                "refused": self.refused, "unrouted": self.unrouted, "connects": self.connects,
                "inflight": len(self._inflight)}


async def _wait(ev: asyncio.Event, timeout: float) -> None:
    try:
        await asyncio.wait_for(ev.wait(), timeout)
    except TimeoutError:
        pass
