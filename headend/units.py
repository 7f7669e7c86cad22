"""Units and numbers as people read them: «1 036,9 кВт·ч», «1,036.9 kWh»."""
from __future__ import annotations

# (Russian, English) unit of each resource's main registers
RESOURCE_UNITS: dict[str, tuple[str, str]] = {
    "electricity": ("кВт·ч", "kWh"),
    "cold_water": ("м³", "m³"),
    "hot_water": ("м³", "m³"),
    "heat": ("Гкал", "Gcal"),
    "gas": ("м³", "m³"),
}
_REACTIVE = ("квар·ч", "kvarh")
_VOLT = ("В", "V")
NBSP = "\u00a0"


def unit(resource: str | None, obis: str | None, lang: str = "ru") -> str:
    """The unit of a channel: reactive energy and voltages by OBIS, else the resource's."""
    i = 0 if lang == "ru" else 1
    parts = (obis or "").split(".")
    if len(parts) == 6 and parts[0] == "1":
        if parts[2] in ("3", "4") and parts[3] in ("8", "29"):
            return _REACTIVE[i]
        if parts[3] == "7" and parts[2] in ("32", "52", "72"):
            return _VOLT[i]
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


_ENERGY = {"1": "A+", "2": "A−", "3": "R+", "4": "R−"}
_PHASE = {"32": "A", "52": "B", "72": "C", "31": "A", "51": "B", "71": "C"}
_VOLUMES = {"8.0.1.0.0.255": ("Объём ХВС", "Cold water volume"), "9.0.1.0.0.255": ("Объём ГВС", "Hot water volume"),
            "6.0.1.0.0.255": ("Тепловая энергия", "Heat energy"), "7.0.3.0.0.255": ("Объём газа", "Gas volume")}


def channel(obis: str | None, lang: str = "ru") -> str:
    """A channel as operators name it, never the raw OBIS code where a name is known:
    «A+ Общий», «A+ Т1», «R− Общий», «A+ профиль», «Напряжение фазы A», «Объём ХВС»."""
    en = lang == "en"
    if obis in _VOLUMES:
        return _VOLUMES[obis][en]
    p = (obis or "").split(".")
    if len(p) == 6 and p[0] == "1":
        if p[2] in _ENERGY and p[3] == "8":
            zone = ("Total" if en else "Общий") if p[4] == "0" else (f"T{p[4]}" if en else f"Т{p[4]}")
            return f"{_ENERGY[p[2]]} {zone}"
        if p[2] in _ENERGY and p[3] == "29":
            return f"{_ENERGY[p[2]]} {'profile' if en else 'профиль'}"
        if p[3] == "7" and p[2] in _PHASE:
            what = ("Voltage" if en else "Напряжение") if p[2].endswith("2") else ("Current" if en else "Ток")
            return f"{what} {'phase' if en else 'фазы'} {_PHASE[p[2]]}"
    return obis or ""
