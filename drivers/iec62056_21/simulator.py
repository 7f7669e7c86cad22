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
from askue.drivers.iec62056_21 import archives as ar
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

    def __init__(self, meters: dict[str, SimMeter], parity: f.Parity, corrected: dict[int, date],
                 fixed: dict[tuple[int, datetime], dict[int, float]] | None = None):
        self.meters = meters
        self.parity = parity
        self.corrected = corrected  # id(meter) -> local date of the last CTIME (one per day)
        # (id(meter), boundary) -> registers the meter fixed there: once fixed, an archive
        # entry never changes, whatever happens to the clock afterwards.
        self.fixed = {} if fixed is None else fixed
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
        if mode is f.Mode.READOUT or (mode is f.Mode.VENDOR_6 and self.model.manufacturer == "EKT"):
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
            p = inst["1.0.1.7.0.255"]
            source = {
                **{o: u for o in ("1.0.32.7.0.255", "1.0.52.7.0.255", "1.0.72.7.0.255")},
                **{o: i for o in ("1.0.31.7.0.255", "1.0.51.7.0.255", "1.0.71.7.0.255")},
                **{o: p / 3 for o in ("1.0.21.7.0.255", "1.0.41.7.0.255", "1.0.61.7.0.255")},
                "1.0.1.7.0.255": p, "1.0.14.7.0.255": inst["1.0.14.7.0.255"],
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
        now = self._local_clock()
        memory = self._memory(name, args, now)
        if memory is not None:
            return memory
        if args:
            return self._error()
        if name == model.serial_param:
            values = [meter.current_serial()]
        elif name == "IDPAS" and model.manufacturer == "EKT":
            values = [self.address]  # the device identifier, as in the captured СЕ102М readout
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
        if name != model.clock_correction or (model.correction_needs_password and not self.authenticated):
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
        """НЕВА: serial, energy, date, time. Энергомера: the order of a captured СЕ102М
        readout (energy in the model's layout, date, time, serial, device identifier)."""
        model, meter = self.model, self.meter
        assert model is not None and meter is not None
        now = self.last_clock = self._local_clock()
        energy = [f.DataSet(ch.name if i == 0 or model.layout != "continue" else "", text)
                  for ch in model.energy for i, (_, text) in enumerate(self._values(ch))]
        date_set = f.DataSet(model.date_param, format_date(now.date(), model.date_format))
        time_set = f.DataSet(model.time_param, format_time(now.time(), model.time_format))
        serial = f.DataSet(model.serial_param, meter.current_serial())
        if model.manufacturer == "EKT":
            return [*energy, date_set, time_set, serial, f.DataSet("IDPAS", self.address)]
        return [serial, *energy, date_set, time_set]

    # ---- the meter's memory -----------------------------------------------------------
    def _register_at(self, meter_local: datetime) -> dict[int, float]:
        """Registers when the meter's own clock showed `meter_local` (a drifting or jumped
        clock reaches its midnight at another true time)."""
        meter = self.meter
        assert meter is not None
        t = meter_local
        for _ in range(3):  # clock(t) = t + a slowly varying offset: a few steps settle it
            t = meter_local - (meter.clock(t) - t)
        return meter.registers(t)

    def _fixed_at(self, meter_local: datetime) -> dict[int, float]:
        assert self.meter is not None
        key = (id(self.meter), meter_local)
        if key not in self.fixed:
            self.fixed[key] = self._register_at(meter_local)
        return self.fixed[key]

    def _memory(self, name: str, args: str, now: datetime) -> Reply | None:
        """Day/month-start values and the Энергомера accumulators (archives.py), from the
        SimMeter's registers at the boundary; None when `name` is not one of them."""
        model, meter = self.model, self.meter
        assert model is not None and meter is not None
        scheme, today = model.archive_scheme, now.date()
        ch = model.energy[0]

        def midnight(d: date) -> datetime:
            return datetime(d.year, d.month, d.day, tzinfo=meter.local_tz)

        def values(regs: dict[int, float]) -> list[str]:
            return [ch.fmt.format(regs.get(t, 0.0) / ch.scale) for t in range(len(ch.obis))]

        def difference(a: dict[int, float], b: dict[int, float]) -> dict[int, float]:
            return {t: round(a.get(t, 0.0) - b.get(t, 0.0), meter.decimals) for t in a}

        try:
            entry = ar.boundary_of(scheme, name, args, today)
        except FrameError:
            return self._error()
        if entry is not None:
            start = midnight(entry.boundary)
            if start > now or (entry.archive == "month_start" and entry.boundary > ar.month_start(today)):
                return self._error()  # not fixed yet
            text = values(self._fixed_at(start))
            for obis, t in zip(ch.obis, text, strict=True):
                meter.record(str(ch.kind), obis, start, float(t) * ch.scale)
        elif scheme == "energomera" and name in (ar.ENERGOMERA_TODAY, ar.ENERGOMERA_THIS_MONTH) and not args:
            since = today if name == ar.ENERGOMERA_TODAY else ar.month_start(today)
            text = values(difference(meter.registers(), self._fixed_at(midnight(since))))
        elif scheme == "energomera" and name == ar.ENERGOMERA_MONTH_ENERGY:
            try:
                month = ar.parse_month_arg(args)
            except FrameError:
                return self._error()
            end = ar.month_start(month, -1)
            if end > ar.month_start(today):
                return self._error()
            text = values(difference(self._fixed_at(midnight(end)), self._fixed_at(midnight(month))))
        else:
            return None
        return self._reply(f.data_answer(name, [model.value_sep.join(text)] if model.value_sep else text,
                                         model.bcc, model.layout))


def make_session_factory(meters: Mapping[int | str, SimMeter], *,
                         transport: Literal["tcp", "serial"]) -> SessionFactory:
    by_address = {str(k): m for k, m in meters.items()}
    for m in by_address.values():
        sim_model(m)  # fail at start, not on the first request
    parity = f.Parity.SOFTWARE if transport == "serial" else f.Parity.NONE
    corrected: dict[int, date] = {}
    fixed: dict[tuple[int, datetime], dict[int, float]] = {}
    return lambda: IecSimSession(by_address, parity, corrected, fixed)
