"""Modbus frames, I/O-free: build read requests, check and parse responses.

PDU layout from the Modbus Application Protocol Specification V1.1b3 (6.3 Read
Holding Registers, 6.4 Read Input Registers, 7 exception responses); RTU ADU
(address, PDU, CRC-16 low byte first) from Modbus over Serial Line V1.02, 2.5.1;
MBAP header (transaction id, protocol id 0, length, unit id) from the Modbus
Messaging on TCP/IP Implementation Guide V1.0b, 3.1.3.

The driver reads a response in two steps: a head that tells the length, then
the rest; these functions say how long and whether what arrived is sound.
"""
from __future__ import annotations

import struct
from typing import Literal

from askue.drivers.crc import crc16, with_crc
from askue.drivers.errors import FrameError, ProtocolError

Framing = Literal["tcp", "rtu"]

EXCEPTION_NAMES = {
    0x01: "ILLEGAL FUNCTION",
    0x02: "ILLEGAL DATA ADDRESS",
    0x03: "ILLEGAL DATA VALUE",
    0x04: "SERVER DEVICE FAILURE",
    0x05: "ACKNOWLEDGE",
    0x06: "SERVER DEVICE BUSY",
    0x08: "MEMORY PARITY ERROR",
    0x0A: "GATEWAY PATH UNAVAILABLE",
    0x0B: "GATEWAY TARGET DEVICE FAILED TO RESPOND",
}


class ModbusExceptionError(ProtocolError):
    """The meter answered with a Modbus exception response."""

    def __init__(self, function: int, code: int, unit: int | None = None, what: str = ""):
        self.function, self.code, self.unit = function, code, unit
        self.exception_name = EXCEPTION_NAMES.get(code, f"UNKNOWN EXCEPTION {code:#04x}")
        where = f"unit {unit}: " if unit is not None else ""
        super().__init__(f"{where}function {function:#04x}{what}: Modbus exception {code:#04x} {self.exception_name}")
        # busy / acknowledge / gateway target silent: a later retry can succeed
        self.retry = code in (0x05, 0x06, 0x0B)


# ---- requests ---------------------------------------------------------------------------
def read_pdu(function: int, address: int, count: int) -> bytes:
    if function not in (3, 4):
        raise ValueError(f"only read functions 3 and 4 are built here, not {function}")
    if not 0 <= address <= 0xFFFF or not 1 <= count <= 125 or address + count > 0x10000:
        raise ValueError(f"bad read range: address {address}, count {count} (1..125 registers within 0..65535)")
    return struct.pack(">BHH", function, address, count)


def build_request(framing: Framing, unit: int, pdu: bytes, tid: int = 0) -> bytes:
    if not 0 <= unit <= 255:
        raise ValueError(f"unit id {unit} out of 0..255")
    if framing == "rtu":
        return with_crc(bytes((unit,)) + pdu)
    if framing == "tcp":
        return struct.pack(">HHHB", tid & 0xFFFF, 0, len(pdu) + 1, unit) + pdu
    raise ValueError(f"framing {framing!r}: use 'tcp' or 'rtu'")


# ---- responses ---------------------------------------------------------------------------
RTU_HEAD = 3  # address, function, byte count or exception code
MBAP_HEAD = 7


def rtu_length(head: bytes) -> int:
    """Total RTU response length from its first 3 bytes."""
    if len(head) < RTU_HEAD:
        raise ValueError("need 3 bytes")
    fc = head[1]
    if fc & 0x80:
        return 5
    if fc in (3, 4):
        return 3 + head[2] + 2
    raise FrameError(f"RTU response with unexpected function code {fc:#04x} (garbage on the line?)")


def parse_mbap(head: bytes) -> tuple[int, int, int]:
    """(transaction id, bytes still to read after the 7-byte header, unit id)."""
    tid, pid, length, unit = struct.unpack(">HHHB", head[:MBAP_HEAD])
    if pid != 0:
        raise FrameError(f"MBAP protocol id {pid} is not 0 (not a Modbus frame, or damaged)")
    if not 2 <= length <= 254:
        raise FrameError(f"MBAP length {length} outside 2..254")
    return tid, length - 1, unit


def parse_read_pdu(pdu: bytes, function: int, count: int, unit: int | None = None) -> list[int]:
    """A read response PDU -> register values; exception responses raise ModbusExceptionError."""
    if not pdu:
        raise FrameError("empty PDU")
    fc = pdu[0]
    if fc == function | 0x80:
        if len(pdu) != 2:
            raise FrameError(f"exception response of {len(pdu)} bytes, expected 2")
        raise ModbusExceptionError(function, pdu[1], unit)
    if fc != function:
        raise FrameError(f"response function {fc:#04x} to a request with function {function:#04x}")
    if len(pdu) < 2 or pdu[1] != 2 * count or len(pdu) != 2 + 2 * count:
        got = pdu[1] if len(pdu) > 1 else None
        raise FrameError(f"byte count {got} / PDU length {len(pdu)} for {count} registers (expected {2 * count})")
    return list(struct.unpack(f">{count}H", pdu[2:]))


def parse_rtu_response(frame: bytes, unit: int, function: int, count: int) -> list[int]:
    if len(frame) < 5:
        raise FrameError(f"RTU frame of {len(frame)} bytes is too short")
    body, crc = frame[:-2], struct.unpack("<H", frame[-2:])[0]
    if crc16(body) != crc:
        raise FrameError(f"CRC mismatch: frame says {crc:#06x}, computed {crc16(body):#06x}")
    if body[0] != unit:
        raise FrameError(f"answer from unit {body[0]} to a request for unit {unit}")
    return parse_read_pdu(body[1:], function, count, unit)


def parse_tcp_response(adu: bytes, tid: int, unit: int, function: int, count: int) -> list[int]:
    if len(adu) < MBAP_HEAD + 1:
        raise FrameError(f"TCP frame of {len(adu)} bytes is too short")
    rtid, rest, runit = parse_mbap(adu)
    if len(adu) != MBAP_HEAD + rest:
        raise FrameError(f"MBAP length says {rest + MBAP_HEAD} bytes, frame has {len(adu)}")
    if rtid != tid:
        raise FrameError(f"transaction id {rtid} in answer to {tid}")
    if runit != unit:
        raise FrameError(f"answer from unit {runit} to a request for unit {unit}")
    return parse_read_pdu(adu[MBAP_HEAD:], function, count, unit)
