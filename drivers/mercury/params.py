"""Меркурий 230/234 parameters read with request 08: transformer ratios (08 02) and the
variant of the model (08 12). I/O-free.

Facts and where they come from:

* 08 02 answers four bytes: the voltage-transformer ratio (Ктн) then the current-transformer
  ratio (Ктт), each a binary 16-bit number, high byte first. lapinpavell/mercury234-emul
  parameters.json (code 0x02: "two binary bytes for Kn and two binary bytes for Kt", a
  Меркурий 234 answering 00 01 00 01); devices-reader/device_2 get_koeffs.pas (kU then kI,
  each PopByte*$100 + PopByte). The meter counts energy on its own (secondary) side: the
  ratios are what the installer programmed, for the head-end to compare with the registry.
* 08 12 answers three bytes (older firmware) or six (newer; Prizmer/tu_mercury23X
  Mercury23XDriver.cs reads 6- or 9-byte answers by firmware version). In the second byte
  the low nibble is the meter constant (impulses per kWh: 0 → 5000, 1 → 25000, 2 → 1250,
  3 → 500, 4 → 1000, 5 → 250) and bit 5 says whether the meter keeps the power profile
  (Prizmer/tu_mercury23X Mercury23XDriver.cs ReadVariantExecute).
"""
from __future__ import annotations

from dataclasses import dataclass

from askue.drivers.errors import ProtocolError
from askue.drivers.mercury.frames import Code, Param, request

RATIOS_LEN = 1 + 4 + 2
VARIANT_LENS = (1 + 3 + 2, 1 + 6 + 2)  # older and newer firmware

IMPULSE_CONSTANTS = {0: 5000, 1: 25000, 2: 1250, 3: 500, 4: 1000, 5: 250}  # code -> impulses per kWh
PROFILE_BIT = 0x20


@dataclass(frozen=True, slots=True)
class Ratios:
    vt: int  # Ктн
    ct: int  # Ктт


@dataclass(frozen=True, slots=True)
class Variant:
    constant: int | None  # impulses per kWh; None when the code is not in the table
    keeps_profile: bool
    raw: bytes


def ratios_request(address: int) -> bytes:
    return request(address, Code.READ_PARAM, bytes([Param.RATIOS]))


def variant_request(address: int) -> bytes:
    return request(address, Code.READ_PARAM, bytes([Param.VARIANT]))


def decode_ratios(data: bytes) -> Ratios:
    if len(data) != 4:
        raise ProtocolError(f"Mercury transformer ratios: expected 4 data bytes, got {len(data)}: {data.hex(' ')}")
    return Ratios(int.from_bytes(data[0:2], "big"), int.from_bytes(data[2:4], "big"))


def encode_ratios(vt: int, ct: int) -> bytes:
    if not (0 <= vt <= 0xFFFF and 0 <= ct <= 0xFFFF):
        raise ValueError(f"transformer ratios must fit 16 bits, got Ктн={vt} Ктт={ct}")
    return vt.to_bytes(2, "big") + ct.to_bytes(2, "big")


def decode_variant(data: bytes) -> Variant:
    if len(data) not in (3, 6):
        raise ProtocolError(f"Mercury variant: expected 3 or 6 data bytes, got {len(data)}: {data.hex(' ')}")
    return Variant(IMPULSE_CONSTANTS.get(data[1] & 0x0F), bool(data[1] & PROFILE_BIT), bytes(data))


def encode_variant(constant: int, keeps_profile: bool = True) -> bytes:
    """Six variant bytes as newer firmware sends them; only the constant and the profile bit
    carry meaning here, the other bits are left 0."""
    codes = {v: k for k, v in IMPULSE_CONSTANTS.items()}
    if constant not in codes:
        raise ValueError(f"meter constant must be one of {sorted(codes)} impulses per kWh, got {constant}")
    return bytes([0, codes[constant] | (PROFILE_BIT if keeps_profile else 0), 0, 0, 0, 0])
