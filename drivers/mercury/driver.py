"""Меркурий 230/234 driver: open channel, energy by tariff, instantaneous values, clock.

MeterSpec: address = network address 1..240 (0 = universal, one meter per line only),
password = 6 digits (default 111111 for level 1, 222222 for level 2), serial = 8 digits.
options: access_level (1 user / 2 admin, default 1), timeout (s, default 1.0),
utc_offset_h (meter's local time offset, default 3 = MSK), tariffs (1..4, default 4).
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from askue.drivers.base import Capability, Driver, Kind, MeterIdentity, Reading, register_driver
from askue.drivers.errors import FrameError, MeterTimeout
from askue.drivers.mercury import frames as f

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


@register_driver("mercury")
class MercuryDriver(Driver):
    capabilities = frozenset({Capability.REGISTERS, Capability.INSTANT, Capability.CLOCK, Capability.SET_CLOCK})

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
        except (TypeError, ValueError) as e:
            raise f.MercuryConfigError(f"meter {meter.id}: bad option value: {e}") from None
        if self.level not in (1, 2):
            raise f.MercuryConfigError(f"meter {meter.id}: options.access_level must be 1 or 2, got {self.level}")
        try:  # a malformed password is a config error: say so before the first poll
            f.password_bytes(meter.password, self.level)
        except f.MercuryConfigError as e:
            raise f.MercuryConfigError(f"meter {meter.id}: {e}") from None
        if not 1 <= self.tariffs <= 4:
            raise f.MercuryConfigError(f"meter {meter.id}: options.tariffs must be 1..4, got {self.tariffs}")

    # ---- one exchange ------------------------------------------------------------------
    async def _exchange(self, req: bytes, expect_len: int, what: str, opening: bool = False) -> bytes:
        t = self.transport
        await t.ensure_open()
        t.discard_input()
        await t.write(req)
        frame = await t.read_exactly(f.STATUS_LEN, self.timeout)
        # A 4-byte frame with a good CRC is a status reply even where data was expected.
        if expect_len > f.STATUS_LEN and not f.crc_ok(frame):
            try:
                frame += await t.read_exactly(expect_len - f.STATUS_LEN, self.timeout)
            except MeterTimeout as e:
                raise FrameError(f"Mercury meter {self.address}: {what}: truncated reply ({e})") from None
        return f.check_reply(frame, self.address, expect_len, what, opening)

    async def _open_channel(self) -> None:
        req = f.open_request(self.address, self.level, self.meter.password)
        await self._exchange(req, f.STATUS_LEN, f"open channel (level {self.level})", opening=True)

    async def _read(self, req: bytes, expect_len: int, what: str) -> bytes:
        try:
            return await self._exchange(req, expect_len, what)
        except f.MercuryChannelClosed:
            # The meter closes an idle channel after a few minutes; reopen once.
            await self._open_channel()
            return await self._exchange(req, expect_len, what)

    # ---- driver interface --------------------------------------------------------------
    async def connect(self) -> MeterIdentity:
        await self._exchange(f.request(self.address, f.Code.TEST), f.STATUS_LEN, "test channel")
        await self._open_channel()
        data = await self._read(f.serial_request(self.address), f.SERIAL_LEN, "read serial number")
        serial, made = f.decode_serial(data)
        self.check_identity(serial)
        self.manufactured = made
        return MeterIdentity(serial=serial, model=self.meter.model or "Mercury 230")

    async def close(self) -> None:
        try:
            await self._exchange(f.request(self.address, f.Code.CLOSE), f.STATUS_LEN, "close channel")
        except (MeterTimeout, FrameError, f.MercuryStatusError):
            pass  # the meter closes the channel on its own after a timeout

    async def read_clock(self) -> datetime:
        data = await self._read(f.time_request(self.address), f.TIME_LEN, "read time")
        return f.decode_time(data).local.replace(tzinfo=self.tz).astimezone(UTC)

    async def read_registers(self) -> list[Reading]:
        meter_time = await self.read_clock()
        out: list[Reading] = []
        for tariff in range(self.tariffs + 1):
            data = await self._read(f.energy_request(self.address, f.Array.FROM_RESET, 0, tariff),
                                    f.ENERGY_LEN, f"read energy since reset, tariff {tariff}")
            for q in (1, 2, 3, 4):
                v = f.decode_u32(data[4 * (q - 1):4 * q])
                if v is not None:
                    out.append(Reading(f"1.0.{q}.8.{tariff}.255", Kind.REGISTER, v / 1000, _ENERGY_UNITS[q],
                                       meter_time))
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
            await self._read_status(f.correct_time_request(self.address, target), "correct time")
        else:
            await self._read_status(f.set_time_request(self.address, target), "set time")

    async def _read_status(self, req: bytes, what: str) -> None:
        try:
            await self._exchange(req, f.STATUS_LEN, what)
        except f.MercuryChannelClosed:
            await self._open_channel()
            await self._exchange(req, f.STATUS_LEN, what)
