"""A simulated meter's state, independent of any protocol.

Energy follows a daily load curve with seeded noise, split into tariff zones by
the local time of each integration period. Everything is a pure function of the
seed and time, so a test can ask the model what a meter must have reported.
Protocol simulators (drivers/<proto>/simulator.py) wrap a SimMeter and encode
its values in their own frames.
"""
from __future__ import annotations

import math
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

MSK = timezone(timedelta(hours=3))

# Default tariff zones for electricity (local time): night 23-07, day 07-23.
TWO_ZONE = ((7, 23, 1), (23, 7, 2))
# Three zones: peak 07-10 and 17-21, semi-peak 10-17 and 21-23, night 23-07.
THREE_ZONE = ((7, 10, 1), (10, 17, 2), (17, 21, 1), (21, 23, 2), (23, 7, 3))

# A residential daily shape (relative power by hour of day), mean 1.0.
_DAILY = [0.45, 0.4, 0.38, 0.37, 0.38, 0.45, 0.8, 1.2, 1.25, 1.0, 0.9, 0.9,
          0.95, 0.95, 0.9, 0.9, 1.0, 1.3, 1.7, 1.9, 1.8, 1.5, 1.1, 0.7]
_MEAN = sum(_DAILY) / 24
DAILY_SHAPE = [x / _MEAN for x in _DAILY]

RESOURCE_CHANNELS = {
    # resource: (total register OBIS, unit, profile OBIS)
    "electricity": ("1.0.1.8.0.255", "kWh", "1.0.1.29.0.255"),
    "cold_water": ("8.0.1.0.0.255", "m3", "8.0.1.29.0.255"),
    "hot_water": ("9.0.1.0.0.255", "m3", "9.0.1.29.0.255"),
    "heat": ("6.0.1.0.0.255", "GJ", "6.0.1.29.0.255"),
    "gas": ("7.0.3.0.0.255", "m3", "7.0.3.29.0.255"),
}


@dataclass
class Faults:
    """Fault injection. Line faults apply to each answer; state faults change the meter."""

    silent: bool = False  # never answers
    crc_error_rate: float = 0.0  # share of answers with a damaged checksum
    garbage_rate: float = 0.0  # share of answers replaced by random bytes
    slow_reply_s: float = 0.0  # delay before every answer
    reverse_step_at: datetime | None = None  # register drops by reverse_step_kwh from then on
    reverse_step: float = 50.0
    rollover: bool = False  # start just below the register's digit capacity
    replaced_at: datetime | None = None  # a new meter (new serial, registers from ~0) from then on
    tamper_at: datetime | None = None  # magnetic field start (and end 10 min later) in the journal
    clock_jump_at: datetime | None = None
    clock_jump_s: float = 0.0
    # The clock loses its time (battery dead after a power loss) and restarts from
    # clock_reset_to (default 2000-01-01 00:00 meter time); a self-diagnostics entry is logged.
    clock_reset_at: datetime | None = None
    clock_reset_to: datetime | None = None
    # A flickering supply: power_cuts short outages of power_cut_s each, one every
    # power_cut_every_s from power_cuts_at; each logs power off and power on. More cuts than a
    # journal holds overflow it (see SimMeter.journal_capacity).
    power_cuts_at: datetime | None = None
    power_cuts: int = 0
    power_cut_s: float = 60.0
    power_cut_every_s: float = 300.0
    cover_open_at: datetime | None = None  # meter case opened (and closed cover_open_s later)
    cover_open_s: float = 600.0


@dataclass
class JournalEntry:
    journal_obis: str  # СПОДЭС journal, e.g. 0.0.99.98.4.255 external influence
    at: datetime  # meter time
    code: int
    # For a condition some journals keep as one record (cover open → closed): when it ended.
    ended: datetime | None = None
    # For a time set or correction: the meter's clock just before the step.
    before: datetime | None = None


@dataclass
class SimMeter:
    id: str
    serial: str
    resource: str = "electricity"
    address: int | str = 1  # bus address as the protocol writes it (Modbus unit id, IEC device address…)
    model: str | None = None  # protocol-specific model, e.g. the Modbus register map name
    options: dict = field(default_factory=dict)  # protocol-specific settings of this meter
    password: str = "000000"
    tariffs: tuple[tuple[int, int, int], ...] = TWO_ZONE
    mean_power: float = 0.6  # kW for electricity; m3/h, GJ/h for the other media
    period_s: int = 1800
    digits: int = 6  # integer digits of the register display
    decimals: int = 3  # resolution of registers and intervals
    start_value: float = 1000.0
    history_days: int = 3  # profile memory already filled at start
    profile_depth_days: int = 45  # how far back the meter keeps its profile
    # Profile memory as a ring of this many intervals: older ones are overwritten (None: only
    # profile_depth_days limits it). Protocols with a fixed memory size model their own ring.
    profile_capacity: int | None = None
    # Entries each journal keeps (a ring: the oldest are overwritten); None keeps all.
    journal_capacity: int | None = None
    clock_drift_s_per_day: float = 0.0
    seed: int = 0
    faults: Faults = field(default_factory=Faults)
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC), repr=False)
    relay_connected: bool = True
    local_tz: timezone = MSK

    def __post_init__(self) -> None:
        self.epoch = _floor(self.now() - timedelta(days=self.history_days), self.period_s)
        if self.faults.rollover:
            self.start_value = 10 ** self.digits - 2.5 - self.mean_power * 24 * self.history_days
        # Journal entries use the СПОДЭС journals and codes (tables Д.1–Д.8):
        # journal 2 code 2 power on, 3/4 relay off/on; journal 3 code 3 time set; journal 4 external influence.
        self.journal: list[JournalEntry] = [JournalEntry("0.0.99.98.2.255", self.epoch, 2)]  # power on
        self._cum: list[float] = [0.0]  # cumulative energy at each period end since epoch, per index
        self._cum_zone: list[dict[int, float]] = [{}]
        # Clock steps (set_clock): (true time applied, seconds added), so the meter time of any
        # past moment is the one the meter had then (profile records keep the stamps they got).
        self._clock_steps: list[tuple[datetime, float]] = []
        self._journal_done: set[str] = set()
        self._cover: JournalEntry | None = None
        self.served: list[tuple[str, str, datetime | None, float]] = []  # (kind, obis, meter time, value)

    # ---- energy -------------------------------------------------------------------------
    @property
    def channels(self) -> tuple[str, str, str]:
        return RESOURCE_CHANNELS[self.resource]

    def zone_of(self, t: datetime) -> int:
        h = t.astimezone(self.local_tz).hour
        for start, end, zone in self.tariffs:
            if (start <= h < end) if start < end else (h >= start or h < end):
                return zone
        return 1

    def interval_energy(self, index: int) -> float:
        """Energy of period `index` (0 = the one starting at epoch), quantised to the resolution."""
        if not self.relay_connected:
            return 0.0
        start = self.epoch + timedelta(seconds=index * self.period_s)
        rnd = random.Random(_stable_seed(self.seed, self.id, index))
        shape = DAILY_SHAPE[start.astimezone(self.local_tz).hour] if self.resource == "electricity" else 1.0
        e = self.mean_power * shape * (0.7 + 0.6 * rnd.random()) * self.period_s / 3600
        if self.resource != "electricity" and rnd.random() < 0.35:
            e = 0.0  # water flows in bursts
        return round(e, self.decimals)

    def _extend(self, n: int) -> None:
        while len(self._cum) <= n:
            i = len(self._cum) - 1
            e = self.interval_energy(i)
            start = self.epoch + timedelta(seconds=i * self.period_s)
            zones = dict(self._cum_zone[-1])
            z = self.zone_of(start)
            zones[z] = round(zones.get(z, 0.0) + e, self.decimals)
            self._cum.append(round(self._cum[-1] + e, self.decimals))
            self._cum_zone.append(zones)

    def _index(self, t: datetime) -> tuple[int, float]:
        """(completed periods since epoch, fraction of the current one)."""
        secs = max(0.0, (t - self.epoch).total_seconds())
        n = int(secs // self.period_s)
        return n, (secs - n * self.period_s) / self.period_s

    def _offset_value(self, t: datetime) -> float:
        f = self.faults
        off = self.start_value
        if f.reverse_step_at and t >= f.reverse_step_at:
            off -= f.reverse_step
        if f.replaced_at and t >= f.replaced_at:
            n, _ = self._index(f.replaced_at)
            self._extend(n)
            off = 1.0 - self._cum[n]
        return off

    def _wrap(self, v: float) -> float:
        cap = 10 ** self.digits
        return round(v % cap, self.decimals)

    def registers(self, t: datetime | None = None) -> dict[int, float]:
        """Cumulative register per tariff zone (0 = total) at time t, as the meter displays it."""
        t = t or self.now()
        n, frac = self._index(t)
        self._extend(n + 1)
        part = round((self._cum[n + 1] - self._cum[n]) * frac, self.decimals)
        zone_now = self.zone_of(self.epoch + timedelta(seconds=n * self.period_s))
        off = self._offset_value(t)
        zones = {z: v for z, v in self._cum_zone[n].items()}
        zones[zone_now] = zones.get(zone_now, 0.0) + part
        out = {0: self._wrap(off + self._cum[n] + part)}
        # The start value is split across zones 60/40 (day/night) so zones add up to the total.
        shares = _zone_shares(len({z for _, _, z in self.tariffs}))
        for z, share in shares.items():
            out[z] = self._wrap(off * share + zones.get(z, 0.0))
        return out

    def secondary_register(self, share: float, t: datetime | None = None) -> float:
        """A register that grows with the main one at `share` of its rate (A−, R+, R−…),
        from zero at the profile's start: it keeps growing through the main register's
        rollover, reverse step or exchange, as a separate register of the meter would."""
        t = t or self.now()
        n, frac = self._index(t)
        self._extend(n + 1)
        energy = self._cum[n] + (self._cum[n + 1] - self._cum[n]) * frac
        return self._wrap(energy * share)

    def profile(self, start: datetime, end: datetime) -> list[tuple[datetime, float]]:
        """Intervals (end time, energy) with end in [start, end), limited to the profile memory."""
        now = self.now()
        oldest = max(self.epoch, now - timedelta(days=self.profile_depth_days))
        if self.profile_capacity is not None:
            done, _ = self._index(now)
            oldest = max(oldest, self.interval_end(done - 1 - self.profile_capacity))
        first = max(start, oldest + timedelta(seconds=self.period_s))
        last = min(end, now + timedelta(microseconds=1))
        out: list[tuple[datetime, float]] = []
        i0, _ = self._index(first - timedelta(seconds=self.period_s))
        t = self.epoch + timedelta(seconds=(i0 + 1) * self.period_s)
        if t < first:
            i0 += 1
            t += timedelta(seconds=self.period_s)
        i = i0
        while t < last and t <= now:
            out.append((t, self.interval_energy(i)))
            i += 1
            t += timedelta(seconds=self.period_s)
        return out

    def interval_end(self, index: int) -> datetime:
        """True end time of period `index` (0 = the one starting at epoch)."""
        return self.epoch + timedelta(seconds=(index + 1) * self.period_s)

    def completed_intervals(self, t: datetime | None = None) -> int:
        """How many periods have ended since epoch at time t."""
        return self._index(t or self.now())[0]

    def powered(self, t: datetime) -> bool:
        """False while a power cut (Faults.power_cuts) is on."""
        return not any(off <= t < on for off, on in self.power_cuts())

    def power_cuts(self) -> list[tuple[datetime, datetime]]:
        """(off, on) true times of the injected power cuts."""
        f = self.faults
        if f.power_cuts_at is None:
            return []
        return [(f.power_cuts_at + timedelta(seconds=k * f.power_cut_every_s),
                 f.power_cuts_at + timedelta(seconds=k * f.power_cut_every_s + f.power_cut_s))
                for k in range(f.power_cuts)]

    def instant(self, t: datetime | None = None) -> dict[str, float]:
        """Instantaneous values by OBIS (voltage, current, power, frequency) for electricity."""
        t = t or self.now()
        rnd = random.Random(_stable_seed(self.seed, self.id, int(t.timestamp())))
        n, _ = self._index(t)
        p = self.interval_energy(n) * 3600 / self.period_s if self.relay_connected else 0.0
        u = round(230.0 + rnd.uniform(-4, 4), 1)
        return {
            "1.0.32.7.0.255": u,
            "1.0.31.7.0.255": round(p * 1000 / u, 3),
            "1.0.1.7.0.255": round(p, 3),
            "1.0.14.7.0.255": round(50.0 + rnd.uniform(-0.05, 0.05), 2),
        }

    # ---- clock, identity, journal -------------------------------------------------------
    def clock(self, t: datetime | None = None) -> datetime:
        """The meter's clock at true time t (the clock it had then, for a past t)."""
        t = t or self.now()
        f = self.faults
        reset = f.clock_reset_at if f.clock_reset_at is not None and t >= f.clock_reset_at else None
        if reset is not None:
            base = self._reset_target() + (t - reset)
        else:
            drift = self.clock_drift_s_per_day * (t - self.epoch).total_seconds() / 86400
            jump = f.clock_jump_s if f.clock_jump_at and t >= f.clock_jump_at else 0.0
            base = t + timedelta(seconds=drift + jump)
        # A reset clock forgets the steps set before it.
        steps = sum(d for at, d in self._clock_steps if at <= t and (reset is None or at >= reset))
        return base + timedelta(seconds=steps)

    def _reset_target(self) -> datetime:
        return self.faults.clock_reset_to or datetime(2000, 1, 1, tzinfo=self.local_tz)

    def set_clock(self, meter_time: datetime, t: datetime | None = None, correction: bool = False) -> None:
        """Step the clock to meter_time; journal 3 logs a time set (code 3) or, for a small
        correction, code 68, with the clock before the step."""
        t = t or self.now()
        current = self.clock(t)
        self._clock_steps.append((t, (meter_time - current).total_seconds()))
        self.journal.append(JournalEntry("0.0.99.98.3.255", meter_time, 68 if correction else 3, before=current))

    def current_serial(self, t: datetime | None = None) -> str:
        t = t or self.now()
        if self.faults.replaced_at and t >= self.faults.replaced_at:
            return self.serial + "R"
        return self.serial

    def events(self, t: datetime | None = None) -> list[JournalEntry]:
        """Journal entries up to time t (faults scheduled in the past appear here), each journal
        limited to its newest `journal_capacity` entries."""
        t = t or self.now()
        f = self.faults
        if f.tamper_at and t >= f.tamper_at and "tamper" not in self._journal_done:
            self._journal_done.add("tamper")
            self.journal.append(JournalEntry("0.0.99.98.4.255", f.tamper_at, 1))  # magnetic field on
            self.journal.append(JournalEntry("0.0.99.98.4.255", f.tamper_at + timedelta(minutes=10), 2))
        if f.clock_reset_at and t >= f.clock_reset_at and "clock_reset" not in self._journal_done:
            self._journal_done.add("clock_reset")
            self.journal.append(JournalEntry("0.0.99.98.7.255", self.clock(f.clock_reset_at), 5))  # RTC error
        for k, (off, on) in enumerate(self.power_cuts()):
            for key, when, code in ((f"cut{k}-off", off, 1), (f"cut{k}-on", on, 2)):
                if t >= when and key not in self._journal_done:
                    self._journal_done.add(key)
                    self.journal.append(JournalEntry("0.0.99.98.2.255", self.clock(when), code))
        if f.cover_open_at and t >= f.cover_open_at:
            if "cover" not in self._journal_done:
                self._journal_done.add("cover")
                self._cover = JournalEntry("0.0.99.98.4.255", self.clock(f.cover_open_at), 4)  # case opened
                self.journal.append(self._cover)
            closed = f.cover_open_at + timedelta(seconds=f.cover_open_s)
            if t >= closed and self._cover is not None and self._cover.ended is None:
                self._cover.ended = self.clock(closed)
        now = self.clock(t)
        visible = [e for e in self.journal if e.at <= now]
        if self.journal_capacity is None:
            return visible
        kept: dict[str, list[JournalEntry]] = {}
        for e in visible:
            kept.setdefault(e.journal_obis, []).append(e)
        newest = {id(e) for es in kept.values() for e in es[-self.journal_capacity:]}
        return [e for e in visible if id(e) in newest]

    def set_relay(self, connected: bool) -> None:
        if connected != self.relay_connected:
            self.relay_connected = connected
            self.journal.append(JournalEntry("0.0.99.98.2.255", self.clock(), 4 if connected else 3))

    def record(self, kind: str, obis: str, meter_time: datetime | None, value: float) -> None:
        """Keep what was served, so a test can check every served value arrived exactly once."""
        self.served.append((kind, obis, meter_time, value))


def _stable_seed(*parts: object) -> int:
    # hash() of a str changes between processes; the fleet must be reproducible.
    return zlib.crc32(":".join(map(str, parts)).encode())


def _zone_shares(n: int) -> dict[int, float]:
    if n <= 1:
        return {1: 1.0}
    if n == 2:
        return {1: 0.6, 2: 0.4}
    return {1: 0.3, 2: 0.4, 3: 0.3}


def _floor(t: datetime, period_s: int) -> datetime:
    ts = math.floor(t.timestamp() / period_s) * period_s
    return datetime.fromtimestamp(ts, UTC)
