"""IEC 62056-21 (IEC 61107, ГОСТ IEC 61107-2011) mode C frames, without I/O.

Messages on the line:
  sign-on          /?<address>!CR LF
  identification   /XXXZ<ident>CR LF       XXX manufacturer, Z baud character
  option select    ACK 0 Z Y CR LF          Y '0' data readout, '1' programming mode
  command          SOH C D STX <data set> ETX BCC   (P0/P1 password, R1 read, W1 write)
                   SOH B 0 ETX BCC           break (end of session)
  answer           STX <data sets> ETX BCC   or a single ACK / NAK byte
  readout          STX <data block> ! CR LF ETX BCC

The block check character is computed over everything after the first SOH/STX up
to and including ETX, on 7-bit characters. The standard says XOR; Энергомера
meters use the 7-bit arithmetic sum instead (see models.py), so the method is a
parameter everywhere.

7E1 framing: with one stop bit, a 7E1 character is bit-for-bit an 8N1 character
whose bit 7 carries the even parity. `Parity.SOFTWARE` does that on an 8N1 port
(pty, USB adapters without 7-bit support); `Parity.HARDWARE` means the port itself
is 7E1 and the core only masks bit 7; `Parity.NONE` is a transparent 8-bit
channel (a TCP converter that does the 7E1 on its serial side).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from askue.drivers.errors import FrameError, ProtocolError

SOH, STX, ETX, EOT, ACK, NAK = 0x01, 0x02, 0x03, 0x04, 0x06, 0x15
CRLF = b"\r\n"

# Mode C baud rate characters (IEC 62056-21 §6.3.14).
BAUD_CHARS = {"0": 300, "1": 600, "2": 1200, "3": 2400, "4": 4800, "5": 9600, "6": 19200}
BAUD_CODES = {v: k for k, v in BAUD_CHARS.items()}

MAX_FRAME = 4096  # longer than any answer these meters send; beyond it the line is garbage


class Bcc(StrEnum):
    XOR = "xor"  # IEC 62056-21 as written; НЕВА МТ
    SUM7 = "sum7"  # 7-bit arithmetic sum; Энергомера СЕ102М/СЕ301/СЕ303


class Parity(StrEnum):
    SOFTWARE = "software"
    HARDWARE = "hardware"
    NONE = "none"


class Mode(StrEnum):
    READOUT = "0"
    PROGRAMMING = "1"
    # 6-9 are manufacturer-specific (IEC 62056-21 6.3.14); a captured СЕ102М answers
    # `ACK 0 5 6` with a data readout (tests/drivers/golden/iec62056_21/README.md).
    VENDOR_6 = "6"


class RefusedParameter(ProtocolError):
    """The meter answered a read with its error message instead of the parameter: not
    supported by this model, not at this access level, or an archive it does not hold.
    Only this parameter is lost; the session goes on."""

    def __init__(self, name: str, code: str):
        super().__init__(f"meter answered {name} with error ({code}): parameter not supported by this model "
                         f"or access level, or no such archive entry")
        self.name = name
        self.code = code


# ---- character level ------------------------------------------------------------------

def _even_bit(b: int) -> int:
    return (bin(b & 0x7F).count("1") & 1) << 7


def add_parity(data: bytes) -> bytes:
    """7-bit characters -> 8-bit bytes with even parity in bit 7."""
    return bytes((b & 0x7F) | _even_bit(b) for b in data)


def strip_parity(data: bytes, where: str = "answer") -> bytes:
    """Check even parity in bit 7 and drop it; a wrong parity bit is a FrameError."""
    for i, b in enumerate(data):
        if (b & 0x80) != _even_bit(b):
            raise FrameError(f"parity error in {where} at byte {i} (0x{b:02X}): line noise or wrong "
                             f"serial settings (7E1 expected)")
    return bytes(b & 0x7F for b in data)


def encode_line(data: bytes, parity: Parity) -> bytes:
    """What goes onto the wire for 7-bit characters `data`."""
    if any(b & 0x80 for b in data):
        raise ValueError("IEC 62056-21 characters are 7-bit")
    return add_parity(data) if parity is Parity.SOFTWARE else data


def decode_byte(b: int, parity: Parity, where: str = "answer", index: int = 0) -> int:
    if parity is Parity.SOFTWARE:
        if (b & 0x80) != _even_bit(b):
            raise FrameError(f"parity error in {where} at byte {index} (0x{b:02X}): line noise or wrong "
                             f"serial settings (7E1 expected)")
        return b & 0x7F
    if parity is Parity.HARDWARE:
        return b & 0x7F
    return b


# ---- block check character ------------------------------------------------------------

def bcc(data: bytes, method: Bcc = Bcc.XOR) -> int:
    """BCC over `data` (already without the leading SOH/STX, ETX included)."""
    if method is Bcc.SUM7:
        return sum(b & 0x7F for b in data) & 0x7F
    x = 0
    for b in data:
        x ^= b
    return x & 0x7F


def seal(body: bytes, method: Bcc) -> bytes:
    """Append the BCC to a block that starts with SOH or STX and ends with ETX/EOT."""
    return body + bytes([bcc(body[1:], method)])


def check_bcc(block: bytes, method: Bcc) -> bytes:
    """Verify the last byte of `block` (SOH/STX ... ETX BCC); return the block without it."""
    if len(block) < 3:
        raise FrameError(f"truncated block {block!r}")
    want = bcc(block[1:-1], method)
    if block[-1] != want:
        raise FrameError(f"BCC mismatch: got 0x{block[-1]:02X}, computed 0x{want:02X} ({method.value}) "
                         f"over {block[:40]!r}")
    return block[:-1]


# ---- messages sent by the reader ------------------------------------------------------

def _check_text(s: str, what: str, forbidden: str = "()/!\r\n") -> bytes:
    try:
        raw = s.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"{what} {s!r} must be ASCII") from None
    bad = [c for c in s if c in forbidden or ord(c) < 0x20 or ord(c) > 0x7E]
    if bad:
        raise ValueError(f"{what} {s!r} contains forbidden characters {bad!r}")
    return raw


def sign_on(address: str = "") -> bytes:
    """/?<address>!CR LF; an empty address addresses whichever single meter listens."""
    if len(address) > 32:
        raise ValueError(f"device address {address!r} is longer than 32 characters")
    return b"/?" + _check_text(address, "device address") + b"!" + CRLF


def option_select(baud: int, mode: Mode = Mode.PROGRAMMING, protocol_control: str = "0") -> bytes:
    if baud not in BAUD_CODES:
        raise ValueError(f"baud rate {baud} has no mode C character; use one of {sorted(BAUD_CODES)}")
    return bytes([ACK]) + f"{protocol_control}{BAUD_CODES[baud]}{mode.value}".encode() + CRLF


def command(cmd: str, data: str | None, method: Bcc) -> bytes:
    """SOH <cmd> STX <data> ETX BCC (data None: SOH <cmd> ETX BCC, as in B0)."""
    if len(cmd) != 2 or not cmd[0].isalpha() or not cmd[1].isdigit():
        raise ValueError(f"command {cmd!r} is not a command letter and a type digit")
    head = bytes([SOH]) + cmd.encode()
    if data is None:
        return seal(head + bytes([ETX]), method)
    raw = _check_text(data, "command data", forbidden="\r\n")
    return seal(head + bytes([STX]) + raw + bytes([ETX]), method)


def password(secret: str, method: Bcc, level: int = 1) -> bytes:
    return command(f"P{level}", f"({_check_text(secret, 'password').decode()})", method)


def read(name: str, args: str, method: Bcc) -> bytes:
    """R1 NAME(args)."""
    return command("R1", f"{_check_text(name, 'parameter name').decode()}({_check_text(args, 'arguments').decode()})",
                   method)


def write(name: str, value: str, method: Bcc) -> bytes:
    return command("W1", f"{_check_text(name, 'parameter name').decode()}({_check_text(value, 'value').decode()})",
                   method)


def break_(method: Bcc) -> bytes:
    return command("B0", None, method)


# ---- messages sent by the meter -------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Identification:
    manufacturer: str  # three letters; a lower-case third letter means 20 ms reaction time
    baud_char: str
    ident: str
    enhanced: str | None = None  # the "\W" enhanced-capability character (mode E), if sent

    @property
    def baud(self) -> int:
        return BAUD_CHARS[self.baud_char]


_IDENT = re.compile(rb"/([A-Za-z]{2}[A-Za-z])([0-9A-I])(\\[0-9A-Z])?([\x20-\x7E]{1,16})\r\n")


def parse_identification(line: bytes) -> Identification:
    """/XXXZ<ident>CR LF, e.g. /EKT5CE102Mv01 or /TPC5NEVAMT324.2307."""
    m = _IDENT.fullmatch(line)
    if not m:
        raise FrameError(f"not an identification message: {line[:40]!r}")
    baud_char = m.group(2).decode()
    if baud_char not in BAUD_CHARS:
        # Letters A-I are mode B baud characters: the meter does not speak mode C.
        raise ProtocolError(f"identification {line[:40]!r} announces baud character {baud_char!r}, "
                            f"which is not mode C; configure the meter for mode C")
    ident = m.group(4).decode()
    if any(c in ident for c in "/!"):
        raise FrameError(f"identification {line[:40]!r} contains '/' or '!'")
    return Identification(m.group(1).decode(), baud_char, ident, m.group(3).decode()[1:] if m.group(3) else None)


def identification(manufacturer: str, baud: int, ident: str) -> bytes:
    return f"/{manufacturer}{BAUD_CODES[baud]}{ident}".encode() + CRLF


def parse_option_select(line: bytes) -> tuple[str, int, Mode]:
    """ACK V Z Y CR LF -> (protocol control, baud, mode)."""
    if len(line) != 6 or line[0] != ACK or not line.endswith(CRLF):
        raise FrameError(f"not an option select message: {line!r}")
    v, z, y = chr(line[1]), chr(line[2]), chr(line[3])
    if z not in BAUD_CHARS or y not in {m.value for m in Mode}:
        raise ProtocolError(f"option select {line!r}: unknown baud {z!r} or mode {y!r}")
    return v, BAUD_CHARS[z], Mode(y)


@dataclass(frozen=True, slots=True)
class DataSet:
    name: str  # "" when the meter did not repeat it (continuation) or in an error answer
    value: str
    unit: str | None = None


_DATASET = re.compile(r"([^()/!\r\n]*)\(([^()\r\n]*)\)")


def parse_data_sets(text: str) -> list[DataSet]:
    """NAME(v*unit)NAME(v)(v) CR LF (v) ... -> data sets in order.

    Three layouts are in use and all parse here: the name on every value
    (СЕ301: ET0PE(a) CR LF ET0PE(b)), the name once and values following on their
    own lines (СЕ102М: ET0PE(a) CR LF (b)), or several parenthesised values on one
    line. Whatever is left between the data sets must be line ends."""
    out: list[DataSet] = []
    pos = 0
    for m in _DATASET.finditer(text):
        gap = text[pos:m.start()]
        if gap.replace("\r\n", ""):
            raise FrameError(f"unparseable text {gap[:30]!r} in data block {text[:60]!r}")
        pos = m.end()
        value, unit = m.group(2), None
        if "*" in value:
            value, unit = value.split("*", 1)
        out.append(DataSet(m.group(1), value, unit))
    rest = text[pos:]
    if rest.replace("\r\n", ""):
        raise FrameError(f"unparseable text {rest[:30]!r} at the end of data block {text[:60]!r}")
    return out


def unpack_block(frame: bytes, method: Bcc) -> str:
    """STX ... ETX BCC -> the text between STX and ETX, BCC checked."""
    if not frame or frame[0] != STX:
        raise FrameError(f"answer does not start with STX: {frame[:20]!r}")
    body = check_bcc(frame, method)
    if body[-1] != ETX:
        raise FrameError(f"answer is a partial block (ends 0x{body[-1]:02X}), partial blocks are not used here")
    try:
        return body[1:-1].decode("ascii")
    except UnicodeDecodeError:
        raise FrameError(f"non-ASCII characters in answer {frame[:40]!r}") from None


_ERROR_VALUE = re.compile(r"ERR\d{1,3}")


def parse_answer(frame: bytes, name: str, method: Bcc) -> list[str]:
    """Values of parameter `name` in an R1 answer. The meter's error message raises
    RefusedParameter: an answer without the name (`(ERR12)`, НЕВА `(01)`) or the name
    carrying an error number (`NAME(ERR18)`, the form Энергомера documents for its meters)."""
    sets = parse_data_sets(unpack_block(frame, method))
    if not sets:
        raise FrameError(f"empty answer to {name}")
    if sets[0].name == "" and name != "":
        raise RefusedParameter(name, ",".join(s.value for s in sets))
    errors = [s.value for s in sets if _ERROR_VALUE.fullmatch(s.value)]
    if errors:
        raise RefusedParameter(name, ",".join(errors))
    values: list[str] = []
    current = ""
    for s in sets:
        current = s.name or current
        if current != name:
            raise ProtocolError(f"asked for {name}, meter answered {current}({s.value})")
        values.append(s.value)
    return values


def data_answer(name: str, values: list[str], method: Bcc, layout: str = "repeat") -> bytes:
    """Build an answer the way a meter does: layout "repeat" (NAME(v) on each line),
    "continue" (NAME(v) then (v) lines), "inline" (NAME(v1,v2,...), no line end)."""
    if layout == "inline":
        text = f"{name}({','.join(values)})"
    elif layout == "continue":
        text = "".join((f"{name}({v})" if i == 0 else f"({v})") + "\r\n" for i, v in enumerate(values))
    else:
        text = "".join(f"{name}({v})\r\n" for v in values)
    return seal(bytes([STX]) + text.encode("ascii") + bytes([ETX]), method)


def error_answer(code: str, method: Bcc, crlf: bool = True) -> bytes:
    return seal(bytes([STX]) + f"({code})".encode() + (CRLF if crlf else b"") + bytes([ETX]), method)


def operand(frame: bytes, method: Bcc) -> tuple[str, str]:
    """SOH C D STX (data) ETX BCC -> (command, data inside the parentheses)."""
    if not frame or frame[0] != SOH:
        raise FrameError(f"command does not start with SOH: {frame[:20]!r}")
    body = check_bcc(frame, method)
    if len(body) < 4 or body[-1] != ETX:
        raise FrameError(f"malformed command {frame[:40]!r}")
    cmd = body[1:3].decode("ascii", "replace")
    if len(body) == 4:  # SOH B0 ETX
        return cmd, ""
    if body[3] != STX:
        raise FrameError(f"command {cmd} without STX: {frame[:40]!r}")
    return cmd, body[4:-1].decode("ascii", "replace")


def readout(lines: list[DataSet], method: Bcc) -> bytes:
    text = "".join(f"{d.name}({d.value}{'*' + d.unit if d.unit else ''})\r\n" for d in lines)
    return seal(bytes([STX]) + text.encode("ascii") + b"!" + CRLF + bytes([ETX]), method)


def parse_readout(frame: bytes, method: Bcc) -> list[DataSet]:
    text = unpack_block(frame, method)
    if not text.endswith("!\r\n"):
        raise FrameError("data readout does not end with '!' CR LF")
    return parse_data_sets(text[:-3])


# ---- incremental assembly -------------------------------------------------------------

class Assembler:
    """Collects arriving bytes into messages: an ACK/NAK byte, a '/' line ending in
    CR LF, or an SOH/STX block ending in ETX + BCC. Parity is checked per byte.
    On the meter's side (`meter_side=True`) ACK starts the option-select line instead
    of being a message of its own. A byte that cannot start or continue a message
    raises FrameError and the partial message is dropped."""

    def __init__(self, parity: Parity, max_len: int = MAX_FRAME, where: str = "answer", meter_side: bool = False):
        self.parity = parity
        self.max_len = max_len
        self.where = where
        self.meter_side = meter_side
        self.buf = bytearray()
        self._bcc_next = False

    def reset(self) -> None:
        self.buf = bytearray()
        self._bcc_next = False

    def feed_byte(self, raw: int) -> bytes | None:
        """Returns the completed message (7-bit characters) or None."""
        try:
            b = decode_byte(raw, self.parity, self.where, len(self.buf))
        except FrameError:
            self.reset()
            raise
        buf = self.buf
        if not buf:
            if b == NAK or (b == ACK and not self.meter_side):
                return bytes([b])
            if b not in (ord("/"), SOH, STX, ACK):
                raise FrameError(f"unexpected byte 0x{b:02X} where an {self.where} should start "
                                 f"(garbage or echo on the line)")
            buf.append(b)
            return None
        buf.append(b)
        if len(buf) > self.max_len:
            self.reset()
            raise FrameError(f"{self.where} longer than {self.max_len} bytes without an end: garbage on the line")
        if buf[0] in (ord("/"), ACK):
            return self._done() if buf.endswith(CRLF) else None
        if self._bcc_next:
            return self._done()
        if b in (ETX, EOT):
            self._bcc_next = True
        return None

    def feed(self, data: bytes) -> list[bytes]:
        """All messages completed by `data`."""
        out = []
        for raw in data:
            msg = self.feed_byte(raw)
            if msg is not None:
                out.append(msg)
        return out

    def _done(self) -> bytes:
        msg = bytes(self.buf)
        self.reset()
        return msg
