"""Per-model parameter maps for IEC 62056-21 meters sold in Russia.

The protocol fixes the framing; each vendor names its parameters differently:
Энергомера uses five-letter names (ET0PE, VOLTA, DATE_…), НЕВА МТ uses OBIS codes
written as eight hex digits (0F0880FF = 15.8.128, all tariffs). Names, value
layouts and checksums below were taken from public captures of real meters
(tests/drivers/golden/iec62056_21/README.md lists them). The driver and the simulator
both read these maps.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from askue.drivers.base import Kind
from askue.drivers.errors import FrameError
from askue.drivers.iec62056_21.frames import Bcc


@dataclass(frozen=True, slots=True)
class Channel:
    """One R1 parameter and the OBIS code of each value it answers with ("" = ignore)."""

    name: str
    obis: tuple[str, ...]
    unit: str
    kind: Kind
    args: str = ""
    scale: float = 1.0  # meter unit -> reported unit (НЕВА power in W -> kW)
    fmt: str = "{:.3f}"  # how the meter writes a value (used by the simulator)


@dataclass(frozen=True, slots=True)
class Model:
    key: str
    title: str
    manufacturer: str  # identification prefix
    ident: str  # identification the simulator sends
    bcc: Bcc
    layout: str  # "repeat" | "continue" | "inline" (see frames.data_answer)
    value_sep: str | None  # НЕВА packs all tariffs into one value: "a,b,c"
    serial_param: str
    date_param: str
    date_format: str  # "wdmy" (ww.dd.mm.yy) | "ymd" (yymmdd)
    time_param: str
    time_format: str  # "hms:" (hh:mm:ss) | "hms" (hhmmss)
    energy: tuple[Channel, ...]
    instant: tuple[Channel, ...]
    password_required: bool  # reads refused until P1 was accepted
    default_password: str
    clock_correction: str | None  # parameter written with W1 to shift the clock by ±N s
    max_correction_s: int
    correction_needs_password: bool  # CTIME only after P1 was accepted
    error_code: str  # what the meter answers to an unknown parameter
    baud: int  # highest baud rate the meter offers in its identification
    three_phase: bool
    archive_scheme: str | None = None  # how it names its day/month-start values (archives.py); None: unknown


def _tariffs(prefix: str, n: int) -> tuple[str, ...]:
    return tuple(f"{prefix}.{t}.255" for t in range(n + 1))


_EKT_ENERGY = (Channel("ET0PE", _tariffs("1.0.1.8", 5), "kWh", Kind.REGISTER, fmt="{:.4f}"),)

_EKT_INSTANT_1PH = (
    Channel("VOLTA", ("1.0.32.7.0.255",), "V", Kind.INSTANT, fmt="{:.2f}"),
    Channel("CURRE", ("1.0.31.7.0.255",), "A", Kind.INSTANT, fmt="{:.3f}"),
    Channel("POWEP", ("1.0.1.7.0.255",), "kW", Kind.INSTANT, fmt="{:.4f}"),
    Channel("FREQU", ("1.0.14.7.0.255",), "Hz", Kind.INSTANT, fmt="{:.2f}"),
)
_EKT_INSTANT_3PH = (
    Channel("VOLTA", ("1.0.32.7.0.255", "1.0.52.7.0.255", "1.0.72.7.0.255"), "V", Kind.INSTANT, fmt="{:.3f}"),
    Channel("CURRE", ("1.0.31.7.0.255", "1.0.51.7.0.255", "1.0.71.7.0.255"), "A", Kind.INSTANT, fmt="{:.4f}"),
    Channel("POWEP", ("1.0.1.7.0.255",), "kW", Kind.INSTANT, fmt="{:.4f}"),
    # Active power per phase: POWPP in the СЕ301 captures of energomera-hass-mqtt and majordomo-energomera.
    Channel("POWPP", ("1.0.21.7.0.255", "1.0.41.7.0.255", "1.0.61.7.0.255"), "kW", Kind.INSTANT, fmt="{:.4f}"),
    Channel("FREQU", ("1.0.14.7.0.255",), "Hz", Kind.INSTANT, fmt="{:.2f}"),
)

_NEVA_ENERGY = (Channel("0F0880FF", _tariffs("1.0.1.8", 4), "kWh", Kind.REGISTER, fmt="{:09.2f}"),)
_NEVA_INSTANT_1PH = (
    Channel("0C0700FF", ("1.0.32.7.0.255",), "V", Kind.INSTANT, fmt="{:07.2f}"),
    Channel("0B0700FF", ("1.0.31.7.0.255",), "A", Kind.INSTANT, fmt="{:07.3f}"),
    Channel("100700FF", ("1.0.1.7.0.255",), "kW", Kind.INSTANT, scale=0.001, fmt="{:07.1f}"),
    Channel("0E0701FF", ("1.0.14.7.0.255",), "Hz", Kind.INSTANT, fmt="{:05.2f}"),
)
_NEVA_INSTANT_3PH = (
    Channel("200700FF", ("1.0.32.7.0.255",), "V", Kind.INSTANT, fmt="{:07.2f}"),
    Channel("340700FF", ("1.0.52.7.0.255",), "V", Kind.INSTANT, fmt="{:07.2f}"),
    Channel("480700FF", ("1.0.72.7.0.255",), "V", Kind.INSTANT, fmt="{:07.2f}"),
    Channel("1F0700FF", ("1.0.31.7.0.255",), "A", Kind.INSTANT, fmt="{:07.3f}"),
    Channel("330700FF", ("1.0.51.7.0.255",), "A", Kind.INSTANT, fmt="{:07.3f}"),
    Channel("470700FF", ("1.0.71.7.0.255",), "A", Kind.INSTANT, fmt="{:07.3f}"),
    Channel("100700FF", ("1.0.1.7.0.255",), "kW", Kind.INSTANT, scale=0.001, fmt="{:07.1f}"),
    # Active power per phase in W (wb-mqtt-serial config-neva-mt32x.json "P L1…L3", pyneva active_power_l1…l3).
    Channel("240700FF", ("1.0.21.7.0.255",), "kW", Kind.INSTANT, scale=0.001, fmt="{:07.1f}"),
    Channel("380700FF", ("1.0.41.7.0.255",), "kW", Kind.INSTANT, scale=0.001, fmt="{:07.1f}"),
    Channel("4C0700FF", ("1.0.61.7.0.255",), "kW", Kind.INSTANT, scale=0.001, fmt="{:07.1f}"),
    # Frequency is 0E0701FF on МТ 3xx too: wb-mqtt-serial's config-neva-mt32x.json and pyneva's
    # OBIS table (0E.07.01*FF) both read it there.
    Channel("0E0701FF", ("1.0.14.7.0.255",), "Hz", Kind.INSTANT, fmt="{:05.2f}"),
)

_EKT = dict(manufacturer="EKT", bcc=Bcc.SUM7, value_sep=None, serial_param="SNUMB", date_param="DATE_",
            date_format="wdmy", time_param="TIME_", time_format="hms:", energy=_EKT_ENERGY,
            password_required=False, default_password="777777", clock_correction="CTIME", max_correction_s=29,
            # Reads and CTIME work in programming mode without P1: captured СЕ301/СЕ102М sessions read
            # without a password, and the ESPHome reader (latonita/esphome-energomera-iec) corrects
            # СЕ102М/СЕ301/СЕ303 clocks with W1 CTIME(n) right after the P0 operand.
            correction_needs_password=False, error_code="ERR12", baud=9600)
_NEVA = dict(manufacturer="TPC", bcc=Bcc.XOR, layout="inline", value_sep=",", serial_param="600100FF",
             date_param="000902FF", date_format="ymd", time_param="000901FF", time_format="hms",
             energy=_NEVA_ENERGY, password_required=True, default_password="00000000", clock_correction=None,
             max_correction_s=0, correction_needs_password=True, error_code="01", baud=9600, archive_scheme="neva")

MODELS: dict[str, Model] = {
    m.key: m
    for m in (
        Model(key="ce102m", title="Энергомера СЕ102М", ident="CE102Mv01", layout="continue",
              instant=_EKT_INSTANT_1PH, three_phase=False, **_EKT),
        Model(key="ce301", title="Энергомера СЕ301", ident="CE301v12", layout="repeat",
              instant=_EKT_INSTANT_3PH, three_phase=True, archive_scheme="energomera", **_EKT),
        Model(key="ce303", title="Энергомера СЕ303", ident="CE303v11", layout="repeat",
              instant=_EKT_INSTANT_3PH, three_phase=True, archive_scheme="energomera", **_EKT),
        Model(key="neva-mt1", title="НЕВА МТ 1xx", ident="NEVAMT124.2307", instant=_NEVA_INSTANT_1PH,
              three_phase=False, **_NEVA),
        Model(key="neva-mt3", title="НЕВА МТ 3xx", ident="NEVAMT324.2307", instant=_NEVA_INSTANT_3PH,
              three_phase=True, **_NEVA),
    )
}


def model_for(key: str | None, manufacturer: str | None = None, ident: str | None = None) -> Model:
    """The configured model, or the one the identification message names."""
    if key:
        k = key.lower().replace("_", "-")
        if k in MODELS:
            return MODELS[k]
        raise KeyError(f"unknown IEC 62056-21 model {key!r}; known: {', '.join(sorted(MODELS))}")
    if manufacturer and ident:
        u = ident.upper()
        for prefix, k in (("CE102M", "ce102m"), ("CE301", "ce301"), ("CE303", "ce303"),
                          ("NEVAMT1", "neva-mt1"), ("NEVAMT3", "neva-mt3")):
            if u.startswith(prefix):
                return MODELS[k]
    raise KeyError(f"cannot tell the model from identification {manufacturer}/{ident}; set `model` "
                   f"({', '.join(sorted(MODELS))})")


# ---- date and time as the meters write them -------------------------------------------

def format_date(d: date, fmt: str) -> str:
    if fmt == "wdmy":
        return f"{d.isoweekday() % 7:02d}.{d.day:02d}.{d.month:02d}.{d.year % 100:02d}"
    return f"{d.year % 100:02d}{d.month:02d}{d.day:02d}"


def format_time(t: time, fmt: str) -> str:
    return f"{t.hour:02d}:{t.minute:02d}:{t.second:02d}" if fmt == "hms:" else f"{t.hour:02d}{t.minute:02d}{t.second:02d}"


def parse_date(s: str, fmt: str) -> date:
    try:
        if fmt == "wdmy":
            parts = s.split(".")
            if len(parts) != 4 or not 0 <= int(parts[0]) <= 7:
                raise ValueError
            _, dd, mm, yy = (int(p) for p in parts)
        else:
            if len(s) != 6 or not s.isdigit():
                raise ValueError
            yy, mm, dd = int(s[:2]), int(s[2:4]), int(s[4:])
        return date(2000 + yy, mm, dd)
    except ValueError:
        raise FrameError(f"meter date {s!r} is not in the {fmt} format") from None


def parse_time(s: str, fmt: str) -> time:
    try:
        if fmt == "hms:":
            parts = s.split(":")
            if len(parts) != 3:
                raise ValueError
            hh, mi, ss = (int(p) for p in parts)
        else:
            if len(s) != 6 or not s.isdigit():
                raise ValueError
            hh, mi, ss = int(s[:2]), int(s[2:4]), int(s[4:])
        return time(hh, mi, ss)
    except ValueError:
        raise FrameError(f"meter time {s!r} is not in the {fmt} format") from None


def local_tz(offset_min: int) -> timezone:
    # Russian meters keep standard local time; Russia has had no DST since 2014.
    return timezone(timedelta(minutes=offset_min))


def combine(d: date, t: time, tz: timezone) -> datetime:
    return datetime.combine(d, t, tzinfo=tz)


def parse_number(s: str, where: str) -> float:
    try:
        return float(s.strip())
    except ValueError:
        raise FrameError(f"{where}: value {s!r} is not a number") from None
