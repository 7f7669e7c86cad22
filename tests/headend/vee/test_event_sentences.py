"""The sentence an operator reads for each abnormal event, built from the evidence the
VEE rules really record (as stored: JSON, times as ISO strings): Russian numbers and
units, local times, no key=value text; missing evidence gives no sentence, not holes."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from vee_helpers import T0, ctx, iv, reg

from askue.headend.events.describe import describe
from askue.headend.units import NBSP
from askue.headend.vee.model import MeterFacts, MeterValue
from askue.headend.vee.rules import (
    clock_drift,
    interval_gap,
    no_contact,
    reverse_reading,
    tamper,
    verification,
    voltage,
)
from askue.headend.vee.rules.common import MSK


def stored(finding) -> dict:
    """The evidence as abnormal_events.evidence holds it."""
    return json.loads(json.dumps(finding.evidence, default=lambda t: t.isoformat()))


def ru(finding, resource: str = "electricity", now: datetime | None = None) -> str:
    return describe(finding.kind, stored(finding), resource=resource, obis=finding.obis, tz=MSK, now=now)


def test_reverse_reading_says_previous_and_current_with_units() -> None:
    (f,) = reverse_reading.check(MeterFacts("m1"), [reg(1036.9, T0), reg(1012.4, T0 + timedelta(days=1))],
                                 ctx()).findings
    assert ru(f) == (f"Предыдущие показания 1{NBSP}036,9 кВт·ч (01.11.2026 00:00), текущие 1{NBSP}012,4 кВт·ч: "
                     "уменьшение на 24,5 кВт·ч")
    en = describe(f.kind, stored(f), resource="electricity", obis=f.obis, lang="en", tz=MSK)
    assert en.startswith("Previous reading 1,036.9 kWh (01.11.2026 00:00), current 1,012.4 kWh")


def test_no_contact_says_how_long_and_the_last_session() -> None:
    last = datetime(2026, 11, 21, 14, 5, tzinfo=MSK)
    (f,) = no_contact.check_contact(MeterFacts("m1"), last, ctx(now=last + timedelta(days=10, hours=3))).findings
    assert ru(f, now=last + timedelta(days=10, hours=3)) == "Нет связи более 10 дн. Последний сеанс 21.11.2026 14:05"
    assert ru(f, now=last + timedelta(hours=30)) == "Нет связи более 30 ч. Последний сеанс 21.11.2026 14:05"


def test_other_kinds_read_as_sentences() -> None:
    drift = clock_drift.check(MeterFacts("m1"), [reg(5.0, T0, rx=T0 + timedelta(minutes=10, seconds=5))],
                              ctx()).findings[0]
    assert ru(drift) == ("Часы счётчика отстают на 10 мин 5 с (допустимо 2 мин): время счётчика 01.11.2026 00:00, "
                         "получено 01.11.2026 00:10")
    low = voltage.check(MeterFacts("m1"), [MeterValue("m1", "1.0.32.7.0.255", "instant", T0, 190.0)],
                        ctx()).findings[0]
    assert ru(low) == "Напряжение фазы L1 190 В (норма 207–253 В)"
    mag = tamper.check(MeterFacts("m1"), [MeterValue("m1", "0.0.99.98.4.255", "event", T0, 1.0)], ctx()).findings[0]
    assert ru(mag) == "Журнал внешних воздействий: событие с кодом 1 — воздействие магнитного поля (начало)"
    due = verification.check_verification(MeterFacts("m1", verification_due=(T0 - timedelta(days=3)).date()),
                                          ctx(now=T0)).findings[0]
    assert ru(due) == "Срок поверки истёк 29.10.2026 (3 дн. назад)"
    gap = interval_gap.check(MeterFacts("m1"), [iv(0.2, T0), iv(0.2, T0 + timedelta(hours=2))], ctx()).findings
    (g,) = [f for f in gap if f.event]
    assert ru(g) == "Нет 3 интервалов профиля с 01.11.2026 00:30 по 01.11.2026 01:30"


@pytest.mark.parametrize("kind", ["reverse_reading", "no_contact", "spike", "tamper", "voltage", "house_imbalance"])
def test_missing_evidence_gives_no_sentence_and_never_key_value(kind: str) -> None:
    assert describe(kind, {"delta": -3.5}, resource="electricity", tz=MSK) == ""
    assert describe(kind, None, resource="electricity", tz=MSK) == ""


def test_no_sentence_is_key_value_text() -> None:
    f = reverse_reading.check(MeterFacts("m1"), [reg(10.0, T0), reg(5.0, T0 + timedelta(hours=1))], ctx()).findings[0]
    text = ru(f)
    assert text and "=" not in text and "previous" not in text


def test_journal_events_read_as_sentences() -> None:
    from askue.headend.vee.rules import journal

    entries = [MeterValue("m1", "0.0.99.98.2.255", "event", T0, 1.0),
               MeterValue("m1", "0.0.99.98.2.255", "event", T0 + timedelta(hours=2, minutes=5), 2.0),
               MeterValue("m1", "0.0.99.98.0.255", "event", T0 + timedelta(hours=3), 5.0),
               MeterValue("m1", "0.0.99.98.3.255", "event", T0 + timedelta(hours=4), 3.0),
               MeterValue("m1", "0.0.99.98.3.255", "event", T0 + timedelta(hours=5), 68.0),
               MeterValue("m1", "0.0.99.98.7.255", "event", T0 + timedelta(hours=6), 11.0)]
    res = journal.check(MeterFacts("m1"), entries, ctx())
    said = {f.kind: ru(f) for f in res.findings}
    assert said == {
        "power_loss": "Журнал включений/выключений счётчика: питание отключено 01.11.2026 00:00, "
                      "включено 01.11.2026 02:05 (через 2 ч)",
        "phase_loss": "Журнал напряжения счётчика: пропадание напряжения фазы L3 01.11.2026 03:00",
        "clock_set": "Журнал программирования счётчика: установлено время 01.11.2026 04:00 "
                     "(время счётчика после установки)",
        "meter_fault": "Журнал самодиагностики счётчика: ошибка памяти (код 11) 01.11.2026 06:00",
    }
    assert len(res.findings) == 4  # the routine correction (68) is no event
    assert [c.key for c in res.clears] == ["power_loss:m1:"]


@pytest.mark.parametrize("kind", ["power_loss", "clock_set", "meter_fault", "phase_loss"])
def test_journal_kinds_without_evidence_give_no_sentence(kind: str) -> None:
    assert describe(kind, {"code": 1}, resource="electricity", tz=MSK) == ""
