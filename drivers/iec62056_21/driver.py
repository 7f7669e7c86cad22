"""IEC 62056-21 mode C driver (Энергомера СЕ102М/СЕ301/СЕ303, НЕВА МТ 1xx/3xx).

Session: sign-on at the initial baud rate (300, 7E1), identification, option
select for programming mode at the baud rate the meter offers (capped by
`max_baud`), baud switch, the meter's P0 operand, password (P1) when configured,
R1 reads, break (B0) on close.

MeterSpec.options:
  parity        software | hardware | none  (default: hardware on a serial port, none on TCP)
  initial_baud  sign-on baud rate, default 300
  max_baud      cap for the switch, default 9600
  baud_switch   false keeps the initial rate (meters fixed at 9600 on RS-485)
  timeout       seconds to wait for an answer, default 1.5
  tz_offset_min the meter's local time offset from UTC, default 180 (Moscow)
  repeats       how often a damaged request/answer is repeated (NAK recovery), default 2
  echo          true on RS-485 adapters that hear their own transmission: the driver
                reads its request back and checks it before waiting for the answer
  archives      false: do not read the day- and month-start values the meter keeps
                (models with an archive scheme; default true)

Each parameter is read on its own: a parameter the meter refuses (error answer) is
logged and left out, the rest of the poll goes on. Archive values are asked for by the
gateway from its ledger (read_archive), so each boundary is read once.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, time
from typing import ClassVar

from askue.drivers.base import Capability, Driver, Kind, MeterIdentity, MeterSpec, Reading, register_driver
from askue.drivers.errors import AuthError, DriverError, FrameError, MeterTimeout, ProtocolError, Unsupported
from askue.drivers.iec62056_21 import archives as ar
from askue.drivers.iec62056_21 import frames as f
from askue.drivers.iec62056_21.models import (
    Channel,
    Model,
    combine,
    local_tz,
    model_for,
    parse_date,
    parse_number,
    parse_time,
)
from askue.drivers.transport import SerialSettings, SerialTransport, Transport

log = logging.getLogger("askue.drivers.iec62056_21")


class IecConfigError(ProtocolError, ValueError):
    """The meter's settings cannot work with this driver (bad option, unknown model)."""


@register_driver("iec62056_21")
class Iec62056Driver(Driver):
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.REGISTERS, Capability.INSTANT, Capability.CLOCK, Capability.SET_CLOCK, Capability.ARCHIVES}
    )

    def __init__(self, transport: Transport, meter: MeterSpec):
        super().__init__(transport, meter)
        o = meter.options
        default_parity = f.Parity.HARDWARE if isinstance(transport, SerialTransport) else f.Parity.NONE
        try:
            self.parity = f.Parity(o.get("parity", default_parity))
        except ValueError:
            raise IecConfigError(f"meter {meter.id}: parity must be software, hardware or none, "
                             f"not {o.get('parity')!r}") from None
        try:
            self.initial_baud = int(o.get("initial_baud", 300))
            self.max_baud = int(o.get("max_baud", 9600))
            self.baud_switch = bool(o.get("baud_switch", True))
            self.timeout = float(o.get("timeout", 1.5))
            self.echo = bool(o.get("echo", False))
            self.repeats = int(o.get("repeats", 2))
            self.tz = local_tz(int(o.get("tz_offset_min", 180)))
            self.archives = bool(o.get("archives", True))
        except (TypeError, ValueError) as e:
            raise IecConfigError(f"meter {meter.id}: bad option value: {e}") from None
        for what, baud in (("initial_baud", self.initial_baud), ("max_baud", self.max_baud)):
            if baud not in f.BAUD_CODES:
                raise IecConfigError(f"meter {meter.id}: {what} {baud} is not a mode C rate; "
                                     f"use one of {sorted(f.BAUD_CODES)}")
        self.address = "" if meter.address is None else str(meter.address)
        if meter.model:
            try:
                model_for(meter.model)
            except KeyError as e:
                raise IecConfigError(f"meter {meter.id}: {e.args[0]}") from None
        try:
            f.sign_on(self.address)
        except ValueError as e:
            raise IecConfigError(f"meter {meter.id}: {e}") from None
        self.model: Model | None = None
        self.ident: f.Identification | None = None
        self.authenticated = False
        self._open = False
        self._baud = self.initial_baud  # the port's rate (serial only)
        self._line_baud = self.initial_baud  # the meter's rate, for character timing on any transport
        self._refused: set[str] = set()  # parameters this meter answered with an error (logged once)

    # ---- line -------------------------------------------------------------------------
    def _settings(self, baud: int) -> SerialSettings:
        if self.parity is f.Parity.HARDWARE:
            return SerialSettings(baudrate=baud, bytesize=7, parity="E", stopbits=1)
        return SerialSettings(baudrate=baud, bytesize=8, parity="N", stopbits=1)

    async def _send(self, data: bytes) -> None:
        self.transport.discard_input()
        wire = f.encode_line(data, self.parity)
        await self.transport.write(wire)
        if self.echo:
            back = await self.transport.read_exactly(len(wire), self.timeout)
            if back != wire:
                raise FrameError(f"meter {self.meter.id}: echo {back[:20]!r} differs from the request "
                                 f"{wire[:20]!r}: collision or noise on the bus")

    async def _receive(self, what: str) -> bytes:
        """One message. `timeout` is for the answer to start; every byte that arrives
        extends the deadline by one character time, so long answers at 300 Bd fit."""
        asm = f.Assembler(self.parity, where=what)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        char_s = 11 / self._line_baud  # start + 7 data + parity + stop, with slack
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise MeterTimeout(f"meter {self.meter.id}: no complete {what} within {self.timeout:.2f} s "
                                   f"({len(asm.buf)} bytes so far)")
            raw = await self.transport.read_exactly(1, left)
            deadline += char_s
            msg = asm.feed_byte(raw[0])
            if msg is not None:
                return msg

    async def _exchange(self, data: bytes, what: str) -> bytes:
        await self._send(data)
        return await self._receive(what)

    def _bcc(self) -> f.Bcc:
        assert self.model is not None
        return self.model.bcc

    # ---- session ----------------------------------------------------------------------
    async def connect(self) -> MeterIdentity:
        try:
            return await self._connect()
        except Exception:
            # Leave no meter in programming mode and no port at the switched rate.
            with contextlib.suppress(DriverError, OSError):
                await self.close()
            raise

    async def _connect(self) -> MeterIdentity:
        self.authenticated = False
        await self.transport.set_serial(self._settings(self.initial_baud))
        self._baud = self._line_baud = self.initial_baud
        await self.transport.ensure_open()
        line = await self._exchange(f.sign_on(self.address), "identification")
        self.ident = ident = f.parse_identification(line)
        try:
            self.model = model = model_for(self.meter.model, ident.manufacturer, ident.ident)
        except KeyError as e:
            raise ProtocolError(str(e.args[0])) from None
        baud = min(ident.baud, self.max_baud) if self.baud_switch else self.initial_baud
        await self._send(f.option_select(baud, f.Mode.PROGRAMMING))
        self._open = True
        self._line_baud = baud
        if baud != self.initial_baud and isinstance(self.transport, SerialTransport):
            # The ACK must leave the wire at the old rate before the port switches.
            await asyncio.sleep(6 * 10 / self.initial_baud + 0.02)
            await self.transport.set_serial(self._settings(baud))
            self._baud = baud
        p0 = await self._receive("P0 operand")
        for attempt in range(self.repeats + 1):
            try:
                cmd, _ = f.operand(p0, model.bcc)
                break
            except FrameError:
                if attempt == self.repeats:
                    raise
                p0 = await self._exchange(bytes([f.NAK]), "P0 operand")  # ask for it again
        if cmd != "P0":
            raise ProtocolError(f"meter {self.meter.id}: expected the P0 operand after option select, got {cmd}")
        secret = self.meter.password
        if secret is None and model.password_required:
            secret = model.default_password
        if secret is not None:
            await self._login(secret)
        serial = (await self._read(model.serial_param))[0].strip()
        self.check_identity(serial)
        return MeterIdentity(serial=serial, model=model.title, firmware=ident.ident)

    async def _login(self, secret: str) -> None:
        answer = await self._exchange(f.password(secret, self._bcc()), "password answer")
        if answer == bytes([f.ACK]):
            self.authenticated = True
            return
        if answer == bytes([f.NAK]):
            raise AuthError(f"meter {self.meter.id}: password refused (NAK); check MeterSpec.password")
        if answer[:1] == bytes([f.STX]):
            text = f.unpack_block(answer, self._bcc())
            raise AuthError(f"meter {self.meter.id}: password refused ({text.strip()})")
        raise FrameError(f"meter {self.meter.id}: unexpected answer to the password: {answer[:20]!r}")

    async def close(self) -> None:
        if not self._open or self.model is None:
            return
        self._open = False
        try:
            await self._send(f.break_(self.model.bcc))
        except MeterTimeout:
            return  # the line is gone; the meter ends the session on its inactivity timer
        if isinstance(self.transport, SerialTransport) and self._baud != self.initial_baud:
            await asyncio.sleep(5 * 10 / self._baud + 0.02)  # let the break leave at the session rate
            await self.transport.set_serial(self._settings(self.initial_baud))
            self._baud = self.initial_baud

    def _need(self) -> Model:
        if not self._open or self.model is None:
            raise ProtocolError(f"meter {self.meter.id}: no session; call connect() first")
        return self.model

    async def _request(self, request: bytes, what: str) -> bytes:
        """Send a command; repeat it when the meter answers NAK, and answer NAK to a
        block with a bad BCC so the meter repeats it (IEC 62056-21 error recovery)."""
        model = self._need()
        answer = await self._exchange(request, what)
        for attempt in range(self.repeats + 1):
            last = attempt == self.repeats
            if answer == bytes([f.NAK]):
                if last:
                    raise FrameError(f"meter {self.meter.id}: NAK to {what} {self.repeats + 1} times "
                                     f"(the meter keeps seeing a damaged request)")
                answer = await self._exchange(request, what)
                continue
            if answer[:1] == bytes([f.STX]):
                try:
                    f.check_bcc(answer, model.bcc)
                except FrameError:
                    if last:
                        raise
                    answer = await self._exchange(bytes([f.NAK]), what)
                    continue
            return answer
        raise AssertionError("unreachable")

    async def _read(self, name: str, args: str = "") -> list[str]:
        model = self._need()
        answer = await self._request(f.read(name, args, model.bcc), f"answer to {name}")
        if answer == bytes([f.ACK]):
            raise ProtocolError(f"meter {self.meter.id}: bare ACK to read {name}")
        values = f.parse_answer(answer, name, model.bcc)
        if model.value_sep:
            values = [v for s in values for v in s.split(model.value_sep)]
        return values

    async def _read_channel(self, ch: Channel, meter_time: datetime | None) -> list[Reading]:
        values = await self._read(ch.name, ch.args)
        if len(values) < len(ch.obis):
            raise ProtocolError(f"meter {self.meter.id}: {ch.name} answered {len(values)} values, "
                                f"the {self.model.title if self.model else ''} map expects {len(ch.obis)}")
        out = []
        for obis, raw in zip(ch.obis, values, strict=False):
            if obis:
                v = parse_number(raw, f"meter {self.meter.id} {ch.name}") * ch.scale
                out.append(Reading(obis, ch.kind, v, ch.unit, meter_time))
        return out

    def _note_refused(self, e: f.RefusedParameter) -> None:
        level = logging.DEBUG if e.name in self._refused else logging.WARNING
        self._refused.add(e.name)
        log.log(level, "meter %s: %s; its values are left out of this poll", self.meter.id, e)

    async def _read_channels(self, channels: tuple[Channel, ...], meter_time: datetime) -> list[Reading]:
        """Every channel on its own: a refused parameter loses only its own values. When the
        meter refuses all of them the poll fails with the first refusal (wrong access level,
        wrong model) rather than report nothing."""
        out: list[Reading] = []
        refused: list[f.RefusedParameter] = []
        for ch in channels:
            try:
                out += await self._read_channel(ch, meter_time)
            except f.RefusedParameter as e:
                self._note_refused(e)
                refused.append(e)
        if refused and not out:
            raise refused[0]
        return out

    # ---- reads ------------------------------------------------------------------------
    async def read_clock(self) -> datetime:
        model = self._need()
        t1 = parse_time((await self._read(model.time_param))[0], model.time_format)
        d = parse_date((await self._read(model.date_param))[0], model.date_format)
        t2 = parse_time((await self._read(model.time_param))[0], model.time_format)
        if t2 < t1:  # midnight passed between the reads: the date may be either day's
            d = parse_date((await self._read(model.date_param))[0], model.date_format)
        return combine(d, t2, self.tz)

    async def read_registers(self) -> list[Reading]:
        """A+ total and per tariff, stamped with the meter's time."""
        model = self._need()
        meter_time = await self.read_clock()
        return await self._read_channels(model.energy, meter_time)

    async def read_instant(self) -> list[Reading]:
        model = self._need()
        meter_time = await self.read_clock()
        return await self._read_channels(model.instant, meter_time)

    async def read_profile(self, start: datetime, end: datetime) -> list[Reading]:
        raise Unsupported(f"{self.name}: no public description of the load profile parameters of "
                          f"{self.model.title if self.model else 'these meters'} confirms their names and layout")

    # ---- the meter's memory -----------------------------------------------------------
    async def read_archive(self, archive: str, start: datetime, end: datetime) -> list[Reading]:
        """Day- or month-start values the meter keeps (archives.py names them and their
        sources) with the boundary in [start, end). A boundary the meter refuses (older than
        its memory) is left out; a model that refuses all of them, or has no such archive,
        raises Unsupported."""
        if not self.archives:
            raise Unsupported(f"meter {self.meter.id}: archives switched off by options.archives")
        model = self._need()
        scheme = model.archive_scheme
        today = (await self.read_clock()).date()
        if archive == "month_start":
            reads = ar.month_reads(scheme, today, ar.MAX_MONTHS)
        elif archive == "day_start":
            direct = ar.day_read(scheme, today)
            reads = [direct] if direct else []
        else:
            reads = []
        if not reads:
            raise Unsupported(f"{model.title}: no public source names a {archive} archive of this model")
        wanted = [r for r in reads if start <= combine(r.boundary, time(0), self.tz) < end]
        out: list[Reading] = []
        refused = 0
        for r in wanted:
            try:
                values = await self._read(r.name, r.args)
            except f.RefusedParameter as e:
                self._note_refused(e)
                refused += 1
                continue
            out += self._archive_readings(model, r, values)
        if wanted and refused == len(wanted):
            raise Unsupported(f"meter {self.meter.id}: {model.title} refuses its {archive} archive")
        return out

    def _archive_readings(self, model: Model, r: ar.ArchiveRead, values: list[str]) -> list[Reading]:
        ch = model.energy[0]
        if not values:
            raise FrameError(f"meter {self.meter.id}: {r.name}({r.args}) answered no values")
        at = combine(r.boundary, time(0), self.tz)
        return [Reading(obis, Kind.REGISTER, parse_number(raw, f"meter {self.meter.id} {r.name}") * ch.scale,
                        ch.unit, at, archive=r.archive)
                for obis, raw in zip(ch.obis, values, strict=False) if obis]

    async def set_clock(self, when: datetime) -> None:
        """Shift the meter's clock towards `when` with the model's correction command
        (Энергомера CTIME: at most ±29 s, once a day, no password needed)."""
        model = self._need()
        if not model.clock_correction:
            raise Unsupported(f"{model.title}: setting the clock over IEC 62056-21 is not supported")
        if model.correction_needs_password and not self.authenticated:
            raise AuthError(f"meter {self.meter.id}: {model.title} corrects its clock only after a password; "
                            f"set MeterSpec.password")
        if when.tzinfo is None:
            raise ValueError("set_clock needs an aware datetime")
        delta = round((when - await self.read_clock()).total_seconds())
        if delta == 0:
            return
        if abs(delta) > model.max_correction_s:
            raise Unsupported(f"meter {self.meter.id}: clock is {delta:+d} s off; {model.title} corrects at most "
                              f"±{model.max_correction_s} s per day over the interface — set it with the vendor tool")
        answer = await self._exchange(f.write(model.clock_correction, str(delta), model.bcc), "clock correction")
        if answer == bytes([f.ACK]):
            return
        if answer == bytes([f.NAK]):
            raise ProtocolError(f"meter {self.meter.id}: clock correction {delta:+d} s refused "
                                f"(already corrected today?)")
        text = f.unpack_block(answer, model.bcc) if answer[:1] == bytes([f.STX]) else repr(answer[:20])
        raise ProtocolError(f"meter {self.meter.id}: clock correction refused: {text.strip()}")
