"""Меркурий 230/234 driver: open channel, energy by tariff and at the start of the day and
month, instantaneous values, clock, power profile, event journals, transformer ratios.

MeterSpec: address = network address 1..240 (0 = universal, one meter per line only),
password = 6 digits (default 111111 for level 1, 222222 for level 2), serial = 8 digits.
options: access_level (1 user / 2 admin, default 1), timeout (s, default 1.0),
utc_offset_h (meter's local time offset, default 3 = MSK), tariffs (1..4, default 4),
profile_memory ("64k" Меркурий 230/231, "128k" 233/234/236; default from the model name),
profile_stamp ("end": a profile record's time is the end of its interval, as documented;
"start" for firmware that stamps the start), impulse_constant (impulses per kWh; default
read from the meter), archives (false: do not read the energy at day and month starts),
journals (journal numbers to read, default 1, 2, 3, 4, 5, 18), ratios_check_s (re-read the
transformer ratios after this many seconds, default 3600), request_retries (a damaged or lost
answer to a read in the open channel is asked again this many times, default 2).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

from askue.drivers.base import Capability, Driver, Kind, MeterIdentity, Reading, register_driver
from askue.drivers.errors import FrameError, MeterTimeout, ProtocolError, Unsupported
from askue.drivers.mercury import archives, journals, params
from askue.drivers.mercury import frames as f
from askue.drivers.mercury import profile as prof

log = logging.getLogger("askue.drivers.mercury")

# (BWRI, OBIS, unit, divisor to the unit) read with 0x08 0x11, one value per request.
_INSTANT = (
    (0x11, "1.0.32.7.0.255", "V", 100.0),
    (0x12, "1.0.52.7.0.255", "V", 100.0),
    (0x13, "1.0.72.7.0.255", "V", 100.0),
    (0x21, "1.0.31.7.0.255", "A", 1000.0),
    (0x22, "1.0.51.7.0.255", "A", 1000.0),
    (0x23, "1.0.71.7.0.255", "A", 1000.0),
    (0x40, "1.0.14.7.0.255", "Hz", 100.0),
)
_P_SUM = 0x00
_ENERGY_UNITS = {1: "kWh", 2: "kWh", 3: "kvarh", 4: "kvarh"}  # OBIS quantity (A+, A-, R+, R-)


PROFILE_BUDGET_EXTRA = 64  # record reads a profile window may take beyond its interval count


@register_driver("mercury")
class MercuryDriver(Driver):
    capabilities = frozenset({Capability.REGISTERS, Capability.INSTANT, Capability.CLOCK, Capability.SET_CLOCK,
                              Capability.PROFILE, Capability.EVENTS, Capability.ARCHIVES})

    def __init__(self, transport, meter):
        super().__init__(transport, meter)
        opts = meter.options
        try:
            self.address = f.check_address(int(meter.address))
        except (TypeError, ValueError) as e:
            raise f.MercuryConfigError(f"meter {meter.id}: {e}") from None
        try:
            self.level = int(opts.get("access_level", 1))
            self.timeout = float(opts.get("timeout", 1.0))
            self.tz = timezone(timedelta(hours=float(opts.get("utc_offset_h", 3))))
            self.tariffs = int(opts.get("tariffs", 4))
            constant = opts.get("impulse_constant")
            self.constant = None if constant is None else int(constant)
            self.ratios_check_s = float(opts.get("ratios_check_s", 3600))
            self.request_retries = int(opts.get("request_retries", 2))
        except (TypeError, ValueError) as e:
            raise f.MercuryConfigError(f"meter {meter.id}: bad option value: {e}") from None
        if self.level not in (1, 2):
            raise f.MercuryConfigError(f"meter {meter.id}: options.access_level must be 1 or 2, got {self.level}")
        try:  # a malformed password is a config error: say so before the first poll
            f.password_bytes(meter.password, self.level)
        except f.MercuryConfigError as e:
            raise f.MercuryConfigError(f"meter {meter.id}: {e}") from None
        if not 0 <= self.request_retries <= 10:
            raise f.MercuryConfigError(f"meter {meter.id}: options.request_retries must be 0..10, got "
                                       f"{self.request_retries}")
        if not 1 <= self.tariffs <= 4:
            raise f.MercuryConfigError(f"meter {meter.id}: options.tariffs must be 1..4, got {self.tariffs}")
        if self.constant is not None and self.constant <= 0:
            raise f.MercuryConfigError(f"meter {meter.id}: options.impulse_constant must be a positive number of "
                                       f"impulses per kWh, got {self.constant}")
        memory = opts.get("profile_memory")
        if memory is None:
            self.layout = prof.layout_for_model(meter.model)
        elif str(memory) in prof.LAYOUTS:
            self.layout = prof.LAYOUTS[str(memory)]
        else:
            raise f.MercuryConfigError(f"meter {meter.id}: options.profile_memory must be 64k (Меркурий 230, 231) "
                                       f"or 128k (233, 234, 236), got {memory!r}")
        stamp = opts.get("profile_stamp", "end")
        if stamp not in ("end", "start"):
            raise f.MercuryConfigError(f"meter {meter.id}: options.profile_stamp must be end or start, got {stamp!r}")
        self.stamp_end = stamp == "end"
        self.read_archives = bool(opts.get("archives", True))
        self.journals = self._journal_option(meter.id, opts.get("journals"))
        self._variant: params.Variant | None = None
        self._ratios: params.Ratios | None = None
        self._ratios_at: float | None = None  # monotonic time of the last ratio read
        self._ratios_refused = False
        self._refused: set[str] = set()  # reads the meter answered "invalid command" to (model lacks them)

    @staticmethod
    def _journal_option(meter_id: str, value: object) -> tuple[journals.Journal, ...]:
        if value is None:
            return tuple(journals.Journal)
        known = {int(j) for j in journals.Journal}
        try:
            chosen = tuple(journals.Journal(int(v)) for v in value)  # type: ignore[attr-defined]
        except (TypeError, ValueError):
            raise f.MercuryConfigError(f"meter {meter_id}: options.journals must be a list of journal numbers out of "
                                       f"{sorted(known)}, got {value!r}") from None
        return chosen

    # ---- one exchange ------------------------------------------------------------------
    async def _exchange(self, req: bytes, lengths: int | Sequence[int], what: str, opening: bool = False) -> bytes:
        """Send a request and return the reply's data. `lengths`: the reply length, or the
        lengths firmware versions answer with (the first whose CRC checks is taken)."""
        lengths = (lengths,) if isinstance(lengths, int) else tuple(sorted(lengths))
        t = self.transport
        await t.ensure_open()
        t.discard_input()
        await t.write(req)
        frame = await t.read_exactly(f.STATUS_LEN, self.timeout)
        # A 4-byte frame with a good CRC is a status reply even where data was expected.
        if lengths[-1] > f.STATUS_LEN and not f.crc_ok(frame):
            for n in lengths:
                if n <= len(frame):
                    continue
                try:
                    frame += await t.read_exactly(n - len(frame), self.timeout)
                except MeterTimeout as e:
                    raise FrameError(f"Mercury meter {self.address}: {what}: truncated reply ({e})") from None
                if f.crc_ok(frame):
                    break
        expect = len(frame) if len(frame) in lengths and f.crc_ok(frame) else lengths[-1]
        return f.check_reply(frame, self.address, expect, what, opening)

    async def _open_channel(self) -> None:
        req = f.open_request(self.address, self.level, self.meter.password)
        await self._exchange(req, f.STATUS_LEN, f"open channel (level {self.level})", opening=True)

    async def _read(self, req: bytes, lengths: int | Sequence[int], what: str) -> bytes:
        """A read in the open channel. A damaged or lost answer is asked again (request_retries
        times): a profile or journal read is hundreds of requests, and one bad frame must not
        cost them all. A closed channel is reopened once."""
        for attempt in range(self.request_retries + 1):
            try:
                try:
                    return await self._exchange(req, lengths, what)
                except f.MercuryChannelClosed:
                    # The meter closes an idle channel after a few minutes; reopen once.
                    await self._open_channel()
                    return await self._exchange(req, lengths, what)
            except (FrameError, MeterTimeout) as e:
                if attempt == self.request_retries:
                    raise
                log.debug("meter %s: %s: %s; asking again", self.meter.id, what, e)
        raise AssertionError("unreachable")

    async def _optional(self, key: str, req: bytes, lengths: int | Sequence[int], what: str) -> bytes | None:
        """A read some models do not have: "invalid command or parameter" marks it refused for
        this meter (logged once) and gives None."""
        if key in self._refused:
            return None
        try:
            return await self._read(req, lengths, what)
        except f.MercuryStatusError as e:
            if isinstance(e, f.MercuryChannelClosed) or e.status != 1:
                raise
            self._refused.add(key)
            log.warning("meter %s: %s refused (%s); not read from this meter again", self.meter.id, what, e)
            return None

    def _utc(self, local: datetime) -> datetime:
        return local.replace(tzinfo=self.tz).astimezone(UTC)

    # ---- driver interface --------------------------------------------------------------
    async def connect(self) -> MeterIdentity:
        await self._exchange(f.request(self.address, f.Code.TEST), f.STATUS_LEN, "test channel")
        await self._open_channel()
        data = await self._read(f.serial_request(self.address), f.SERIAL_LEN, "read serial number")
        serial, made = f.decode_serial(data)
        self.check_identity(serial)
        self.manufactured = made
        await self._check_ratios()
        r = self._ratios
        return MeterIdentity(serial=serial, model=self.meter.model or "Mercury 230",
                             ct_ratio=float(r.ct) if r and r.ct > 0 else None,
                             vt_ratio=float(r.vt) if r and r.vt > 0 else None)

    async def _check_ratios(self) -> None:
        """Read Ктн and Ктт once per ratios_check_s: they change only when someone reprograms them."""
        mono = time.monotonic()
        if self._ratios_at is not None and mono - self._ratios_at < self.ratios_check_s:
            return
        data = await self._optional("ratios", params.ratios_request(self.address), params.RATIOS_LEN,
                                    "read transformer ratios")
        if data is not None:
            self._ratios = params.decode_ratios(data)
            self._ratios_at = mono

    async def close(self) -> None:
        try:
            await self._exchange(f.request(self.address, f.Code.CLOSE), f.STATUS_LEN, "close channel")
        except (MeterTimeout, FrameError, f.MercuryStatusError):
            pass  # the meter closes the channel on its own after a timeout

    async def read_clock(self) -> datetime:
        data = await self._read(f.time_request(self.address), f.TIME_LEN, "read time")
        return self._utc(f.decode_time(data).local)

    def _energy(self, data: bytes, tariff: int, when: datetime, archive: str | None = None) -> list[Reading]:
        out = []
        for q in (1, 2, 3, 4):
            v = f.decode_u32(data[4 * (q - 1):4 * q])
            if v is not None:
                out.append(Reading(f"1.0.{q}.8.{tariff}.255", Kind.REGISTER, v / 1000, _ENERGY_UNITS[q], when,
                                   archive=archive))
        return out

    async def read_registers(self) -> list[Reading]:
        meter_time = await self.read_clock()
        out: list[Reading] = []
        for tariff in range(self.tariffs + 1):
            data = await self._read(f.energy_request(self.address, f.Array.FROM_RESET, 0, tariff),
                                    f.ENERGY_LEN, f"read energy since reset, tariff {tariff}")
            out += self._energy(data, tariff, meter_time)
        return out

    async def read_archive(self, archive: str, start: datetime, end: datetime) -> list[Reading]:
        """Energy per tariff the meter kept at 00:00 of a day or month (05 C0/D0: today and
        yesterday; 05 B<m>: the 1st of each of the last twelve months) with the boundary in
        [start, end), stamped with that boundary and marked with the archive."""
        if archive not in (archives.DAY_START, archives.MONTH_START):
            raise Unsupported(f"mercury: meter {self.meter.id}: unknown archive {archive!r}")
        if not self.read_archives:
            raise Unsupported(f"mercury: meter {self.meter.id}: archives switched off by options.archives")
        today = (await self.read_clock()).astimezone(self.tz).date()
        wanted = [a for a in archives.available(archive, today) if start <= self._utc(a.boundary) < end]
        out: list[Reading] = []
        refused = 0
        for a in wanted:
            when = self._utc(a.boundary)
            for tariff in range(self.tariffs + 1):
                data = await self._optional(f"array {a.array:X}", f.energy_request(self.address, a.array, a.month,
                                                                                   tariff), f.ENERGY_LEN,
                                            f"read energy at {a.boundary:%Y-%m-%d} 00:00, tariff {tariff}")
                if data is None:
                    refused += 1
                    break
                out += self._energy(data, tariff, when, a.archive)
        if wanted and refused == len(wanted):
            raise Unsupported(f"mercury: meter {self.meter.id}: this model refuses the {archive} energy arrays")
        return out

    async def read_instant(self) -> list[Reading]:
        meter_time = await self.read_clock()
        out: list[Reading] = []
        for bwri, obis, unit, div in _INSTANT:
            data = await self._read(f.aux_request(self.address, bwri), f.AUX_ONE_LEN, f"read parameter {bwri:#04x}")
            out.append(Reading(obis, Kind.INSTANT, f.decode_u24(data).raw / div, unit, meter_time))
        data = await self._read(f.aux_request(self.address, _P_SUM), f.AUX_ONE_LEN, "read active power")
        p = f.decode_u24(data)
        # The direction bit tells import (A+, 1.7) from export (A-, 2.7).
        obis = "1.0.2.7.0.255" if p.active_negative else "1.0.1.7.0.255"
        out.append(Reading(obis, Kind.INSTANT, p.raw / 100 / 1000, "kW", meter_time))
        return out

    async def set_clock(self, when: datetime) -> None:
        """Set the meter's clock to `when` (aware). Steps within +-4 minutes that stay in the
        hour use the once-a-day correction (enough with access level 1); larger ones set the
        time, which needs access level 2 (AuthError otherwise)."""
        if when.tzinfo is None:
            raise f.MercuryConfigError("set_clock needs an aware datetime (UTC or with offset)")
        current = await self.read_clock()
        target = when.astimezone(self.tz).replace(tzinfo=None)
        now_local = current.astimezone(self.tz).replace(tzinfo=None)
        small = abs((when - current).total_seconds()) <= f.MAX_CORRECTION_S
        if small and (target.date(), target.hour) == (now_local.date(), now_local.hour):
            await self._read(f.correct_time_request(self.address, target), f.STATUS_LEN, "correct time")
        else:
            await self._read(f.set_time_request(self.address, target), f.STATUS_LEN, "set time")

    async def relay(self, connect: bool) -> None:
        raise Unsupported(f"mercury: meter {self.meter.id}: relay control is not implemented: no public source "
                          "documents the command of the models with a built-in relay (Меркурий 234/236 ...L); "
                          "switch the load with the vendor's configurator")

    # ---- power profile -------------------------------------------------------------------
    async def _impulse_constant(self) -> int:
        if self.constant is not None:
            return self.constant
        if self._variant is None:
            data = await self._read(params.variant_request(self.address), params.VARIANT_LENS, "read variant")
            self._variant = params.decode_variant(data)
        v = self._variant
        if not v.keeps_profile:
            raise Unsupported(f"mercury: meter {self.meter.id}: this variant keeps no power profile "
                              f"(08 12 answered {v.raw.hex(' ')})")
        if v.constant is None:
            raise ProtocolError(f"Mercury meter {self.address}: meter constant code {v.raw[1] & 0x0F} is unknown; "
                                "set options.impulse_constant (impulses per kWh, from the nameplate)")
        return v.constant

    def _end_of(self, rec: prof.Record) -> datetime | None:
        if rec.stamp is None:
            return None
        at = self._utc(rec.stamp)
        return at if self.stamp_end else at + timedelta(minutes=rec.period_min)

    async def read_profile(self, start: datetime, end: datetime) -> list[Reading]:
        """Intervals A+, A−, R+, R− (1.0.q.29.0.255) whose end lies in [start, end), with the
        integration period the meter keeps, read from its profile memory."""
        constant = await self._impulse_constant()
        data = await self._read(prof.last_record_request(self.address), prof.LAST_RECORD_LEN,
                                "read last profile record")
        top = prof.decode_last_record(data, self.layout)
        if top.stamp is None:
            return []
        top_end = self._end_of(prof.Record(top.stamp, top.status, top.period_min, ()))
        assert top_end is not None

        async def fetch(index: int) -> prof.Record:
            data = await self._read(prof.memory_request(self.address, index, self.layout), prof.RECORD_REPLY_LEN,
                                    f"read profile record {index}")
            return prof.decode_record(data)

        wanted = max(0, int((end - start) / timedelta(minutes=top.period_min)))
        budget = min(wanted, self.layout.capacity) + PROFILE_BUDGET_EXTRA
        w = await prof.read_window(fetch, top, top_end, self.layout, self._end_of, start, end, budget)
        if w.oldest_end is not None:
            log.warning("meter %s: profile intervals from %s to %s are no longer in the meter's memory "
                        "(overwritten or never recorded)", self.meter.id, start.isoformat(), w.oldest_end.isoformat())
        if w.truncated:
            log.warning("meter %s: profile read stopped after %d records; the rest is read next time",
                        self.meter.id, w.reads)
        if w.interrupted is not None:
            # What was read is the oldest part of the window: keep it, the gateway's ledger
            # resumes after it.
            log.warning("meter %s: profile read interrupted after %d periods (%s); the rest is read next time",
                        self.meter.id, len(w.slices), w.interrupted)
        out: list[Reading] = []
        for s in w.slices:
            for q, count in zip(prof.QUANTITIES, s.record.counts, strict=True):
                if count is not None:
                    out.append(Reading(f"1.0.{q}.29.0.255", Kind.INTERVAL, prof.energy(count, constant),
                                       _ENERGY_UNITS[q], s.end, s.record.period_min * 60))
        return out

    # ---- journals ------------------------------------------------------------------------
    async def read_events(self, since: datetime | None) -> list[Reading]:
        """Entries of the power, clock, phase-voltage and case journals at or after `since`
        (all if None) as СПОДЭС journal entries (value = event code)."""
        out: list[Reading] = []
        for j in self.journals:
            records = []
            for r in range(journals.RECORDS):
                data = await self._optional(f"journal {int(j):#04x}", journals.journal_request(self.address, j, r),
                                            journals.JOURNAL_REPLY_LEN, f"read journal {int(j):#04x} record {r}")
                if data is None:
                    break
                records.append(journals.decode_journal_record(data))
            if any(rec.damaged for rec in records):
                log.warning("meter %s: journal %#04x holds unreadable times; those entries are skipped",
                            self.meter.id, int(j))
            entries = [(self._utc(ev.stamp), ev) for rec in records for ev in journals.events_of(j, rec)]
            fresh = [(at, ev) for at, ev in entries if since is None or at >= since]
            full = len(records) == journals.RECORDS and all(rec.first or rec.second for rec in records)
            if since is not None and full and entries and len(fresh) == len(entries):
                log.warning("meter %s: journal %#04x: all %d records are newer than the last read (%s); older "
                            "entries were overwritten before they could be read", self.meter.id, int(j),
                            journals.RECORDS, since.isoformat())
            out += [Reading(ev.obis, Kind.EVENT, float(ev.code), "", at) for at, ev in fresh]
        out.sort(key=lambda r: (r.meter_time or datetime.min.replace(tzinfo=UTC), r.obis, r.value))
        return out
