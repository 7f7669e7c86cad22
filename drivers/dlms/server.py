"""The COSEM application of a simulated СПОДЭС meter: association (AARQ/AARE with the
low-level password), GET (normal, next, selective access by range and entry), SET of
the clock, ACTION on the disconnect control, release. One CosemServer per meter;
APDU in, APDU out, no I/O and no link layer (simulator.py adds HDLC and the wrapper).

Hand-written from IEC 62056-5-3/6-2 rather than with gurux: the driver uses gurux,
and a server from a second implementation catches mistakes a shared library would hide.

SimMeter only models A+; A- and R- are served as 0 (a consumer meter) and R+ as
A+ x tan(phi) (SimMeter.options["tan_phi"], 0.25).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from askue.drivers.dlms import axdr, cosem
from askue.drivers.dlms.address import CLIENT_PUBLIC, CLIENT_READER
from askue.drivers.errors import DriverError, FrameError
from askue.drivers.sim.meter import JournalEntry, SimMeter

LN_CONTEXT = bytes.fromhex("60857405080101")  # logical names, no ciphering
LLS_MECHANISM = bytes.fromhex("60857405080201")
# Conformance (IEC 62056-5-3 Table 24, 24 bits, bit n = 1 << (23 - n)) this server supports:
# priority-mgmt, block-transfer-with-get, get, set, selective-access, action.
SERVER_CONFORMANCE = 0x4000 | 0x1000 | 0x10 | 0x08 | 0x04 | 0x01

# Data-Access-Result codes.
SUCCESS, READ_WRITE_DENIED, OBJECT_UNDEFINED, OBJECT_UNAVAILABLE, TYPE_UNMATCHED = 0, 3, 4, 11, 12
OTHER_REASON = 250

PUBLIC_OBJECTS = {cosem.SERIAL_OBIS, cosem.CLOCK_OBIS, "0.0.42.0.0.255"}
ARCHIVE_OF = {obis: archive for archive, obis in cosem.ARCHIVE_PROFILES.items()}
PROFILES = (cosem.LOAD_PROFILE_OBIS, *ARCHIVE_OF)


class _Dar(Exception):
    def __init__(self, code: int):
        self.code = code


# ---- the COSEM application: one per meter and client association -----------------------------
@dataclass
class Association:
    client: int
    max_pdu: int
    pending: bytes = b""  # rest of a long GET answer, sent by GET-request-next
    block: int = 0
    invoke: int = 0


@dataclass
class CosemServer:
    meter: SimMeter
    associations: dict[int, Association] = field(default_factory=dict)
    # The clock as last served (to the hundredth the COSEM date-time carries): a Register has
    # no capture time, so a reader stamps its values with the clock it read just before.
    last_clock: datetime | None = None

    @property
    def opts(self) -> dict:
        return self.meter.options

    def handle(self, client: int, apdu: bytes) -> bytes:
        """One request APDU from `client` -> response APDU."""
        if not apdu:
            return _exception(1, 2)
        tag = apdu[0]
        try:
            if tag == 0x60:
                return self._aarq(client, apdu)
            if tag == 0x62:
                self.associations.pop(client, None)
                return bytes.fromhex("6303800100")  # RLRE, reason normal
            assoc = self.associations.get(client)
            if assoc is None:
                return _exception(1, 0)  # service not allowed: no association
            if tag == 0xC0:
                return self._get(assoc, apdu)
            if tag == 0xC1:
                return self._set(assoc, apdu)
            if tag == 0xC3:
                return self._action(assoc, apdu)
        except (IndexError, DriverError, ValueError):
            return _exception(2, 2)  # malformed request
        return _exception(2, 1)  # service unknown / not supported

    # -- association (AARQ/AARE, IEC 62056-5-3 §9.3.2) --
    def _aarq(self, client: int, apdu: bytes) -> bytes:
        fields = _ber_fields(apdu)
        context = _ber_fields_value(fields.get(0xA1, b""), 0x06)
        mechanism = fields.get(0x8B)
        auth = _ber_fields_value(fields.get(0xAC, b""), 0x80)
        initiate = _ber_fields_value(fields.get(0xBE, b""), 0x04)
        self.associations.pop(client, None)
        if context != LN_CONTEXT:
            return build_aare(False, 2, context or LN_CONTEXT)  # application context not supported
        if initiate is None or len(initiate) < 9 or initiate[0] != 0x01:
            return build_aare(False, 1)
        version, conformance, max_pdu = _parse_initiate(initiate)
        if version < 6:
            return build_aare(False, 1, user_info=bytes.fromhex("0e010601"))  # dlms-version-too-low
        if client == CLIENT_READER:
            if mechanism is None:
                return build_aare(False, 12)  # authentication mechanism name required
            if mechanism != LLS_MECHANISM:
                return build_aare(False, 11)  # mechanism not recognised (HLS is not offered)
            if auth is None or auth != self.meter.password.encode():
                self._journal_access_denied()
                return build_aare(False, 13)  # authentication failure
        elif client != CLIENT_PUBLIC:
            return build_aare(False, 1)
        negotiated = conformance & SERVER_CONFORMANCE
        limit = int(self.opts.get("max_pdu", 512))
        self.associations[client] = Association(client, max(64, min(max_pdu or 0xFFFF, limit)))
        return build_aare(True, 0, initiate_response=initiate_response(negotiated, limit))

    def _journal_access_denied(self) -> None:
        self.meter.journal.append(JournalEntry("0.0.99.98.6.255", self.meter.clock(), 1))

    # -- GET (normal and next) --
    def _get(self, assoc: Association, apdu: bytes) -> bytes:
        kind, invoke = apdu[1], apdu[2]
        if kind == 2:  # get-request-next
            block = int.from_bytes(apdu[3:7], "big")
            if not assoc.pending or block != assoc.block:
                assoc.pending = b""
                return bytes((0xC4, 0x01, invoke, 0x01, 14))  # data-block-unavailable
            return self._next_block(assoc, invoke)
        if kind != 1:
            return _exception(2, 1)
        class_id = int.from_bytes(apdu[3:5], "big")
        obis = cosem.obis_str(apdu[5:11])
        attr = apdu[11]
        selector, params = None, None
        if len(apdu) > 12 and apdu[12]:
            selector = apdu[13]
            params, _ = axdr.decode(apdu, 14)
        try:
            if assoc.client == CLIENT_PUBLIC and obis not in PUBLIC_OBJECTS:
                raise _Dar(READ_WRITE_DENIED)
            data = self._read(class_id, obis, attr, selector, params)
        except _Dar as e:
            return bytes((0xC4, 0x01, invoke, 0x01, e.code))
        whole = bytes((0xC4, 0x01, invoke, 0x00)) + data
        if len(whole) <= assoc.max_pdu:
            return whole
        assoc.pending, assoc.block, assoc.invoke = data, 0, invoke
        return self._next_block(assoc, invoke)

    def _next_block(self, assoc: Association, invoke: int) -> bytes:
        room = assoc.max_pdu - 14  # C4 02 id last block(4) choice length(<=3)
        chunk, assoc.pending = assoc.pending[:room], assoc.pending[room:]
        assoc.block += 1
        last = not assoc.pending
        return (
            bytes((0xC4, 0x02, invoke, 1 if last else 0))
            + assoc.block.to_bytes(4, "big")
            + b"\x00"
            + axdr.length(len(chunk))
            + chunk
        )

    def _read(self, class_id: int, obis: str, attr: int, selector: int | None, params: object) -> bytes:
        m = self.meter
        t = m.now()
        if obis == cosem.SERIAL_OBIS and class_id == cosem.DATA and attr == 2:
            serial = m.current_serial(t)
            m.record("identity", obis, None, 0.0)
            return axdr.octets(serial.encode("ascii"))
        if obis == "0.0.42.0.0.255" and class_id == cosem.DATA and attr == 2:
            return axdr.octets((m.model or "SIM").encode("ascii")[:16])
        if obis == cosem.CLOCK_OBIS and class_id == cosem.CLOCK:
            if attr == 2:
                now = m.clock(t)
                m.record("clock", obis, now, now.timestamp())
                self.last_clock = now.replace(microsecond=now.microsecond // 10000 * 10000)
                return axdr.octets(cosem.encode_datetime(now, m.local_tz))
            if attr == 3:
                off = m.local_tz.utcoffset(None) or timedelta(0)
                return axdr.integer(axdr.LONG, -int(off.total_seconds() // 60))
            if attr == 4:
                return axdr.integer(axdr.UNSIGNED, 0)
            raise _Dar(OBJECT_UNDEFINED)
        if obis == cosem.DISCONNECT_OBIS and class_id == cosem.DISCONNECT_CONTROL:
            if attr == 2:
                return axdr.boolean(m.relay_connected)
            if attr == 3:
                return axdr.integer(axdr.ENUM, 1 if m.relay_connected else 0)
            if attr == 4:
                return axdr.integer(axdr.ENUM, int(self.opts.get("control_mode", 1)))
            raise _Dar(OBJECT_UNDEFINED)
        reg = self._register(obis, t)
        if reg is not None and class_id == cosem.REGISTER:
            raw, scaler, unit, kind, value = reg
            if attr == 2:
                m.record(kind, obis, self.last_clock or m.clock(t), value)
                return raw
            if attr == 3:
                return axdr.structure(axdr.integer(axdr.INTEGER, scaler), axdr.integer(axdr.ENUM, unit))
            raise _Dar(OBJECT_UNDEFINED)
        if obis in (cosem.CT_RATIO_OBIS, cosem.VT_RATIO_OBIS) and class_id == cosem.DATA and attr == 2:
            ratio = self.opts.get("ct_ratio" if obis == cosem.CT_RATIO_OBIS else "vt_ratio", 1)
            if ratio is None:
                raise _Dar(OBJECT_UNDEFINED)  # a model without transformer ratios
            tag = axdr.LONG_UNSIGNED if int(ratio) < 1 << 16 else axdr.DOUBLE_LONG_UNSIGNED
            return axdr.integer(tag, int(ratio))
        if obis in ARCHIVE_OF and not self.opts.get("billing_profiles", True):
            raise _Dar(OBJECT_UNDEFINED)  # a model without daily/monthly profiles
        if class_id == cosem.PROFILE_GENERIC and (obis in PROFILES or obis in cosem.JOURNALS):
            return self._profile_attr(obis, attr, selector, params, t)
        raise _Dar(OBJECT_UNDEFINED)

    # -- registers --
    def _energy_scaler(self) -> int:
        return int(self.opts.get("energy_scaler", 0))

    def _register(self, obis: str, t: datetime) -> tuple[bytes, int, int, str, float] | None:
        """(encoded value, scaler, unit, record kind, value in platform units) or None."""
        p = obis.split(".")
        if p[0] == "1" and p[1] == "0" and p[3] == "8" and p[5] == "255":
            q, tariff = int(p[2]), int(p[4])
            if q not in cosem.ENERGY_QUANTITIES or tariff not in cosem.TARIFFS:
                return None
            kwh = self._energy(q, self.meter.registers(t).get(tariff, 0.0))
            return self._encode_energy(kwh, q) + ("register", kwh)
        if p[0] == "1" and p[1] == "0" and p[3] == "29" and p[4] == "0" and p[5] == "255":
            q = int(p[2])
            if q not in cosem.ENERGY_QUANTITIES:
                return None
            last = self.meter.profile(t - timedelta(seconds=self.meter.period_s), t)
            kwh = self._energy(q, last[-1][1] if last else 0.0)
            return self._encode_energy(kwh, q) + ("interval", kwh)
        if obis in cosem.INSTANT_OBIS:
            value = self.meter.instant(t)[obis]
            scaler, unit, raw_value = {
                "1.0.32.7.0.255": (-1, 35, value),  # V
                "1.0.31.7.0.255": (-3, 33, value),  # A
                "1.0.1.7.0.255": (0, 27, value * 1000),  # W (SimMeter gives kW)
                "1.0.14.7.0.255": (-2, 44, value),  # Hz
            }[obis]
            raw = round(raw_value / 10.0**scaler)
            served, _ = cosem.scaled(raw, scaler, unit)
            return axdr.integer(axdr.DOUBLE_LONG_UNSIGNED, raw), scaler, unit, "instant", served
        return None

    def _energy(self, quantity: int, a_plus_kwh: float) -> float:
        if quantity == 1:
            return a_plus_kwh
        if quantity == 3:
            return round(a_plus_kwh * float(self.opts.get("tan_phi", 0.25)), self.meter.decimals)
        return 0.0  # A- and R-: a consumer meter exports nothing

    def _encode_energy(self, kwh: float, quantity: int) -> tuple[bytes, int, int]:
        scaler = self._energy_scaler()
        unit = 30 if quantity in (1, 2) else 32  # Wh / varh
        raw = math.floor(kwh * 1000 / 10.0**scaler + 0.5)
        # A 7-digit register in Wh outgrows double-long-unsigned: such meters use long64-unsigned.
        tag = axdr.DOUBLE_LONG_UNSIGNED if raw < 1 << 32 else axdr.LONG64_UNSIGNED
        return axdr.integer(tag, raw), scaler, unit

    # -- profiles and journals (class 7) --
    def _columns(self, obis: str) -> list[tuple[int, str, int]]:
        if obis == cosem.LOAD_PROFILE_OBIS:
            return [(cosem.CLOCK, cosem.CLOCK_OBIS, 2)] + [
                (cosem.REGISTER, cosem.interval_obis(q), 2) for q in cosem.ENERGY_QUANTITIES
            ]
        if obis in ARCHIVE_OF:
            # The single-phase layout of the СПОДЭС object lists (DLMS_SPODES, KPZ M2M_1): per
            # quantity the tariffs 1-4, then the total.
            return [(cosem.CLOCK, cosem.CLOCK_OBIS, 2)] + [
                (cosem.REGISTER, cosem.energy_obis(q, t), 2)
                for q in cosem.ENERGY_QUANTITIES
                for t in (1, 2, 3, 4, 0)
            ]
        n = cosem.journal_number(obis)
        return [(cosem.CLOCK, cosem.CLOCK_OBIS, 2), (cosem.DATA, cosem.journal_code_obis(n), 2)]

    def _profile_attr(self, obis: str, attr: int, selector: int | None, params: object, t: datetime) -> bytes:
        m = self.meter
        if attr == 3:
            return axdr.array(
                [
                    axdr.structure(
                        axdr.integer(axdr.LONG_UNSIGNED, c),
                        axdr.octets(cosem.obis_bytes(o)),
                        axdr.integer(axdr.INTEGER, a),
                        axdr.integer(axdr.LONG_UNSIGNED, 0),
                    )
                    for c, o, a in self._columns(obis)
                ]
            )
        if attr == 4:
            period = {cosem.LOAD_PROFILE_OBIS: m.period_s, cosem.DAILY_PROFILE_OBIS: 86400}.get(obis, 0)
            return axdr.integer(axdr.DOUBLE_LONG_UNSIGNED, period)
        if attr in (7, 8):
            return axdr.integer(axdr.DOUBLE_LONG_UNSIGNED, len(self._rows(obis, None, None, t)))
        if attr != 2:
            raise _Dar(OBJECT_UNDEFINED)
        columns = self._columns(obis)
        start = end = None
        first_entry, last_entry, selected = 1, 0, list(range(len(columns)))
        if selector == 1:
            if not (
                isinstance(params, list)
                and len(params) == 4
                and isinstance(params[0], list)
                and isinstance(params[1], bytes)
                and isinstance(params[2], bytes)
            ):
                raise _Dar(TYPE_UNMATCHED)
            restricting = params[0]
            if len(restricting) != 4 or restricting[1] != cosem.obis_bytes(cosem.CLOCK_OBIS):
                raise _Dar(TYPE_UNMATCHED)  # only ranges of the clock column are kept
            start = cosem.decode_datetime(params[1], m.local_tz)
            end = cosem.decode_datetime(params[2], m.local_tz)
            selected = self._selected(columns, params[3])
        elif selector == 2:
            if not (
                isinstance(params, list) and len(params) == 4 and all(isinstance(x, int) for x in params)
            ):
                raise _Dar(TYPE_UNMATCHED)
            first_entry, last_entry = params[0], params[1]
            lo, hi = params[2], params[3]
            if lo or hi:
                selected = list(range(max(0, lo - 1), hi if hi else len(columns)))
        elif selector is not None:
            raise _Dar(TYPE_UNMATCHED)
        rows = self._rows(obis, start, end, t)
        if selector == 2:
            rows = rows[max(0, first_entry - 1) : (last_entry if last_entry else None)]
        out = []
        for when, values in rows:
            cells = [axdr.octets(cosem.encode_datetime(when, m.local_tz))]
            for i, ((_c, o, _a), (raw, kind, value)) in enumerate(zip(columns[1:], values, strict=True), 1):
                cells.append(raw)
                if i in selected:  # keep what was actually put on the line
                    m.record(kind, obis if kind == "event" else o, when, value)
            out.append(axdr.structure(*[cells[i] for i in selected]))
        return axdr.array(out)

    def _selected(self, columns: list[tuple[int, str, int]], wanted: object) -> list[int]:
        if not wanted:
            return list(range(len(columns)))
        if not isinstance(wanted, list):
            raise _Dar(TYPE_UNMATCHED)
        index = {o: i for i, (_c, o, _a) in enumerate(columns)}
        out = []
        for item in wanted:
            if not (isinstance(item, list) and len(item) == 4 and isinstance(item[1], bytes)):
                raise _Dar(TYPE_UNMATCHED)
            name = cosem.obis_str(item[1])
            if name not in index:
                raise _Dar(TYPE_UNMATCHED)
            out.append(index[name])
        return out

    def _rows(
        self, obis: str, start: datetime | None, end: datetime | None, t: datetime
    ) -> list[tuple[datetime, list[tuple[bytes, str, float]]]]:
        m = self.meter
        if obis == cosem.LOAD_PROFILE_OBIS:
            lo = start or datetime.min.replace(tzinfo=m.epoch.tzinfo)
            hi = (end or m.now()) + timedelta(microseconds=1)  # the range is inclusive
            rows = []
            for when, kwh in m.profile(lo, hi):
                cells = []
                for q in cosem.ENERGY_QUANTITIES:
                    value = self._energy(q, kwh)
                    raw, _s, _u = self._encode_energy(value, q)
                    cells.append((raw, "interval", value))
                rows.append((when, cells))
            return rows
        if obis in ARCHIVE_OF:
            return self._archive_rows(ARCHIVE_OF[obis], start, end, t)
        n = cosem.journal_number(obis)
        rows = []
        for entry in m.events(t):
            jn, code = spodes_event(entry)
            if jn != n or (start and entry.at < start) or (end and entry.at > end):
                continue
            rows.append((entry.at, [(axdr.integer(axdr.LONG_UNSIGNED, code), "event", float(code))]))
        rows.sort(key=lambda r: r[0])
        return rows

    def _archive_rows(
        self, archive: str, start: datetime | None, end: datetime | None, t: datetime
    ) -> list[tuple[datetime, list[tuple[bytes, str, float]]]]:
        """The registers at each day (month) start the meter saw since its memory began (the
        profile epoch), the newest `day_archive_depth` (`month_archive_depth`) of them."""
        m = self.meter
        first = m.clock(m.epoch)
        lo = max(start, first) if start else first
        hi = min(end + timedelta(microseconds=1), m.clock(t)) if end else m.clock(t)
        depth = int(self.opts.get(f"{archive.split('_')[0]}_archive_depth", 123 if archive == "day_start" else 39))
        everything = set(cosem.archive_boundaries(archive, first, m.clock(t), m.local_tz)[-depth:])
        rows = []
        for b in cosem.archive_boundaries(archive, lo, hi, m.local_tz):
            if b not in everything:
                continue  # overwritten in the meter's ring
            regs = m.registers(b - (m.clock(b) - b))  # when the meter's own clock showed b
            cells = []
            for q in cosem.ENERGY_QUANTITIES:
                for tariff in (1, 2, 3, 4, 0):
                    value = self._energy(q, regs.get(tariff, 0.0))
                    raw, _s, _u = self._encode_energy(value, q)
                    cells.append((raw, "register", value))
            rows.append((b.astimezone(UTC), cells))
        return rows

    # -- SET and ACTION --
    def _set(self, assoc: Association, apdu: bytes) -> bytes:
        kind, invoke = apdu[1], apdu[2]
        if kind != 1:
            return _exception(2, 1)
        class_id = int.from_bytes(apdu[3:5], "big")
        obis = cosem.obis_str(apdu[5:11])
        attr = apdu[11]
        if apdu[12]:
            return bytes((0xC5, 0x01, invoke, TYPE_UNMATCHED))
        value, _ = axdr.decode(apdu, 13)
        if not self._may_write(assoc):
            return bytes((0xC5, 0x01, invoke, READ_WRITE_DENIED))
        if obis == cosem.CLOCK_OBIS and class_id == cosem.CLOCK and attr == 2:
            if not isinstance(value, bytes):
                return bytes((0xC5, 0x01, invoke, TYPE_UNMATCHED))
            when = cosem.decode_datetime(value, self.meter.local_tz)
            if when is None:
                return bytes((0xC5, 0x01, invoke, TYPE_UNMATCHED))
            self.meter.set_clock(when)
            return bytes((0xC5, 0x01, invoke, SUCCESS))
        return bytes((0xC5, 0x01, invoke, READ_WRITE_DENIED if self._known(obis) else OBJECT_UNDEFINED))

    def _action(self, assoc: Association, apdu: bytes) -> bytes:
        kind, invoke = apdu[1], apdu[2]
        if kind != 1:
            return _exception(2, 1)
        class_id = int.from_bytes(apdu[3:5], "big")
        obis = cosem.obis_str(apdu[5:11])
        method = apdu[11]
        if not self._may_write(assoc):
            return bytes((0xC7, 0x01, invoke, READ_WRITE_DENIED, 0x00))
        if obis == cosem.DISCONNECT_OBIS and class_id == cosem.DISCONNECT_CONTROL and method in (1, 2):
            self.meter.set_relay(method == 2)
            return bytes((0xC7, 0x01, invoke, SUCCESS, 0x00))
        return bytes(
            (0xC7, 0x01, invoke, OBJECT_UNDEFINED if not self._known(obis) else OBJECT_UNAVAILABLE, 0x00)
        )

    def _may_write(self, assoc: Association) -> bool:
        return assoc.client == CLIENT_READER and bool(self.opts.get("reader_can_write", True))

    def _known(self, obis: str) -> bool:
        return (
            obis
            in (
                cosem.CLOCK_OBIS,
                cosem.SERIAL_OBIS,
                cosem.DISCONNECT_OBIS,
                *PROFILES,
                *cosem.JOURNALS,
                cosem.CT_RATIO_OBIS,
                cosem.VT_RATIO_OBIS,
            )
            or self._register(obis, self.meter.now()) is not None
        )


def spodes_event(entry: JournalEntry) -> tuple[int, int]:
    """(journal number, СПОДЭС code) of a SimMeter journal entry (SimMeter keeps СПОДЭС codes)."""
    return cosem.journal_number(entry.journal_obis), entry.code


# ---- APDU helpers ------------------------------------------------------------------------------
def _exception(state_error: int, service_error: int) -> bytes:
    return bytes((0xD8, state_error, service_error))


def _ber_fields(apdu: bytes) -> dict[int, bytes]:
    """Top-level fields of a BER-coded AARQ: tag -> content."""
    pos = 1
    total, pos = _ber_len(apdu, pos)
    end = min(len(apdu), pos + total)
    out: dict[int, bytes] = {}
    while pos < end:
        tag = apdu[pos]
        n, pos = _ber_len(apdu, pos + 1)
        if pos + n > end:
            raise FrameError("AARQ field runs past the APDU")
        out[tag] = apdu[pos : pos + n]
        pos += n
    return out


def _ber_len(buf: bytes, pos: int) -> tuple[int, int]:
    first = buf[pos]
    if first < 0x80:
        return first, pos + 1
    n = first & 0x7F
    return int.from_bytes(buf[pos + 1 : pos + 1 + n], "big"), pos + 1 + n


def _ber_fields_value(content: bytes, tag: int) -> bytes | None:
    """Content of the inner `tag` TLV of a constructed field (A1 06 …, AC 80 …, BE 04 …)."""
    if not content or content[0] != tag:
        return None
    n, pos = _ber_len(content, 1)
    return content[pos : pos + n]


def _parse_initiate(ini: bytes) -> tuple[int, int, int]:
    """(dlms version, proposed conformance, client max receive PDU) of an xDLMS InitiateRequest."""
    pos = 1
    if ini[pos]:  # dedicated key present
        pos += 2 + ini[pos + 1]
    else:
        pos += 1
    pos += 2 if ini[pos] else 1  # response-allowed
    pos += 2 if ini[pos] else 1  # proposed quality of service
    version = ini[pos]
    pos += 1
    if ini[pos : pos + 2] != b"\x5f\x1f" or ini[pos + 2] != 4:
        raise FrameError("InitiateRequest without conformance block")
    conformance = int.from_bytes(ini[pos + 4 : pos + 7], "big")
    max_pdu = int.from_bytes(ini[pos + 7 : pos + 9], "big")
    return version, conformance, max_pdu


def initiate_response(conformance: int, max_pdu: int) -> bytes:
    return (
        bytes((0x08, 0x00, 0x06, 0x5F, 0x1F, 0x04, 0x00))
        + conformance.to_bytes(3, "big")
        + max_pdu.to_bytes(2, "big")
        + b"\x00\x07"
    )


def build_aare(
    accepted: bool,
    diagnostic: int,
    context: bytes = LN_CONTEXT,
    initiate_response: bytes | None = None,
    user_info: bytes | None = None,
) -> bytes:
    body = bytes((0xA1, len(context) + 2, 0x06, len(context))) + context
    body += bytes((0xA2, 0x03, 0x02, 0x01, 0 if accepted else 1))
    body += bytes((0xA3, 0x05, 0xA1, 0x03, 0x02, 0x01, diagnostic))
    info = initiate_response if initiate_response is not None else user_info
    if info is not None:
        body += bytes((0xBE, len(info) + 2, 0x04, len(info))) + info
    return bytes((0x61, len(body))) + body
