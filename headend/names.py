"""What people call things: every page, export, event sentence and API description
names channels, tariffs, resources, qualities, sources, statuses and time zones here.

A channel is an OBIS code on the wire and in the database; an operator reads «A+ Общий»,
«A+ Т1 (день)», «R− Т2», «Объём ХВС», «Напряжение L1». Tariff zones read as in the
Квант-Энерго cabinet: «Общий тариф», «Тариф 1». Zone meanings (день/ночь, пик/полупик)
follow the usual Russian tariff schedules (two zones: Т1 день, Т2 ночь; three zones:
Т1 пик, Т2 ночь, Т3 полупик); a meter programmed otherwise still reads «Т1», «Т2»
correctly, only the hint in brackets would be off, so the hint is given only when the
meter's number of zones is known.
"""
from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

from askue.drivers.dlms.cosem import JOURNAL_TITLES

Pair = tuple[str, str]


def pick(pair: Pair, lang: str) -> str:
    return pair[1] if lang == "en" else pair[0]


RESOURCES: dict[str, Pair] = {
    "electricity": ("Электроэнергия", "Electricity"), "cold_water": ("Холодная вода", "Cold water"),
    "hot_water": ("Горячая вода", "Hot water"), "heat": ("Тепловая энергия", "Heat"), "gas": ("Газ", "Gas"),
    "unknown": ("Ресурс не указан", "Resource not set"),
}
# Energy quantities (OBIS value group C of electricity): what the cabinet calls A+, A−, R+, R−.
ENERGY: dict[int, Pair] = {1: ("A+", "A+"), 2: ("A−", "A−"), 3: ("R+", "R+"), 4: ("R−", "R−"),
                           9: ("S+", "S+"), 10: ("S−", "S−"), 15: ("|A|", "|A|")}
ENERGY_MEANING: dict[int, Pair] = {
    1: ("активная энергия, приём", "active energy, import"), 2: ("активная энергия, отдача", "active energy, export"),
    3: ("реактивная энергия, приём", "reactive energy, import"),
    4: ("реактивная энергия, отдача", "reactive energy, export"),
    9: ("полная энергия, приём", "apparent energy, import"), 10: ("полная энергия, отдача", "apparent energy, export"),
    15: ("активная энергия по модулю", "absolute active energy"),
}
PHASE = {21: 1, 41: 2, 61: 3, 31: 1, 51: 2, 71: 3, 32: 1, 52: 2, 72: 3, 23: 1, 43: 2, 63: 3, 33: 1, 53: 2, 73: 3}
# Instantaneous electrical quantities by value group C (IEC 62056-61).
INSTANT: dict[int, Pair] = {
    1: ("Активная мощность", "Active power"), 2: ("Активная мощность, отдача", "Active power, export"),
    3: ("Реактивная мощность", "Reactive power"), 4: ("Реактивная мощность, отдача", "Reactive power, export"),
    9: ("Полная мощность", "Apparent power"), 11: ("Ток", "Current"), 12: ("Напряжение", "Voltage"),
    13: ("Коэффициент мощности", "Power factor"), 14: ("Частота сети", "Mains frequency"),
    21: ("Активная мощность", "Active power"), 41: ("Активная мощность", "Active power"),
    61: ("Активная мощность", "Active power"), 23: ("Реактивная мощность", "Reactive power"),
    43: ("Реактивная мощность", "Reactive power"), 63: ("Реактивная мощность", "Reactive power"),
    31: ("Ток", "Current"), 51: ("Ток", "Current"), 71: ("Ток", "Current"),
    32: ("Напряжение", "Voltage"), 52: ("Напряжение", "Voltage"), 72: ("Напряжение", "Voltage"),
    33: ("Коэффициент мощности", "Power factor"), 53: ("Коэффициент мощности", "Power factor"),
    73: ("Коэффициент мощности", "Power factor"),
}
# Water, heat and gas media (value group A) and their quantities (value group C).
MEDIA: dict[tuple[int, int], Pair] = {
    (8, 1): ("Объём ХВС", "Cold water volume"), (8, 2): ("Расход ХВС", "Cold water flow"),
    (9, 1): ("Объём ГВС", "Hot water volume"), (9, 2): ("Расход ГВС", "Hot water flow"),
    (9, 3): ("Температура ГВС", "Hot water temperature"),
    (6, 1): ("Тепловая энергия", "Heat energy"), (6, 2): ("Объём теплоносителя", "Heat carrier volume"),
    (6, 8): ("Тепловая мощность", "Heat power"), (6, 9): ("Расход теплоносителя", "Heat carrier flow"),
    (6, 10): ("Температура подачи", "Flow temperature"), (6, 11): ("Температура обратки", "Return temperature"),
    (6, 12): ("Разность температур", "Temperature difference"),
    (7, 3): ("Объём газа", "Gas volume"), (7, 1): ("Объём газа", "Gas volume"),
}
MEDIA_NAMES: dict[int, Pair] = {8: ("ХВС", "cold water"), 9: ("ГВС", "hot water"), 6: ("тепло", "heat"),
                                7: ("газ", "gas")}
ABSTRACT: dict[str, Pair] = {
    "0.0.1.0.0.255": ("Часы счётчика", "Meter clock"), "0.0.96.1.0.255": ("Заводской номер", "Serial number"),
    "0.0.96.3.10.255": ("Реле нагрузки", "Load relay"), "0.0.42.0.0.255": ("Логическое имя", "Logical device name"),
    "1.0.0.4.2.255": ("Коэффициент трансформации тока", "CT ratio"),
    "1.0.0.4.3.255": ("Коэффициент трансформации напряжения", "VT ratio"),
    "1.0.99.1.0.255": ("Профиль мощности", "Load profile"),
    "1.0.98.1.0.255": ("Показания на начало месяца", "Month-start readings"),
    "1.0.98.2.0.255": ("Показания на начало суток", "Day-start readings"),
}
# Two and three zone schedules as Russian retailers bill them.
ZONE_HINTS: dict[int, dict[int, Pair]] = {
    2: {1: ("день", "day"), 2: ("ночь", "night")},
    3: {1: ("пик", "peak"), 2: ("ночь", "night"), 3: ("полупик", "semi-peak")},
}
QUALITY: dict[str, Pair] = {"A": ("фактическое", "actual"), "E": ("расчётное", "estimated"),
                            "S": ("замещённое", "substituted"), "M": ("введено вручную", "manual")}
SOURCES: dict[str, Pair] = {"gateway": ("УСПД (шлюз)", "gateway"), "manual": ("ручной ввод", "manual entry"),
                            "file": ("загрузка файла", "file import"), "estimate": ("расчёт АСКУЭ", "estimate")}
REASONS: dict[str, Pair] = {
    "manual": ("введено оператором", "entered by an operator"),
    "consumer_reported": ("со слов потребителя", "reported by the consumer"),
    "far_above_expected": ("выше ожидаемого, подтверждено", "above the expected value, confirmed"),
    "corrected": ("исправлено оператором", "corrected by an operator"),
    "estimated": ("рассчитано", "estimated"), "substituted": ("замещено", "substituted"),
    "meter_time_invalid": ("часы счётчика недостоверны", "meter clock invalid"),
    "reverse_reading": ("обратный ход", "reverse reading"), "spike": ("всплеск", "spike"),
    "over_limit": ("выше лимита", "over the limit"), "duplicate": ("повтор интервала", "duplicate interval"),
    "wrong_period": ("неверная длительность интервала", "wrong interval length"),
    "frozen": ("зависшее значение", "frozen value"), "clock_drift": ("расхождение часов", "clock drift"),
    "rollover": ("переход через ноль", "register rollover"), "meter_exchange": ("замена счётчика", "meter exchange"),
    # registry acts and holds (registry/acts.py, ingest/identity.py)
    "exchange_final": ("конечное показание по акту замены", "final reading of an exchange act"),
    "exchange_initial": ("начальное показание по акту замены", "initial reading of an exchange act"),
    "install_initial": ("начальное показание по акту установки", "initial reading of an install act"),
    "removal_final": ("конечное показание по акту снятия", "final reading of a removal act"),
    "serial_mismatch": ("заводской номер не совпадает, ждёт подтверждения",
                        "serial differs, awaiting confirmation"),
    "phase_loss": ("пропадание фазы", "phase loss"), "voltage_high": ("напряжение выше нормы", "voltage high"),
    "voltage_low": ("напряжение ниже нормы", "voltage low"),
    "imported_hourly_xlsx": ("из файла почасовых объёмов", "from an hourly volumes file"),
}
METHODS: dict[str, Pair] = {"interpolation": ("интерполяция", "interpolation"),
                            "average": ("по среднему", "by the average"), "profile": ("по профилю", "from the profile"),
                            "previous": ("по предыдущему", "from the previous value")}
METER_STATUS: dict[str, Pair] = {"active": ("в работе", "active"), "unassigned": ("не привязан", "unassigned"),
                                 "decommissioned": ("снят с учёта", "decommissioned")}
METER_CLASS: dict[str, Pair] = {"individual": ("ИПУ", "individual (ИПУ)"), "balance": ("ОДПУ", "balance (ОДПУ)")}
CONTACT: dict[str, Pair] = {
    "30min": ("до 30 минут", "up to 30 min"), "2h": ("до 2 часов", "up to 2 h"), "1d": ("до 1 суток", "up to 1 day"),
    "2d": ("до 2 суток", "up to 2 days"), "1w": ("до 1 недели", "up to 1 week"),
    "2w": ("до 2 недель", "up to 2 weeks"), "disconnected": ("отключен", "disconnected"),
}
FIELDS: dict[str, Pair] = {
    "serial": ("Заводской номер", "Serial"), "model": ("Модель", "Model"), "resource": ("Ресурс", "Resource"),
    "unit": ("Единица", "Unit"), "digits": ("Разрядность", "Digits"),
    "multiplier": ("Коэффициент трансформации", "Multiplier"), "tariff_zones": ("Число тарифов", "Tariff zones"),
    "installed_at": ("Дата установки", "Installed"), "verified_at": ("Дата поверки", "Verified"),
    "verification_due": ("Следующая поверка", "Verification due"), "is_balance": ("ОДПУ", "Balance meter"),
    "lat": ("Широта", "Latitude"), "lon": ("Долгота", "Longitude"), "gateway_id": ("Шлюз", "Gateway"),
    "bus": ("Линия связи", "Bus"), "bus_address": ("Адрес на линии", "Bus address"),
    "status": ("Состояние", "Status"), "org_id": ("Организация", "Organisation"), "site_id": ("Дом", "House"),
    "account_id": ("Лицевой счёт", "Account"), "decommissioned_at": ("Дата снятия", "Decommissioned"),
    "ct_ratio": ("Ктт", "CT ratio"), "vt_ratio": ("Ктн", "VT ratio"), "org": ("Организация", "Organisation"),
    "house": ("Дом", "House"), "account": ("Лицевой счёт", "Account"), "gateway": ("Шлюз", "Gateway"),
    "gateway_code": ("Код на шлюзе", "Code on the gateway"), "code": ("Код", "Code"),
    "valid_from": ("Действует с", "In force from"),
}


# Who did something when it was not a person: the audit log's system actors.
ACTORS: dict[str, Pair] = {"registry import": ("загрузка реестра", "registry import"),
                           "vee": ("проверка показаний (VEE)", "validation (VEE)"), "cli": ("командная строка", "CLI"),
                           "system": ("система", "system")}


def actor(name: str | None, lang: str = "ru") -> str:
    return pick(ACTORS[name], lang) if name in ACTORS else (name or "")


def resource(code: str | None, lang: str = "ru") -> str:
    return pick(RESOURCES.get(code or "unknown", RESOURCES["unknown"]), lang)


def zone(z: int, lang: str = "ru") -> str:
    """A tariff zone as the cabinet names it: «Общий тариф», «Тариф 1»."""
    if z == 0:
        return "Total" if lang == "en" else "Общий тариф"
    return f"Tariff {z}" if lang == "en" else f"Тариф {z}"


def zone_short(z: int, lang: str = "ru", zones: int | None = None) -> str:
    """«Общий», «Т1 (день)» — a zone inside a channel name."""
    if z == 0:
        return "total" if lang == "en" else "Общий"
    hint = ZONE_HINTS.get(zones or 0, {}).get(z)
    base = f"T{z}" if lang == "en" else f"Т{z}"
    return f"{base} ({pick(hint, lang)})" if hint else base


def _parts(obis: str) -> list[int] | None:
    try:
        p = [int(x) for x in obis.split(".")]
    except (AttributeError, ValueError):
        return None
    return p if len(p) == 6 else None


def channel(obis: str, lang: str = "ru", *, zones: int | None = None) -> str:
    """The name of a channel: «A+ Общий», «A+ Т1 (день)», «Профиль A+», «Напряжение L2»,
    «Объём ХВС», «Журнал внешних воздействий». A code nobody named is described by its
    groups («Электроэнергия: величина 99, вид 1»), never shown bare."""
    p = _parts(obis)
    if p is None:
        return obis
    if obis in ABSTRACT:
        return pick(ABSTRACT[obis], lang)
    a, _b, c, d, e, _f = p
    if a == 0 and c == 99 and d == 98 and e in JOURNAL_TITLES:
        return pick(JOURNAL_TITLES[e], lang)
    if a == 0 and c == 96 and d == 11 and e in JOURNAL_TITLES:
        return ("Event code: " if lang == "en" else "Код события: ") + pick(JOURNAL_TITLES[e], lang).lower()
    if a == 1:
        if c in ENERGY and d == 8:
            return f"{ENERGY[c][0]} {zone_short(e, lang, zones)}"
        if c in ENERGY and d == 29:
            return ("Profile " if lang == "en" else "Профиль ") + ENERGY[c][0] + (f" {zone_short(e, lang)}" if e else "")
        if c in ENERGY and d == 6:
            return ("Max demand " if lang == "en" else "Максимум мощности ") + ENERGY[c][0]
        if c in INSTANT and d in (7, 4, 5, 24, 25):
            name = pick(INSTANT[c], lang)
            return f"{name} L{PHASE[c]}" if c in PHASE else name
    if (a, c) in MEDIA:
        name = pick(MEDIA[(a, c)], lang)
        return ("Profile: " if lang == "en" else "Профиль: ") + name if d == 29 else name
    medium = {1: ("Электроэнергия", "Electricity"), 0: ("Служебный параметр", "Service parameter")}.get(
        a, MEDIA_NAMES.get(a, ("Параметр", "Parameter")))
    m = pick(medium, lang)
    return f"{m[0].upper()}{m[1:]}: quantity {c}, kind {d}" if lang == "en" else \
        f"{m[0].upper()}{m[1:]}: величина {c}, вид {d}"


def channel_meaning(obis: str, lang: str = "ru") -> str:
    """The long form for a tooltip: «активная энергия, приём, тариф 1»."""
    p = _parts(obis)
    if p and p[0] == 1 and p[2] in ENERGY_MEANING and p[3] in (8, 29):
        text = pick(ENERGY_MEANING[p[2]], lang)
        if p[3] == 29:
            text += ", per integration period" if lang == "en" else ", за интервал профиля"
        return f"{text}, {zone(p[4], lang).lower()}"
    return channel(obis, lang)


def energy_zone(obis: str) -> tuple[int, int] | None:
    """(quantity, zone) of an electricity energy register (1.0.q.8.z.255), else None."""
    p = _parts(obis)
    if p and p[0] == 1 and p[3] == 8 and p[2] in ENERGY:
        return p[2], p[4]
    return None


def quality(q: str | None, lang: str = "ru") -> str:
    return pick(QUALITY[q], lang) if q in QUALITY else (q or "")


def source(s: str | None, lang: str = "ru") -> str:
    return pick(SOURCES[s], lang) if s in SOURCES else (s or "")


def reason(r: str, lang: str = "ru") -> str:
    if r.startswith("method:"):
        m = r.split(":", 1)[1]
        return ("method: " if lang == "en" else "способ: ") + (pick(METHODS[m], lang) if m in METHODS else m)
    return pick(REASONS[r], lang) if r in REASONS else r.replace("_", " ")


def reasons(rs: list[str] | tuple[str, ...] | None, lang: str = "ru") -> str:
    return ", ".join(reason(r, lang) for r in rs or ())


def meter_status(s: str | None, lang: str = "ru") -> str:
    return pick(METER_STATUS[s], lang) if s in METER_STATUS else (s or "")


def meter_class(c: str, lang: str = "ru") -> str:
    return pick(METER_CLASS[c], lang) if c in METER_CLASS else c


def contact(bucket: str, lang: str = "ru") -> str:
    return pick(CONTACT[bucket], lang) if bucket in CONTACT else bucket


def field(name: str, lang: str = "ru") -> str:
    return pick(FIELDS[name], lang) if name in FIELDS else name.replace("_", " ")


def tz_short(tz: tzinfo, at: datetime | None = None, lang: str = "ru") -> str:
    """«МСК», «МСК+2» — Russian time zones are named by their offset from Moscow; «UTC+3» in English."""
    off = (at or datetime.now(tz)).astimezone(tz).utcoffset() or timedelta(0)
    hours = off.total_seconds() / 3600
    if lang == "en":
        return f"UTC{hours:+g}" if hours else "UTC"
    rel = hours - 3
    return "МСК" if rel == 0 else f"МСК{rel:+g}".replace("-", "−")


def tz_label(tz: tzinfo, lang: str = "ru", at: datetime | None = None) -> str:
    """«время МСК (UTC+3)», for headers and documents."""
    off = (at or datetime.now(tz)).astimezone(tz).utcoffset() or timedelta(0)
    hours = off.total_seconds() / 3600
    utc = f"UTC{hours:+g}".replace("-", "−") if hours else "UTC"
    if lang == "en":
        return f"times in {getattr(tz, 'key', str(tz))} ({utc})"
    return f"время {tz_short(tz, at)} ({utc})"


# The scales (tariff zones) of an electricity meter as the customer cabinet names them, in its
# order: (OBIS tariff, name). A single-rate meter is read on its total register.
SCALES: dict[int, list[tuple[int, Pair]]] = {
    1: [(0, ("Круглосуточный", "Round the clock"))],
    2: [(1, ("День", "Day")), (2, ("Ночь", "Night"))],
    3: [(1, ("Пик", "Peak")), (2, ("Ночь", "Night")), (3, ("Полупик", "Half-peak"))],
}


def scales(tariff_zones: int, lang: str = "ru") -> list[tuple[int, str]]:
    """(OBIS tariff, the scale's name) of a meter with this many tariff zones."""
    layout = SCALES.get(tariff_zones) or [(t, (f"Тариф {t}", f"Tariff {t}")) for t in range(1, tariff_zones + 1)]
    return [(t, pick(p, lang)) for t, p in layout]


# Who took a reading, as a customer reads it: the metering system, the customer, an inspector.
READING_ORIGINS: dict[str, Pair] = {"askue": ("АСКУЭ", "metering system"), "customer": ("потребитель", "customer"),
                                    "inspector": ("контролёр", "inspector"), "estimate": ("расчёт", "estimate")}
# What became of a reading the customer sees.
READING_STATUS: dict[str, Pair] = {"accepted": ("Принято", "Accepted"), "pending": ("Ожидание", "Pending"),
                                   "rejected": ("Отклонено", "Rejected")}


def reading_origin(quality: str | None, reasons: list[str] | tuple[str, ...] | None, lang: str = "ru") -> str:
    """АСКУЭ for an automatic reading, «потребитель» for one the customer reported, «контролёр» otherwise."""
    if quality == "A":
        key = "askue"
    elif quality in ("E", "S"):
        key = "estimate"
    else:
        key = "customer" if "consumer_reported" in (reasons or ()) else "inspector"
    return pick(READING_ORIGINS[key], lang)


def reading_status(status: str, lang: str = "ru") -> str:
    return pick(READING_STATUS.get(status, (status, status)), lang)
