"""COSEM facts shared by the driver and the simulator: object list of a СПОДЭС meter,
OBIS/date-time codecs, units, and the СПОДЭС journal event codes.

Event codes: СТО 34.01-5.1-006 (СПОДЭС) annex Д / ГОСТ Р 58940-2020 tables Д.1-Д.8
(journal 0.0.99.98.N.255 records the code object 0.0.96.11.N.255). The Russian
titles were checked against the DlmsSPODES project's value tables.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from askue.drivers.errors import ProtocolError

# Interface classes used here (IEC 62056-6-2).
DATA, REGISTER, PROFILE_GENERIC, CLOCK, DISCONNECT_CONTROL = 1, 3, 7, 8, 70

CLOCK_OBIS = "0.0.1.0.0.255"
SERIAL_OBIS = "0.0.96.1.0.255"
LOAD_PROFILE_OBIS = "1.0.99.1.0.255"
DISCONNECT_OBIS = "0.0.96.3.10.255"
JOURNALS = tuple(f"0.0.99.98.{n}.255" for n in range(8))
# Billing profiles (СПОДЭС annex В.3/В.4 "ежесуточный"/"ежемесячный профиль"): one row per day /
# month, captured at its start, clock first, then the cumulative registers. OBIS codes and
# layout as in the object lists of real СПОДЭС meters shipped with the DLMS_SPODES project
# (PyPI dlms-spodes, test/Types/KPZ/*.typ; relation_to_OBIS: 1.b.98.1.e monthly, 1.b.98.2.e daily).
MONTHLY_PROFILE_OBIS = "1.0.98.1.0.255"
DAILY_PROFILE_OBIS = "1.0.98.2.0.255"
ARCHIVE_PROFILES = {"day_start": DAILY_PROFILE_OBIS, "month_start": MONTHLY_PROFILE_OBIS}
# Transformer ratios (Ктт, Ктн), class 1 Data holding an unsigned number in the same object lists.
CT_RATIO_OBIS = "1.0.0.4.2.255"
VT_RATIO_OBIS = "1.0.0.4.3.255"

# Energy registers read per tariff (0 = total, 1-4 = tariff zones): A+, A-, R+, R-.
ENERGY_QUANTITIES = (1, 2, 3, 4)
TARIFFS = (0, 1, 2, 3, 4)
INSTANT_OBIS = ("1.0.32.7.0.255", "1.0.31.7.0.255", "1.0.1.7.0.255", "1.0.14.7.0.255")


def energy_obis(quantity: int, tariff: int) -> str:
    return f"1.0.{quantity}.8.{tariff}.255"


def interval_obis(quantity: int) -> str:
    return f"1.0.{quantity}.29.0.255"


def journal_code_obis(n: int) -> str:
    return f"0.0.96.11.{n}.255"


def obis_bytes(obis: str) -> bytes:
    parts = [int(p) for p in obis.split(".")]
    if len(parts) != 6 or any(not 0 <= p <= 255 for p in parts):
        raise ValueError(f"OBIS code needs six groups 0-255: {obis!r}")
    return bytes(parts)


def obis_str(raw: bytes) -> str:
    if len(raw) != 6:
        raise ProtocolError(f"logical name must be 6 bytes, got {bytes(raw).hex()}")
    return ".".join(str(b) for b in raw)


# ---- units (IEC 62056-6-2 unit enumeration) ------------------------------------------------
UNITS = {27: "W", 28: "VA", 29: "var", 30: "Wh", 31: "VAh", 32: "varh", 33: "A", 35: "V", 44: "Hz", 255: ""}
# What the platform stores (DESIGN.md): energy in kWh/kvarh, power in kW.
OUTPUT = {
    30: ("kWh", 1e-3),
    32: ("kvarh", 1e-3),
    31: ("kVAh", 1e-3),
    27: ("kW", 1e-3),
    29: ("kvar", 1e-3),
    28: ("kVA", 1e-3),
    33: ("A", 1.0),
    35: ("V", 1.0),
    44: ("Hz", 1.0),
}


def scaled(raw: float, scaler: int, unit: int) -> tuple[float, str]:
    """Apply a register's scaler (10^scaler) and convert to the platform unit."""
    name, factor = OUTPUT.get(unit, (UNITS.get(unit, f"unit{unit}"), 1.0))
    value = raw * (10.0**scaler) * factor
    return round(value, 9), name


# ---- COSEM date-time (12 octets, IEC 62056-6-2 §4.1.6.1) ------------------------------------
NOT_SPECIFIED_DEVIATION = -0x8000


def encode_datetime(t: datetime, tz: timezone) -> bytes:
    """Local time of `tz` with its deviation. The Blue Book deviation is minutes from local
    time to UTC, so Moscow (UTC+3) is written as -180."""
    local = t.astimezone(tz)
    offset = local.utcoffset() or timedelta(0)
    deviation = -int(offset.total_seconds() // 60)
    return (
        local.year.to_bytes(2, "big")
        + bytes(
            (
                local.month,
                local.day,
                local.isoweekday(),
                local.hour,
                local.minute,
                local.second,
                local.microsecond // 10000,
            )
        )
        + deviation.to_bytes(2, "big", signed=True)
        + b"\x00"
    )


def decode_datetime(raw: bytes, default_tz: timezone) -> datetime | None:
    """UTC-aware datetime, None for an all-unspecified value. Unspecified deviation means the
    meter's configured zone `default_tz`."""
    local = decode_local_datetime(raw, default_tz)
    return None if local is None else local.astimezone(UTC)


def decode_local_datetime(raw: bytes, default_tz: timezone) -> datetime | None:
    """Like decode_datetime, but in the zone the meter wrote (its deviation, else `default_tz`):
    day and month boundaries are the meter's local midnights."""
    if len(raw) != 12:
        raise ProtocolError(f"COSEM date-time must be 12 octets, got {len(raw)}: {bytes(raw).hex()}")
    year = int.from_bytes(raw[0:2], "big")
    month, day, _dow, hour, minute, second, hundredths = raw[2:9]
    if year == 0xFFFF and month == 0xFF:
        return None
    if 0xFF in (month, day, hour, minute) or year == 0xFFFF:
        raise ProtocolError(f"COSEM date-time with wildcards cannot be a timestamp: {bytes(raw).hex()}")
    second = 0 if second == 0xFF else second
    hundredths = 0 if hundredths == 0xFF else hundredths
    deviation = int.from_bytes(raw[9:11], "big", signed=True)
    if deviation != NOT_SPECIFIED_DEVIATION and not -720 <= deviation <= 720:
        raise ProtocolError(f"COSEM date-time deviation {deviation} min is outside ±720: {bytes(raw).hex()}")
    tz = default_tz if deviation == NOT_SPECIFIED_DEVIATION else timezone(timedelta(minutes=-deviation))
    try:
        local = datetime(year, month, day, hour, minute, second, hundredths * 10000, tzinfo=tz)
    except ValueError as e:
        raise ProtocolError(f"COSEM date-time out of range ({e}): {bytes(raw).hex()}") from None
    return local


# ---- СПОДЭС journals and their event codes ----------------------------------------------------
JOURNAL_TITLES = {
    0: ("Журнал событий, связанных с напряжением", "Voltage events"),
    1: ("Журнал событий, связанных с током", "Current events"),
    2: ("Журнал включений/выключений", "Power and relay switching"),
    3: ("Журнал программирования параметров", "Parameter programming"),
    4: ("Журнал внешних воздействий", "External influence"),
    5: ("Журнал коммуникационных событий", "Communication events"),
    6: ("Журнал контроля доступа", "Access control"),
    7: ("Журнал самодиагностики", "Self-diagnostics"),
}

EVENT_CODES: dict[int, dict[int, tuple[str, str]]] = {
    0: {
        1: ("Фаза А - пропадание напряжения", "Phase A voltage lost"),
        2: ("Фаза А - восстановление напряжения", "Phase A voltage restored"),
        3: ("Фаза В - пропадание напряжения", "Phase B voltage lost"),
        4: ("Фаза В - восстановление напряжения", "Phase B voltage restored"),
        5: ("Фаза С - пропадание напряжения", "Phase C voltage lost"),
        6: ("Фаза С - восстановление напряжения", "Phase C voltage restored"),
        7: ("Превышение напряжения любой фазы", "Overvoltage on any phase"),
        8: ("Окончание перенапряжения любой фазы", "Overvoltage ended"),
        9: ("Низкое напряжение любой фазы - начало", "Undervoltage started"),
        10: ("Низкое напряжение любой фазы - окончание", "Undervoltage ended"),
        27: ("Прерывание напряжения", "Voltage interruption"),
        28: ("Восстановление напряжения", "Voltage restored"),
    },
    1: {
        17: ("Превышение тока любой фазы - начало", "Overcurrent started"),
        18: ("Окончание превышения тока любой фазы", "Overcurrent ended"),
        33: ("Обратный поток мощности - начало", "Reverse power flow started"),
        34: ("Обратный поток мощности - окончание", "Reverse power flow ended"),
        37: ("Наличие тока при выключенном реле нагрузки - начало", "Current with load relay open started"),
        38: ("Наличие тока при выключенном реле нагрузки - окончание", "Current with load relay open ended"),
    },
    2: {
        1: ("Выключение питания ПУ", "Meter power off"),
        2: ("Включение питания ПУ", "Meter power on"),
        3: ("Выключение абонента дистанционное", "Consumer disconnected remotely"),
        4: ("Включение абонента дистанционное", "Consumer reconnected remotely"),
        5: ("Получение разрешения на включение абоненту", "Reconnection enabled for consumer"),
        6: ("Выключение реле нагрузки абонентом", "Load relay opened by consumer"),
        7: ("Включение реле нагрузки абонентом", "Load relay closed by consumer"),
        8: ("Выключение локальное по превышению лимита мощности", "Local disconnect: power limit"),
        9: ("Выключение локальное по превышению максимального тока", "Local disconnect: max current"),
        10: ("Выключение локальное при воздействии магнитного поля", "Local disconnect: magnetic field"),
        18: (
            "Выключение локальное при вскрытии клеммной крышки или корпуса",
            "Local disconnect: cover opened",
        ),
        29: ("Полное пропадание питания ПУ", "Complete loss of meter supply"),
    },
    3: {
        3: ("Установка времени", "Time set"),
        13: ("Изменение пароля низкой секретности на чтение", "Low-level (read) password changed"),
        14: ("Изменение пароля высокой секретности на запись", "High-level (write) password changed"),
        65: ("Обновление ПО", "Firmware updated"),
        68: ("Коррекция времени", "Time corrected"),
    },
    4: {
        1: ("Магнитное поле - начало", "Magnetic field started"),
        2: ("Магнитное поле - окончание", "Magnetic field ended"),
        3: ("Срабатывание электронной пломбы крышки клеммников", "Terminal cover opened"),
        4: ("Срабатывание электронной пломбы корпуса", "Meter case opened"),
        5: ("Срабатывание электронной пломбы внешнего датчика", "External seal sensor tripped"),
        6: ("Воздействие ВЧ поля - начало", "RF field started"),
        7: ("Воздействие ВЧ поля - окончание", "RF field ended"),
    },
    5: {
        1: ("Разорвано соединение", "Connection closed"),
        2: ("Установлено соединение", "Connection established"),
    },
    6: {
        1: ("Попытка несанкционированного доступа", "Unauthorised access attempt"),
        2: ("Нарушение требований протокола", "Protocol violation"),
        3: (
            "Блокировка по превышению количества неправильных паролей",
            "Locked after too many wrong passwords",
        ),
        4: ("Ошибка верификации прошивки", "Firmware verification failed"),
    },
    7: {
        1: ("Инициализация ПУ", "Meter initialised"),
        2: ("Измерительный блок - ошибка", "Measuring unit error"),
        5: ("Часы реального времени - ошибка", "Real-time clock error"),
        11: ("Блок памяти - ошибка", "Memory error"),
    },
}


def journal_number(journal_obis: str) -> int:
    parts = journal_obis.split(".")
    if len(parts) != 6 or parts[:4] != ["0", "0", "99", "98"]:
        raise ValueError(f"not a СПОДЭС journal: {journal_obis!r}")
    return int(parts[4])


def describe_event(journal_obis: str, code: int, lang: str = "ru") -> str:
    """Operator-facing title of a journal entry; unknown codes keep their number."""
    n = journal_number(journal_obis)
    ru, en = EVENT_CODES.get(n, {}).get(code, (f"Событие {code}", f"Event {code}"))
    return ru if lang == "ru" else en


# ---- billing boundaries (start of a day / month in the meter's local time) -----------------
def archive_boundary(archive: str, local: datetime) -> datetime | None:
    """The boundary a billing-profile row captured at `local` (meter local time) belongs to,
    or None when the row was not captured within the first minute of a day (month)."""
    if local.hour or local.minute or (archive == "month_start" and local.day != 1):
        return None
    return local.replace(second=0, microsecond=0)


def archive_boundaries(archive: str, start: datetime, end: datetime, tz: timezone) -> list[datetime]:
    """Boundaries (aware, in `tz`) in [start, end)."""
    local = start.astimezone(tz)
    t = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if archive == "month_start":
        t = t.replace(day=1)
    out = []
    while t < end:
        if t >= start:
            out.append(t)
        if archive == "month_start":
            t = t.replace(year=t.year + t.month // 12, month=t.month % 12 + 1)
        else:
            t = (t + timedelta(days=1)).replace(hour=0)  # fixed-offset zones: plain days
    return out
