"""Wired M-Bus driver for water and heat meters (EN 13757-2/-3, primary addressing).

MeterSpec: address = primary address 0..250 (254 = the only slave on the line),
serial = identification number (8 digits, as printed on the meter).
options: timeout (s per read, default 2.0: a full 261-byte frame takes 1.2 s at 2400 baud),
utc_offset_h (the meter's local time, default 3 = MSK), nke (send SND_NKE before the first
request, default true), medium (cold_water / hot_water / heat: overrides the medium byte).
Line: 2400 baud 8E1 through an M-Bus level converter (SerialSettings(2400, 8, "E", 1)).

Link: SND_NKE, then REQ_UD2 with FCB = 1 and the bit alternating from there (EN 60870-5-2);
a readout spread over telegrams (DIF 0x1F) is fetched to the end and merged. Records the
decoder cannot interpret are skipped and logged (records.py); readings of an answer whose
date/time is flagged invalid carry no meter time and the reason "meter_time_invalid".
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from askue.drivers.base import Capability, Driver, MeterIdentity, Reading, register_driver
from askue.drivers.errors import FrameError, MeterTimeout, ProtocolError, Unsupported
from askue.drivers.mbus import frames as f
from askue.drivers.mbus import obis

log = logging.getLogger(__name__)

BYTE_TIME_S = 11 / 2400
MAX_TELEGRAMS = 8  # a readout longer than this is a slave stuck in "more records follow"


@register_driver("mbus")
class MBusDriver(Driver):
    capabilities = frozenset({Capability.REGISTERS, Capability.INSTANT, Capability.CLOCK})

    def __init__(self, transport, meter):
        super().__init__(transport, meter)
        opts = meter.options
        try:
            self.address = f.check_primary(int(meter.address))
            self.timeout = float(opts.get("timeout", 2.0))
            self.tz = timezone(timedelta(hours=float(opts.get("utc_offset_h", 3))))
        except (TypeError, ValueError) as e:
            raise f.MBusConfigError(f"meter {meter.id}: {e}") from None
        self.nke = bool(opts.get("nke", True))
        self.medium = opts.get("medium")
        if self.medium is not None and self.medium not in obis.MEDIA_BY_NAME:
            raise f.MBusConfigError(f"meter {meter.id}: options.medium must be one of "
                                    f"{', '.join(obis.MEDIA_BY_NAME)}, got {self.medium!r}")
        # The gateway passes the configured resource; it settles an ambiguous medium byte
        # (0x07 "water") and catches a meter that is not what the config says it is.
        resource = opts.get("resource")
        self.resource = resource if resource in obis.MEDIA_BY_NAME else None
        # EN 60870-5-2 / EN 13757-2: the first REQ_UD2 after SND_NKE carries FCB = 1, and the
        # bit alternates from then on (libmbus sends 0x7B first, too).
        self.fcb = True
        self.reset_done = False
        self.skipped_seen: set[bytes] = set()  # VIBs of skipped records already logged

    async def _read_frame(self, what: str) -> bytes:
        t = self.transport
        head = await t.read_exactly(1, self.timeout)
        try:
            if head[0] == f.START_LONG:
                head += await t.read_exactly(3, self.timeout)
            n = f.frame_length(head)
            assert n is not None
            if n > len(head):
                # A full frame takes up to 1.2 s at 2400 baud 8E1 (11 bits a byte): allow for it.
                head += await t.read_exactly(n - len(head), self.timeout + n * BYTE_TIME_S)
        except MeterTimeout as e:
            raise FrameError(f"M-Bus meter {self.address}: {what}: truncated frame after {len(head)} bytes ({e})") \
                from None
        except FrameError as e:
            raise FrameError(f"M-Bus meter {self.address}: {what}: {e}") from None
        return head

    async def _reset(self) -> None:
        t = self.transport
        await t.ensure_open()
        t.discard_input()
        await t.write(f.snd_nke(self.address))
        frame = await self._read_frame("SND_NKE")
        if frame != bytes([f.ACK]):
            raise ProtocolError(f"M-Bus meter {self.address}: SND_NKE answered with {frame[:16].hex(' ')}, not ACK")
        self.fcb = True
        self.reset_done = True

    async def _request(self) -> f.Telegram:
        """One readout: REQ_UD2, and while the slave says more records follow, the next
        telegrams (FCB toggled), merged under the first header."""
        try:
            first = tel = await self._request_once(0)
            records, skipped = list(tel.records), list(tel.skipped)
            for _ in range(MAX_TELEGRAMS - 1):
                if not tel.more:
                    break
                tel = await self._request_once(len(records) + len(skipped))
                if tel.header.ident != first.header.ident:
                    raise FrameError(f"M-Bus meter {self.address}: telegram from {tel.header.ident} inside a "
                                     f"readout of {first.header.ident}")
                records += tel.records
                skipped += tel.skipped
            else:
                if tel.more:
                    raise ProtocolError(f"M-Bus meter {self.address}: more than {MAX_TELEGRAMS} telegrams "
                                        "in one readout")
            self._log_skipped(first.header, skipped)
            return f.Telegram(first.address, first.header, tuple(records), False, tuple(skipped))
        except Exception:
            # After a lost or damaged exchange the slave's FCB memory is unknown: reset it
            # before the next request rather than risk being sent a stale repeated telegram.
            self.reset_done = False
            raise

    def _log_skipped(self, header: f.Header, skipped: list) -> None:
        """A record the decoder cannot interpret is left out, the others are kept: say so once
        per kind of record (at every poll it would drown the log), then at debug level."""
        for sk in skipped:
            first_time = sk.vib not in self.skipped_seen
            self.skipped_seen.add(sk.vib)
            log.log(logging.WARNING if first_time else logging.DEBUG,
                    "M-Bus meter %s (%s %s, address %d): %s; the record is skipped, the other records are kept",
                    header.ident, header.manufacturer, header.medium_name, self.address, sk.describe())

    async def _request_once(self, first_index: int) -> f.Telegram:
        if self.nke and not self.reset_done:
            # A slave remembers the last FCB: a fresh driver must reset it, or a slave that
            # sees the same FCB again repeats its previous (stale) telegram.
            await self._reset()
        t = self.transport
        await t.ensure_open()
        t.discard_input()
        await t.write(f.req_ud2(self.address, self.fcb))
        frame = await self._read_frame("REQ_UD2")
        try:
            tel = f.decode_rsp_ud(frame, first_index)
        except (FrameError, ProtocolError) as e:
            raise type(e)(f"M-Bus meter {self.address}: {e}") from None
        if self.address != f.BROADCAST_REPLY and tel.address != self.address:
            raise FrameError(f"M-Bus meter {self.address}: answer from primary address {tel.address}")
        self.fcb = not self.fcb  # the next request is a new one, not a repetition
        return tel

    async def connect(self) -> MeterIdentity:
        if self.nke:
            await self._reset()
        tel = await self._request()
        self.check_identity(tel.header.ident)
        return MeterIdentity(serial=tel.header.ident,
                             model=self.meter.model or f"{tel.header.manufacturer} v{tel.header.version} "
                                                       f"({tel.header.medium_name})")

    async def read_registers(self) -> list[Reading]:
        tel = await self._request()
        self.check_identity(tel.header.ident)
        return [r for r in obis.readings(tel, self.tz, self.medium, self.resource) if r.kind == "register"]

    async def read_instant(self) -> list[Reading]:
        tel = await self._request()
        self.check_identity(tel.header.ident)
        return [r for r in obis.readings(tel, self.tz, self.medium, self.resource) if r.kind == "instant"]

    async def read_clock(self) -> datetime:
        when, why = obis.clock(await self._request(), self.tz)
        if why:
            raise Unsupported(f"M-Bus meter {self.address}: the meter marks its date/time invalid (clock not set, "
                              "e.g. after a battery change): set its clock with the vendor's tool")
        if when is None:
            raise Unsupported(f"M-Bus meter {self.address}: the answer carries no date/time record")
        return when
