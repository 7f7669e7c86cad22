"""M-Bus data records -> askue Readings keyed by OBIS media codes (I/O-free).

Only the current values are mapped: storage 0, tariff 0, subunit 0, instantaneous function,
no VIF extension (a "per input pulse" volume is not the meter's register). The first record
of each quantity wins. Value group C follows the media codes of IEC 62056-61 / EN 13757-1:

| medium (M-Bus)                         | quantity              | OBIS                 | kind     | unit |
| cold water 0x16, water 0x07            | volume                | 8.0.1.0.0.255        | register | m3   |
|                                        | volume flow           | 8.0.2.0.0.255        | instant  | m3/h |
| warm water 0x06, hot water 0x15        | volume                | 9.0.1.0.0.255        | register | m3   |
|                                        | volume flow           | 9.0.2.0.0.255        | instant  | m3/h |
|                                        | flow temperature      | 9.0.3.0.0.255        | instant  | °C   |
| heat 0x04 (outlet), 0x0C (inlet), 0x0D | energy (Wh or J)      | 6.0.1.0.0.255        | register | GJ   |
|                                        | volume                | 6.0.2.0.0.255        | register | m3   |
|                                        | power                 | 6.0.8.0.0.255        | instant  | kW   |
|                                        | volume flow           | 6.0.9.0.0.255        | instant  | m3/h |
|                                        | flow temperature      | 6.0.10.0.0.255       | instant  | °C   |
|                                        | return temperature    | 6.0.11.0.0.255       | instant  | °C   |
|                                        | temperature difference| 6.0.12.0.0.255       | instant  | K    |

The meter time is the date/time record (type F, storage 0); a meter without one gives None.
"""
from __future__ import annotations

from datetime import UTC, datetime, timezone

from askue.drivers.base import Kind, Reading
from askue.drivers.errors import ProtocolError, Unsupported
from askue.drivers.mbus.frames import MBusConfigError, Record, Telegram

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


def _normalise(r: Record) -> tuple[str, float] | None:
    """(quantity key, value in askue units) for the records we map, None otherwise."""
    if not isinstance(r.value, float):
        return None
    v, u = r.value, r.unit
    if r.quantity in ("ENERGY_WH", "ENERGY_J"):
        return "ENERGY", v * 3.6e-6 if u == "WH" else v / 1e9
    if r.quantity == "VOLUME" and u == "M3":
        return "VOLUME", v
    if r.quantity in ("VOLUME_FLOW", "VOLUME_FLOW_EXT", "VOLUME_FLOW_EXT_S"):
        factor = {"M3_H": 1, "M3_MIN": 60, "M3_S": 3600}.get(u)
        return None if factor is None else ("FLOW", v * factor)
    if r.quantity in ("POWER_W", "POWER_J_H"):
        return "POWER", v / 1000 if u == "W" else v / 3.6e6
    if r.quantity in ("FLOW_TEMPERATURE", "RETURN_TEMPERATURE", "TEMPERATURE_DIFFERENCE"):
        return r.quantity, v
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
    for r in tel.records:
        if (r.quantity == "DATE_TIME_GENERAL" and r.storage == 0 and r.function == "INSTANTANEOUS_VALUE"
                and isinstance(r.value, datetime)):
            return r.value.replace(tzinfo=tz).astimezone(UTC)
    return None


def readings(tel: Telegram, tz: timezone, medium: str | None = None, resource: str | None = None) -> list[Reading]:
    media = media_of(tel, medium, resource)
    when = meter_time(tel, tz)
    seen: set[str] = set()
    out: list[Reading] = []
    for r in tel.records:
        if r.storage or r.tariff or r.subunit or r.function != "INSTANTANEOUS_VALUE" or r.extension:
            continue
        norm = _normalise(r)
        if norm is None or norm[0] in seen or (media, norm[0]) not in _MAP:
            continue
        seen.add(norm[0])
        c, kind, unit = _MAP[(media, norm[0])]
        out.append(Reading(f"{media}.0.{c}.0.0.255", kind, round(norm[1], 9), unit, when))
    return out
