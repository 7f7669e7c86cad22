"""HDLC frame format type 3 (IEC 62056-46) and the TCP wrapper (IEC 62056-47), I/O-free.

Used by the simulator to speak the link layer and by the driver to vet every
frame (flags, length, HCS/FCS) before gurux parses it, so line damage becomes a
typed FrameError instead of whatever the library would do with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from askue.drivers.errors import FrameError

FLAG = 0x7E
# Control field values of the unnumbered and supervisory frames (poll/final bit set).
SNRM, UA, DISC, DM, FRMR, UI = 0x93, 0x73, 0x53, 0x1F, 0x97, 0x13
LLC_REQUEST = b"\xe6\xe6\x00"  # client -> server
LLC_RESPONSE = b"\xe6\xe7\x00"  # server -> client
DEFAULT_MAX_INFO = 128  # IEC 62056-46 default when SNRM/UA do not negotiate

WRAPPER_VERSION = 1
WRAPPER_HEADER = 8


def fcs16(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/X-25 (the HDLC FCS): reflected poly 0x1021, init and xorout 0xFFFF."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def _le16(v: int) -> bytes:
    return bytes((v & 0xFF, v >> 8))


def encode_address(value: int, size: int) -> bytes:
    """HDLC address of `size` bytes (1, 2 or 4): 7 bits per byte, LSB=1 on the last byte."""
    if size == 1:
        parts = [value & 0x7F]
    elif size == 2:
        parts = [(value >> 7) & 0x7F, value & 0x7F]
    elif size == 4:
        parts = [(value >> 21) & 0x7F, (value >> 14) & 0x7F, (value >> 7) & 0x7F, value & 0x7F]
    else:
        raise ValueError(f"HDLC address size must be 1, 2 or 4, not {size}")
    out = bytearray(p << 1 for p in parts)
    out[-1] |= 1
    return bytes(out)


def encode_server_address(logical: int, physical: int | None) -> bytes:
    """Server address: upper = logical device, lower = physical device (IEC 62056-46 §6.4.2.3)."""
    if physical is None:
        return encode_address(logical, 1)
    if logical < 0x80 and physical < 0x80:
        return bytes((logical << 1, (physical << 1) | 1))
    if logical >= 0x4000 or physical >= 0x4000:
        raise ValueError(f"HDLC server address out of range: logical {logical}, physical {physical}")
    return bytes(
        ((logical >> 7) << 1, (logical & 0x7F) << 1, (physical >> 7) << 1, ((physical & 0x7F) << 1) | 1)
    )


def _read_address(buf: bytes, pos: int, end: int) -> tuple[bytes, int]:
    start = pos
    while pos < end:
        if buf[pos] & 1:
            raw = buf[start : pos + 1]
            if len(raw) not in (1, 2, 4):
                raise FrameError(f"HDLC address of {len(raw)} bytes (1, 2 or 4 allowed)")
            return raw, pos + 1
        pos += 1
    raise FrameError("HDLC address runs past the header")


def decode_server_address(raw: bytes) -> tuple[int, int | None]:
    """(logical, physical) from a 1-, 2- or 4-byte server address."""
    v = [b >> 1 for b in raw]
    if len(raw) == 1:
        return v[0], None
    if len(raw) == 2:
        return v[0], v[1]
    return (v[0] << 7) | v[1], (v[2] << 7) | v[3]


def decode_client_address(raw: bytes) -> int:
    if len(raw) != 1:
        raise FrameError(f"HDLC client address must be 1 byte, got {raw.hex()}")
    return raw[0] >> 1


@dataclass(frozen=True, slots=True)
class Frame:
    dest: bytes  # raw address bytes as on the wire
    src: bytes
    control: int
    info: bytes
    segmented: bool

    @property
    def is_i(self) -> bool:
        return not self.control & 1

    @property
    def is_rr(self) -> bool:
        return self.control & 0x0F == 0x01

    @property
    def ns(self) -> int:
        return (self.control >> 1) & 7

    @property
    def nr(self) -> int:
        return (self.control >> 5) & 7

    @property
    def unnumbered(self) -> int:
        """Control without the poll/final bit for U-frames (SNRM, DISC…), P/F forced on."""
        return self.control | 0x10


def build_frame(dest: bytes, src: bytes, control: int, info: bytes = b"", segmented: bool = False) -> bytes:
    """A complete frame including both flags."""
    length = 2 + len(dest) + len(src) + 1 + 2 + (len(info) + 2 if info else 0)
    if length > 0x7FF:
        raise ValueError(f"HDLC frame too long ({length} bytes, format field holds 2047)")
    fmt = 0xA000 | (0x0800 if segmented else 0) | length
    head = bytes((fmt >> 8, fmt & 0xFF)) + dest + src + bytes((control,))
    body = head + _le16(fcs16(head))
    if info:
        body += info
        body += _le16(fcs16(body))
    return bytes((FLAG,)) + body + bytes((FLAG,))


def frame_length(buf: bytes | bytearray, pos: int = 0) -> int | None:
    """Total bytes of the frame starting with the flag at `pos` (flags included), None if the
    format field has not arrived yet. Raises FrameError when the format type is not 3."""
    if len(buf) < pos + 3:
        return None
    fmt = (buf[pos + 1] << 8) | buf[pos + 2]
    if fmt & 0xF000 != 0xA000:
        raise FrameError(f"not an HDLC type-3 frame (format field {fmt:04x})")
    length = fmt & 0x7FF
    if length < 7:
        raise FrameError(f"HDLC frame length {length} is shorter than any header")
    return length + 2


def parse_frame(frame: bytes) -> Frame:
    """Check flags, length, HCS and FCS of one complete frame and split it."""
    if len(frame) < 9 or frame[0] != FLAG or frame[-1] != FLAG:
        raise FrameError(f"HDLC frame must start and end with 7E: {frame[:16].hex()}")
    total = frame_length(frame)
    if total != len(frame):
        raise FrameError(f"HDLC format field says {total} bytes, frame has {len(frame)}")
    body = frame[1:-1]
    fmt = (body[0] << 8) | body[1]
    dest, pos = _read_address(body, 2, len(body))
    src, pos = _read_address(body, pos, len(body))
    if pos >= len(body):
        raise FrameError("HDLC frame ends before its control field")
    control = body[pos]
    pos += 1
    rest = len(body) - pos
    if rest == 2:  # no information field: the check sequence is the FCS over the header
        info = b""
    elif rest > 4:
        hcs = body[pos] | (body[pos + 1] << 8)
        if hcs != fcs16(body[:pos]):
            raise FrameError(
                f"HDLC header check sequence mismatch (got {hcs:04x}, want {fcs16(body[:pos]):04x})"
            )
        info = bytes(body[pos + 2 : -2])
    else:
        raise FrameError(f"HDLC frame has {rest} bytes after the control field")
    fcs = body[-2] | (body[-1] << 8)
    if fcs != fcs16(body[:-2]):
        raise FrameError(f"HDLC frame check sequence mismatch (got {fcs:04x}, want {fcs16(body[:-2]):04x})")
    return Frame(dest, src, control, info, bool(fmt & 0x0800))


def i_control(ns: int, nr: int, final: bool = True) -> int:
    return ((nr & 7) << 5) | (0x10 if final else 0) | ((ns & 7) << 1)


def rr_control(nr: int) -> int:
    return ((nr & 7) << 5) | 0x10 | 0x01


def hdlc_parameters(max_info_tx: int, max_info_rx: int, window_tx: int = 1, window_rx: int = 1) -> bytes:
    """The UA/SNRM information field negotiating frame sizes and windows (IEC 62056-46 §6.4.4.4.3.2)."""

    def param(tag: int, value: int) -> bytes:
        raw = value.to_bytes(1 if value < 0x100 else 2, "big")
        return bytes((tag, len(raw))) + raw

    def param4(tag: int, value: int) -> bytes:
        return bytes((tag, 4)) + value.to_bytes(4, "big")

    group = param(5, max_info_tx) + param(6, max_info_rx) + param4(7, window_tx) + param4(8, window_rx)
    return bytes((0x81, 0x80, len(group))) + group


def parse_hdlc_parameters(info: bytes) -> dict[int, int]:
    """Negotiation parameters by id (5 max info tx, 6 max info rx, 7/8 windows) from SNRM/UA."""
    if not info:
        return {}
    if len(info) < 3 or info[0] != 0x81 or info[1] != 0x80:
        raise FrameError(f"bad HDLC parameter negotiation field {info[:8].hex()}")
    end = min(len(info), 3 + info[2])
    pos, out = 3, {}
    while pos + 2 <= end:
        tag, n = info[pos], info[pos + 1]
        if pos + 2 + n > end:
            raise FrameError("HDLC parameter runs past its group")
        out[tag] = int.from_bytes(info[pos + 2 : pos + 2 + n], "big")
        pos += 2 + n
    return out


# ---- TCP wrapper ----------------------------------------------------------------------------
def wrap(src_wport: int, dst_wport: int, apdu: bytes) -> bytes:
    return (
        WRAPPER_VERSION.to_bytes(2, "big")
        + src_wport.to_bytes(2, "big")
        + dst_wport.to_bytes(2, "big")
        + len(apdu).to_bytes(2, "big")
        + apdu
    )


def parse_wrapper_header(head: bytes) -> tuple[int, int, int]:
    """(source wPort, destination wPort, APDU length) of an 8-byte wrapper header."""
    if len(head) != WRAPPER_HEADER:
        raise FrameError(f"TCP wrapper header needs 8 bytes, got {len(head)}")
    version = int.from_bytes(head[0:2], "big")
    if version != WRAPPER_VERSION:
        raise FrameError(f"TCP wrapper version {version} (only 1 exists): {head.hex()}")
    return (
        int.from_bytes(head[2:4], "big"),
        int.from_bytes(head[4:6], "big"),
        int.from_bytes(head[6:8], "big"),
    )
