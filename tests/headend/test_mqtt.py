"""The head-end's MQTT link against mosquitto: a resumed session's backlog arrives before the
SUBACK, and flow control stops reading it; neither may pass for a lost SUBACK (with 10 million
values waiting, a worker dropped its connection every 120 s)."""
from __future__ import annotations

import asyncio

import paho.mqtt.client as paho

from askue.headend.mqtt import MqttLink

TOPIC = "t/backlog"


def _queue(host: str, port: int, n: int, size: int) -> None:
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="link-test-pub", protocol=paho.MQTTv5)
    c.connect(host, port)
    c.loop_start()
    try:
        infos = [c.publish(TOPIC, bytes(size), qos=1) for _ in range(n)]
        for info in infos:
            info.wait_for_publish(30)
    finally:
        c.disconnect()
        c.loop_stop()


async def test_suback_waits_behind_a_paused_backlog(mqtt_broker) -> None:
    host, port = mqtt_broker.host, mqtt_broker.port
    first = MqttLink(host, port, "link-test-backlog", lambda m: None)
    await first.connect()
    await first.subscribe([TOPIC])
    await first.close()
    # 15 MB queued for the session: more than the socket buffers hold, so the SUBACK of the
    # next connection waits behind them in the broker
    await asyncio.to_thread(_queue, host, port, 1500, 10_000)

    got: list[tuple[int, int]] = []
    acking = False
    all_in = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_message(m: paho.MQTTMessage) -> None:
        got.append((m.mid, m.qos))
        if acking:
            link.ack(m.mid, m.qos)
        if len(got) == 1:  # flow control: too much waits for its commit
            link.pause()
            loop.call_later(2.5, link.resume)
        if len(got) == 1500:
            all_in.set()

    link = MqttLink(host, port, "link-test-backlog", on_message, receive_maximum=1000)
    try:
        assert await link.connect() is True  # the session with its queued messages
        await link.subscribe([TOPIC], timeout=1.0)  # paused for 2.5 s: not a lost SUBACK
        assert not link.lost.done()
        assert len(got) >= 1000  # the backlog came first, up to Receive Maximum
        acking = True
        for mid, qos in got:
            link.ack(mid, qos)
        await asyncio.wait_for(all_in.wait(), 30)  # the rest once acknowledgements free the window
    finally:
        await link.close()


async def test_close_while_an_ack_waits_to_be_written(mqtt_broker, caplog) -> None:
    """paho closes its socket inside close() while the loop still watches it for writing (an
    acknowledgement queued a moment before): the descriptor must leave the loop first, or
    epoll refuses the closed one (EBADF from close(), a failing callback after it)."""
    host, port = mqtt_broker.host, mqtt_broker.port
    got: list[tuple[int, int]] = []
    arrived = asyncio.Event()

    def on_message(m: paho.MQTTMessage) -> None:
        got.append((m.mid, m.qos))
        arrived.set()

    link = MqttLink(host, port, "link-test-close", on_message)
    await link.connect()
    await link.subscribe([TOPIC])
    await asyncio.to_thread(_queue, host, port, 1, 10)
    await asyncio.wait_for(arrived.wait(), 10)
    link.ack(*got[0])
    await asyncio.sleep(0)  # the loop now watches the socket for writing the PUBACK
    await link.close()
    await asyncio.sleep(0.1)  # callbacks queued before the close have run
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
