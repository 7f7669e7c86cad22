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
