"""Modbus frames: golden frames from published documents, and fuzzed/truncated
answers that must end in a typed error, never a crash or a hang."""
from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymodbus.framer import FramerRTU

from askue.drivers.base import MeterSpec
from askue.drivers.errors import DriverError, FrameError, MeterTimeout, ProtocolError
from askue.drivers.modbus import frames
from askue.drivers.modbus.coalesce import Block
from askue.drivers.modbus.driver import ModbusDriver
from askue.drivers.transport import Transport

# ---- golden frames -----------------------------------------------------------------------
# Modbus Application Protocol Specification V1.1b3, 6.3 "03 (0x03) Read Holding Registers":
# request reads registers 108-110 (start address 0x006B, quantity 3); the response carries
# 0x022B (555), 0x0000 and 0x0064 (100).
SPEC_FC03_REQUEST = bytes.fromhex("03 006B 0003")
SPEC_FC03_RESPONSE = bytes.fromhex("03 06 022B 0000 0064")
# Same document, 6.4 "04 (0x04) Read Input Registers": register 9 (address 0x0008) holds 10.
SPEC_FC04_REQUEST = bytes.fromhex("04 0008 0001")
SPEC_FC04_RESPONSE = bytes.fromhex("04 02 000A")
# Same document, 7 "MODBUS Exception Responses": function 0x01 answered with 0x81 0x02.
SPEC_EXCEPTION = bytes.fromhex("81 02")
# Modbus over Serial Line Specification V1.02, 6.2.2 (CRC generation example): the frame
# 02 07 carries CRC 0x1241, sent low byte first: 02 07 41 12.
SPEC_CRC_FRAME = bytes.fromhex("02 07 41 12")
# A meter manual's worked RTU exchange (2flow MAG-11 manual, 9.5.3 "Modbus communication
# example 1", https://manualshive.com/en/manual/2flow/mag-11-series/439566?page=48):
# read 2 registers at 0x0400 from unit 1, answer C1 48 00 00 = -12.5 as an IEEE float.
MANUAL_RTU_REQUEST = bytes.fromhex("01 03 0400 0002 C53B")
MANUAL_RTU_RESPONSE = bytes.fromhex("01 03 04 C148 0000 47D9")


def test_spec_pdus_build_and_parse():
    assert frames.read_pdu(3, 0x6B, 3) == SPEC_FC03_REQUEST
    assert frames.parse_read_pdu(SPEC_FC03_RESPONSE, 3, 3) == [555, 0, 100]
    assert frames.read_pdu(4, 8, 1) == SPEC_FC04_REQUEST
    assert frames.parse_read_pdu(SPEC_FC04_RESPONSE, 4, 1) == [10]


def test_spec_exception_response_names_the_exception():
    with pytest.raises(ProtocolError, match="ILLEGAL DATA ADDRESS") as e:
        frames.parse_read_pdu(SPEC_EXCEPTION, 1, 1)
    assert e.value.code == 2 and e.value.retry is False


def test_spec_crc_example_and_pymodbus_agree():
    assert frames.with_crc(SPEC_CRC_FRAME[:2]) == SPEC_CRC_FRAME
    for frame in (SPEC_CRC_FRAME, MANUAL_RTU_REQUEST, MANUAL_RTU_RESPONSE):
        body = frame[:-2]
        assert FramerRTU.compute_CRC(body) == int.from_bytes(frame[-2:], "big")  # pymodbus' swapped form


def test_manual_rtu_exchange():
    pdu = frames.read_pdu(3, 0x0400, 2)
    assert frames.build_request("rtu", 1, pdu) == MANUAL_RTU_REQUEST
    assert frames.rtu_length(MANUAL_RTU_RESPONSE[:3]) == len(MANUAL_RTU_RESPONSE)
    words = frames.parse_rtu_response(MANUAL_RTU_RESPONSE, 1, 3, 2)
    from askue.drivers.modbus.codec import decode_value

    assert decode_value("f32", words, "big", "big") == -12.5


def test_mbap_request_layout():
    # MBAP (Modbus Messaging on TCP/IP Implementation Guide V1.0b, 3.1.3): transaction id,
    # protocol id 0, length = unit id + PDU bytes, unit id, then the PDU.
    adu = frames.build_request("tcp", 0x11, SPEC_FC03_REQUEST, tid=1)
    assert adu == bytes.fromhex("0001 0000 0006 11") + SPEC_FC03_REQUEST
    answer = bytes.fromhex("0001 0000 0009 11") + SPEC_FC03_RESPONSE
    assert frames.parse_tcp_response(answer, 1, 0x11, 3, 3) == [555, 0, 100]


@pytest.mark.parametrize("damage, error", [
    (lambda f: f[:-1] + bytes([f[-1] ^ 1]), "CRC mismatch"),
    (lambda f: bytes([2]) + f[1:-2] + frames.with_crc(bytes([2]) + f[1:-2])[-2:], "unit 2"),
    (lambda f: f[:-3] + frames.with_crc(f[:-3])[-2:], "CRC|byte count"),
])
def test_damaged_rtu_frames(damage, error):
    with pytest.raises(FrameError, match=error):
        frames.parse_rtu_response(damage(MANUAL_RTU_RESPONSE), 1, 3, 2)


def test_bad_requests_are_refused():
    with pytest.raises(ValueError):
        frames.read_pdu(3, 0, 126)
    with pytest.raises(ValueError):
        frames.read_pdu(3, 65535, 2)
    with pytest.raises(ValueError):
        frames.read_pdu(6, 0, 1)


# ---- fuzzing: the I/O-free parsers -------------------------------------------------------
@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.integers(1, 125))
def test_fuzz_parsers_raise_only_typed_errors(data, count):
    for call in (
        lambda: frames.parse_rtu_response(data, 1, 3, count),
        lambda: frames.parse_tcp_response(data, 1, 1, 4, count),
        lambda: frames.parse_read_pdu(data, 3, count),
        lambda: frames.rtu_length(data[:3]) if len(data) >= 3 else 0,
        lambda: frames.parse_mbap(data[:7]) if len(data) >= 7 else 0,
    ):
        try:
            call()
        except DriverError:
            pass


# ---- fuzzing: the driver reading a scripted line ---------------------------------------
class _Writer:
    def __init__(self, on_write):
        self.on_write, self.closed = on_write, False

    def write(self, data: bytes) -> None:
        self.on_write(data)

    async def drain(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        pass


class ScriptedLine(Transport):
    """Answers every request with the next scripted byte string (then silence)."""

    def __init__(self, answers: list[bytes]):
        super().__init__()
        self.answers = list(answers)
        self.sent: list[bytes] = []

    async def open(self) -> None:
        self._reader = asyncio.StreamReader()

        def on_write(data: bytes) -> None:
            self.sent.append(data)
            if self.answers:
                self._reader.feed_data(self.answers.pop(0))

        self._writer = _Writer(on_write)  # type: ignore[assignment]


def _driver(line: Transport, framing: str) -> ModbusDriver:
    spec = MeterSpec(id="f", driver="modbus", address=1, model="eastron-sdm630",
                     options={"framing": framing, "timeout": 0.02, "frame_timeout": 0.02})
    return ModbusDriver(line, spec)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=64), st.sampled_from(["rtu", "tcp"]), st.integers(1, 8))
def test_fuzzed_answers_end_in_typed_errors(answer, framing, count):
    async def run():
        d = _driver(ScriptedLine([answer]), framing)
        try:
            words = await asyncio.wait_for(d.read_block(4, Block(0, count)), 5)
        except (MeterTimeout, FrameError, ProtocolError):
            return
        assert len(words) == count  # a random answer that happens to be valid

    asyncio.run(run())


@pytest.mark.parametrize("framing", ["rtu", "tcp"])
async def test_truncated_answer_is_a_frame_error_and_silence_is_a_timeout(framing):
    good_rtu = frames.with_crc(bytes.fromhex("01 04 04 4366 0000"))
    good_tcp = bytes.fromhex("0001 0000 0007 01 04 04 4366 0000")
    good = good_rtu if framing == "rtu" else good_tcp
    for cut in range(1, len(good)):
        d = _driver(ScriptedLine([good[:cut]]), framing)
        with pytest.raises(FrameError, match="truncated"):
            await d.read_block(4, Block(0, 2))
    d = _driver(ScriptedLine([b""]), framing)
    with pytest.raises(MeterTimeout):
        await d.read_block(4, Block(0, 2))
    d = _driver(ScriptedLine([good]), framing)
    assert await d.read_block(4, Block(0, 2)) == [0x4366, 0]


async def test_tcp_skips_a_late_answer_to_an_earlier_request():
    late = bytes.fromhex("0007 0000 0007 01 04 04 0000 0000")  # transaction 7: not ours
    ours = bytes.fromhex("0001 0000 0007 01 04 04 4366 0000")
    d = _driver(ScriptedLine([late + ours]), "tcp")
    assert await d.read_block(4, Block(0, 2)) == [0x4366, 0]


async def test_exception_answer_is_protocol_error_with_name():
    d = _driver(ScriptedLine([frames.with_crc(bytes.fromhex("01 84 02"))]), "rtu")
    with pytest.raises(ProtocolError, match="unit 1: function 0x04 reading 2 registers at 0: .*ILLEGAL DATA ADDRESS"):
        await d.read_block(4, Block(0, 2))
