"""A lean MQTT 5 QoS 1 publisher for benchmarks: packets encoded before the clock starts,
written in large chunks, acknowledgements counted.

Why not paho: the live ingest benchmark runs the publisher on the cores the head-end and
PostgreSQL are measured on, yet it stands in for gateways that run on their own hardware.
paho spent about 9 µs of CPU per value (220 µs per 24-value message) publishing at QoS 1,
a quarter of two cores at the head-end's rate; this one spends a small fraction of that,
so the figure is the head-end's and not the stand-in's. The packets are the head-end's
own codec's (`askue.headend.mqtt_wire`).
"""
from __future__ import annotations

import socket
from collections.abc import Iterable

from askue.headend import mqtt_wire as wire


class PublishError(Exception):
    pass


def packets(messages: Iterable[tuple[str, bytes]]) -> list[bytes]:
    """QoS 1 PUBLISH packets with packet ids 1..65535 in turn (a window below 65535 keeps them unique)."""
    return [wire.publish(t, p, qos=1, packet_id=i % 65535 + 1) for i, (t, p) in enumerate(messages)]


class Publisher:
    """One connection; `send` returns once the broker acknowledged every packet."""

    def __init__(self, host: str, port: int, client_id: str, window: int = 1000, timeout: float = 60.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.sock.sendall(wire.connect(client_id, clean_start=True))
        first, body = self._next()
        if first != wire.CONNACK:
            raise PublishError(f"expected CONNACK, got packet {first:#x}")
        _, code, props = wire.connack(body)
        if code >= 0x80:
            raise PublishError(f"broker refused the connection: {wire.reason(code)}")
        self.window = min(window, int(props.get(wire.RECEIVE_MAXIMUM, 65535)))

    def _next(self) -> tuple[int, bytes]:
        """The first packet (the CONNACK: nothing else comes before a PUBLISH was sent)."""
        while True:
            for frame in wire.frames(self.buf):
                return frame
            self._recv()

    def _recv(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise PublishError("the broker closed the connection")
        self.buf += chunk

    def _acks(self) -> int:
        """Acknowledgements received (at least one: waits for it)."""
        n = 0
        while not n:
            for first, body in wire.frames(self.buf):
                if first & 0xF0 != wire.PUBACK:
                    raise PublishError(f"unexpected packet {first:#x} from the broker")
                if len(body) > 2 and body[2] >= 0x80:
                    raise PublishError(f"the broker refused message {int.from_bytes(body[:2], 'big')}: "
                                       f"reason {body[2]:#x}")
                n += 1
            if not n:
                self._recv()
        return n

    def send(self, pkts: list[bytes], chunk: int = 64) -> None:
        sent = acked = 0
        while acked < len(pkts):
            if sent < len(pkts) and sent - acked < self.window:
                end = min(len(pkts), sent + chunk, acked + self.window)
                self.sock.sendall(b"".join(pkts[sent:end]))
                sent = end
            else:
                acked += self._acks()

    def close(self) -> None:
        try:
            self.sock.sendall(wire.disconnect())
        finally:
            self.sock.close()
