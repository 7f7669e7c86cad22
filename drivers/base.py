"""The driver interface shared by every protocol.

A driver talks to one meter over a Transport that belongs to the bus (several
meters on one RS-485 line share it; the gateway serialises access). Drivers
return Readings keyed by OBIS code with the meter's own timestamp.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from askue.drivers.errors import Unsupported
from askue.drivers.transport import Transport


class Kind(StrEnum):
    REGISTER = "register"  # cumulative, per tariff zone
    INTERVAL = "interval"  # load profile value for one integration period
    INSTANT = "instant"  # U, I, P, f
    EVENT = "event"  # meter journal entry; value is the event code


class Capability(StrEnum):
    REGISTERS = "registers"
    INSTANT = "instant"
    PROFILE = "profile"
    EVENTS = "events"
    CLOCK = "clock"
    SET_CLOCK = "set_clock"
    RELAY = "relay"
    ARCHIVES = "archives"  # the meter's own day-start / month-start register values


# The meter archives a driver may read (contract Value.archive): register values the meter
# stored at the start of each day / month, stamped with that boundary.
ARCHIVES = ("day_start", "month_start")


@dataclass(frozen=True, slots=True)
class Reading:
    obis: str
    kind: Kind
    value: float
    unit: str
    # The meter's own clock when the value was measured; None if the meter keeps no clock.
    meter_time: datetime | None
    period_s: int | None = None
    # Why this value is not fully what it should be, as the meter says (contract Value.reasons),
    # e.g. "meter_time_invalid": the meter marked its clock invalid, so meter_time is None.
    reasons: tuple[str, ...] = ()
    archive: str | None = None  # one of ARCHIVES for a value read from the meter's archive


@dataclass(frozen=True, slots=True)
class MeterSpec:
    """What the gateway config says about one meter."""

    id: str
    driver: str
    address: int | str = 1
    serial: str | None = None
    model: str | None = None  # register map / model name where the driver needs one
    password: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MeterIdentity:
    serial: str
    model: str | None = None
    firmware: str | None = None
    # Transformer ratios as programmed in the meter (Ктт, Ктн), where it stores them.
    ct_ratio: float | None = None
    vt_ratio: float | None = None


class Driver(ABC):
    """One meter's protocol session. Subclasses set `name` and `capabilities`."""

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]]

    def __init__(self, transport: Transport, meter: MeterSpec):
        self.transport = transport
        self.meter = meter

    @abstractmethod
    async def connect(self) -> MeterIdentity:
        """Open the session (sign-on, association, open channel) and return the
        meter's identity. Raises IdentityMismatch when meter.serial is set and differs."""

    async def close(self) -> None:
        """End the session politely (break, release, close channel). Sessionless protocols keep this."""
        return None

    async def read_registers(self) -> list[Reading]:
        raise Unsupported(f"{self.name}: cumulative registers are not supported")

    async def read_instant(self) -> list[Reading]:
        raise Unsupported(f"{self.name}: instantaneous values are not supported")

    async def read_profile(self, start: datetime, end: datetime) -> list[Reading]:
        """Load-profile intervals whose end time lies in [start, end)."""
        raise Unsupported(f"{self.name}: load profile is not supported")

    async def read_archive(self, archive: str, start: datetime, end: datetime) -> list[Reading]:
        """Register values the meter stored at the start of each day (archive "day_start") or
        month ("month_start") with the boundary in [start, end); Kind.REGISTER readings
        stamped with the boundary and carrying `archive`."""
        raise Unsupported(f"{self.name}: {archive} archive is not supported")

    async def read_events(self, since: datetime | None) -> list[Reading]:
        raise Unsupported(f"{self.name}: event journals are not supported")

    async def read_clock(self) -> datetime:
        raise Unsupported(f"{self.name}: reading the clock is not supported")

    async def set_clock(self, when: datetime) -> None:
        raise Unsupported(f"{self.name}: setting the clock is not supported")

    async def relay(self, connect: bool) -> None:
        raise Unsupported(f"{self.name}: relay control is not supported")

    def check_identity(self, actual_serial: str) -> None:
        from askue.drivers.errors import IdentityMismatch

        if self.meter.serial and str(self.meter.serial) != str(actual_serial):
            raise IdentityMismatch(str(self.meter.serial), str(actual_serial))


_REGISTRY: dict[str, type[Driver]] = {}


def register_driver(name: str) -> Callable[[type[Driver]], type[Driver]]:
    def deco(cls: type[Driver]) -> type[Driver]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


# Driver name -> module that registers it; imported lazily so a gateway only
# loads the protocols its config uses.
DRIVER_MODULES = {
    "modbus": "askue.drivers.modbus.driver",
    "iec62056_21": "askue.drivers.iec62056_21.driver",
    "dlms": "askue.drivers.dlms.driver",
    "mercury": "askue.drivers.mercury.driver",
    "mbus": "askue.drivers.mbus.driver",
}


def get_driver(name: str) -> type[Driver]:
    if name not in _REGISTRY:
        module = DRIVER_MODULES.get(name)
        if module is None:
            raise KeyError(f"unknown driver {name!r}; known drivers: {', '.join(sorted(DRIVER_MODULES))}")
        import importlib

        importlib.import_module(module)
    return _REGISTRY[name]
