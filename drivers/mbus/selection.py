"""M-Bus secondary addressing (EN 13757-3 slave selection), I/O-free: the selection frame,
wildcard matching, and the wildcard search that finds every slave on a bus by its
identification number.

A secondary address is 16 hex characters "IIIIIIIIMMMMVVDD": the 8-digit identification
number (most significant digit first), the manufacturer field's two bytes as they travel
(low byte first), the version and the medium; `F` in any position is a wildcard. The
master selects with SND_UD (C 0x73) to the network-layer address 253 (0xFD), CI 0x52, the
address packed as in the RSP_UD fixed header (identification BCD low byte first); every
matching slave answers E5 and stays selected, every other one is deselected. Requests to
address 253 then reach the selected slave. The same layout is used by libmbus
(mbus_pack_select_mask) and pymeterbus (send_select_frame).

The search: select "d" + wildcards for each digit d of the first position; no answer ->
nobody there; one clean E5 -> read the selected slave's identity; a collision (garbled
answer, or more than one) -> narrow by the next digit. 10 probes per level, at most 8 levels.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

from askue.drivers.mbus import frames as f

C_SND_UD = 0x73  # SND_UD, master to slave, FCB set (as libmbus and pymeterbus send it)
ADDRESS_NETWORK_LAYER = 0xFD
CI_SELECT = 0x52
WILDCARD = "F" * 16


class Probe(Enum):
    NOTHING = "nothing"  # no answer
    SINGLE = "single"  # one clean ACK
    COLLISION = "collision"  # garbled or several answers


def _check_mask(mask: str) -> str:
    mask = mask.upper()
    if len(mask) != 16 or any(c not in "0123456789ABCDEF" for c in mask):
        raise ValueError(f"secondary address mask {mask!r}: 16 hex characters, F as wildcard")
    if any(c not in "0123456789F" for c in mask[:8]):
        raise ValueError(f"secondary address mask {mask!r}: the identification number is decimal digits or F")
    return mask


def select_frame(mask: str) -> bytes:
    """SND_UD to 253 with CI 0x52 selecting `mask`."""
    mask = _check_mask(mask)
    ident = bytes(int(mask[i:i + 2], 16) for i in (6, 4, 2, 0))  # BCD, low byte first
    rest = bytes(int(mask[i:i + 2], 16) for i in (8, 10, 12, 14))
    return f.long_frame(C_SND_UD, ADDRESS_NETWORK_LAYER, CI_SELECT, ident + rest)


def parse_select(frame: f.Frame) -> str | None:
    """The mask of a selection frame, None when the frame is not one."""
    if frame.kind != "long" or frame.a != ADDRESS_NETWORK_LAYER or frame.ci != CI_SELECT or len(frame.data) < 8:
        return None
    d = frame.data
    return "".join(f"{b:02X}" for b in (d[3], d[2], d[1], d[0], d[4], d[5], d[6], d[7]))


def secondary_address(header: f.Header) -> str:
    """The 16-character secondary address of a slave from its RSP_UD fixed header."""
    man = f.encode_manufacturer(header.manufacturer).to_bytes(2, "little")
    return f"{header.ident.rjust(8, '0')}{man[0]:02X}{man[1]:02X}{header.version:02X}{header.medium:02X}"


def matches(mask: str, address: str) -> bool:
    mask = _check_mask(mask)
    return all(m == "F" or m == a for m, a in zip(mask, address.upper(), strict=True))


def classify(answer: bytes) -> Probe:
    """What a selection brought back: nothing, one clean E5, or anything else (collision)."""
    if not answer:
        return Probe.NOTHING
    return Probe.SINGLE if answer == bytes([f.ACK]) else Probe.COLLISION


@dataclass
class SearchStats:
    probes: int = 0
    collisions: int = 0


async def search(probe: Callable[[str], Awaitable[Probe]], identify: Callable[[], Awaitable[str | None]],
                 on_found: Callable[[str], Awaitable[None]] | None = None,
                 stats: SearchStats | None = None, prefix: str = "") -> list[str]:
    """Every secondary address on the bus. `probe(mask)` selects with a mask and says what came
    back; `identify()` reads the selected slave (REQ_UD2 to 253) and returns its secondary
    address (None when that read collided or failed). Depth-first, digit by digit."""
    stats = stats if stats is not None else SearchStats()
    found: list[str] = []
    for digit in "0123456789":
        mask = (prefix + digit).ljust(16, "F")
        stats.probes += 1
        result = await probe(mask)
        if result is Probe.SINGLE:
            address = await identify()
            if address is not None:
                found.append(address)
                if on_found is not None:
                    await on_found(address)
                continue
            result = Probe.COLLISION  # the selected slaves answered the read at once
        if result is Probe.COLLISION:
            stats.collisions += 1
            if len(prefix) + 1 >= 8:
                continue  # the same identification number twice: told apart only by maker/medium
            found += await search(probe, identify, on_found, stats, prefix + digit)
    return found
