"""How a DLMS meter's address is written in configs (MeterSpec.address, simulator keys).

`17` (or "17") means logical device 1 (the management logical device of a СПОДЭС
meter), physical device 17; `"1/17"` spells both; `"1/"` is logical device 1
with no physical part (a one-byte HDLC address, as on an optical port). The HDLC
server address is built from both; the TCP wrapper uses the logical device as
destination wPort.
"""

from __future__ import annotations

CLIENT_PUBLIC = 0x10  # no authentication
CLIENT_READER = 0x20  # low-level security (password)
CLIENT_CONFIGURATOR = 0x30  # high-level security in СПОДЭС (not supported here)


def parse_address(value: int | str) -> tuple[int, int | None]:
    """(logical, physical or None). Raises ValueError with a hint on anything else."""
    if isinstance(value, bool):
        raise ValueError(f"DLMS address must be a number or 'logical/physical', not {value!r}")
    if isinstance(value, int):
        logical, physical = 1, value
    else:
        text = str(value).strip()
        try:
            if "/" in text:
                a, b = text.split("/", 1)
                logical, physical = int(a, 0), (int(b, 0) if b.strip() else None)
            else:
                logical, physical = 1, int(text, 0)
        except ValueError:
            raise ValueError(
                f"DLMS address {value!r}: write the physical address (17) or 'logical/physical' (1/17)"
            ) from None
    if physical is None:
        if not 0 <= logical < 0x80:
            raise ValueError(f"DLMS address {value!r}: a one-byte address holds logical 0..127")
        return logical, None
    if not (0 <= logical < 0x4000 and 0 <= physical < 0x4000):
        raise ValueError(f"DLMS address {value!r}: logical and physical must be 0..16383")
    return logical, physical
