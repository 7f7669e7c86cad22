"""80020 XML codec: round trip, golden file element by element, broken files, fuzz.

The golden file `tests/headend/billing_golden/80020_7707083893_20240305_12.xml` follows
the element layout of public 80020 v2 samples: the sample quoted in the comments of a
public Delphi loader (message/datetime{timestamp,daylightsavingtime,day}/sender{name,
inn}/area[timezone]{name,inn,measuringpoint[code,name]/measuringchannel[code,desc]/
period[start,end]/value}) and the XML models of the RMon.ValuesExportImportService
80020 parser (value@status). It was written from string templates, not by the renderer.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from askue.headend.billing.formats import xml80020 as x
from askue.headend.billing.formats.errors import ExportFormatError, IncompleteDataError

GOLDEN = Path(__file__).parents[1] / "billing_golden" / "80020_7707083893_20240305_12.xml"
MSK = ZoneInfo("Europe/Moscow")
DAY = date(2024, 3, 5)


def golden_message() -> x.Message:
    slots = x.day_slots(DAY, MSK)
    a_plus = {t: (Decimal(12) + Decimal(i) / 4, 1 if i in (20, 21) else 0) for i, (t, *_) in enumerate(slots)}
    a_minus = {t: (Decimal(0), 0) for t, *_ in slots}
    point = x.PointSpec("520000000101101", "ТП-12, ввод 1", {"01": a_plus, "02": a_minus})
    return x.build_message(day=DAY, tz=MSK, number=12, sender_inn="7707083893", sender_name="ООО «Энергоучёт»",
                           areas=[x.AreaSpec("5257072937", "Сетевой район №1", [point])],
                           now=datetime(2024, 3, 5, 22, 2, 3, tzinfo=UTC))


def _walk(a: ET.Element, b: ET.Element, path: str = "") -> list[str]:
    diffs = []
    here = f"{path}/{a.tag}"
    if a.tag != b.tag:
        return [f"{here}: tag {a.tag} != {b.tag}"]
    if a.attrib != b.attrib:
        diffs.append(f"{here}: attributes {a.attrib} != {b.attrib}")
    if (a.text or "").strip() != (b.text or "").strip():
        diffs.append(f"{here}: text {a.text!r} != {b.text!r}")
    if len(a) != len(b):
        diffs.append(f"{here}: {len(a)} children != {len(b)}")
    for ca, cb in zip(a, b, strict=False):
        diffs += _walk(ca, cb, here)
    return diffs


def test_render_matches_golden_element_by_element():
    produced = x.render(golden_message())
    assert produced.startswith(b'<?xml version="1.0" encoding="windows-1251"?>')
    diffs = _walk(ET.fromstring(GOLDEN.read_bytes()), ET.fromstring(produced))
    assert diffs == []


def test_golden_parses_to_expected_values():
    m = x.parse(GOLDEN.read_bytes(), tz=MSK)
    assert (m.number, m.day, m.sender_inn, m.daylightsavingtime) == (12, DAY, "7707083893", 0)
    assert m.timestamp == datetime(2024, 3, 6, 1, 2, 3)
    assert m.sender_name == "ООО «Энергоучёт»"
    (area,) = m.areas
    assert (area.inn, area.name, area.timezone) == ("5257072937", "Сетевой район №1", "1")
    (point,) = area.points
    assert (point.code, point.name) == ("520000000101101", "ТП-12, ввод 1")
    ch01, ch02 = point.channels
    assert (ch01.code, ch02.code) == ("01", "02")
    assert len(ch01.periods) == 48
    assert (ch01.periods[0].start, ch01.periods[0].end) == ("0000", "0030")
    assert (ch01.periods[47].start, ch01.periods[47].end) == ("2330", "0000")
    assert ch01.periods[1].value == Decimal("12.25")
    assert [p.status for p in ch01.periods[19:23]] == [0, 1, 1, 0]
    assert all(p.value == 0 for p in ch02.periods)


def test_file_name():
    assert x.file_name("7707083893", DAY, 12) == GOLDEN.name
    assert x.parse_file_name(GOLDEN.name) == ("7707083893", DAY, 12)
    with pytest.raises(ExportFormatError, match="naming"):
        x.parse_file_name("80020_77_20240305.xml")


def test_round_trip_equal():
    msg = golden_message()
    assert x.parse(x.render(msg), tz=MSK) == msg


def test_round_trip_clock_change_day():
    berlin = ZoneInfo("Europe/Berlin")
    day = date(2024, 10, 27)  # clocks go back: 50 half-hours, 0200–0300 twice
    slots = x.day_slots(day, berlin)
    assert len(slots) == 50
    series = {"01": {t: (Decimal(i), 0) for i, (t, *_) in enumerate(slots)}}
    msg = x.build_message(day=day, tz=berlin, number=1, sender_inn="7707083893", sender_name="S",
                          areas=[x.AreaSpec("7707083893", "A", [x.PointSpec("1", "p", series)])],
                          now=datetime(2024, 10, 28, tzinfo=UTC))
    back = x.parse(x.render(msg), tz=berlin)
    assert back == msg
    values = [p.value for p in back.areas[0].points[0].channels[0].periods]
    assert values == [Decimal(i) for i in range(50)]
    p = back.areas[0].points[0].channels[0].periods
    assert x.slot_start_utc(day, p[5].start, berlin, p[5].summer) == slots[5][0]


def test_missing_half_hour_is_refused_not_zero_filled():
    slots = x.day_slots(DAY, MSK)
    series = {"01": {t: (Decimal(1), 0) for t, *_ in slots[:-1]}}
    kw = dict(day=DAY, tz=MSK, number=1, sender_inn="7707083893", sender_name="S", now=datetime(2024, 3, 6, tzinfo=UTC),
              areas=[x.AreaSpec("7707083893", "A", [x.PointSpec("42", "p", series)])])
    with pytest.raises(IncompleteDataError, match="42/01/2330"):
        x.build_message(**kw)
    msg = x.build_message(**kw, allow_incomplete=True)
    assert msg.areas[0].points == []


def _golden_with(old: str, new: str) -> bytes:
    text = GOLDEN.read_bytes().decode("cp1251")
    assert old in text
    return text.replace(old, new, 1).encode("cp1251")


@pytest.mark.parametrize(("old", "new", "where", "what"), [
    ('class="80020"', 'class="80040"', "message/@class", "not 80020"),
    ('version="2"', 'version="1"', "message/@version", "not supported"),
    ("<inn>7707083893</inn>", "<inn>7707083894</inn>", "message/sender/inn", "check digit"),
    ("<day>20240305</day>", "<day>20240231</day>", "message/datetime/day", "YYYYMMDD"),
    ('<value status="0">12.25</value>', '<value status="0">12,2x</value>',
     "measuringpoint[@code='520000000101101']/measuringchannel[@code='01']/period[@start='0030']/value",
     "not a number"),
    ('<value status="0">12.5</value>', '<value status="0">-12.5</value>', "period[@start='0100']/value", "negative"),
    ('<value status="0">12.75</value>', '<value status="7">12.75</value>', "period[@start='0130']/value/@status",
     "not 0 or 1"),
    ('measuringchannel code="02"', 'measuringchannel code="05"', "measuringchannel[2]/@code", "not 01"),
    ('<period start="0030" end="0100">', '<period start="0030" end="0115">', "period[@start='0030']",
     "not a half-hour"),
])
def test_broken_file_reports_path_what_and_fix(old, new, where, what):
    with pytest.raises(ExportFormatError) as e:
        x.parse(_golden_with(old, new), tz=MSK)
    issues = e.value.issues
    assert any(where in i.where and what in i.what and i.fix for i in issues), [str(i) for i in issues]


def test_missing_period_reported():
    text = GOLDEN.read_bytes().decode("cp1251")
    start = text.index('<period start="1000"')
    end = text.index("</period>", start) + len("</period>")
    with pytest.raises(ExportFormatError) as e:
        x.parse((text[:start] + text[end:]).encode("cp1251"), tz=MSK)
    assert any("1 half-hour(s) missing: 1000" in i.what for i in e.value.issues)


def test_duplicate_period_reported():
    text = GOLDEN.read_bytes().decode("cp1251")
    start = text.index('<period start="1000"')
    end = text.index("</period>", start) + len("</period>")
    with pytest.raises(ExportFormatError) as e:
        x.parse((text[:end] + text[start:end] + text[end:]).encode("cp1251"), tz=MSK)
    assert any("appears twice" in i.what for i in e.value.issues)


def test_not_xml_and_dtd_refused():
    with pytest.raises(ExportFormatError, match="not well-formed"):
        x.parse(b"<message class='80020'", tz=MSK)
    bomb = b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaa">]><message>&a;</message>'
    with pytest.raises(ExportFormatError, match="DTD"):
        x.parse(bomb, tz=MSK)


def test_utf8_declared_file_is_read():
    text = GOLDEN.read_bytes().decode("cp1251").replace('encoding="windows-1251"', 'encoding="utf-8"')
    assert x.parse(text.encode("utf-8"), tz=MSK).sender_name == "ООО «Энергоучёт»"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_fuzz_random_bytes_never_crash(data):
    try:
        x.parse(data, tz=MSK)
    except ExportFormatError as e:
        assert e.issues and all(i.where and i.what and i.fix for i in e.issues)


_GOLDEN_TEXT = GOLDEN.read_bytes().decode("cp1251")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(_GOLDEN_TEXT) - 1), st.integers(0, 40), st.text(max_size=12))
def test_fuzz_mutated_golden_never_crash(pos, cut, insert):
    data = (_GOLDEN_TEXT[:pos] + insert + _GOLDEN_TEXT[pos + cut:]).encode("cp1251", "replace")
    try:
        m = x.parse(data, tz=MSK)
    except ExportFormatError as e:
        assert e.issues and all(i.where and i.what and i.fix for i in e.issues)
    else:
        assert m.areas and all(len(c.periods) == 48 for a in m.areas for p in a.points for c in p.channels)


def test_day_slots_are_contiguous():
    slots = x.day_slots(DAY, MSK)
    assert all(b[0] - a[0] == timedelta(minutes=30) for a, b in zip(slots, slots[1:], strict=False))
    assert slots[0][0] == datetime(2024, 3, 4, 21, 0, tzinfo=UTC)
