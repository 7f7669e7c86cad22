"""A stand-in for the head-end in the gateway benchmarks: a subscriber on every gateway's
data topic. Without one the broker answers a gateway's data with PUBACK 0x10 ("no matching
subscribers") and the gateway keeps the values to send again (docs/mqtt-contract.md), so
nothing would ever drain."""
from __future__ import annotations

import threading

import paho.mqtt.client as paho

from askue.contract import Topics


class DataSink:
    def __init__(self, port: int, root: str = "askue") -> None:
        self.port, self.topic = port, Topics(root).all_of("data")
        self.messages = 0
        self._client: paho.Client | None = None

    def start(self) -> DataSink:
        subscribed = threading.Event()
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-data-sink", protocol=paho.MQTTv5)
        c.on_subscribe = lambda *_: subscribed.set()
        c.on_message = lambda *_: setattr(self, "messages", self.messages + 1)
        c.connect("127.0.0.1", self.port)
        c.loop_start()
        c.subscribe(self.topic, qos=1)
        if not subscribed.wait(30):
            c.loop_stop()
            raise RuntimeError(f"the data sink did not subscribe to {self.topic} on port {self.port}")
        self._client = c
        return self

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
