"""Event kinds: Russian titles for operators, English for logs and the API."""
from __future__ import annotations

# kind: (title_ru, title_en, default severity)
KINDS: dict[str, tuple[str, str, str]] = {
    "reverse_reading": ("Обратный ход показаний", "Reverse reading on a cumulative register", "critical"),
    "spike": ("Всплеск потребления", "Consumption spike", "warning"),
    "over_limit": ("Превышение лимита потребления", "Consumption above the limit", "warning"),
    "zero_consumption": ("Нулевое потребление", "Zero consumption", "warning"),
    "interval_gap": ("Пропуск интервалов профиля", "Missing load-profile intervals", "warning"),
    "interval_duplicate": ("Дубликат интервала", "Duplicate interval", "info"),
    "interval_size": ("Неверная длительность интервала", "Wrong interval size", "info"),
    "sum_mismatch": ("Сумма интервалов не равна приращению показаний",
                     "Interval sum differs from the register delta", "warning"),
    "clock_drift": ("Расхождение часов счётчика", "Meter clock drift", "warning"),
    "frozen_value": ("Зависшее значение", "Frozen value (same value and meter time repeated)", "warning"),
    "tamper": ("Воздействие на счётчик / несанкционированный доступ",
               "Tamper or unauthorised access in the meter journal", "critical"),
    "voltage": ("Отклонение напряжения", "Voltage out of range", "warning"),
    "phase_loss": ("Пропадание фазы", "Phase loss", "critical"),
    "power_loss": ("Отключение питания счётчика", "Meter power loss", "warning"),
    "clock_set": ("Установка времени в счётчике", "Meter clock set", "info"),
    "meter_fault": ("Неисправность счётчика (самодиагностика)", "Meter fault (self-diagnostics)", "critical"),
    "no_contact": ("Нет связи со счётчиком", "No contact with the meter", "warning"),
    "verification_overdue": ("Истёк срок поверки", "Verification overdue", "critical"),
    "verification_due": ("Скоро истекает срок поверки", "Verification due within the warning period", "warning"),
    "house_imbalance": ("Небаланс по дому (ОДПУ)", "House imbalance (balance meter vs flats)", "warning"),
    # the registry's checks at ingest (headend/ingest/identity.py)
    "foreign_gateway": ("Показания от чужого шлюза", "Readings from another gateway", "critical"),
    "removed_meter_values": ("Показания снятого прибора учёта", "Readings of a removed meter", "warning"),
    "serial_mismatch": ("Заводской номер не совпадает с учётным", "Reported serial differs from the registry",
                        "critical"),
    "ratio_mismatch": ("Коэффициент трансформации в счётчике не совпадает с учётным",
                       "Transformer ratio in the meter differs from the registry", "critical"),
}


def titles(kind: str) -> tuple[str, str]:
    ru, en, _ = KINDS[kind]
    return ru, en


def severity(kind: str) -> str:
    return KINDS[kind][2]
