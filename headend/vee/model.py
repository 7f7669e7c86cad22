"""Plain data the rules work on: meter facts, values, findings."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

import msgspec

from askue.contract.payloads import Kind

Severity = Literal["info", "warning", "critical"]
RESOURCES = ("electricity", "cold_water", "hot_water", "heat", "gas")
KINDS = ("register", "interval", "instant", "event")
SEVERITY_ORDER = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class MeterFacts:
    """What the rules need to know about a meter (from the registry or meters.csv)."""

    code: str  # the meter code gateways and files use
    resource: str = "electricity"
    serial: str | None = None
    model: str | None = None
    organisation: str | None = None
    digits: int | None = None  # integer digits of the register display; None = unknown, no rollover
    multiplier: float = 1.0
    installed_at: datetime | None = None
    replaces: str | None = None  # meter this one replaced (it starts a new baseline)
    replaced_by: str | None = None
    verification_due: date | None = None
    nominal_voltage: float = 230.0
    decommissioned: bool = False
    house: str | None = None
    is_balance: bool = False  # ОДПУ: house balance meter
    # Times at which the meter's identity changed under the same id (a new serial seen
    # by the gateway): registers restart there, a drop is an exchange, not a reverse.
    baseline_resets: tuple[datetime, ...] = ()
    # The gateway reads a serial other than the registry's: the meter was exchanged under
    # the same id and the registry not yet updated; a drop is then an exchange.
    identity_changed: bool = False
    # Dated registry versions when the meter has more than one: (in force from, digits,
    # multiplier), oldest first; `digits` and `multiplier` above are the latest.
    versions: tuple[tuple[datetime, int | None, float], ...] = ()

    @property
    def capacity(self) -> float | None:
        return float(10 ** self.digits) if self.digits else None

    def _at(self, t: datetime | None) -> tuple[int | None, float]:
        digits, mult = self.digits, self.multiplier
        if t is not None:
            for start, d, m in self.versions:
                if start <= t:
                    digits, mult = d, m
        return digits, mult

    def capacity_at(self, t: datetime | None) -> float | None:
        """The register capacity in force at `t` (a value's meter time)."""
        d = self._at(t)[0] if self.versions else self.digits
        return float(10 ** d) if d else None

    def multiplier_at(self, t: datetime | None) -> float:
        return self._at(t)[1] if self.versions else self.multiplier

    @property
    def retired(self) -> bool:
        return self.decommissioned or self.replaced_by is not None


# A msgspec Struct, not a dataclass: the ingest's VEE hook makes one per value it receives
# (hundreds of thousands per second). Made seven times faster than a frozen dataclass, and
# untracked by the garbage collector (gc=False: it holds only strings, numbers and times).
class MeterValue(msgspec.Struct, frozen=True, gc=False):
    """One metered value. `new` marks values under check (history gives context only)."""

    meter: str  # meter code
    obis: str
    kind: Kind
    ts: datetime  # the meter's time (interval: end of the period)
    value: float
    received_at: datetime | None = None
    period_s: int | None = None
    quality: str = "A"
    new: bool = True
    row: int | None = None  # line number in an input file, for reports
    # ts is the meter's clock at the read: not for a value from its archive (stamped with a
    # past day/month boundary) nor for one the gateway stamped (the meter's time was missing
    # or invalid). Only such reads say anything about the meter's clock.
    live_clock: bool = True


@dataclass(frozen=True)
class Finding:
    """An abnormal situation found by a rule. `key` identifies the condition, so the same
    condition is raised once however often it is seen again."""

    kind: str
    meter: str  # meter code
    severity: Severity
    ts: datetime
    key: str
    title_ru: str
    title_en: str
    obis: str | None = None
    evidence: dict = field(default_factory=dict)
    event: bool = True  # False: a reason on the value only, no abnormal event

    def details(self) -> str:
        parts = [self.title_en]
        parts += [f"{k}={_fmt(v)}" for k, v in self.evidence.items()]
        return "; ".join(parts)


@dataclass(frozen=True)
class Mark:
    """A reason to attach to a stored value (its quality stays as it is)."""

    meter: str
    obis: str
    ts: datetime
    reason: str


@dataclass(frozen=True)
class Clear:
    """A condition observed to be over at ts: events whose key starts with `key` are cleared
    (and may auto-close); a later recurrence is a new event."""

    key: str
    meter: str
    ts: datetime


@dataclass
class Result:
    findings: list[Finding] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    clears: list[Clear] = field(default_factory=list)

    def extend(self, other: Result) -> Result:
        self.findings += other.findings
        self.marks += other.marks
        self.clears += other.clears
        return self


def by_channel(values: Iterable[MeterValue], kind: str) -> dict[str, list[MeterValue]]:
    """Values of one kind grouped by OBIS, each list sorted by meter time."""
    out: dict[str, list[MeterValue]] = {}
    for v in values:
        if v.kind == kind:
            out.setdefault(v.obis, []).append(v)
    for lst in out.values():
        if len(lst) > 1 and not _strictly_by_time(lst):
            lst.sort(key=_time_order)
    return out


def _time_order(v: MeterValue) -> tuple:
    return (v.ts, v.received_at or v.ts)


def _strictly_by_time(lst: list[MeterValue]) -> bool:
    """Already in `_time_order` (the live hook's usual channel: one stored value, then the new
    one): sorting each of tens of thousands of short lists by a key function was a tenth of
    the hook's time."""
    prev = lst[0].ts
    for v in lst[1:]:
        t = v.ts
        if t <= prev:
            return False
        prev = t
    return True


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, datetime):
        return v.isoformat()
    return str(v)
