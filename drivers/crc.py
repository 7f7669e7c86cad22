"""CRC-16/MODBUS (polynomial 0xA001 reflected, initial 0xFFFF), sent low byte first.
Modbus RTU and Меркурий 230/234 frames both end with it."""
from __future__ import annotations


def _table() -> list[int]:
    out = []
    for b in range(256):
        crc = b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        out.append(crc)
    return out


_TABLE = _table()


def crc16(data: bytes) -> int:
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ b) & 0xFF]
    return crc


def with_crc(frame: bytes) -> bytes:
    return frame + crc16(frame).to_bytes(2, "little")
