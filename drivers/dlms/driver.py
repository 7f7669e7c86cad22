"""DLMS/COSEM driver for СПОДЭС meters over HDLC (RS-485) or the TCP wrapper.

gurux's GXDLMSClient builds every request and parses every answer (it does no
I/O); this module moves the bytes through the bus Transport, vets each frame
(hdlc.py) so line damage is a typed FrameError, and turns COSEM values into
Readings (scaler/unit applied, meter time decoded here, not by gurux).

MeterSpec: address 17 or "1/17" (logical/physical), password = low-level
security password of the reader client (0x20); no password -> public client
(0x10, serial and clock only). options: transport "hdlc"|"wrapper" (default:
wrapper on TCP transports, HDLC otherwise), client (0x10/0x20), timeout (s),
tz_minutes (meter zone when the meter sends no deviation, default +180),
wport (wrapper destination, default the logical device), idle_s (re-open the
session before a call after this many idle seconds, default 60).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar, TypeVar

from gurux_dlms import GXByteBuffer, GXDateTime, GXDLMSClient, GXDLMSException, GXReplyData
from gurux_dlms.enums import Authentication, InterfaceType
from gurux_dlms.GXDLMSConfirmedServiceError import GXDLMSConfirmedServiceError
from gurux_dlms.GXDLMSExceptionResponse import GXDLMSExceptionResponse
from gurux_dlms.objects import (
    GXDLMSClock,
    GXDLMSData,
    GXDLMSDisconnectControl,
    GXDLMSProfileGeneric,
    GXDLMSRegister,
)

from askue.drivers.base import Capability, Driver, Kind, MeterIdentity, MeterSpec, Reading, register_driver
from askue.drivers.dlms import cosem, hdlc
from askue.drivers.dlms.address import CLIENT_PUBLIC, CLIENT_READER, parse_address
from askue.drivers.errors import AuthError, DriverError, FrameError, MeterTimeout, ProtocolError, Unsupported
from askue.drivers.transport import TcpTransport, Transport

log = logging.getLogger("askue.drivers.dlms")
T = TypeVar("T")


class SessionLost(DriverError):
    """The meter dropped the session (HDLC DM/FRMR, or "service not allowed" without an
    association), e.g. after its inactivity timeout. The next call re-opens it."""


AUTH_DIAGNOSTICS = {11, 12, 13, 14}  # mechanism not recognised/required, authentication failure/required
MAX_SKIPPED_FRAMES = 8  # frames for other addresses tolerated while waiting for ours


def _typed_errors(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Last line of defence for public calls: a malformed answer that slipped past the checks
    surfaces as ProtocolError (with the call named), never as a bare ValueError/TypeError."""

    @functools.wraps(method)
    async def wrapper(self: DlmsDriver, *args: Any, **kwargs: Any) -> T:
        try:
            return await method(self, *args, **kwargs)
        except DriverError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as e:
            self._broken = True
            raise ProtocolError(
                f"{self.meter.id}: {method.__name__} failed on the meter's answer: {type(e).__name__}: {e}"
            ) from e

    return wrapper


@register_driver("dlms")
class DlmsDriver(Driver):
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.REGISTERS,
            Capability.INSTANT,
            Capability.PROFILE,
            Capability.EVENTS,
            Capability.CLOCK,
            Capability.SET_CLOCK,
            Capability.RELAY,
            Capability.ARCHIVES,
        }
    )

    def __init__(self, transport: Transport, meter: MeterSpec):
        super().__init__(transport, meter)
        opts: dict[str, Any] = meter.options or {}
        try:
            self.logical, self.physical = parse_address(meter.address)
        except ValueError as e:
            raise ProtocolError(f"meter {meter.id}: {e}") from None
        mode = opts.get("transport") or ("wrapper" if isinstance(transport, TcpTransport) else "hdlc")
        if mode not in ("hdlc", "wrapper"):
            raise ProtocolError(
                f"meter {meter.id}: options.transport must be 'hdlc' or 'wrapper', not {mode!r}"
            )
        self.wrapper = mode == "wrapper"
        # YAML turns a numeric password into an int; the meter compares characters.
        password = None if meter.password is None else str(meter.password)
        try:
            self.client_address = _int(opts.get("client", CLIENT_READER if password else CLIENT_PUBLIC))
            self.timeout = float(opts.get("timeout", 3.0))
            self.idle_s = float(opts.get("idle_s", 60.0))
            self.ratio_refresh_s = float(opts.get("ratio_refresh_s", 3600.0))
            self.tz = timezone(timedelta(minutes=_int(opts.get("tz_minutes", 180))))
            wport = _int(opts.get("wport", self.logical))
        except (TypeError, ValueError) as e:
            raise ProtocolError(
                f"meter {meter.id}: bad option ({e}); client is 0x10 or 0x20, timeout in "
                "seconds, tz_minutes like 180, wport a number"
            ) from None
        if self.client_address not in (CLIENT_PUBLIC, CLIENT_READER):
            raise Unsupported(
                f"meter {meter.id}: client {self.client_address:#x} is not supported "
                "(0x10 public or 0x20 reader with low-level security)"
            )
        if self.wrapper:
            server = wport
        else:
            server = (
                self.logical
                if self.physical is None
                else GXDLMSClient.getServerAddress(self.logical, self.physical)
            )
        auth = Authentication.LOW if self.client_address == CLIENT_READER else Authentication.NONE
        if auth == Authentication.LOW and not password:
            raise AuthError(f"meter {meter.id}: the reader client (0x20) needs the meter's password")
        self._client_args = (
            True,
            self.client_address,
            server,
            auth,
            password if auth == Authentication.LOW else None,
            InterfaceType.WRAPPER if self.wrapper else InterfaceType.HDLC,
        )
        self.client = GXDLMSClient(*self._client_args)
        self.connected = False
        # Set when an answer was lost or damaged: HDLC sequence numbers (and gurux's state) are
        # then out of step, so the next call re-opens the session before going on.
        self._broken = False
        self._last_io = 0.0
        self._scalers: dict[str, tuple[int, int]] = {}
        self._profile: GXDLMSProfileGeneric | None = None
        self._journals: dict[str, GXDLMSProfileGeneric] = {}
        self._archives: dict[str, GXDLMSProfileGeneric] = {}
        self._ratios: tuple[float | None, float | None] = (None, None)
        self._ratios_at: float | None = None  # loop time of the last ratio read
        self._ratios_serial: str | None = None

    # ---- byte moving ------------------------------------------------------------------------
    async def _read_frame(self) -> bytes:
        t = self.transport
        if self.wrapper:
            head = await t.read_exactly(hdlc.WRAPPER_HEADER, self.timeout)
            try:
                _src, _dst, n = hdlc.parse_wrapper_header(head)
            except FrameError:
                t.discard_input()
                raise
            return head + await t.read_exactly(n, self.timeout)
        skipped = 0
        while True:  # hunt for the opening flag; line noise before it is dropped
            b = await t.read_exactly(1, self.timeout)
            if b[0] == hdlc.FLAG:
                break
            skipped += 1
            if skipped > 2048:
                raise FrameError("no HDLC flag in 2048 bytes of line noise")
        fmt = await t.read_exactly(2, self.timeout)
        while fmt[0] == hdlc.FLAG:  # back-to-back flags
            fmt = fmt[1:] + await t.read_exactly(1, self.timeout)
        frame = bytes((hdlc.FLAG,)) + fmt
        try:
            total = hdlc.frame_length(frame)
        except FrameError:
            t.discard_input()
            raise
        assert total is not None
        frame += await t.read_exactly(total - 3, self.timeout)
        try:
            hdlc.parse_frame(frame)
        except FrameError:
            t.discard_input()
            raise
        return frame

    async def _packet(self, data: bytes | None, reply: GXReplyData) -> None:
        if data:
            await self.transport.write(bytes(data))
        notify = GXReplyData()
        for _ in range(MAX_SKIPPED_FRAMES):
            frame = await self._read_frame()
            if not self.wrapper and hdlc.parse_frame(frame).unnumbered in (hdlc.DM, hdlc.FRMR):
                raise SessionLost(
                    f"{self.meter.id}: the meter answered {frame.hex()}: the link is not open "
                    "(meter restarted or closed an idle link)"
                )
            try:
                done = self.client.getData(GXByteBuffer(frame), reply, notify)
            except GXDLMSExceptionResponse as e:
                if e.exceptionStateError == 1 and self.connected:  # service not allowed: no association
                    raise SessionLost(f"{self.meter.id}: the meter has no association with us ({e})") from e
                raise _typed(e) from e
            except (GXDLMSException, GXDLMSConfirmedServiceError) as e:
                raise _typed(e) from e
            except Exception as e:  # gurux raises bare Exception/ValueError on malformed data
                raise ProtocolError(
                    f"{self.meter.id}: malformed DLMS answer ({e}): {frame[:40].hex()}"
                ) from e
            if done:
                self._last_io = asyncio.get_running_loop().time()
                if reply.error:
                    raise _typed(GXDLMSException(reply.error))
                return
        raise ProtocolError(f"{self.meter.id}: {MAX_SKIPPED_FRAMES} frames without the answer we asked for")

    async def _request(self, data: Any) -> GXReplyData:
        """Send a request (one frame or gurux's list of frames) and collect the whole answer,
        following HDLC segmentation (RR) and GET block transfer (GET-request-next)."""
        reply = GXReplyData()
        frames = data if isinstance(data, list) else [data]
        try:
            for frame in frames:
                reply.clear()
                await self._packet(frame, reply)
                while reply.isMoreData():
                    more = None if reply.isStreaming() else self.client.receiverReady(reply)
                    await self._packet(more, reply)
        except (MeterTimeout, FrameError, SessionLost):
            self._broken = True
            raise
        return reply

    async def _ready(self) -> None:
        if not self.connected:
            return
        idle = asyncio.get_running_loop().time() - self._last_io
        # A meter closes an idle HDLC link/association itself (inactivity timeout, often 120 s):
        # re-open instead of learning it from a refused request.
        if self._broken or idle > self.idle_s:
            await self.connect()

    async def _get(self, obj: Any, attr: int) -> Any:
        reply = await self._request(self.client.read(obj, attr))
        return reply.value

    # ---- session ----------------------------------------------------------------------------
    @_typed_errors
    async def connect(self) -> MeterIdentity:
        self.transport.discard_input()
        self.client = GXDLMSClient(*self._client_args)  # fresh frame counters and block state
        self._broken = False
        self.connected = False
        if not self.wrapper:
            reply = await self._request(self.client.snrmRequest())
            try:
                self.client.parseUAResponse(reply.data)
            except Exception as e:
                raise ProtocolError(f"{self.meter.id}: bad UA answer to SNRM: {e}") from e
        reply = await self._request(self.client.aarqRequest())
        try:
            self.client.parseAareResponse(reply.data)
        except Exception as e:
            err = (
                _typed(e)
                if isinstance(e, GXDLMSException)
                else ProtocolError(f"{self.meter.id}: bad AARE: {e}")
            )
            await self._disconnect_link()
            raise err from e
        self.connected = True
        serial = await self._serial()
        self.check_identity(serial)
        ct, vt = await self._transformer_ratios(serial)
        return MeterIdentity(serial=serial, model=self.meter.model, ct_ratio=ct, vt_ratio=vt)

    async def _transformer_ratios(self, serial: str) -> tuple[float | None, float | None]:
        """Ктт and Ктн, read on the first connect, after a meter exchange and every
        ratio_refresh_s (the gateway connects per poll; the ratios change only when reprogrammed)."""
        now = asyncio.get_running_loop().time()
        if (
            self._ratios_at is not None
            and serial == self._ratios_serial
            and now - self._ratios_at < self.ratio_refresh_s
        ):
            return self._ratios
        if self.client_address == CLIENT_PUBLIC:
            ratios: tuple[float | None, float | None] = (None, None)  # not readable without a password
        else:
            ratios = (await self._ratio(cosem.CT_RATIO_OBIS), await self._ratio(cosem.VT_RATIO_OBIS))
        self._ratios, self._ratios_at, self._ratios_serial = ratios, now, serial
        return ratios

    async def _ratio(self, obis: str) -> float | None:
        """A ratio object's value; None where the model lacks it or holds 0 (not programmed).
        СПОДЭС meters keep it in a Data object; a model that made it a Register is read with
        its scaler."""
        try:
            raw = await self._get(GXDLMSData(obis), 2)
            scaler = 0
        except AuthError:
            return None  # not readable for this client
        except ProtocolError as e:
            if getattr(e, "dar", None) not in (4, 11):
                raise
            try:
                scaler, _unit = await self._scaler_unit(obis)
                raw = await self._get(GXDLMSRegister(obis), 2)
            except AuthError:
                return None
            except ProtocolError as e2:
                if getattr(e2, "dar", None) in (4, 11):
                    return None
                raise
        value = _number(raw, obis) * 10.0**scaler
        return value if value > 0 else None

    async def _disconnect_link(self) -> None:
        """Best-effort DISC so a refused association does not leave the meter's link open."""
        if self.wrapper:
            return
        try:
            await self._request(self.client.disconnectRequest())
        except DriverError as e:
            log.debug("%s: DISC after a refused association failed: %s", self.meter.id, e)

    async def close(self) -> None:
        if not self.connected:
            return
        self.connected = False
        try:
            await self._request(self.client.releaseRequest())
            if not self.wrapper:
                await self._request(self.client.disconnectRequest())
        except DriverError as e:  # the meter may already have dropped the link
            log.debug("%s: release/disconnect failed: %s", self.meter.id, e)

    # ---- values -----------------------------------------------------------------------------
    @_typed_errors
    async def read_serial(self) -> str:
        await self._ready()
        return await self._serial()

    async def _serial(self) -> str:
        value = await self._get(GXDLMSData(cosem.SERIAL_OBIS), 2)
        if isinstance(value, (bytes, bytearray)):
            return bytes(value).decode("ascii", "replace").strip("\x00 ")
        if value is None:
            raise ProtocolError(f"{self.meter.id}: the meter returned no serial number")
        return str(value).strip()

    async def _scaler_unit(self, obis: str) -> tuple[int, int]:
        if obis not in self._scalers:
            value = await self._get(GXDLMSRegister(obis), 3)
            if not (
                isinstance(value, (list, tuple))
                and len(value) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            ):
                raise ProtocolError(
                    f"{self.meter.id}: scaler_unit of {obis} is {value!r}, not a structure of two"
                )
            self._scalers[obis] = (int(value[0]), int(value[1]))
        return self._scalers[obis]

    async def _register(self, obis: str, kind: Kind, when: datetime) -> Reading | None:
        try:
            scaler, unit = await self._scaler_unit(obis)
            raw = await self._get(GXDLMSRegister(obis), 2)
        except ProtocolError as e:
            if getattr(e, "dar", None) in (4, 11):  # object undefined/unavailable on this model
                return None
            raise
        value, name = cosem.scaled(_number(raw, obis), scaler, unit)
        return Reading(obis, kind, value, name, when)

    @_typed_errors
    async def read_registers(self) -> list[Reading]:
        await self._ready()
        when = await self._clock()
        out = []
        for q in cosem.ENERGY_QUANTITIES:
            for tariff in cosem.TARIFFS:
                r = await self._register(cosem.energy_obis(q, tariff), Kind.REGISTER, when)
                if r is not None:
                    out.append(r)
        return out

    @_typed_errors
    async def read_instant(self) -> list[Reading]:
        await self._ready()
        when = await self._clock()
        out = []
        for obis in cosem.INSTANT_OBIS:
            r = await self._register(obis, Kind.INSTANT, when)
            if r is not None:
                out.append(r)
        return out

    @_typed_errors
    async def read_clock(self) -> datetime:
        await self._ready()
        return await self._clock()

    async def _clock(self) -> datetime:
        value = await self._get(GXDLMSClock(cosem.CLOCK_OBIS), 2)
        raw = _octets(value, cosem.CLOCK_OBIS)
        when = cosem.decode_datetime(raw, self.tz)
        if when is None:
            raise ProtocolError(f"{self.meter.id}: the meter clock is not set (all fields unspecified)")
        return when

    @_typed_errors
    async def set_clock(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("set_clock needs an aware datetime")
        await self._ready()
        clock = GXDLMSClock(cosem.CLOCK_OBIS)
        # gurux writes the Blue Book deviation (UTC+3 -> -180); the meter's zone decides local time.
        clock.time = GXDateTime(when.astimezone(self.tz))
        await self._request(self.client.write(clock, 2))

    @_typed_errors
    async def relay(self, connect: bool) -> None:
        await self._ready()
        dc = GXDLMSDisconnectControl(cosem.DISCONNECT_OBIS)
        frames = dc.remoteReconnect(self.client) if connect else dc.remoteDisconnect(self.client)
        await self._request(frames)

    # ---- profile and journals ---------------------------------------------------------------
    async def _capture_objects(self, obis: str) -> GXDLMSProfileGeneric:
        pg = GXDLMSProfileGeneric(obis)
        value = await self._get(pg, 3)
        try:
            self.client.updateValue(pg, 3, value)
        except Exception as e:  # gurux fails in many ways on a malformed capture-object list
            raise ProtocolError(
                f"{self.meter.id}: capture objects of {obis} unreadable ({e}): {value!r}"
            ) from e
        if not pg.captureObjects:
            raise ProtocolError(f"{self.meter.id}: profile {obis} has no capture objects")
        return pg

    async def _rows_by_range(
        self, pg: GXDLMSProfileGeneric, start: datetime, end: datetime
    ) -> list[list[Any]]:
        reply = await self._request(
            self.client.readRowsByRange(
                pg, GXDateTime(start.astimezone(self.tz)), GXDateTime(end.astimezone(self.tz))
            )
        )
        rows = reply.value or []
        if not isinstance(rows, list):
            raise ProtocolError(f"{self.meter.id}: profile {pg.logicalName} buffer is {type(rows).__name__}")
        return rows

    @_typed_errors
    async def read_profile(self, start: datetime, end: datetime) -> list[Reading]:
        await self._ready()
        if self._profile is None:
            self._profile = await self._capture_objects(cosem.LOAD_PROFILE_OBIS)
        pg = self._profile
        period = await self._get(pg, 4)
        period_s = int(period) if isinstance(period, int) and period > 0 else None
        # register, extended register, demand register
        rows = await self._clocked_rows(pg, "load profile", start, end, lambda _ln, ot: ot in (cosem.REGISTER, 4, 5))
        out = []
        for raw_time, cells in rows:
            when = cosem.decode_datetime(raw_time, self.tz)
            if when is None or not (start <= when < end):
                continue
            for ln, raw in cells:
                value, unit = cosem.scaled(_number(raw, ln), *self._scalers[ln])
                out.append(Reading(ln, Kind.INTERVAL, value, unit, when, period_s))
        return out

    async def _clocked_rows(
        self, pg: GXDLMSProfileGeneric, what: str, start: datetime, end: datetime, keep: Callable[[str, int], bool]
    ) -> list[tuple[bytes, list[tuple[str, Any]]]]:
        """Rows of a clock-first profile by range, [start, end) (the selective range is inclusive
        at both ends): (raw capture time, [(column OBIS, raw value)] for the columns `keep`
        chooses, their scaler/unit cached in self._scalers; null cells left out)."""
        columns = [(obj.logicalName, int(obj.objectType)) for obj, _co in pg.captureObjects]
        if columns[0][0] != cosem.CLOCK_OBIS:
            raise ProtocolError(f"{self.meter.id}: {what}'s first column is {columns[0][0]}, not the clock")
        kept = set()
        for ln, ot in columns[1:]:
            if keep(ln, ot):
                await self._scaler_unit(ln)
                kept.add(ln)
        rows = await self._rows_by_range(pg, start, end - timedelta(seconds=1))
        out = []
        for row in rows:
            if not isinstance(row, (list, tuple)) or len(row) != len(columns):
                raise ProtocolError(f"{self.meter.id}: {what} row {row!r} does not match {len(columns)} columns")
            cells = [(ln, raw) for (ln, _ot), raw in zip(columns[1:], row[1:], strict=True)
                     if ln in kept and raw is not None]
            out.append((_octets(row[0], f"{what} clock"), cells))
        return out

    @_typed_errors
    async def read_archive(self, archive: str, start: datetime, end: datetime) -> list[Reading]:
        """Rows of the daily (1.0.98.2.0.255) or monthly (1.0.98.1.0.255) billing profile whose
        capture time is a boundary in [start, end): each cumulative register column as a
        Kind.REGISTER reading stamped with the boundary (00:00 meter time)."""
        obis = cosem.ARCHIVE_PROFILES.get(archive)
        if obis is None:
            raise Unsupported(f"{self.meter.id}: unknown archive {archive!r}; known: {', '.join(cosem.ARCHIVE_PROFILES)}")
        await self._ready()
        if obis not in self._archives:
            try:
                self._archives[obis] = await self._capture_objects(obis)
            except ProtocolError as e:
                if getattr(e, "dar", None) in (4, 11):
                    raise Unsupported(f"{self.meter.id}: the meter has no billing profile {obis}") from e
                raise
        pg = self._archives[obis]
        out = []
        for raw_time, cells in await self._clocked_rows(pg, f"billing profile {obis}", start, end, archive_column):
            local = cosem.decode_local_datetime(raw_time, self.tz)
            if local is None:
                continue
            boundary = cosem.archive_boundary(archive, local)
            if boundary is None:
                log.warning("%s: %s row captured at %s is not a %s boundary; skipped",
                            self.meter.id, obis, local.isoformat(), archive)
                continue
            when = boundary.astimezone(UTC)
            if not start <= when < end:
                continue
            for ln, raw in cells:
                value, unit = cosem.scaled(_number(raw, ln), *self._scalers[ln])
                out.append(Reading(ln, Kind.REGISTER, value, unit, when, archive=archive))
        return out

    @_typed_errors
    async def read_events(self, since: datetime | None) -> list[Reading]:
        """Entries of the СПОДЭС journals 0.0.99.98.0-7.255 at or after `since` (all if None);
        value = event code. Journals the meter does not have are skipped."""
        await self._ready()
        now = await self._clock()
        start = since or datetime(2000, 1, 1, tzinfo=UTC)
        out = []
        for journal in cosem.JOURNALS:
            if journal not in self._journals:
                try:
                    self._journals[journal] = await self._capture_objects(journal)
                except ProtocolError as e:
                    if getattr(e, "dar", None) in (4, 11):  # no such journal on this model
                        continue
                    raise
            pg = self._journals[journal]
            columns = [obj.logicalName for obj, _co in pg.captureObjects]
            time_col = columns.index(cosem.CLOCK_OBIS) if cosem.CLOCK_OBIS in columns else 0
            code_col = next((i for i, ln in enumerate(columns) if ln.startswith("0.0.96.11.")), 1)
            rows = await self._rows_by_range(pg, start, now + timedelta(days=1))
            for row in rows:
                if not isinstance(row, (list, tuple)) or len(row) <= max(time_col, code_col):
                    raise ProtocolError(
                        f"{self.meter.id}: journal {journal} row {row!r} does not match "
                        f"its capture objects {columns}"
                    )
                when = cosem.decode_datetime(_octets(row[time_col], journal), self.tz)
                if when is None or (since is not None and when < since):
                    continue
                out.append(Reading(journal, Kind.EVENT, _number(row[code_col], journal), "", when))
        out.sort(key=lambda r: r.meter_time or start)
        return out


# ---- helpers ------------------------------------------------------------------------------------
def archive_column(logical_name: str, class_id: int) -> bool:
    """A billing-profile column kept as a register: a cumulative (D = 8) Register or Extended
    Register. Maximum demand (1.0.1.6.0.255 in the monthly profile) and the like are not."""
    parts = logical_name.split(".")
    return class_id in (cosem.REGISTER, 4) and len(parts) == 6 and parts[3] == "8"


def _typed(e: Exception) -> DriverError:
    if isinstance(e, GXDLMSException) and getattr(e, "diagnostic", None) is not None:
        diag = int(e.diagnostic) if not isinstance(e.diagnostic, int) else e.diagnostic
        if diag in AUTH_DIAGNOSTICS:
            return AuthError(f"association refused: {e}".replace("\r\n", " "))
        return ProtocolError(f"association refused: {e}".replace("\r\n", " "))
    err = ProtocolError(f"meter answered with an error: {e}")
    code = getattr(e, "errorCode", None)
    if isinstance(code, int):
        err.dar = code  # type: ignore[attr-defined]
        if code == 3:
            return AuthError(f"access denied (read-write-denied) for this client: {e}")
    return err


def _int(value: Any) -> int:
    return int(value, 0) if isinstance(value, str) else int(value)


def _octets(value: Any, what: str) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise ProtocolError(f"{what}: expected a 12-octet date-time, got {type(value).__name__} {value!r}")


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"{what}: expected a number, got {type(value).__name__} {value!r}")
    return float(value)
