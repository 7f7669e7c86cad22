"""АО «АТС» XML class 80020, version 2: half-hour energy per measuring point and day.

Pure codec: `render(message) -> bytes` (windows-1251) and `parse(data) -> Message`
with validation that reports every problem by element path. `build_message` turns
half-hour series keyed by UTC start time into a message for one local day.
What was assumed about the format is written down in docs/billing.md.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from .errors import Collector, ExportFormatError, IncompleteDataError, Issue
from .numbers import format_decimal, inn_problem, parse_decimal

FORMAT = "80020"
VERSION = "2"
HALF_HOUR = timedelta(minutes=30)
MAX_BYTES = 50 * 1024 * 1024

# measuringchannel code -> (interval OBIS in the DB, description written to the file)
CHANNELS: dict[str, tuple[str, str]] = {
    "01": ("1.0.1.29.0.255", "Активная энергия, прием"),
    "02": ("1.0.2.29.0.255", "Активная энергия, отдача"),
    "03": ("1.0.3.29.0.255", "Реактивная энергия, прием"),
    "04": ("1.0.4.29.0.255", "Реактивная энергия, отдача"),
}
OBIS_TO_CHANNEL = {obis: code for code, (obis, _) in CHANNELS.items()}

# status attribute of <value>: 0 commercial (actual) data, 1 not commercial
# (estimated, substituted or entered by hand). Quality flags map onto it.
STATUS_OK, STATUS_NOT_COMMERCIAL = 0, 1
_HHMM = re.compile(r"^([01]\d|2[0-3])([0-5]\d)$")
_TIMESTAMP = re.compile(r"^\d{14}$")
_DAY = re.compile(r"^\d{8}$")
_FILE_NAME = re.compile(r"^80020_(\d{10}|\d{12})_(\d{8})_(\d{1,12})\.xml$", re.IGNORECASE)


@dataclass
class Period:
    start: str  # local HHMM, "0000"
    end: str  # local HHMM, "0030"; the last period of a day ends at "0000"
    value: Decimal
    status: int | None = STATUS_OK
    summer: int | None = None  # only written on days with a clock change


@dataclass
class Channel:
    code: str  # "01".."04"
    periods: list[Period]
    desc: str | None = None


@dataclass
class MeasuringPoint:
    code: str
    name: str
    channels: list[Channel]


@dataclass
class Area:
    inn: str
    name: str
    points: list[MeasuringPoint]
    timezone: str | None = "1"


@dataclass
class Message:
    number: int
    timestamp: datetime  # local wall-clock time the file was made
    day: date
    sender_inn: str
    sender_name: str
    areas: list[Area]
    daylightsavingtime: int = 0


def file_name(inn: str, day: date, number: int) -> str:
    return f"80020_{inn}_{day:%Y%m%d}_{number}.xml"


def parse_file_name(name: str) -> tuple[str, date, int]:
    """(sender INN, day, number) from `80020_<INN>_<YYYYMMDD>_<number>.xml`."""
    m = _FILE_NAME.match(name.rsplit("/", 1)[-1])
    if not m:
        raise ExportFormatError(FORMAT, [_issue("file name", f"«{name}» does not follow the 80020 naming",
                                                "name it 80020_<INN>_<YYYYMMDD>_<number>.xml")])
    try:
        day = datetime.strptime(m.group(2), "%Y%m%d").date()
    except ValueError:
        raise ExportFormatError(FORMAT, [_issue("file name", f"{m.group(2)} is not a date",
                                                "use YYYYMMDD")]) from None
    return m.group(1), day, int(m.group(3))


def _issue(where: str, what: str, fix: str) -> Issue:
    return Issue(where, what, fix)


# ---------------------------------------------------------------------------- time


def day_slots(day: date, tz: ZoneInfo) -> list[tuple[datetime, str, str, int | None]]:
    """Half-hour slots of a local day: (UTC start, HHMM start, HHMM end, summer flag).

    Stepping in UTC keeps a clock-change day right (46 or 50 slots); `summer` is set
    only on such days so ordinary files carry no extra attribute.
    """
    start = datetime.combine(day, time(0), tz).astimezone(UTC)
    stop = datetime.combine(day + timedelta(days=1), time(0), tz).astimezone(UTC)
    changes = start.astimezone(tz).utcoffset() != stop.astimezone(tz).utcoffset()
    slots = []
    t = start
    while t < stop:
        a, b = t.astimezone(tz), (t + HALF_HOUR).astimezone(tz)
        summer = (1 if a.dst() else 0) if changes else None
        slots.append((t, f"{a:%H%M}", f"{b:%H%M}", summer))
        t += HALF_HOUR
    return slots


@dataclass
class PointSpec:
    """A metering point as it appears in 80020: its configured code and name, and
    the series per channel code (UTC slot start -> (value, status))."""

    code: str
    name: str
    series: Mapping[str, Mapping[datetime, tuple[Decimal, int]]] = field(default_factory=dict)


@dataclass
class AreaSpec:
    inn: str
    name: str
    points: list[PointSpec]
    timezone: str | None = "1"


def build_message(*, day: date, tz: ZoneInfo, number: int, sender_inn: str, sender_name: str,
                  areas: list[AreaSpec], now: datetime | None = None, allow_incomplete: bool = False) -> Message:
    """One day's message. Every channel must have a value for every slot: a missing
    half-hour raises IncompleteDataError (80020 has no "missing" marker and billing
    must not receive an invented zero) unless `allow_incomplete` drops such channels."""
    for inn in [sender_inn] + [a.inn for a in areas]:
        if (p := inn_problem(inn)) is not None:
            raise ValueError(p)
    slots = day_slots(day, tz)
    now_local = (now or datetime.now(UTC)).astimezone(tz)
    out_areas = []
    missing: list[str] = []
    for a in areas:
        points = []
        for p in a.points:
            channels = []
            for code in sorted(p.series):
                if code not in CHANNELS:
                    raise ValueError(f"measuring channel {code!r} is not one of {sorted(CHANNELS)}")
                data = p.series[code]
                periods = []
                gap = [f"{p.code}/{code}/{s}" for t, s, _, _ in slots if t not in data]
                if gap:
                    missing += gap
                    continue
                for t, s, e, summer in slots:
                    value, status = data[t]
                    periods.append(Period(s, e, Decimal(value), status, summer))
                channels.append(Channel(code, periods, CHANNELS[code][1]))
            if channels:
                points.append(MeasuringPoint(p.code, p.name, channels))
        out_areas.append(Area(a.inn, a.name, points, a.timezone))
    if missing and not allow_incomplete:
        raise IncompleteDataError(f"80020 for {day:%Y-%m-%d}", missing)
    return Message(number=number, timestamp=now_local.replace(tzinfo=None, microsecond=0), day=day,
                   sender_inn=sender_inn, sender_name=sender_name, areas=out_areas,
                   daylightsavingtime=1 if now_local.dst() else 0)


# ---------------------------------------------------------------------------- render


def render(msg: Message) -> bytes:
    root = ET.Element("message", {"class": FORMAT, "version": VERSION, "number": str(msg.number)})
    dt = ET.SubElement(root, "datetime")
    ET.SubElement(dt, "timestamp").text = f"{msg.timestamp:%Y%m%d%H%M%S}"
    ET.SubElement(dt, "daylightsavingtime").text = str(msg.daylightsavingtime)
    ET.SubElement(dt, "day").text = f"{msg.day:%Y%m%d}"
    sender = ET.SubElement(root, "sender")
    ET.SubElement(sender, "inn").text = msg.sender_inn
    ET.SubElement(sender, "name").text = msg.sender_name
    for a in msg.areas:
        area = ET.SubElement(root, "area", {"timezone": a.timezone} if a.timezone is not None else {})
        ET.SubElement(area, "inn").text = a.inn
        ET.SubElement(area, "name").text = a.name
        for p in a.points:
            mp = ET.SubElement(area, "measuringpoint", {"code": p.code, "name": p.name})
            for c in p.channels:
                attrs = {"code": c.code}
                if c.desc:
                    attrs["desc"] = c.desc
                ch = ET.SubElement(mp, "measuringchannel", attrs)
                for per in c.periods:
                    pattrs = {"start": per.start, "end": per.end}
                    if per.summer is not None:
                        pattrs["summer"] = str(per.summer)
                    pe = ET.SubElement(ch, "period", pattrs)
                    v = ET.SubElement(pe, "value", {"status": str(per.status)} if per.status is not None else {})
                    v.text = format_decimal(per.value)
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    # characters outside windows-1251 become numeric references, which every XML reader takes
    return b'<?xml version="1.0" encoding="windows-1251"?>\n' + body.encode("cp1251", "xmlcharrefreplace") + b"\n"


# ---------------------------------------------------------------------------- parse


def _text(el: ET.Element | None) -> str | None:
    if el is None:
        return None
    return (el.text or "").strip()


def _only(parent: ET.Element, tag: str, path: str, col: Collector, required: bool = True) -> ET.Element | None:
    found = parent.findall(tag)
    if not found:
        if required:
            col.add(f"{path}/{tag}", "element missing", f"add <{tag}> inside <{parent.tag}>")
        return None
    if len(found) > 1:
        col.add(f"{path}/{tag}", f"{len(found)} <{tag}> elements, one expected", "keep only one")
    return found[0]


def _parse_xml(data: bytes, col: Collector) -> ET.Element | None:
    if len(data) > MAX_BYTES:
        col.add("file", f"{len(data)} bytes is too large for one day's 80020", "split the file per day")
        return None
    head = data[:4096].upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
        col.add("file", "DTD/entity declarations are not allowed in 80020", "remove the <!DOCTYPE …> part")
        return None
    try:
        return ET.fromstring(data)
    except ET.ParseError as e:
        line, column = getattr(e, "position", (0, 0))
        col.add(f"line {line}, column {column}", f"not well-formed XML ({e})",
                "fix the XML syntax; the file must be XML in windows-1251 as declared in its header")
    except (LookupError, ValueError) as e:  # unknown encoding in the declaration
        col.add("file", f"cannot decode the file ({e})", 'declare encoding="windows-1251" and save in it')
    return None


def parse(data: bytes, *, tz: ZoneInfo | None = None, require_full_day: bool = True) -> Message:
    """Parse and validate an 80020 v2 file. Raises ExportFormatError listing all problems.

    `tz` (default Europe/Moscow) decides how many half-hours the day has.
    """
    tz = tz or ZoneInfo("Europe/Moscow")
    col = Collector()
    root = _parse_xml(data, col)
    if root is None:
        raise ExportFormatError(FORMAT, col.issues)
    if root.tag != "message":
        raise ExportFormatError(FORMAT, [_issue(root.tag, "root element is not <message>",
                                                'the file must start with <message class="80020" version="2" …>')])
    path = "message"
    cls, ver, num = root.get("class"), root.get("version"), root.get("number")
    if cls != FORMAT:
        col.add(f"{path}/@class", f"class is {cls!r}, not 80020", "this importer reads class 80020 only")
    if ver != VERSION:
        col.add(f"{path}/@version", f"version {ver!r} is not supported", 'export the file as version="2"')
    number = 0
    if num is None or not num.isascii() or not num.isdigit() or len(num) > 12:
        col.add(f"{path}/@number", f"number {num!r} is not a whole number", "set number to the file's sequence number")
    else:
        number = int(num)
    if col:  # anything else would be guessing at a different format
        raise ExportFormatError(FORMAT, col.issues)

    timestamp, day, dst = datetime(1970, 1, 1), date(1970, 1, 1), 0
    dt = _only(root, "datetime", path, col)
    if dt is not None:
        ts = _text(_only(dt, "timestamp", f"{path}/datetime", col))
        if ts is not None:
            try:
                if not _TIMESTAMP.match(ts):
                    raise ValueError
                timestamp = datetime.strptime(ts, "%Y%m%d%H%M%S")
            except ValueError:
                col.add(f"{path}/datetime/timestamp", f"«{ts[:30]}» is not YYYYMMDDHHMMSS", "e.g. 20240131235959")
        d = _text(_only(dt, "day", f"{path}/datetime", col))
        if d is not None:
            try:
                if not _DAY.match(d):
                    raise ValueError
                day = datetime.strptime(d, "%Y%m%d").date()
            except ValueError:
                col.add(f"{path}/datetime/day", f"«{d[:30]}» is not YYYYMMDD", "the day the data is for, e.g. 20240131")
        s = _text(_only(dt, "daylightsavingtime", f"{path}/datetime", col, required=False))
        if s is not None:
            if s in ("0", "1"):
                dst = int(s)
            else:
                col.add(f"{path}/datetime/daylightsavingtime", f"«{s[:10]}» is not 0 or 1", "0 winter/no DST, 1 summer")

    sender_inn, sender_name = "", ""
    snd = _only(root, "sender", path, col)
    if snd is not None:
        sender_inn = _text(_only(snd, "inn", f"{path}/sender", col)) or ""
        if (p := inn_problem(sender_inn)) is not None:
            col.add(f"{path}/sender/inn", p, "put the sender's INN")
        sender_name = _text(_only(snd, "name", f"{path}/sender", col, required=False)) or ""

    areas: list[Area] = []
    area_els = root.findall("area")
    if not area_els:
        col.add(f"{path}/area", "no <area> element", "add an <area> with <inn>, <name> and measuring points")
    slots = [(st, en, sm) for _, st, en, sm in day_slots(day, tz)]
    for ai, ael in enumerate(area_els, 1):
        ap = f"{path}/area[{ai}]"
        inn = _text(_only(ael, "inn", ap, col)) or ""
        if (p := inn_problem(inn)) is not None:
            col.add(f"{ap}/inn", p, "put the area owner's INN")
        name = _text(_only(ael, "name", ap, col, required=False)) or ""
        points: list[MeasuringPoint] = []
        seen_points: set[str] = set()
        for pi, pel in enumerate(ael.findall("measuringpoint"), 1):
            pp = f"{ap}/measuringpoint[{pi}]"
            code = (pel.get("code") or "").strip()
            if not code or len(code) > 64 or any(c.isspace() for c in code):
                col.add(f"{pp}/@code", f"measuring point code {code[:70]!r} is empty, too long or has spaces",
                        "set the code the receiver registered for this point")
            elif code in seen_points:
                col.add(f"{pp}/@code", f"measuring point {code} appears twice in this area", "merge the two")
            seen_points.add(code)
            pp = f"{ap}/measuringpoint[@code={code!r}]" if code else pp
            channels: list[Channel] = []
            seen_ch: set[str] = set()
            for ci, cel in enumerate(pel.findall("measuringchannel"), 1):
                cp = f"{pp}/measuringchannel[{ci}]"
                ccode = (cel.get("code") or "").strip()
                if ccode not in CHANNELS:
                    col.add(f"{cp}/@code", f"channel code {ccode[:10]!r} is not 01, 02, 03 or 04",
                            "01 A+ (import), 02 A− (export), 03 R+, 04 R−")
                elif ccode in seen_ch:
                    col.add(f"{cp}/@code", f"channel {ccode} appears twice", "merge the two channels")
                seen_ch.add(ccode)
                cp = f"{pp}/measuringchannel[@code={ccode!r}]"
                periods = _parse_periods(cel, cp, col, slots, require_full_day)
                channels.append(Channel(ccode, periods, cel.get("desc")))
                if col.full:
                    break
            if not channels:
                col.add(pp, "measuring point without measuring channels", "add <measuringchannel> elements or drop it")
            points.append(MeasuringPoint(code, pel.get("name") or "", channels))
            if col.full:
                break
        areas.append(Area(inn, name, points, ael.get("timezone")))
    if col:
        raise ExportFormatError(FORMAT, col.issues)
    return Message(number=number, timestamp=timestamp, day=day, sender_inn=sender_inn, sender_name=sender_name,
                   areas=areas, daylightsavingtime=dst)


def _parse_periods(cel: ET.Element, cp: str, col: Collector, slots: list[tuple[str, str, int | None]],
                   require_full_day: bool) -> list[Period]:
    periods: list[Period] = []
    allowed: dict[tuple[str, str], int] = {}
    for pair in ((st, en) for st, en, _ in slots):  # a clock-back night repeats one half-hour
        allowed[pair] = allowed.get(pair, 0) + 1
    used: dict[tuple[str, str], int] = {}
    for qi, pel in enumerate(cel.findall("period"), 1):
        start, end = pel.get("start") or "", pel.get("end") or ""
        qp = f"{cp}/period[{qi}]"
        bad = False
        for attr, v in (("start", start), ("end", end)):
            if not _HHMM.match(v) and not (attr == "end" and v == "2400"):
                col.add(f"{qp}/@{attr}", f"«{v[:10]}» is not a time HHMM", 'e.g. start="0030" end="0100"')
                bad = True
        if bad:
            continue
        if end == "2400":  # some senders write the day's end this way
            end = "0000"
        qp = f"{cp}/period[@start={start!r}]"
        pair = (start, end)
        if pair not in allowed:
            col.add(qp, f"{start}–{end} is not a half-hour of this day",
                    "periods are 30 minutes: 0000–0030 … 2330–0000")
            continue
        used[pair] = used.get(pair, 0) + 1
        if used[pair] > allowed[pair]:
            col.add(qp, f"period {start}–{end} appears twice", "keep one value per half-hour")
            continue
        summer_raw = pel.get("summer")
        summer = None
        if summer_raw is not None:
            if summer_raw in ("0", "1"):
                summer = int(summer_raw)
            else:
                col.add(f"{qp}/@summer", f"«{summer_raw[:10]}» is not 0 or 1", "use 0 or 1")
        vel = pel.findall("value")
        if len(vel) != 1:
            col.add(f"{qp}/value", f"{len(vel)} <value> elements, one expected", "give each period exactly one <value>")
            continue
        raw = (vel[0].text or "").strip()
        try:
            value = parse_decimal(raw)
            if value < 0:
                raise ValueError(f"{raw} is negative")
        except ValueError as e:
            col.add(f"{qp}/value", f"value {e}", "write the half-hour energy as a non-negative number, e.g. 12.5")
            continue
        st_raw = vel[0].get("status")
        status: int | None = None
        if st_raw is not None:
            if st_raw.strip() in ("0", "1"):
                status = int(st_raw)
            else:
                col.add(f"{qp}/value/@status", f"status «{st_raw[:10]}» is not 0 or 1",
                        "0 commercial (measured) data, 1 not commercial (estimated or substituted)")
                continue
        periods.append(Period(start, end, value, status, summer))
    order: dict[tuple[str, str, int | None], int] = {}
    for i, (st, en, sm) in enumerate(slots):
        order.setdefault((st, en, sm), i)
        order.setdefault((st, en, None), i)
    # stable: without a summer flag the repeated half-hour keeps the file's order
    periods.sort(key=lambda p: order.get((p.start, p.end, p.summer), order[(p.start, p.end, None)]))
    lacking = [s for (s, e), n in allowed.items() if used.get((s, e), 0) < n]
    if require_full_day and lacking and not col.full:
        shown = ", ".join(lacking[:6]) + ("…" if len(lacking) > 6 else "")
        col.add(cp, f"{len(lacking)} half-hour(s) missing: {shown}", f"give all {len(slots)} periods of the day")
    return periods


def slot_start_utc(day: date, start: str, tz: ZoneInfo, summer: int | None = None) -> datetime:
    """UTC start of the half-hour `start` (HHMM) of local `day`; `summer` picks the
    first or second occurrence on the night the clock goes back."""
    for t, s, _, sm in day_slots(day, tz):
        if s == start and (summer is None or sm is None or sm == summer):
            return t
    raise ValueError(f"{start} is not a half-hour of {day}")
