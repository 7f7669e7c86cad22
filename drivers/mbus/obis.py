"""M-Bus data records -> askue Readings keyed by OBIS media codes (I/O-free).

Only the current values are mapped: storage 0, tariff 0, subunit 0, instantaneous function,
no combinable VIFE (a "per input pulse" volume is not the meter's register), except heat
energy counted as "accumulation of positive contributions" (VIFE 0x3B) when the meter has no
plain energy record. The first record of each quantity wins. Energy in Wh or J (primary VIF)
and in MWh or GJ (first extension table, VIF 0xFB) all come out in GJ. Value group C follows
the media codes of IEC 62056-61 / EN 13757-1:

| medium (M-Bus)                         | quantity              | OBIS                 | kind     | unit |
| cold water 0x16, water 0x07            | volume                | 8.0.1.0.0.255        | register | m3   |
|                                        | volume flow           | 8.0.2.0.0.255        | instant  | m3/h |
| warm water 0x06, hot water 0x15        | volume                | 9.0.1.0.0.255        | register | m3   |
|                                        | volume flow           | 9.0.2.0.0.255        | instant  | m3/h |
|                                        | flow temperature      | 9.0.3.0.0.255        | instant  | °C   |
| heat 0x04 (outlet), 0x0C (inlet), 0x0D | energy (any unit)     | 6.0.1.0.0.255        | register | GJ   |
|                                        | volume                | 6.0.2.0.0.255        | register | m3   |
|                                        | power                 | 6.0.8.0.0.255        | instant  | kW   |
|                                        | volume flow           | 6.0.9.0.0.255        | instant  | m3/h |
|                                        | flow temperature      | 6.0.10.0.0.255       | instant  | °C   |
|                                        | return temperature    | 6.0.11.0.0.255       | instant  | °C   |
|                                        | temperature difference| 6.0.12.0.0.255       | instant  | K    |

The meter time is the date/time record (type F or I, storage 0); a meter without one gives
None. A date/time the meter marks invalid also gives None, and every reading then carries the
reason "meter_time_invalid".
"""
from __future__ import annotations

from datetime import UTC, datetime, timezone

from askue.drivers.base import Kind, Reading
from askue.drivers.errors import ProtocolError, Unsupported
from askue.drivers.mbus.frames import MBusConfigError, Telegram
from askue.drivers.mbus.records import Record, first_date

MEDIA_BY_MEDIUM = {0x16: 8, 0x07: 8, 0x06: 9, 0x15: 9, 0x04: 6, 0x0C: 6, 0x0D: 6}
MEDIA_BY_NAME = {"cold_water": 8, "hot_water": 9, "heat": 6}

# (media, quantity) -> (C group, kind, unit)
_MAP: dict[tuple[int, str], tuple[int, Kind, str]] = {
    (8, "VOLUME"): (1, Kind.REGISTER, "m3"),
    (8, "FLOW"): (2, Kind.INSTANT, "m3/h"),
    (9, "VOLUME"): (1, Kind.REGISTER, "m3"),
    (9, "FLOW"): (2, Kind.INSTANT, "m3/h"),
    (9, "FLOW_TEMPERATURE"): (3, Kind.INSTANT, "°C"),
    (6, "ENERGY"): (1, Kind.REGISTER, "GJ"),
    (6, "VOLUME"): (2, Kind.REGISTER, "m3"),
    (6, "POWER"): (8, Kind.INSTANT, "kW"),
    (6, "FLOW"): (9, Kind.INSTANT, "m3/h"),
    (6, "FLOW_TEMPERATURE"): (10, Kind.INSTANT, "°C"),
    (6, "RETURN_TEMPERATURE"): (11, Kind.INSTANT, "°C"),
    (6, "TEMPERATURE_DIFFERENCE"): (12, Kind.INSTANT, "K"),
}


# Qualifiers a register may carry and still be the meter's register: a heat meter that counts
# heating and cooling apart (Sensus PolluStat, EDC) has no plain energy record; its heat
# register is the accumulation of positive contributions (VIFE 0x3B). Cooling (0x3C) is not heat.
_ALSO_ACCEPTED = {"ENERGY": frozenset({"accumulation_positive"})}


def _normalise(r: Record) -> tuple[str, float] | None:
    """(quantity key, value in askue units) for the records we map, None otherwise."""
    if not isinstance(r.value, int | float) or isinstance(r.value, bool):
        return None
    v, u, q = float(r.value), r.unit, r.quantity
    if q == "energy":
        factor = {"Wh": 3.6e-6, "J": 1e-9}.get(u)
        return None if factor is None else ("ENERGY", v * factor)
    if q == "volume" and u == "m3":
        return "VOLUME", v
    if q == "volume_flow":
        factor = {"m3/h": 1, "m3/min": 60, "m3/s": 3600}.get(u)
        return None if factor is None else ("FLOW", v * factor)
    if q == "power":
        factor = {"W": 1e-3, "J/h": 1 / 3.6e6}.get(u)
        return None if factor is None else ("POWER", v * factor)
    if q in ("flow_temperature", "return_temperature") and u == "°C":
        return q.upper(), v
    if q == "temperature_difference" and u == "K":
        return "TEMPERATURE_DIFFERENCE", v
    return None


# Medium bytes that do not say cold or hot: the configured resource decides.
AMBIGUOUS_MEDIA = {0x00, 0x07}


def media_of(tel: Telegram, override: str | None = None, resource: str | None = None) -> int:
    """OBIS media group for this telegram. `override` (options.medium) wins; otherwise the
    medium byte, checked against the configured `resource` where both are known."""
    if override:
        if override not in MEDIA_BY_NAME:
            raise MBusConfigError(f"options.medium must be one of {', '.join(MEDIA_BY_NAME)}, got {override!r}")
        return MEDIA_BY_NAME[override]
    expected = MEDIA_BY_NAME.get(resource or "")
    if tel.header.medium in AMBIGUOUS_MEDIA and expected is not None:
        return expected
    media = MEDIA_BY_MEDIUM.get(tel.header.medium)
    if media is None:
        raise Unsupported(f"M-Bus meter {tel.header.ident}: medium {tel.header.medium_name} is not water or heat; "
                          "set options.medium (cold_water, hot_water, heat) if it is one")
    if expected is not None and expected != media:
        raise ProtocolError(f"M-Bus meter {tel.header.ident} reports medium {tel.header.medium_name}, but it is "
                            f"configured as {resource}; fix the config or set options.medium to override")
    return media


def meter_time(tel: Telegram, tz: timezone) -> datetime | None:
    return clock(tel, tz)[0]


def clock(tel: Telegram, tz: timezone) -> tuple[datetime | None, str | None]:
    """The meter's date and time (type F/I, local time -> UTC) and, when the meter sends a
    date/time record it marks invalid (IV bit: clock not set, e.g. after a battery change) or
    one that is not a date, the reason "meter_time_invalid"."""
    rec = first_date(tel.records)
    if rec is None:
        return None, None
    if not isinstance(rec.value, datetime):
        return None, "meter_time_invalid"
    return rec.value.replace(tzinfo=tz).astimezone(UTC), None


def readings(tel: Telegram, tz: timezone, medium: str | None = None, resource: str | None = None) -> list[Reading]:
    media = media_of(tel, medium, resource)
    when, why = clock(tel, tz)
    reasons = (why,) if why else ()
    chosen: dict[str, tuple[int, float]] = {}  # quantity key -> (rank, value); plain records rank first
    for r in tel.records:
        if r.storage or r.tariff or r.subunit or r.function != "instantaneous":
            continue
        norm = _normalise(r)
        if norm is None or (media, norm[0]) not in _MAP:
            continue
        if not r.extensions:
            rank = 0
        elif set(r.extensions) <= _ALSO_ACCEPTED.get(norm[0], frozenset()):
            rank = 1
        else:
            continue  # per input pulse, limit values, dates of events…: not the quantity itself
        if norm[0] not in chosen or rank < chosen[norm[0]][0]:
            chosen[norm[0]] = (rank, norm[1])
    out: list[Reading] = []
    for key, (_rank, value) in sorted(chosen.items(), key=lambda kv: _MAP[(media, kv[0])][0]):
        c, kind, unit = _MAP[(media, key)]
        out.append(Reading(f"{media}.0.{c}.0.0.255", kind, round(value, 9), unit, when, reasons=reasons))
    return out
