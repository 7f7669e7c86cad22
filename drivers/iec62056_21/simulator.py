"""Protocol-true IEC 62056-21 mode C meters on top of SimMeter.

`meters` maps the device address written in the sign-on (`/?<address>!`) to a
SimMeter; an empty address reaches the meter only when it is alone on the line.
SimMeter.model picks the parameter map (models.MODELS key, default "ce303").
On the serial transport every character carries even parity in bit 7 (7E1 sent
over an 8N1 pty); on TCP the channel is transparent.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Literal

from askue.drivers.errors import FrameError, ProtocolError
from askue.drivers.iec62056_21 import frames as f
from askue.drivers.iec62056_21.models import MODELS, Channel, Model, format_date, format_time
from askue.drivers.sim.line import Reply, SessionFactory
from askue.drivers.sim.meter import SimMeter

_SIGN_ON = re.compile(rb"/\?([\x20-\x7E]{0,32})!\r\n")
_REQUEST = re.compile(r"([^()]+)\(([^()]*)\)")

DEFAULT_MODEL = "ce303"


def sim_model(meter: SimMeter) -> Model:
    key = (meter.model or DEFAULT_MODEL).lower()
    if key not in MODELS:
        raise KeyError(f"SimMeter {meter.id}: unknown IEC model {meter.model!r}; known: {', '.join(sorted(MODELS))}")
    return MODELS[key]


class IecSimSession:
    """One line's (serial) or one connection's (TCP) state."""

    def __init__(self, meters: dict[str, SimMeter], parity: f.Parity, corrected: dict[int, date]):
        self.meters = meters
        self.parity = parity
        self.corrected = corrected  # id(meter) -> local date of the last CTIME (one per day)
        self.asm = f.Assembler(parity, where="request", meter_side=True)
        self._idle()

    def _idle(self) -> None:
        self.state = "idle"
        self.last: Reply | None = None
        self.meter: SimMeter | None = None
        self.model: Model | None = None
        self.authenticated = False
        # The clock as last served in this session: values carry no time of their own, so a
        # reader stamps them with the date/time it read (readout: the one in the same readout).
        self.last_clock: datetime | None = None

    def _reply(self, data: bytes, checksum_at: int | None = None) -> Reply:
        self.last = Reply(self.meter, f.encode_line(data, self.parity), checksum_at)
        return self.last

    def feed(self, data: bytes) -> list[Reply]:
        out: list[Reply] = []
        for raw in data:
            try:
                msg = self.asm.feed_byte(raw)
            except FrameError:
                continue  # a meter ignores what it cannot read; the reader times out
            if msg is not None:
                out += self._handle(msg)
        return out

    def _handle(self, msg: bytes) -> list[Reply]:
        if msg[:1] == b"/":
            return self._sign_on(msg)
        if self.meter is None or self.model is None:
            return []
        if self.state == "ident" and msg[0] == f.ACK:
            return self._option(msg)
        if self.state == "prog" and msg[0] == f.SOH:
            return self._command(msg)
        if self.state == "prog" and msg == bytes([f.NAK]) and self.last is not None:
            return [self.last]  # the reader saw a damaged answer: send it again (faults apply anew)
        return []

    def _sign_on(self, msg: bytes) -> list[Reply]:
        self._idle()
        m = _SIGN_ON.fullmatch(msg)
        if not m:
            return []
        address = m.group(1).decode()
        if address:
            meter = self.meters.get(address)
        else:
            meter = next(iter(self.meters.values())) if len(self.meters) == 1 else None
        if meter is None:
            return []
        self.meter, self.model = meter, sim_model(meter)
        self.address = address or str(meter.address)
        self.state = "ident"
        # A damaged identification shows as a bad baud character (there is no checksum).
        return [self._reply(f.identification(self.model.manufacturer, self.model.baud, self.model.ident), 4)]

    def _option(self, msg: bytes) -> list[Reply]:
        assert self.model is not None and self.meter is not None
        try:
            _, baud, mode = f.parse_option_select(msg)
        except (FrameError, ProtocolError):
            self._idle()
            return []
        if baud > self.model.baud:
            self._idle()
            return []
        if mode is f.Mode.READOUT:
            reply = self._reply(f.readout(self._readout_sets(), self.model.bcc))
            self._idle()
            return [reply]
        self.state = "prog"
        return [self._reply(f.seal(bytes([f.SOH]) + b"P0" + bytes([f.STX]) + f"({self.address})".encode()
                                   + bytes([f.ETX]), self.model.bcc))]

    def _command(self, msg: bytes) -> list[Reply]:
        model, meter = self.model, self.meter
        assert model is not None and meter is not None
        try:
            cmd, data = f.operand(msg, model.bcc)
        except FrameError:
            return [self._reply(bytes([f.NAK]))]  # damaged request: ask for a repeat
        if cmd == "B0":
            self._idle()
            return []
        if cmd == "P1":
            ok = data == f"({meter.password})"
            self.authenticated = ok
            return [self._reply(bytes([f.ACK if ok else f.NAK]))]
        m = _REQUEST.fullmatch(data)
        if cmd == "R1" and m:
            if model.password_required and not self.authenticated:
                return [self._error()]
            return [self._read(m.group(1), m.group(2))]
        if cmd == "W1" and m:
            return [self._write(m.group(1), m.group(2))]
        return [self._error()]

    def _error(self) -> Reply:
        assert self.model is not None
        return self._reply(f.error_answer(self.model.error_code, self.model.bcc, crlf=self.model.layout != "inline"))

    # ---- values -----------------------------------------------------------------------
    def _local_clock(self) -> datetime:
        assert self.meter is not None
        return self.meter.clock().astimezone(self.meter.local_tz).replace(microsecond=0)

    def _values(self, ch: Channel) -> list[tuple[str, str]]:
        """(OBIS, value as the meter writes it) for every value of a channel, recorded as served."""
        meter = self.meter
        assert meter is not None and self.model is not None
        when = self.last_clock or self._local_clock()
        if ch.kind == "register":
            regs = meter.registers()
            source = {f"1.0.1.8.{t}.255": v for t, v in regs.items()}
        else:
            inst = meter.instant()
            u, i = inst["1.0.32.7.0.255"], inst["1.0.31.7.0.255"]
            if self.model.three_phase:
                i = i / 3  # SimMeter's power spread evenly over three phases
            source = {
                **{o: u for o in ("1.0.32.7.0.255", "1.0.52.7.0.255", "1.0.72.7.0.255")},
                **{o: i for o in ("1.0.31.7.0.255", "1.0.51.7.0.255", "1.0.71.7.0.255")},
                "1.0.1.7.0.255": inst["1.0.1.7.0.255"], "1.0.14.7.0.255": inst["1.0.14.7.0.255"],
            }
        out = []
        for obis in ch.obis:
            text = ch.fmt.format(source.get(obis, 0.0) / ch.scale)
            meter.record(str(ch.kind), obis, when, float(text) * ch.scale)
            out.append((obis, text))
        return out

    def _read(self, name: str, args: str) -> Reply:
        model, meter = self.model, self.meter
        assert model is not None and meter is not None
        if args:
            return self._error()  # archives (ENMPE(mm.yy) …) are not simulated
        now = self._local_clock()
        if name == model.serial_param:
            values = [meter.current_serial()]
        elif name == model.date_param:
            values = [format_date(now.date(), model.date_format)]
        elif name == model.time_param:
            values = [format_time(now.time(), model.time_format)]
            self.last_clock = now
        else:
            ch = next((c for c in (*model.energy, *model.instant) if c.name == name), None)
            if ch is None:
                return self._error()
            values = [text for _, text in self._values(ch)]
        return self._reply(f.data_answer(name, values, model.bcc, model.layout))

    def _write(self, name: str, value: str) -> Reply:
        model, meter = self.model, self.meter
        assert model is not None and meter is not None
        if name != model.clock_correction or not self.authenticated:
            return self._reply(bytes([f.NAK]))
        try:
            delta = int(value)
        except ValueError:
            return self._reply(bytes([f.NAK]))
        today = self._local_clock().date()
        if abs(delta) > model.max_correction_s or self.corrected.get(id(meter)) == today:
            return self._reply(bytes([f.NAK]))
        meter.set_clock(meter.clock() + timedelta(seconds=delta))
        self.corrected[id(meter)] = today
        return self._reply(bytes([f.ACK]))

    def _readout_sets(self) -> list[f.DataSet]:
        model, meter = self.model, self.meter
        assert model is not None and meter is not None
        now = self.last_clock = self._local_clock()
        sets = [f.DataSet(model.serial_param, meter.current_serial())]
        for ch in model.energy:
            sets += [f.DataSet(ch.name, text) for _, text in self._values(ch)]
        sets.append(f.DataSet(model.date_param, format_date(now.date(), model.date_format)))
        sets.append(f.DataSet(model.time_param, format_time(now.time(), model.time_format)))
        return sets


def make_session_factory(meters: Mapping[int | str, SimMeter], *,
                         transport: Literal["tcp", "serial"]) -> SessionFactory:
    by_address = {str(k): m for k, m in meters.items()}
    for m in by_address.values():
        sim_model(m)  # fail at start, not on the first request
    parity = f.Parity.SOFTWARE if transport == "serial" else f.Parity.NONE
    corrected: dict[int, date] = {}
    return lambda: IecSimSession(by_address, parity, corrected)
