"""One checker per registry field, shared by the API, the pages, the file import and the
CLI: each turns what a person typed (or a cell) into the stored value, or raises
`Invalid(field, …)` saying what is wrong and how to write it (English and Russian).

`collect` runs several checks and reports every bad field at once.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from askue.headend import units
from askue.headend.errors import Invalid

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_NORM_RE = re.compile(r"[\s_.,:;№#()\-]+")

RESOURCES = {
    "electricity": "electricity", "электроэнергия": "electricity", "электричество": "electricity", "ээ": "electricity",
    "cold_water": "cold_water", "хвс": "cold_water", "холодная вода": "cold_water", "хвс/вода": "cold_water",
    "hot_water": "hot_water", "гвс": "hot_water", "горячая вода": "hot_water",
    "heat": "heat", "тепло": "heat", "отопление": "heat", "тепловая энергия": "heat",
    "gas": "gas", "газ": "gas",
}
ORG_KINDS = {"uk": "uk", "ук": "uk", "tsj": "tsj", "тсж": "tsj", "snt": "snt", "снт": "snt", "grid": "grid",
             "сетевая компания": "grid", "retailer": "retailer", "энергосбыт": "retailer", "other": "other"}
SITE_KINDS = {"house": "house", "дом": "house", "substation": "substation", "тп": "substation",
              "подстанция": "substation", "feeder": "feeder", "фидер": "feeder", "other": "other"}
STATUSES = {"active": "active", "активен": "active", "в работе": "active", "decommissioned": "decommissioned",
            "снят": "decommissioned", "демонтирован": "decommissioned"}


def norm(text: Any) -> str:
    return _NORM_RE.sub(" ", str(text).strip().lower().replace("ё", "е")).strip()


_RESOURCES = {norm(k): v for k, v in RESOURCES.items()}
_ORG_KINDS = {norm(k): v for k, v in ORG_KINDS.items()}
_SITE_KINDS = {norm(k): v for k, v in SITE_KINDS.items()}
_STATUSES = {norm(k): v for k, v in STATUSES.items()}


def text(field: str, v: Any, max_len: int = 200) -> str | None:
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    s = str(v).strip()
    if "\x00" in s:
        raise Invalid(field, "a NUL character is not allowed", "недопустимый символ NUL")
    if len(s) > max_len:
        raise Invalid(field, f"at most {max_len} characters", f"не более {max_len} символов")
    return s or None


def code(field: str, v: Any, required: bool = True) -> str | None:
    s = text(field, v, 64)
    if s is None:
        if required:
            raise Invalid(field, f"{field} is required", f"{field}: обязательное поле")
        return None
    if not CODE_RE.match(s):
        raise Invalid(field, f"{s!r} is not a valid code (letters, digits, _ . : -, at most 64, "
                             "starting with a letter or digit)",
                      f"«{s}» — недопустимый код (латинские буквы, цифры, _ . : -, до 64 символов)")
    return s


def number(field: str, v: Any) -> float | None:
    """A finite number; a string may use a decimal comma and spaces between digit groups."""
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    if isinstance(v, bool):
        raise Invalid(field, f"{v!r} is not a number", f"«{v}» — не число")
    if isinstance(v, int | float):
        n = float(v)
    else:
        s = str(v).strip().replace("\u00a0", "").replace(" ", "").replace(",", ".")
        try:
            n = float(s)
        except ValueError:
            raise Invalid(field, f"{str(v)!r} is not a number", f"«{v}» — не число") from None
    if not math.isfinite(n):
        raise Invalid(field, f"{v!r} is not a finite number", f"«{v}» — не конечное число")
    return n


def positive(field: str, v: Any) -> float | None:
    n = number(field, v)
    if n is not None and n <= 0:
        raise Invalid(field, f"{field} {n:g} must be positive", f"{field}: {n:g} — должно быть больше 0")
    return n


def whole(field: str, v: Any, lo: int, hi: int) -> int | None:
    n = number(field, v)
    if n is None:
        return None
    if n != int(n):
        raise Invalid(field, f"{v!r} is not a whole number", f"«{v}» — не целое число")
    if not lo <= n <= hi:
        what = field.replace("_", " ")
        raise Invalid(field, f"{n:g} {what} is out of range {lo}..{hi}", f"{n:g} — вне диапазона {lo}…{hi}")
    return int(n)


def reading(field: str, v: Any) -> float:
    """A register reading: a finite number, not negative, required."""
    n = number(field, v)
    if n is None:
        raise Invalid(field, "a reading is required", "укажите показание")
    if n < 0:
        raise Invalid(field, f"a register reading is not negative, got {n:g}",
                      f"показание не может быть отрицательным ({n:g})")
    return n


def latitude(field: str, v: Any) -> float | None:
    n = number(field, v)
    if n is not None and not -90 <= n <= 90:
        raise Invalid(field, f"latitude {n:g} is out of range -90..90",
                      f"широта {n:g} вне диапазона −90…90")
    return n


def longitude(field: str, v: Any) -> float | None:
    n = number(field, v)
    if n is not None and not -180 <= n <= 180:
        raise Invalid(field, f"longitude {n:g} is out of range -180..180",
                      f"долгота {n:g} вне диапазона −180…180")
    return n


def day(field: str, v: Any) -> date | None:
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    s = str(v).strip()
    for fmt in ("%Y-%m-%d", "%d.%m.%Y", "%d.%m.%y", "%d/%m/%Y"):
        try:
            return datetime.strptime(s, fmt).date()
        except ValueError:
            pass
    raise Invalid(field, f"{s!r} is not a date (use YYYY-MM-DD or DD.MM.YYYY)",
                  f"«{s}» — не дата (ГГГГ-ММ-ДД или ДД.ММ.ГГГГ)")


def moment(field: str, v: Any, tz: Any) -> datetime | None:
    """A date and time; without an offset it is local time of the head-end's time zone."""
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    if isinstance(v, datetime):
        t = v
    else:
        s = str(v).strip().replace(" ", "T", 1) if "T" not in str(v) else str(v).strip()
        t = None
        for fmt in ("%d.%m.%YT%H:%M", "%d.%m.%YT%H:%M:%S"):
            try:
                t = datetime.strptime(s, fmt)
            except ValueError:
                pass
        if t is None:
            try:
                t = datetime.fromisoformat(s)
            except ValueError:
                raise Invalid(field, f"{str(v)!r} is not a date and time (use 2026-03-15T10:30 or "
                                     "15.03.2026 10:30)",
                              f"«{v}» — не дата и время (ГГГГ-ММ-ДДTЧЧ:ММ или ДД.ММ.ГГГГ ЧЧ:ММ)") from None
    return t.replace(tzinfo=tz) if t.tzinfo is None else t


def flag(field: str, v: Any) -> bool | None:
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "да", "д", "+", "x", "одпу", "1.0", "on"):
        return True
    if s in ("0", "false", "no", "нет", "н", "-", "0.0", "off"):
        return False
    raise Invalid(field, f"{v!r} is not yes/no", f"«{v}» — ожидается да/нет")


def _choice(table: dict[str, str], what_en: str, what_ru: str, hint: str) -> Callable[[str, Any], str | None]:
    def check(field: str, v: Any) -> str | None:
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        got = table.get(norm(v))
        if got is None:
            raise Invalid(field, f"{v!r} is not {what_en}; use {hint}", f"«{v}» — не {what_ru}; допустимо: {hint}")
        return got
    return check


resource = _choice(_RESOURCES, "a resource", "ресурс", "electricity/cold_water/hot_water/heat/gas "
                                                         "(электроэнергия, ХВС, ГВС, тепло, газ)")
org_kind = _choice(_ORG_KINDS, "an organisation kind", "тип организации", "УК, ТСЖ, СНТ, grid, retailer")
site_kind = _choice(_SITE_KINDS, "a site kind", "тип объекта", "house, substation, feeder (дом, ТП, фидер)")
status = _choice(_STATUSES, "a status", "состояние", "active/decommissioned (в работе/снят)")


def email(field: str, v: Any) -> str | None:
    s = text(field, v)
    if s and ("@" not in s or " " in s):
        raise Invalid(field, f"{s!r} is not an e-mail address", f"«{s}» — не адрес e-mail")
    return s


def meter_unit(field: str, v: Any, resource_: str | None) -> str | None:
    """The unit a meter's registers show (its display): one `units` knows for the resource."""
    s = text(field, v, 20)
    if s is None:
        return None
    qs = units.RESOURCE_QUANTITIES.get(resource_ or "", ())
    if qs and not any(s in q.units for q in qs):
        fits = ", ".join(dict.fromkeys(u for q in qs for u in q.units if u.isascii() and u))
        raise Invalid(field, f"{s!r} is not a unit of {resource_}; use {fits}",
                      f"«{s}» не подходит для ресурса; допустимы: {fits}")
    return s


def collect(data: Mapping[str, Any], checks: Mapping[str, Callable[[str, Any], Any]]) -> dict[str, Any]:
    """Run `checks` on the fields of `data` that are present; every bad field in one Invalid
    (the first as its field, all of them in `errors`)."""
    out: dict[str, Any] = {}
    errors: list[Invalid] = []
    unknown = [k for k in data if k not in checks]
    for k in unknown:
        errors.append(Invalid(k, f"{k}: unknown field; known: {', '.join(checks)}",
                              f"{k}: неизвестное поле; допустимы: {', '.join(checks)}"))
    for k, check in checks.items():
        if k in data:
            try:
                out[k] = check(k, data[k])
            except Invalid as e:
                errors.append(e)
    if errors:
        raise combined(errors)
    return out


def combined(errors: list[Invalid]) -> Invalid:
    """One error for several fields: `field` is the first, `errors` lists each; the messages
    name their fields."""
    first = errors[0]
    if len(errors) == 1:
        return first
    def named(e: Invalid, text: str) -> str:
        return text if text.startswith(e.field) else f"{e.field}: {text}"

    return Invalid(first.field, "; ".join(named(e, e.message) for e in errors),
                   "; ".join(named(e, e.message_ru) for e in errors),
                   errors=[{"field": e.field, "message": e.message, "message_ru": e.message_ru} for e in errors])
