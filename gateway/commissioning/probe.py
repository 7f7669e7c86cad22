"""Read one meter once, as far as it goes: identity, clock and drift, registers, instant
values, the last day of load profile and the meter's day/month-start archives. Every step the
driver cannot do is noted, not fatal; the first real failure stops the probe and is diagnosed."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from askue.drivers.base import Capability, Driver, MeterIdentity, MeterSpec, Reading, get_driver
from askue.drivers.errors import DriverError, Unsupported
from askue.drivers.transport import Transport
from askue.gateway.commissioning.bus import Bus, BusUnavailable, open_bus
from askue.gateway.commissioning.diagnosis import Diagnosis, Exit, diagnose


@dataclass
class ProbeResult:
    bus: Bus
    spec: MeterSpec
    started_at: datetime
    identity: MeterIdentity | None = None
    meter_time: datetime | None = None
    drift_s: float | None = None
    registers: list[Reading] = field(default_factory=list)
    instant: list[Reading] = field(default_factory=list)
    profile: list[Reading] = field(default_factory=list)
    archives: list[Reading] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # step -> why it was not read
    failure: Diagnosis | None = None
    elapsed_s: float = 0.0

    @property
    def exit_code(self) -> Exit:
        return self.failure.code if self.failure else Exit.OK


async def arrived_since(transport: Transport, mark: int) -> int:
    """Bytes that came in since `mark` (transport.bytes_in), counting any still unread: a
    garbled line delivers bytes that never make a valid answer."""
    left = await transport.read_available(0.05) if transport.is_open else b""
    return transport.bytes_in - mark + len(left)


async def probe(bus: Bus, spec: MeterSpec, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> ProbeResult:
    res = ProbeResult(bus, spec, now())
    t0 = time.monotonic()
    what = f"{spec.driver} meter {spec.address}"
    try:
        transport = await open_bus(bus)
    except BusUnavailable as e:
        res.failure = diagnose(e, bus, what)
        return res
    try:
        try:
            drv = get_driver(spec.driver)(transport, spec)
        except DriverError as e:
            res.failure = Diagnosis(Exit.USAGE, f"{what}: {e}")
            return res
        await _read(drv, transport, res, now, what)
        if res.identity is not None:
            try:
                await drv.close()
            except DriverError:
                pass
    finally:
        await transport.close()
        res.elapsed_s = round(time.monotonic() - t0, 3)
    return res


async def _read(drv: Driver, transport: Transport, res: ProbeResult, now: Callable[[], datetime],
                what: str) -> None:
    caps = drv.capabilities
    mark = transport.bytes_in
    step = "connect"
    try:
        res.identity = await drv.connect()
        if Capability.CLOCK in caps:
            step = "clock"
            res.meter_time = await drv.read_clock()
            res.drift_s = round((res.meter_time - now()).total_seconds(), 3)
        else:
            res.skipped["clock"] = "the driver or the meter's model keeps no clock"
        end = now() + timedelta(seconds=res.drift_s or 0.0)
        steps: list[tuple[str, Capability, Callable]] = [
            ("registers", Capability.REGISTERS, drv.read_registers),
            ("instant", Capability.INSTANT, drv.read_instant),
            ("profile", Capability.PROFILE, lambda: drv.read_profile(end - timedelta(days=1), end)),
            ("archives", Capability.ARCHIVES, lambda: _archives(drv, end)),
        ]
        for step, cap, call in steps:
            if cap not in caps:
                res.skipped[step] = "not supported by this driver or model"
                continue
            mark = transport.bytes_in
            try:
                setattr(res, step, await call())
            except Unsupported as e:
                res.skipped[step] = str(e)
    except DriverError as e:
        where = what if step == "connect" else f"{what} ({step})"
        res.failure = diagnose(e, res.bus, where, await arrived_since(transport, mark))


async def _archives(drv: Driver, end: datetime) -> list[Reading]:
    out: list[Reading] = []
    missing: list[str] = []
    for archive, back in (("day_start", timedelta(days=1)), ("month_start", timedelta(days=32))):
        try:
            out += await drv.read_archive(archive, end - back, end + timedelta(seconds=1))
        except Unsupported as e:
            missing.append(str(e))
    if len(missing) == 2:
        raise Unsupported("; ".join(missing))
    return out
