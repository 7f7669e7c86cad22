"""What an abnormal event is about, as one sentence an operator reads:
«Предыдущие показания 1 036,9 кВт·ч, текущие 1 012,4 кВт·ч»,
«Нет связи более 10 дн. Последний сеанс 21.11.2026 14:05».

Built from the event's evidence (what the VEE rule recorded), the meter's resource
for units and the organisation's time zone for times. English too, for the API.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, tzinfo
from typing import Any

from askue.headend import names
from askue.headend.units import amount, number

PHASES = {1: "L1", 2: "L2", 3: "L3"}
TAMPER_MEANINGS_RU = {"magnetic field: start": "воздействие магнитного поля (начало)",
                      "magnetic field: end": "воздействие магнитного поля (конец)",
                      "terminal cover opened": "вскрыта крышка клеммной колодки",
                      "meter case opened": "вскрыт корпус счётчика",
                      "external seal sensor tripped": "сработала пломба внешнего датчика",
                      "RF field: start": "воздействие высокочастотного поля (начало)",
                      "RF field: end": "воздействие высокочастотного поля (конец)",
                      "unauthorised access attempt": "попытка несанкционированного доступа",
                      "protocol violation": "нарушение требований протокола обмена",
                      "locked after too many wrong passwords": "блокировка после неверных паролей",
                      "firmware verification failed": "ошибка проверки встроенного ПО"}
POWER_OFF_RU = {"power off": ("журнал включений/выключений", "питание отключено"),
                "complete loss of supply": ("журнал включений/выключений", "полное пропадание питания"),
                "voltage interruption": ("журнал напряжения", "прерывание напряжения")}
FAULTS_RU = {"measuring unit error": "ошибка измерительного блока", "real-time clock error": "ошибка часов",
             "memory error": "ошибка памяти"}
JOURNALS_RU = {"external influence journal": "журнал внешних воздействий",
               "access control journal": "журнал несанкционированного доступа"}


class _Ctx:
    def __init__(self, ev: dict, resource: str | None, obis: str | None, lang: str, tz: tzinfo, now: datetime):
        self.ev, self.resource, self.obis, self.lang, self.tz, self.now = ev, resource, obis, lang, tz, now
        self.ru = lang == "ru"

    # A missing piece of evidence raises KeyError: describe() then gives no sentence rather
    # than one with holes in it.
    def q(self, key: str, obis: str | None = None) -> str:
        return amount(float(self.ev[key]), self.resource, obis or self.obis, self.lang)

    def n(self, key: str) -> str:
        return number(float(self.ev[key]), self.lang)

    def t(self, key: str) -> str:
        return when(self.ev[key], self.tz)

    def d(self, key: str) -> str:
        return date.fromisoformat(str(self.ev[key])[:10]).strftime("%d.%m.%Y")


def when(v: Any, tz: tzinfo) -> str:
    t = v if isinstance(v, datetime) else datetime.fromisoformat(str(v))
    return t.astimezone(tz).strftime("%d.%m.%Y %H:%M")


def zone_label(tz: tzinfo, at: datetime | None = None, lang: str = "ru", word: bool = True) -> str:
    """Which clock times are shown on: «время Europe/Moscow (UTC+03:00)» (without `word`:
    «Europe/Moscow (UTC+03:00)»)."""
    at = at or datetime.now(tz)
    off = at.astimezone(tz).strftime("%z")
    name = getattr(tz, "key", None) or str(tz)
    label = f"{name} (UTC{off[:3]}:{off[3:]})"
    return f"{'время' if lang == 'ru' else 'time zone'} {label}" if word else label


def duration(seconds: float, lang: str) -> str:
    """Silence or drift for a sentence: «10 дн.», «5 ч», «3 мин 20 с»."""
    s = abs(seconds)
    if s >= 2 * 86400:
        return f"{int(s // 86400)} {'дн.' if lang == 'ru' else 'days'}"
    if s >= 3600:
        return f"{int(s // 3600)} {'ч' if lang == 'ru' else 'h'}"
    if s >= 60:
        m, sec = divmod(int(round(s)), 60)
        if not sec:
            return f"{m} мин" if lang == "ru" else f"{m} min"
        return f"{m} мин {sec} с" if lang == "ru" else f"{m} min {sec} s"
    return f"{number(s, lang, 1)} {'с' if lang == 'ru' else 's'}"


def _reverse(c: _Ctx) -> str:
    also = [names.channel(str(o), c.lang) for o in c.ev.get("also") or []]
    if c.ru:
        s = (f"Предыдущие показания {c.q('previous')} ({c.t('previous_ts')}), текущие {c.q('current')}: "
             f"уменьшение на {c.q('drop')}")
        return s + (f"; также по тарифам {', '.join(also)}" if also else "")
    s = f"Previous reading {c.q('previous')} ({c.t('previous_ts')}), current {c.q('current')}: down by {c.q('drop')}"
    return s + (f"; also on {', '.join(also)}" if also else "")


def _no_contact(c: _Ctx) -> str:
    silence = (c.now - datetime.fromisoformat(str(c.ev["last_session"]))).total_seconds()
    if c.ru:
        d = duration(silence, "ru")
        return f"Нет связи более {d}{'' if d.endswith('.') else '.'} Последний сеанс {c.t('last_session')}"
    return f"No contact for over {duration(silence, 'en')}. Last session {c.t('last_session')}"


def _spike(c: _Ctx) -> str:
    if "day" in c.ev:
        ratio = c.ev["consumption"] / c.ev["median"] if c.ev["median"] else None
        times = f", в {number(ratio, 'ru', 1)} раза больше" if ratio and c.ru else (
            f", {number(ratio, 'en', 1)} times" if ratio else "")
        if c.ru:
            return (f"Расход за {c.d('day')} — {c.q('consumption')}{times} медианы за "
                    f"{c.ev['history_days']} дн. ({c.q('median')})")
        return (f"Consumption on {c.d('day')}: {c.q('consumption')}{times} the median of "
                f"{c.ev['history_days']} days ({c.q('median')})")
    if c.ru:
        return (f"Интервал до {c.t('interval_end')}: {c.q('value')} при медиане соседних интервалов "
                f"{c.q('neighbours_median')}")
    return f"Interval ending {c.t('interval_end')}: {c.q('value')}, neighbours' median {c.q('neighbours_median')}"


def _over_limit(c: _Ctx) -> str:
    if "day" in c.ev:
        return (f"Расход за {c.d('day')} — {c.q('consumption')} при лимите {c.q('limit')}" if c.ru
                else f"Consumption on {c.d('day')}: {c.q('consumption')}, limit {c.q('limit')}")
    return (f"Интервал до {c.t('interval_end')}: {c.q('value')} при лимите {c.q('limit')}" if c.ru
            else f"Interval ending {c.t('interval_end')}: {c.q('value')}, limit {c.q('limit')}")


def _zero(c: _Ctx) -> str:
    return (f"Показания не менялись {c.n('days')} дн. (с {c.t('since')} по {c.t('last_read')}): {c.q('value')}"
            if c.ru else f"The register has not moved for {c.n('days')} days ({c.t('since')} to {c.t('last_read')}): "
                         f"{c.q('value')}")


def _gap(c: _Ctx) -> str:
    return (f"Нет {c.ev['missing']} интервалов профиля с {c.t('first_missing')} по {c.t('last_missing')}"
            if c.ru else f"{c.ev['missing']} load-profile intervals missing from {c.t('first_missing')} "
                         f"to {c.t('last_missing')}")


def _sum_mismatch(c: _Ctx) -> str:
    return (f"Сумма интервалов за {c.d('day')} — {c.q('interval_sum')}, приращение показаний — "
            f"{c.q('register_delta')} (расхождение {c.q('difference')}, допустимо {c.q('allowed')})" if c.ru
            else f"Interval sum on {c.d('day')}: {c.q('interval_sum')}, register delta {c.q('register_delta')} "
                 f"(difference {c.q('difference')}, allowed {c.q('allowed')})")


def _clock(c: _Ctx) -> str:
    drift = float(c.ev["drift_s"])
    ahead = ("спешат" if drift > 0 else "отстают") if c.ru else ("ahead" if drift > 0 else "behind")
    limit = duration(float(c.ev["limit_s"]), c.lang)
    return (f"Часы счётчика {ahead} на {duration(drift, 'ru')} (допустимо {limit}): время счётчика "
            f"{c.t('meter_time')}, получено {c.t('received_at')}" if c.ru
            else f"Meter clock {duration(drift, 'en')} {ahead} (allowed {limit}): meter time {c.t('meter_time')}, "
                 f"received {c.t('received_at')}")


def _frozen(c: _Ctx) -> str:
    return (f"Показание {c.q('value')} со временем счётчика {c.t('meter_time')} получено повторно "
            f"{c.t('again_received')} (впервые {c.t('first_received')})" if c.ru
            else f"Reading {c.q('value')} with meter time {c.t('meter_time')} received again at "
                 f"{c.t('again_received')} (first at {c.t('first_received')})")


def _tamper(c: _Ctx) -> str:
    journal, meaning = str(c.ev["journal"]), str(c.ev["meaning"])
    if c.ru:
        return (f"{JOURNALS_RU.get(journal, journal).capitalize()}: событие с кодом {c.ev['code']} — "
                f"{TAMPER_MEANINGS_RU.get(meaning, 'смотрите таблицу кодов журнала счётчика')}")
    return f"{journal.capitalize()}: event code {c.ev['code']} — {meaning}"


def _voltage(c: _Ctx) -> str:
    phase = PHASES.get(c.ev["phase"], str(c.ev["phase"]))
    u = amount(float(c.ev["voltage"]), "electricity", "1.0.32.7.0.255", c.lang)
    if c.ev.get("low") is not None:
        lo, hi = number(c.ev["low"], c.lang, 1), number(c.ev["high"], c.lang, 1)
        return (f"Напряжение фазы {phase} {u} (норма {lo}–{hi} В)" if c.ru
                else f"Phase {phase} voltage {u} (allowed {lo}–{hi} V)")
    nominal = number(float(c.ev["nominal"]), c.lang, 1)
    return (f"Напряжение фазы {phase} {u} при номинале {nominal} В" if c.ru
            else f"Phase {phase} voltage {u}, nominal {nominal} V")


def _phase_loss(c: _Ctx) -> str:
    if "voltage" in c.ev:
        return _voltage(c)
    phase = PHASES.get(c.ev["phase"], str(c.ev["phase"]))
    back = ""
    if c.ev.get("restored_at"):
        gone = (datetime.fromisoformat(str(c.ev["restored_at"])) - datetime.fromisoformat(str(c.ev["lost_at"])))
        back = (f", восстановлено {c.t('restored_at')} (через {duration(gone.total_seconds(), 'ru')})" if c.ru
                else f", restored {c.t('restored_at')} (after {duration(gone.total_seconds(), 'en')})")
    return (f"Журнал напряжения счётчика: пропадание напряжения фазы {phase} {c.t('lost_at')}{back}" if c.ru
            else f"Meter voltage journal: phase {phase} voltage lost {c.t('lost_at')}{back}")


def _power_loss(c: _Ctx) -> str:
    meaning = str(c.ev["meaning"])
    back = ""
    if c.ev.get("on_at"):
        off = (datetime.fromisoformat(str(c.ev["on_at"])) - datetime.fromisoformat(str(c.ev["off_at"])))
        back = (f", включено {c.t('on_at')} (через {duration(off.total_seconds(), 'ru')})" if c.ru
                else f", back on {c.t('on_at')} (after {duration(off.total_seconds(), 'en')})")
    if c.ru:
        journal, what = POWER_OFF_RU[meaning]
        return f"{journal.capitalize()} счётчика: {what} {c.t('off_at')}{back}"
    return f"Meter journal: {meaning} {c.t('off_at')}{back}"


def _clock_set(c: _Ctx) -> str:
    return (f"Журнал программирования счётчика: установлено время {c.t('set_to')} (время счётчика после "
            f"установки)" if c.ru
            else f"Meter programming journal: clock set to {c.t('set_to')} (meter time after the step)")


def _meter_fault(c: _Ctx) -> str:
    meaning = str(c.ev["meaning"])
    return (f"Журнал самодиагностики счётчика: {FAULTS_RU[meaning]} (код {c.ev['code']}) {c.t('at')}" if c.ru
            else f"Meter self-diagnostics journal: {meaning} (code {c.ev['code']}) {c.t('at')}")


def _verification(c: _Ctx) -> str:
    if "days_overdue" in c.ev:
        return (f"Срок поверки истёк {c.d('verification_due')} ({c.ev['days_overdue']} дн. назад)" if c.ru
                else f"Verification expired on {c.d('verification_due')} ({c.ev['days_overdue']} days ago)")
    return (f"Срок поверки истекает {c.d('verification_due')} (через {c.ev['days_left']} дн.)" if c.ru
            else f"Verification expires on {c.d('verification_due')} (in {c.ev['days_left']} days)")


def _imbalance(c: _Ctx) -> str:
    bal, flats = float(c.ev["balance"]), float(c.ev["flats_sum"])
    share = number(100 * (bal - flats) / bal, c.lang, 1) if bal else "—"
    return (f"ОДПУ {c.q('balance')}, сумма {c.ev['flats']} ИПУ {c.q('flats_sum')}, небаланс {c.q('imbalance')} "
            f"({share} %) за {c.t('period_start')} – {c.t('period_end')}" if c.ru
            else f"Balance meter {c.q('balance')}, sum of {c.ev['flats']} flats {c.q('flats_sum')}, "
                 f"imbalance {c.q('imbalance')} ({share} %) for {c.t('period_start')} – {c.t('period_end')}")


def _size(c: _Ctx) -> str:
    return (f"Интервал {c.ev['period_s']} с вместо {c.ev['expected_s']} с" if c.ru
            else f"Interval of {c.ev['period_s']} s instead of {c.ev['expected_s']} s")


def _duplicate(c: _Ctx) -> str:
    return (f"Интервал получен дважды: {c.q('first')} и {c.q('second')}" if c.ru
            else f"Interval received twice: {c.q('first')} and {c.q('second')}")


def _foreign(c: _Ctx) -> str:
    n = int(c.ev["values"])
    bound = c.ev.get("bound_gateway")
    if c.ru:
        whose = f", привязанного к шлюзу {bound}" if bound else ""
        return (f"Шлюз {c.ev['gateway']} прислал {n} {_plural(n, 'показание', 'показания', 'показаний')} "
                f"для прибора учёта «{c.ev['gateway_code']}»{whose} ({c.t('first_ts')} – {c.t('last_ts')}); "
                "они не записаны на прибор и помещены в карантин")
    whose = f", bound to gateway {bound}" if bound else ""
    return (f"Gateway {c.ev['gateway']} sent {n} reading(s) for meter «{c.ev['gateway_code']}»{whose} "
            f"({c.t('first_ts')} – {c.t('last_ts')}); they were not stored on the meter and are quarantined")


def _removed(c: _Ctx) -> str:
    n = int(c.ev["values"])
    if c.ru:
        return (f"Шлюз {c.ev['gateway']} прислал {n} {_plural(n, 'показание', 'показания', 'показаний')} "
                f"для снятого прибора учёта «{c.ev['gateway_code']}» ({c.t('first_ts')} – {c.t('last_ts')}); "
                "они помещены в карантин")
    return (f"Gateway {c.ev['gateway']} sent {n} reading(s) for the removed meter «{c.ev['gateway_code']}» "
            f"({c.t('first_ts')} – {c.t('last_ts')}); they are quarantined")


def _serial(c: _Ctx) -> str:
    return (f"Счётчик сообщает заводской номер {c.ev['reported_serial']}, в реестре {c.ev['registry_serial']}; "
            "показания не передаются в биллинг до подтверждения оператором" if c.ru
            else f"The meter reports serial {c.ev['reported_serial']}, the registry has {c.ev['registry_serial']}; "
                 "its readings are held from billing until an operator confirms")


def _ratio(c: _Ctx) -> str:
    meter = f"{number(float(c.ev['meter_ct']), c.lang)} × {number(float(c.ev['meter_vt']), c.lang)}"
    if "registry_ct" in c.ev:
        registry = f"{number(float(c.ev['registry_ct']), c.lang)} × {number(float(c.ev['registry_vt']), c.lang)}"
    else:
        product = number(float(c.ev["meter_ct"]) * float(c.ev["meter_vt"]), c.lang)
        meter = f"{meter} = {product}"
        registry = number(float(c.ev["registry_multiplier"]), c.lang)
    return (f"Коэффициент трансформации в счётчике {meter} не совпадает с учётным {registry}" if c.ru
            else f"The transformer ratio programmed in the meter, {meter}, differs from the registry's {registry}")


def _plural(n: int, one: str, few: str, many: str) -> str:
    if n % 10 == 1 and n % 100 != 11:
        return one
    return few if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14 else many


SENTENCES: dict[str, Callable[[_Ctx], str]] = {
    "reverse_reading": _reverse, "no_contact": _no_contact, "spike": _spike, "over_limit": _over_limit,
    "zero_consumption": _zero, "interval_gap": _gap, "sum_mismatch": _sum_mismatch, "clock_drift": _clock,
    "frozen_value": _frozen, "tamper": _tamper, "voltage": _voltage, "phase_loss": _phase_loss,
    "power_loss": _power_loss, "clock_set": _clock_set, "meter_fault": _meter_fault,
    "verification_overdue": _verification, "verification_due": _verification, "house_imbalance": _imbalance,
    "interval_size": _size, "interval_duplicate": _duplicate, "foreign_gateway": _foreign,
    "removed_meter_values": _removed, "serial_mismatch": _serial, "ratio_mismatch": _ratio,
}


def describe(kind: str, evidence: dict | None, *, resource: str | None, obis: str | None = None,
             lang: str = "ru", tz: tzinfo, now: datetime | None = None) -> str:
    """The sentence for one event; an event without the evidence a sentence needs (raised
    by hand, or by an older version) gets the plainest one that is still true."""
    now = now or datetime.now(tz)
    fn = SENTENCES.get(kind)
    ev = dict(evidence or {})
    if fn is not None:
        try:
            return fn(_Ctx(ev, resource, obis, lang, tz, now))
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            pass
    return ""

