"""The MQTT 5 codec against the standard's own examples, and the link against a broker that
sends what MQTT does not allow (it must end the session with a clear reason, not crash the
worker or hand on garbage)."""
from __future__ import annotations

import asyncio

import pytest

from askue.headend import mqtt_wire as wire
from askue.headend.mqtt import LinkLost, MqttLink

# OASIS MQTT 5.0, 1.5.5 (Variable Byte Integer): the edges of each length
SPEC_VARINTS = [(0, "00"), (127, "7f"), (128, "8001"), (16_383, "ff7f"), (16_384, "808001"),
                (2_097_151, "ffff7f"), (2_097_152, "80808001"), (268_435_455, "ffffff7f")]


@pytest.mark.parametrize("n, hexed", SPEC_VARINTS)
def test_variable_byte_integers_as_the_standard_gives_them(n: int, hexed: str) -> None:
    assert wire.varint(n).hex() == hexed
    assert wire.read_varint(bytes.fromhex(hexed), 0) == (n, len(hexed) // 2)


def test_a_fifth_length_byte_is_refused_and_a_short_buffer_waits() -> None:
    with pytest.raises(wire.ProtocolError):
        wire.read_varint(bytes.fromhex("ffffffff7f"), 0)
    assert wire.read_varint(bytes.fromhex("ff"), 0) is None


def test_publish_round_trip_and_frames_keep_a_partial_packet() -> None:
    pkt = wire.publish("askue/v1/gw1/data", b"x" * 300, qos=1, packet_id=513, expiry_s=60)
    buf = bytearray(pkt + wire.puback(7) + pkt[:5])
    (first, body), (first2, body2) = wire.frames(buf)
    assert bytes(buf) == pkt[:5]  # the incomplete third packet stays for the next read
    assert wire.split_publish(first, body, 0, len(body)) == ("askue/v1/gw1/data", b"x" * 300, 513, 1)
    assert first2 == wire.PUBACK and wire.reason_of_ack(body2) == (7, 0)


async def _broker_that_sends(after_connack: bytes) -> tuple[asyncio.base_events.Server, int]:
    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)  # CONNECT
        writer.write(bytes([wire.CONNACK, 3, 0, 0, 0]) + after_connack)
        await writer.drain()
        await reader.read(1024)
        writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize("garbage, words", [
    (bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]), "remaining length longer than four bytes"),
    (bytes([0x36, 3, 0, 9, 0x61]), "QoS 3"),
    (bytes([0x32, 5, 0, 1, 0x61, 0, 1]), "malformed packet"),  # ends inside its properties
    (bytes([0xA0, 0]), "unexpected packet type 0xa0"),
    (bytes([wire.DISCONNECT, 1, 0x8E]), "session taken over"),
])
async def test_a_broken_broker_ends_the_session_with_its_reason(garbage: bytes, words: str) -> None:
    server, port = await _broker_that_sends(garbage)
    got = []
    link = MqttLink("127.0.0.1", port, "wire-test", got.append)
    try:
        assert await link.connect() is False
        with pytest.raises(LinkLost, match=words):
            await asyncio.wait_for(link.lost, 5)
        assert got == []
    finally:
        await link.close()
        server.close()
