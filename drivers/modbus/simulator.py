"""A protocol-true Modbus server session (TCP MBAP or RTU) in front of SimMeters.

Requests are framed and decoded with pymodbus's own framers and PDU classes,
not with askue's frames.py, so the driver and the simulator do not share a
parser. Each SimMeter is addressed by its unit id and answers with its values
encoded per its register map (SimMeter.model, or SimMeter.options["map_file"]).
Every value served whole in an answer is recorded with SimMeter.record(), as
the exact number a reader decodes from the registers.

Line behaviour: RTU requests for unknown unit ids and frames with a bad CRC get
no answer (as on a real bus); a TCP request for an unknown unit gets exception
0x0B, as a Modbus gateway answers. Reads of unmapped registers get exception
0x02; other function codes get 0x01.
"""
from __future__ import annotations

import random
import zlib
from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from pymodbus.framer import FramerRTU, FramerSocket
from pymodbus.pdu import DecodePDU, ExceptionResponse
from pymodbus.pdu.register_message import ReadHoldingRegistersResponse, ReadInputRegistersResponse

from askue.drivers.modbus import codec
from askue.drivers.modbus.register_map import MapField, RegisterMap, cached_map, load_map
from askue.drivers.sim.line import Reply, SessionFactory
from askue.drivers.sim.meter import SimMeter

ILLEGAL_FUNCTION, ILLEGAL_DATA_ADDRESS, ILLEGAL_DATA_VALUE, GATEWAY_TARGET_FAILED = 0x01, 0x02, 0x03, 0x0B

# Secondary cumulative registers (A-, R+, R-, heat volume…) as a fixed share of the
# meter's main register per tariff, keyed by OBIS (A, C): monotonic like the real thing.
_SECONDARY_SHARE = {(1, 2): 0.02, (1, 3): 0.35, (1, 4): 0.08, (6, 2): 0.03}


def map_of(meter: SimMeter) -> RegisterMap:
    if meter.options.get("map_file"):
        return load_map(meter.options["map_file"])
    if not meter.model:
        raise ValueError(f"sim meter {meter.id}: set model to a Modbus register map name")
    return cached_map(meter.model)


def _noise(meter: SimMeter, key: str, t: datetime) -> float:
    """A deterministic 0..1 number per meter, channel and second."""
    return random.Random(zlib.crc32(f"{meter.seed}/{meter.id}/{key}/{int(t.timestamp())}".encode())).random()


def _instant_value(meter: SimMeter, obis: str, t: datetime, inst: dict[str, float]) -> float:
    if obis in inst:
        return inst[obis]
    a, _b, c = (int(x) for x in obis.split(".")[:3])
    r = _noise(meter, obis, t)
    if a == 1:
        if c in (32, 52, 72):
            return 226.0 + 8 * r  # phase voltages
        if c in (31, 51, 71):
            return inst.get("1.0.31.7.0.255", 1.0) * (0.8 + 0.4 * r)
        if c in (21, 41, 61):
            return inst.get("1.0.1.7.0.255", 0.5) / 3 * (0.8 + 0.4 * r)
        if c == 13:
            return 0.9 + 0.1 * r  # power factor
    if a == 6:  # heat: power, flow, flow/return temperature (EN 13757 / OBIS heat groups)
        return {8: meter.mean_power * (0.7 + 0.6 * r), 9: 0.3 + 0.6 * r, 10: 68.0 + 6 * r,
                11: 42.0 + 6 * r}.get(c, 10 * r)
    if a in (8, 9):  # water flow
        return meter.mean_power * (0.7 + 0.6 * r)
    return 10 * r


def _register_value(meter: SimMeter, f: MapField, regs: dict[int, float], t: datetime) -> float:
    main = meter.channels[0].split(".")
    parts = f.obis.split(".")
    base = regs.get(f.tariff, 0.0)
    if parts[:4] == main[:4] and parts[5] == main[5]:
        return base
    share = _SECONDARY_SHARE.get((int(parts[0]), int(parts[2])), 0.5)
    if f.tariff == 0:
        return meter.secondary_register(share, t)
    return round(base * share, meter.decimals)


def numeric_serial(serial: str, bits: int) -> int:
    """A meter serial as the number a register holds (a replaced meter's 'R' suffix
    becomes a different number, so a reader sees a different serial)."""
    n = int(serial) if serial.isdigit() else zlib.crc32(serial.encode()) % 100_000_000
    return n % (1 << bits)


class MeterImage:
    """One meter's registers at one instant, and what each field decodes to."""

    def __init__(self, meter: SimMeter, rmap: RegisterMap, t: datetime):
        self.meter, self.map = meter, rmap
        self.words: dict[int, int] = {}
        self.served: list[tuple[MapField, float]] = []
        bo, wo = rmap.byte_order, rmap.word_order
        self.meter_time = None
        if rmap.clock:
            c = rmap.clock
            tz = rmap.clock_tz(meter.options)
            clock = codec.quantise_clock(c.format, meter.clock(t))
            self._put(c.address, codec.encode_clock(c.format, clock, bo, wo, tz))
            self.meter_time = clock
        if rmap.serial:
            s = rmap.serial
            serial = meter.current_serial(t)
            if s.type == "string":
                raw = serial.encode("ascii", "replace")[: 2 * s.count].ljust(2 * s.count, b"\x00")
                self._put(s.address, codec.bytes_to_words(raw, bo, "big"))
            else:
                bits = 16 * codec.size_of(s.type)
                self._put(s.address, codec.encode_value(s.type, numeric_serial(serial, bits), bo, wo))
        regs = meter.registers(t) if rmap.by_kind("register") else {}
        inst = meter.instant(t) if rmap.resource == "electricity" else {}
        for f in rmap.fields:
            if f.kind == "register":
                v = _register_value(meter, f, regs, t)
            else:
                v = round(_instant_value(meter, f.obis, t, inst), meter.decimals)
            words = codec.encode_value(f.type, v, bo, wo, f.scale)
            self._put(f.address, words)
            # what a reader decodes: quantised to the map's type and scale
            self.served.append((f, codec.decode_value(f.type, words, bo, wo, f.scale)))
        # holes up to max_gap between mapped registers read as 0, as on the real model
        addrs = sorted(self.words)
        for a, b in zip(addrs, addrs[1:], strict=False):
            if 1 < b - a <= rmap.max_gap + 1:
                for x in range(a + 1, b):
                    self.words[x] = 0

    def _put(self, address: int, words: list[int]) -> None:
        for i, w in enumerate(words):
            self.words[address + i] = w


class ModbusSimSession:
    def __init__(self, meters: Mapping[int, SimMeter], framing: Literal["tcp", "serial"]):
        self.meters = meters
        self.framing = framing
        decoder = DecodePDU(is_server=True)
        self.framer = FramerSocket(decoder) if framing == "tcp" else FramerRTU(decoder)
        self.decoder = decoder
        self.buf = b""
        self.last_clock: dict[int, datetime | None] = {}

    def feed(self, data: bytes) -> list[Reply]:
        self.buf += data
        replies: list[Reply] = []
        while self.buf:
            if self.framing == "tcp" and len(self.buf) >= 8 and self.buf[2:4] != b"\x00\x00":
                self.buf = b""  # not Modbus: a real server drops it (and usually the connection)
                break
            used, unit, tid, pdu = self.framer.decode(self.buf)
            if not used:
                if self.framing == "serial":
                    reply = self._unknown_function_rtu()
                    if reply:
                        replies.append(reply)
                        continue
                if len(self.buf) > 512:
                    self.buf = b""  # line noise that never forms a frame
                break
            self.buf = self.buf[used:]
            if not pdu:
                continue  # bad CRC: a serial device stays silent
            reply = self._answer(unit, tid, pdu)
            if reply is not None:
                replies.append(reply)
        return replies

    def _unknown_function_rtu(self) -> Reply | None:
        """pymodbus's RTU framer cannot size a frame with a function code it does not know;
        a whole buffer with a valid CRC addressed to one of our meters is such a request."""
        b = self.buf
        if len(b) >= 4 and b[0] in self.meters and FramerRTU.compute_CRC(b[:-2]) == int.from_bytes(b[-2:], "big"):
            self.buf = b""
            return self._exception(b[0], 0, b[1] & 0x7F, ILLEGAL_FUNCTION, self.meters[b[0]])
        return None

    def _frame(self, pdu_obj, unit: int, tid: int) -> bytes:
        pdu_obj.dev_id, pdu_obj.transaction_id = unit, tid
        return self.framer.buildFrame(pdu_obj)

    def _reply(self, meter: SimMeter | None, data: bytes) -> Reply:
        # TCP has no checksum: a "CRC fault" damages the MBAP protocol id, which a reader detects
        return Reply(meter, data, checksum_at=2 if self.framing == "tcp" else len(data) - 2)

    def _exception(self, unit: int, tid: int, function: int, code: int, meter: SimMeter | None) -> Reply:
        return self._reply(meter, self._frame(ExceptionResponse(function, code), unit, tid))

    def _answer(self, unit: int, tid: int, pdu: bytes) -> Reply | None:
        meter = self.meters.get(unit)
        if meter is None:
            if self.framing == "tcp" and unit != 0:
                return self._exception(unit, tid, pdu[0] & 0x7F, GATEWAY_TARGET_FAILED, None)
            return None  # nobody on the bus answers; unit 0 is broadcast (no answer by definition)
        fc = pdu[0]
        rmap = map_of(meter)
        if fc not in (3, 4) or fc != rmap.function:
            return self._exception(unit, tid, fc, ILLEGAL_FUNCTION, meter)
        request = self.decoder.decode(pdu)
        if request is None:  # pymodbus refuses counts outside 1..125
            return self._exception(unit, tid, fc, ILLEGAL_DATA_VALUE, meter)
        start, count = request.address, request.count
        t = meter.now()
        image = MeterImage(meter, rmap, t)
        if start + count > 0x10000 or any(a not in image.words for a in range(start, start + count)):
            return self._exception(unit, tid, fc, ILLEGAL_DATA_ADDRESS, meter)
        c = rmap.clock
        if c and start <= c.address and c.address + c.count <= start + count:
            self.last_clock[unit] = image.meter_time
        # A reader stamps values with the clock it read last in this session (askue's driver
        # reads it first), so that is the meter time recorded with them.
        meter_time = self.last_clock.get(unit, image.meter_time)
        for f, value in image.served:
            if start <= f.address and f.address + f.count <= start + count:
                meter.record(f.kind, f.obis, meter_time, value)
        cls = ReadHoldingRegistersResponse if fc == 3 else ReadInputRegistersResponse
        words = [image.words[a] for a in range(start, start + count)]
        return self._reply(meter, self._frame(cls(registers=words), unit, tid))


def make_session_factory(meters: Mapping[int | str, SimMeter], *,
                         transport: Literal["tcp", "serial"]) -> SessionFactory:
    """meters: Modbus unit id -> SimMeter. Every meter's map is loaded now, so a bad
    map fails here and not on the first request."""
    if transport not in ("tcp", "serial"):
        raise ValueError(f"transport {transport!r}: use 'tcp' or 'serial'")
    by_unit: dict[int, SimMeter] = {}
    for key, m in meters.items():
        unit = int(key)
        if not 1 <= unit <= 247:
            raise ValueError(f"sim meter {m.id}: unit id {unit} out of 1..247")
        map_of(m)
        by_unit[unit] = m
    return lambda: ModbusSimSession(by_unit, transport)

