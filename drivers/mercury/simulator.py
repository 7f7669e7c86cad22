"""Меркурий 230/234 simulator: a sans-I/O session answering requests for SimMeters.

Serves network addresses 1..240 (and the universal address 0 when one meter is on the line),
checks the open-channel password and access level, answers the documented status codes and
encodes the SimMeter's values in the meter's byte orders. It also serves the meter's memory
(sim_memory.MeterMemory): the power-profile ring with the model's addressing, the event
journals, the energy at day and month starts, the variant and the transformer ratios. The
same framing runs over TCP (transparent RS-485 gateway) and a pty: the protocol has no TCP
wrapper of its own. A silent meter (Faults.silent) takes no request at all.

What a SimMeter does not model is served as follows and recorded like every other value:
A- and R- are 0, R+ is A+ times options["reactive_ratio"] (default 0.25), phase 1 carries the
whole load (phases 2 and 3: nominal voltage, no current).
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Literal

from askue.drivers.mercury import frames as f
from askue.drivers.mercury import params as params_codec
from askue.drivers.mercury import profile as prof
from askue.drivers.mercury.sim_memory import MeterMemory, Served
from askue.drivers.sim.line import Reply, SessionFactory
from askue.drivers.sim.meter import SimMeter

# Known request lengths by code (and first parameter); anything else is framed by its CRC.
_FIXED_LEN = {f.Code.TEST: 4, f.Code.OPEN: 11, f.Code.CLOSE: 4, f.Code.READ_ARRAY: 6, f.Code.READ_MEMORY: 8}
_WRITE_LEN = {f.WriteParam.SET_TIME: 13, f.WriteParam.CORRECT_TIME: 8}
_MAX_REQUEST = 32


def _request_len(buf: bytearray) -> int | None:
    """Length of the request at the start of buf; None when more bytes are needed."""
    if len(buf) < 2:
        return None
    code = buf[1]
    if code in _FIXED_LEN:
        return _FIXED_LEN[code]
    if code == f.Code.WRITE and len(buf) >= 3 and buf[2] in _WRITE_LEN:
        return _WRITE_LEN[buf[2]]
    if code in (f.Code.READ_TIME, f.Code.READ_PARAM):
        if len(buf) < 3:
            return None
        if code == f.Code.READ_TIME:
            return 5 if buf[2] == 0 else 6
        return 6 if buf[2] in (f.Param.AUX_ONE, f.Param.AUX_BLOCK) else 5
    for n in range(4, min(len(buf), _MAX_REQUEST) + 1):
        if f.crc_ok(bytes(buf[:n])):
            return n
    return 0 if len(buf) >= _MAX_REQUEST else None


def numeric_serial(serial: str) -> str:
    """The 8-digit serial a Mercury meter can report. SimMeter marks a replaced meter by a
    suffix; the protocol only carries digits, so the replacement gets the next number."""
    digits = "".join(c for c in serial if c.isdigit())[-8:] or "0"
    n = int(digits)
    if digits != serial:
        n = (n + 1) % 10**8
    return f"{n:08d}"


class MercurySession:
    def __init__(self, meters: Mapping[int, SimMeter], corrected: dict[int, date] | None = None):
        self.meters = {int(a): m for a, m in meters.items()}
        self.memory = {a: MeterMemory(m) for a, m in self.meters.items()}
        self.levels: dict[int, int] = {}  # open channels: address -> access level
        # Day (meter time) of the last +-4 min correction per address: meter state, shared by
        # every connection to this line.
        self.corrected = corrected if corrected is not None else {}
        self.buf = bytearray()
        # The clock as last served per meter (whole seconds, as the frame carries it): registers
        # and auxiliary values carry no time, so a reader stamps them with the clock it read before.
        self.last_clock: dict[str, datetime] = {}

    def feed(self, data: bytes) -> list[Reply]:
        self.buf += data
        out: list[Reply] = []
        while self.buf:
            n = _request_len(self.buf)
            if n is None:
                break
            if n == 0 or len(self.buf) < n:
                if n == 0:
                    self.buf.clear()  # line noise: a real meter resyncs on the inter-frame gap
                break
            frame = bytes(self.buf[:n])
            del self.buf[:n]
            if not f.crc_ok(frame):
                self.buf.clear()  # a damaged request gets no answer
                break
            reply = self._handle(frame)
            if reply is not None:
                out.append(reply)
        return out

    # ---- dispatch ----------------------------------------------------------------------
    def _handle(self, frame: bytes) -> Reply | None:
        addr, code, params = frame[0], frame[1], frame[2:-2]
        if addr == f.UNIVERSAL_ADDRESS:
            if len(self.meters) != 1:
                return None  # several meters answering at once collide on the line
            key = next(iter(self.meters))
        elif addr in self.meters:
            key = addr
        else:
            return None
        meter = self.meters[key]
        if meter.faults.silent:
            return None  # a dead line: nothing reaches the meter, nothing is served
        memory = self.memory[key]

        def status(s: int) -> Reply:
            return Reply(meter, f.status_reply(addr, s))

        def data(payload: bytes) -> Reply:
            return Reply(meter, f.with_crc(bytes([addr]) + payload))

        if code == f.Code.TEST:
            return status(0)
        if code == f.Code.OPEN:
            return status(self._open(key, meter, params))
        if code == f.Code.CLOSE:
            self.levels.pop(key, None)
            return status(0)
        level = self.levels.get(key)
        if level is None:
            return status(5)
        if code == f.Code.WRITE:
            return status(self._write(key, meter, level, params))
        if code == f.Code.READ_TIME and params == b"\x00":
            return data(self._time(meter))
        if code == f.Code.READ_TIME and len(params) == 2:
            served = memory.journal_record(params[0], params[1], meter.now()) if params[1] < 10 else None
            return status(1) if served is None else data(self._serve(meter, "event", served))
        if code == f.Code.READ_ARRAY and len(params) == 2:
            payload = self._energy(meter, memory, params[0] >> 4, params[0] & 0x0F, params[1])
            return status(1) if payload is None else data(payload)
        if code == f.Code.READ_MEMORY and len(params) == 4:
            payload = self._profile_record(meter, memory, params)
            return status(1) if payload is None else data(payload)
        if code == f.Code.READ_PARAM and params == bytes([f.Param.SERIAL]):
            made = date.fromisoformat(str(meter.options.get("manufactured", "2021-03-15")))
            return data(f.encode_serial(numeric_serial(meter.current_serial()), made))
        if code == f.Code.READ_PARAM and params == bytes([f.Param.RATIOS]):
            return data(params_codec.encode_ratios(memory.ratios.vt, memory.ratios.ct))
        if code == f.Code.READ_PARAM and params == bytes([f.Param.VARIANT]):
            return data(memory.variant())
        if code == f.Code.READ_PARAM and params == bytes([f.Param.LAST_RECORD]):
            if memory.period_min is None or not memory.keeps_profile:
                return status(1)
            return data(memory.last_record(meter.now()))
        if code == f.Code.READ_PARAM and len(params) == 2 and params[0] in (f.Param.AUX_ONE, f.Param.AUX_BLOCK):
            payload = self._aux(meter, params[1], params[0] == f.Param.AUX_BLOCK)
            return status(1) if payload is None else data(payload)
        return status(1)

    def _open(self, key: int, meter: SimMeter, params: bytes) -> int:
        if len(params) != 7 or params[0] not in (1, 2):
            return 1
        level = params[0]
        expected = meter.password if level == 1 else str(meter.options.get("admin_password", "222222"))
        try:
            ok = f.password_bytes(expected, level) == params[1:]
        except ValueError:
            ok = False
        if not ok:
            return 1
        self.levels[key] = level
        return 0

    def _write(self, key: int, meter: SimMeter, level: int, params: bytes) -> int:
        now = meter.clock()
        local = now.astimezone(meter.local_tz).replace(tzinfo=None)
        if params[:1] == bytes([f.WriteParam.CORRECT_TIME]) and len(params) == 4:
            try:
                h, m, s = f.decode_hms(params[1:])
            except Exception:
                return 1
            target = local.replace(hour=h, minute=m, second=s, microsecond=0)
            if abs((target - local).total_seconds()) > f.MAX_CORRECTION_S or h != local.hour:
                return 1
            if self.corrected.get(key) == local.date():
                return 4
            self.corrected[key] = local.date()
            meter.set_clock(target.replace(tzinfo=meter.local_tz))
            return 0
        if params[:1] == bytes([f.WriteParam.SET_TIME]) and len(params) == 9:
            if level < 2:
                return 3
            try:
                target = f.decode_time(params[1:]).local
            except Exception:
                return 1
            meter.set_clock(target.replace(tzinfo=meter.local_tz))
            return 0
        return 3 if level < 2 else 1  # other parameters are not simulated

    def _time(self, meter: SimMeter) -> bytes:
        now = meter.clock().replace(microsecond=0)
        self.last_clock[meter.id] = now
        local = now.astimezone(meter.local_tz).replace(tzinfo=None)
        return f.encode_time(local, winter=True)

    @staticmethod
    def _serve(meter: SimMeter, kind: str, answer: tuple[bytes, list[Served]]) -> bytes:
        payload, served = answer
        for obis, meter_time, value in served:
            meter.record(kind, obis, meter_time, value)
        return payload

    def _profile_record(self, meter: SimMeter, memory: MeterMemory, p: bytes) -> bytes | None:
        """06 <memory> <address> 0F: one record of the profile ring, or None (invalid)."""
        mem, count = p[0], p[3]
        at = ((mem & prof.ADDRESS_BIT16) << 9) | (p[1] << 8) | p[2]
        if (mem & 0x7F) != prof.PROFILE_MEMORY or count != prof.RECORD_LEN or at % prof.RECORD_STEP \
                or memory.period_min is None or not memory.keeps_profile:
            return None
        index = at // prof.RECORD_STEP
        if index >= memory.layout.capacity:
            return None
        return self._serve(meter, "interval", memory.record(index, meter.now()))

    def _energy(self, meter: SimMeter, memory: MeterMemory, array: int, month: int, tariff: int) -> bytes | None:
        if tariff > 4:
            return None
        t = meter.now()
        if array != f.Array.FROM_RESET or month != 0:
            # Energy at a day or month start; the other arrays answer "invalid parameter".
            meter_now = self.last_clock.get(meter.id) or meter.clock(t)
            answer = memory.archive(array, month, tariff, meter_now, t)
            return None if answer is None else self._serve(meter, "register", answer)
        meter_time = self.last_clock.get(meter.id) or meter.clock(t)
        kwh = meter.registers(t).get(tariff, 0.0) if meter.resource == "electricity" else 0.0
        ratio = float(meter.options.get("reactive_ratio", 0.25))
        a_plus = round(kwh * 1000)
        values = {1: a_plus, 2: 0, 3: round(a_plus * ratio), 4: 0}  # OBIS quantity -> Wh/varh
        for q, wh in values.items():
            meter.record("register", f"1.0.{q}.8.{tariff}.255", meter_time, wh / 1000)
        return b"".join(f.encode_u32(values[q]) for q in (1, 2, 3, 4))

    def _aux(self, meter: SimMeter, bwri: int, block: bool) -> bytes | None:
        kind = bwri & 0xF0
        if kind not in (0x00, 0x10, 0x20, 0x30, 0x40):
            return None
        t = meter.now()
        meter_time = self.last_clock.get(meter.id) or meter.clock(t)
        inst = meter.instant(t)
        u, i, p_kw, freq = inst["1.0.32.7.0.255"], inst["1.0.31.7.0.255"], inst["1.0.1.7.0.255"], inst["1.0.14.7.0.255"]

        def value(bwri: int) -> tuple[str | None, float, int]:
            """(OBIS or None, value in its unit, raw protocol integer)."""
            kind, ph = bwri & 0xF0, bwri & 0x0F
            if kind == 0x00:
                sel, ph = ph >> 2, ph & 0x03
                if sel > 2:
                    raise KeyError
                kw = p_kw if ph in (0, 1) else 0.0
                if sel == 1:
                    return None, 0.0, 0  # no reactive load in the model
                obis = ("1.0.1.7.0.255", "1.0.21.7.0.255", "1.0.41.7.0.255", "1.0.61.7.0.255")[ph]
                return (obis if sel == 0 else None), kw, round(kw * 1000 * 100)
            if kind == 0x10 and 1 <= ph <= 3:
                return ("1.0.32.7.0.255", "1.0.52.7.0.255", "1.0.72.7.0.255")[ph - 1], u, round(u * 100)
            if kind == 0x20 and 1 <= ph <= 3:
                amps = i if ph == 1 else 0.0
                return ("1.0.31.7.0.255", "1.0.51.7.0.255", "1.0.71.7.0.255")[ph - 1], amps, round(amps * 1000)
            if kind == 0x30 and ph <= 3:
                cos = 1.0 if (p_kw > 0 and ph in (0, 1)) else 0.0
                return None, cos, round(cos * 1000)
            if kind == 0x40 and ph == 0:
                return "1.0.14.7.0.255", freq, round(freq * 100)
            raise KeyError

        codes = [bwri]
        if block:
            first = {0x00: 0x00, 0x10: 0x11, 0x20: 0x21, 0x30: 0x30, 0x40: 0x40}[kind]
            if kind == 0x00:
                first = bwri & 0x0C  # P, Q or S; the block starts with the sum
            codes = [first + k for k in range(f.aux_block_count(bwri))]
        out = bytearray()
        try:
            for c in codes:
                obis, v, raw = value(c)
                if obis is not None:
                    meter.record("instant", obis, meter_time, v)
                out += f.encode_u24(raw)
        except KeyError:
            return None
        return bytes(out)


def make_session_factory(meters: Mapping[int | str, SimMeter], *,
                         transport: Literal["tcp", "serial"] = "serial") -> SessionFactory:
    """Sessions for Mercury meters keyed by network address (1..240). The protocol frames
    the same on TCP (transparent gateway) and on the serial line, so `transport` only
    validates the argument."""
    if transport not in ("tcp", "serial"):
        raise ValueError(f"transport must be 'tcp' or 'serial', got {transport!r}")
    table: dict[int, SimMeter] = {}
    for a, m in meters.items():
        addr = int(a)
        if not 1 <= addr <= f.MAX_ADDRESS:
            raise ValueError(f"Mercury network address must be 1..{f.MAX_ADDRESS}, got {a!r} for meter {m.id}")
        table[addr] = m
    corrected: dict[int, date] = {}
    return lambda: MercurySession(table, corrected)


__all__ = ["MercurySession", "make_session_factory", "numeric_serial"]
