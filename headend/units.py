"""Units: the one canonical unit per resource and quantity, conversion into it, and
numbers as people read them («1 036,9 кВт·ч», «1,036.9 kWh»).

Canonical units (what every stored value, page, export and VEE threshold uses):
electricity kWh (active), kvarh (reactive), kVAh (apparent); water and gas m³; heat Гкал
(and m³ for a heat meter's volume register). The ingest converts a value into the
canonical unit of its resource and quantity (`convert`) and keeps the original value
and unit on the row; a unit that is unknown or wrong for the resource is refused with a
reason. Every factor and its source: docs/units.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

NBSP = "\u00a0"

# One international steam-table calorie (calIT) in joules: the calorie of the Гкал used for heat
# in Russia (ГОСТ 8.417-2002, annex; Fifth International Conference on the Properties of Steam, 1956).
CAL_J = 4.1868
_KWH_J = 3.6e6  # 1 kW·h = 1000 W × 3600 s, exactly


@dataclass(frozen=True)
class Quantity:
    """A physical quantity with its canonical unit and every accepted spelling → factor to it."""

    name: str
    canonical: str  # the code stored and exported (English)
    ru: str  # as operators read it
    en: str
    units: dict[str, float]


def _spell(factors: dict[tuple[str, ...], float]) -> dict[str, float]:
    return {s: f for spellings, f in factors.items() for s in spellings}


ACTIVE_ENERGY = Quantity("active_energy", "kWh", "кВт·ч", "kWh", _spell({
    ("Wh", "Вт·ч", "Вт*ч", "Втч"): 1e-3,
    ("kWh", "кВт·ч", "кВт*ч", "кВтч", "kW·h", "kW*h"): 1.0,
    ("MWh", "МВт·ч", "МВт*ч", "МВтч", "MW·h"): 1e3,
}))
REACTIVE_ENERGY = Quantity("reactive_energy", "kvarh", "квар·ч", "kvarh", _spell({
    ("varh", "вар·ч", "вар*ч"): 1e-3,
    ("kvarh", "kVArh", "kvar·h", "квар·ч", "квар*ч", "кварч"): 1.0,
    ("Mvarh", "Мвар·ч", "Мвар*ч"): 1e3,
}))
APPARENT_ENERGY = Quantity("apparent_energy", "kVAh", "кВА·ч", "kVAh", _spell({
    ("VAh", "ВА·ч"): 1e-3,
    ("kVAh", "кВА·ч", "кВА*ч"): 1.0,
    ("MVAh", "МВА·ч"): 1e3,
}))
# Heat energy in Гкал: joules per unit / joules per Гкал (10⁹ calIT).
_GCAL_J = 1e9 * CAL_J
HEAT_ENERGY = Quantity("heat_energy", "Gcal", "Гкал", "Gcal", _spell({
    ("Gcal", "Гкал", "GCal"): 1.0,
    ("Mcal", "Мкал", "MCal"): 1e-3,
    ("kcal", "ккал"): 1e-6,
    ("GJ", "ГДж"): 1e9 / _GCAL_J,
    ("MJ", "МДж"): 1e6 / _GCAL_J,
    ("kWh", "кВт·ч", "кВт*ч", "кВтч"): _KWH_J / _GCAL_J,
    ("MWh", "МВт·ч", "МВт*ч"): 1e3 * _KWH_J / _GCAL_J,
    ("Wh", "Вт·ч"): 1e-3 * _KWH_J / _GCAL_J,
}))
VOLUME = Quantity("volume", "m3", "м³", "m³", _spell({
    ("m3", "m³", "м3", "м³", "m^3", "cbm"): 1.0,
    ("l", "L", "л", "dm3", "дм3", "дм³", "litre", "liter"): 1e-3,
}))

# Instant values keep their own quantities: power, voltage, current, temperature, flow.
INSTANT_QUANTITIES: tuple[Quantity, ...] = (
    Quantity("power", "kW", "кВт", "kW", _spell({("W", "Вт"): 1e-3, ("kW", "кВт"): 1.0, ("MW", "МВт"): 1e3})),
    Quantity("reactive_power", "kvar", "квар", "kvar",
             _spell({("var", "вар"): 1e-3, ("kvar", "квар"): 1.0, ("Mvar", "Мвар"): 1e3})),
    Quantity("apparent_power", "kVA", "кВА", "kVA", _spell({("VA", "ВА"): 1e-3, ("kVA", "кВА"): 1.0})),
    Quantity("voltage", "V", "В", "V", _spell({("V", "В"): 1.0, ("kV", "кВ"): 1e3})),
    Quantity("current", "A", "А", "A", _spell({("A", "А"): 1.0, ("mA", "мА"): 1e-3, ("kA", "кА"): 1e3})),
    Quantity("frequency", "Hz", "Гц", "Hz", _spell({("Hz", "Гц"): 1.0})),
    Quantity("temperature", "°C", "°C", "°C", _spell({("°C", "degC", "℃", "C"): 1.0})),
    Quantity("temperature_difference", "K", "К", "K", _spell({("K", "К"): 1.0})),
    Quantity("flow", "m3/h", "м³/ч", "m³/h", _spell({
        ("m3/h", "m³/h", "м3/ч", "м³/ч"): 1.0, ("l/h", "л/ч"): 1e-3, ("l/min", "л/мин"): 0.06,
        ("m3/min", "m³/min"): 60.0, ("m3/s", "m³/s"): 3600.0})),
    Quantity("heat_power", "Gcal/h", "Гкал/ч", "Gcal/h", _spell({("Gcal/h", "Гкал/ч"): 1.0,
                                                             ("GJ/h", "ГДж/ч"): 1e9 / _GCAL_J})),
    Quantity("pressure", "bar", "бар", "bar", _spell({("bar", "бар"): 1.0, ("kPa", "кПа"): 0.01,
                                                      ("MPa", "МПа"): 10.0})),
    Quantity("ratio", "", "", "", _spell({("", "%", "1"): 1.0})),
)

RESOURCES = ("electricity", "cold_water", "hot_water", "heat", "gas")
# OBIS value group A is the medium (IEC 62056-61): what a meter the registry does not know yet measures.
MEDIA: dict[str, str] = {"1": "electricity", "6": "heat", "7": "gas", "8": "cold_water", "9": "hot_water"}
# Quantities a register or an interval of each resource may carry.
RESOURCE_QUANTITIES: dict[str, tuple[Quantity, ...]] = {
    "electricity": (ACTIVE_ENERGY, REACTIVE_ENERGY, APPARENT_ENERGY),
    "heat": (HEAT_ENERGY, VOLUME),
    "cold_water": (VOLUME,),
    "hot_water": (VOLUME,),
    "gas": (VOLUME,),
}
_RESOURCE_RU = {"electricity": "электроэнергии", "heat": "тепловой энергии", "cold_water": "холодной воды",
                "hot_water": "горячей воды", "gas": "газа"}
# OBIS group C of electricity registers and profiles (IEC 62056-61): which energy it counts.
_ELECTRIC_C: dict[str, Quantity] = {
    **{c: ACTIVE_ENERGY for c in ("1", "2", "15", "16", "21", "22", "41", "42", "61", "62")},
    **{c: REACTIVE_ENERGY for c in ("3", "4", "5", "6", "7", "8", "23", "24", "43", "44", "63", "64")},
    **{c: APPARENT_ENERGY for c in ("9", "10", "29", "30", "49", "50", "69", "70")},
}

# Heat meters (EN 13757-3 as mapped by the M-Bus driver, the Calec ST map): 6.0.1 energy, 6.0.2 volume.
_HEAT_C: dict[str, Quantity] = {"1": HEAT_ENERGY, "2": VOLUME}


class UnitError(ValueError):
    """A unit the head-end cannot store a value in: `reason` (English) and `reason_ru` say why and what fits."""

    def __init__(self, reason: str, reason_ru: str) -> None:
        super().__init__(reason)
        self.reason, self.reason_ru = reason, reason_ru


@dataclass(frozen=True, slots=True)
class Conversion:
    factor: float  # canonical = received × factor
    unit: str  # the canonical unit
    same: bool  # received in the canonical unit already (or a spelling of it): nothing to keep


def resource_of(resource: str | None, obis: str) -> str | None:
    """The registry's resource, or for a meter it does not know yet the OBIS medium."""
    if resource in RESOURCE_QUANTITIES:
        return resource
    return MEDIA.get(obis.split(".", 1)[0])


def _quantities(resource: str | None, obis: str, kind: str) -> tuple[Quantity, ...]:
    if kind == "instant":
        return INSTANT_QUANTITIES
    res = resource_of(resource, obis)
    if res is None:  # abstract or unknown medium, unknown meter: any energy or volume
        return (ACTIVE_ENERGY, REACTIVE_ENERGY, APPARENT_ENERGY, VOLUME)
    parts = obis.split(".")
    if len(parts) == 6:
        q = (_ELECTRIC_C.get(parts[2]) if res == "electricity" and parts[0] == "1"
             else _HEAT_C.get(parts[2]) if res == "heat" and parts[0] == "6" else None)
        if q is not None:
            return (q,)
    return RESOURCE_QUANTITIES[res]


@lru_cache(maxsize=4096)
def convert(resource: str | None, obis: str, kind: str, unit: str) -> Conversion:
    """How a value of `kind` on channel `obis` of a `resource` meter, sent in `unit`, becomes
    canonical. Raises UnitError for a unit that is unknown or wrong for the resource.
    Journal events carry a code, not a quantity: any unit passes unchanged."""
    if kind == "event":
        return Conversion(1.0, unit, True)
    text = unit.strip()
    allowed = _quantities(resource, obis, kind)
    for q in allowed:
        f = q.units.get(text)
        if f is not None:
            return Conversion(f, q.canonical, f == 1.0)
    res = resource_of(resource, obis)
    what = f"{kind} {obis}" + (f" of {'an' if res[0] in 'aeiou' else 'a'} {res.replace('_', ' ')} meter"
                               if res else "")
    fits = ", ".join(_examples(allowed))
    known = any(text in q.units for q in (*RESOURCE_QUANTITIES["electricity"], HEAT_ENERGY, VOLUME,
                                          *INSTANT_QUANTITIES))
    if known:
        return _raise(f"unit {unit!r} is not a unit of {what}; use {fits}",
                      f"единица «{unit}» не подходит для {_what_ru(kind, obis, res)}; допустимы: {fits}")
    return _raise(f"unit {unit!r} is unknown for {what}; use {fits}",
                  f"единица «{unit}» неизвестна ({_what_ru(kind, obis, res)}); допустимы: {fits}")


def _examples(quantities: tuple[Quantity, ...]) -> list[str]:
    """One spelling per unit: «Gcal, Mcal, kcal, GJ, MJ, kWh, MWh, Wh»."""
    out: list[str] = []
    for q in quantities:
        seen: set[float] = set()
        for s, f in q.units.items():
            if f not in seen and s.isascii() and s:
                seen.add(f)
                out.append(s)
    return list(dict.fromkeys(out))


def _what_ru(kind: str, obis: str, res: str | None) -> str:
    k = {"register": "показания", "interval": "интервала профиля", "instant": "мгновенного значения"}.get(kind, kind)
    return f"{k} {obis}" + (f" прибора учёта {_RESOURCE_RU[res]}" if res else "")


def _raise(en: str, ru: str) -> Conversion:
    raise UnitError(en, ru)


def canonical(resource: str | None, obis: str | None, kind: str = "register") -> Quantity | None:
    """The quantity (and so the canonical unit) of a channel, None when it is not one of energy or volume."""
    if obis is None:
        return RESOURCE_QUANTITIES.get(resource or "electricity", (ACTIVE_ENERGY,))[0]
    qs = _quantities(resource, obis, kind)
    return qs[0] if kind != "instant" else None


# ---- display -----------------------------------------------------------------------------------
# (Russian, English) unit of each resource's main registers
RESOURCE_UNITS: dict[str, tuple[str, str]] = {
    r: (qs[0].ru, qs[0].en) for r, qs in RESOURCE_QUANTITIES.items()
}
_VOLT = ("В", "V")


def unit(resource: str | None, obis: str | None, lang: str = "ru") -> str:
    """The unit of a channel as people read it: the canonical unit of its quantity
    (reactive energy and voltages by OBIS, else the resource's)."""
    i = 0 if lang == "ru" else 1
    parts = (obis or "").split(".")
    if len(parts) == 6 and parts[0] == "1" and parts[3] == "7" and parts[2] in ("32", "52", "72"):
        return _VOLT[i]
    q = canonical(resource if resource in RESOURCE_QUANTITIES else "electricity", obis) if len(parts) == 6 else None
    if q is not None:
        return q.ru if i == 0 else q.en
    return RESOURCE_UNITS.get(resource or "electricity", RESOURCE_UNITS["electricity"])[i]


def number(v: float | int | None, lang: str = "ru", places: int = 3) -> str:
    """1036.9 → «1 036,9» (ru: no-break space groups, decimal comma) or «1,036.9» (en)."""
    if v is None:
        return "—"
    text = f"{float(v):,.{places}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    if lang == "ru":
        text = text.replace(",", NBSP).replace(".", ",")
    return text


def amount(v: float | None, resource: str | None, obis: str | None = None, lang: str = "ru") -> str:
    """A number with its unit: «1 036,9 кВт·ч»."""
    return f"{number(v, lang)} {unit(resource, obis, lang)}"


def axis_top(v: float) -> float:
    """A round top for a chart axis at or above `v`: 0.37 → 0.5, 730 → 1000, 1 200 → 2 000."""
    if v <= 0:
        return 1.0
    exp = 10.0 ** (len(str(int(v))) if v >= 1 else 0)
    while exp / 10 >= v and exp > 1e-6:
        exp /= 10
    for f in (0.1, 0.2, 0.25, 0.5, 1.0):
        if v <= exp * f:
            return exp * f
    return exp
