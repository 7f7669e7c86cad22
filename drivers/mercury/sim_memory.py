"""What a simulated Меркурий keeps in memory, derived from its SimMeter: the power-profile ring
with the model's addressing, the event journals (rings of ten records) and the energy at day
and month starts. simulator.py serves these in the meter's frames.

The ring is written from the SimMeter's epoch: record i holds period i (one record per period,
starting at slot 0 as after an initialisation), so 4,096 (Меркурий 230) or 8,192 (234)
periods later the oldest are overwritten and the "memory overflowed" status bit is set. A
record is stamped with the meter's own clock at the end of its period, on the meter's grid of
periods: a reset or stepped clock gives records the times the meter believed.

SimMeter options read here: profile_memory ("64k"/"128k", else from the model name),
profile_stamp ("end"/"start"), impulse_constant (impulses per kWh, default 1000),
reactive_ratio (R+ = A+ × ratio, default 0.25), vt_ratio / ct_ratio (default 1),
keeps_profile (default true).
"""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from askue.drivers.mercury import archives, journals, params
from askue.drivers.mercury import frames as f
from askue.drivers.mercury import profile as prof
from askue.drivers.sim.meter import JournalEntry, SimMeter

Served = tuple[str, datetime, float]  # (OBIS, meter time, value)


class MeterMemory:
    def __init__(self, meter: SimMeter):
        self.meter = meter
        opts = meter.options
        memory = opts.get("profile_memory")
        self.layout = prof.LAYOUTS[str(memory)] if memory is not None else prof.layout_for_model(meter.model)
        self.constant = int(opts.get("impulse_constant", 1000))
        self.stamp_end = opts.get("profile_stamp", "end") == "end"
        self.reactive_ratio = float(opts.get("reactive_ratio", 0.25))
        self.keeps_profile = bool(opts.get("keeps_profile", True))
        self.ratios = params.Ratios(int(opts.get("vt_ratio", 1)), int(opts.get("ct_ratio", 1)))
        period = meter.period_s
        # The protocol keeps the period in whole minutes, 1..60.
        self.period_min = period // 60 if period % 60 == 0 and 1 <= period // 60 <= 60 else None

    def local(self, meter_time: datetime) -> datetime:
        """Naive local meter time, whole seconds, as the frames carry it."""
        return meter_time.astimezone(self.meter.local_tz).replace(tzinfo=None, microsecond=0)

    def utc(self, local: datetime) -> datetime:
        return local.replace(tzinfo=self.meter.local_tz).astimezone(UTC)

    # ---- profile ---------------------------------------------------------------------------
    def variant(self) -> bytes:
        return params.encode_variant(self.constant, self.keeps_profile and self.period_min is not None)

    def _stamp(self, i: int) -> datetime:
        """The meter's time of the end of period i, on its own grid of periods."""
        assert self.period_min is not None
        mt = self.local(self.meter.clock(self.meter.interval_end(i)))
        midnight = mt.replace(hour=0, minute=0, second=0)
        step = self.period_min * 60
        end = midnight + timedelta(seconds=round((mt - midnight).total_seconds() / step) * step)
        return end if self.stamp_end else end - timedelta(minutes=self.period_min)

    def last_record(self, t: datetime) -> bytes:
        assert self.period_min is not None
        n = self.meter.completed_intervals(t)
        if n == 0:
            return prof.encode_last_record(0, prof.STATUS_INIT, None, self.period_min, self.layout)
        status = prof.STATUS_WINTER | (prof.STATUS_WRAPPED if n > self.layout.capacity else 0)
        return prof.encode_last_record((n - 1) % self.layout.capacity, status, self._stamp(n - 1), self.period_min,
                                       self.layout)

    def record(self, index: int, t: datetime) -> tuple[bytes, list[Served]]:
        """The 15 bytes of ring slot `index` and the values they carry."""
        assert self.period_min is not None
        last = self.meter.completed_intervals(t) - 1
        cap = self.layout.capacity
        i = last - ((last - index) % cap) if last >= 0 else -1
        if i < 0:
            return prof.EMPTY_RECORD, []
        m = self.meter
        start, end = m.interval_end(i - 1), m.interval_end(i)
        a_plus = prof.count_of(m.interval_energy(i), self.constant)
        r_plus = prof.count_of(prof.energy(a_plus, self.constant) * self.reactive_ratio, self.constant)
        counts = (a_plus, 0, r_plus, 0)
        stepped = abs(((m.clock(end) - m.clock(start)) - (end - start)).total_seconds()) > 1.0
        broken = stepped or any(off < end and on > start for off, on in m.power_cuts())
        status = prof.STATUS_WINTER | (prof.STATUS_INCOMPLETE if broken else 0)
        stamp = self._stamp(i)
        meter_time = self.utc(stamp if self.stamp_end else stamp + timedelta(minutes=self.period_min))
        served = [(f"1.0.{q}.29.0.255", meter_time, prof.energy(c, self.constant))
                  for q, c in zip(prof.QUANTITIES, counts, strict=True)]
        return prof.encode_record(status, stamp, self.period_min, counts), served

    # ---- journals --------------------------------------------------------------------------
    def journal_history(self, t: datetime) -> dict[int, list[journals.JournalRecord]]:
        """Every record each Меркурий journal has written, oldest first (the ring keeps ten)."""
        recs: dict[int, list[journals.JournalRecord]] = {int(j): [] for j in journals.Journal}

        def pair(journal: int, on: bool, at: datetime) -> None:
            """Open a record (first time) or close the open one (second time)."""
            rs = recs[journal]
            if on:
                rs.append(journals.JournalRecord(at, None))
            elif rs and rs[-1].first is not None and rs[-1].second is None:
                rs[-1] = journals.JournalRecord(rs[-1].first, at)
            else:
                rs.append(journals.JournalRecord(None, at))

        entries: list[JournalEntry] = sorted(self.meter.events(t), key=lambda e: e.at)
        for e in entries:
            at = self.local(e.at)
            if e.journal_obis == journals.POWER_EVENTS and e.code in (journals.POWER_ON, journals.POWER_OFF):
                pair(journals.Journal.POWER, e.code == journals.POWER_ON, at)
            elif e.journal_obis == journals.VOLTAGE_EVENTS and 1 <= e.code <= 6:
                pair(journals.Journal.PHASE_A + (e.code - 1) // 2, e.code % 2 == 0, at)
            elif e.journal_obis == journals.PROGRAMMING_EVENTS and e.code in (journals.TIME_SET,
                                                                                journals.TIME_CORRECTED):
                before = self.local(e.before) if e.before is not None else None
                recs[journals.Journal.CLOCK].append(journals.JournalRecord(before, at))
            elif e.journal_obis == journals.INFLUENCE_EVENTS and e.code == journals.CASE_OPENED:
                ended = self.local(e.ended) if e.ended is not None else None
                recs[journals.Journal.CASE].append(journals.JournalRecord(at, ended))
        return recs

    def journal_record(self, journal: int, slot: int, t: datetime) -> tuple[bytes, list[Served]] | None:
        """Slot `slot` of a journal ring (record k of the journal's history sits in slot k mod
        10); None for a journal this model does not have."""
        if journal not in {int(j) for j in journals.Journal}:
            return None
        history = self.journal_history(t)[journal]
        for k in range(max(0, len(history) - journals.RECORDS), len(history)):
            if k % journals.RECORDS == slot:  # newer records overwrite older ones in the same slot
                rec = history[k]
                served = [(ev.obis, self.utc(ev.stamp), float(ev.code)) for ev in journals.events_of(journal, rec)]
                return journals.encode_journal_record(rec.first, rec.second), served
        return journals.encode_journal_record(None, None), []

    # ---- energy at day and month starts ----------------------------------------------------
    def archive(self, array: int, month: int, tariff: int, meter_now: datetime,
                t: datetime) -> tuple[bytes, list[Served]] | None:
        """A+, A−, R+, R− kept at the boundary the array names on the meter's date, or None
        for an array that is not a day/month start."""
        today: date = self.local(meter_now).date()
        boundary = archives.boundary_of(array, month, today)
        if boundary is None:
            return None
        when = self.utc(boundary)
        true_time = when - (self.meter.clock(t) - t)  # when the meter's clock showed the boundary
        if true_time < self.meter.epoch:
            # Before the meter's history began (installed later): no value, as the DLMS
            # simulator's billing profiles have no row then.
            return f.encode_u32(None) * 4, []
        kwh = self.meter.registers(true_time).get(tariff, 0.0) if self.meter.resource == "electricity" else 0.0
        a_plus = round(kwh * 1000)
        values = {1: a_plus, 2: 0, 3: round(a_plus * self.reactive_ratio), 4: 0}
        served = [(f"1.0.{q}.8.{tariff}.255", when, wh / 1000) for q, wh in values.items()]
        return b"".join(f.encode_u32(values[q]) for q in (1, 2, 3, 4)), served
