"""Hourly profile and integral readings xlsx: written files checked cell by cell with
openpyxl, filled-in files read back, broken files give cell/row errors, fuzzed cells."""
from __future__ import annotations

import io
from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook

from askue.headend.billing.formats import hourly_xlsx as hx
from askue.headend.billing.formats import integral_xlsx as ix
from askue.headend.billing.formats.errors import ExportFormatError

FEB = date(2024, 2, 1)


def _profile() -> hx.HourlyProfile:
    vals = {(d, h): Decimal(h) + Decimal(d.day) / 100 for d in hx.month_days(FEB) for h in range(24)}
    del vals[(date(2024, 2, 29), 23)]  # not read yet: stays empty
    return hx.HourlyProfile(FEB, vals, "01284918")


def test_hourly_written_cell_by_cell():
    wb = load_workbook(io.BytesIO(hx.write_hourly_xlsx([_profile()])))
    ws = wb["01284918"]
    assert ws["A1"].value == "Время"
    assert [ws.cell(row=1, column=c).value for c in (2, 3, 30)] == [
        datetime(2024, 2, 1), datetime(2024, 2, 2), datetime(2024, 2, 29)]
    assert ws.cell(row=1, column=31).value is None  # February 2024 has 29 days
    assert ws["B1"].number_format == "DD.MM.YYYY"
    assert [ws.cell(row=r, column=1).value for r in range(2, 26)] == [f"{h:02d}-{h + 1:02d}" for h in range(24)]
    assert ws["A2"].value == "00-01" and ws["A25"].value == "23-24"
    assert ws["B2"].value == pytest.approx(0.01)
    assert ws["C5"].value == pytest.approx(3.02)  # 02.02, hour 03-04
    assert ws["AD24"].value == pytest.approx(22.29)
    assert ws["AD25"].value is None


def test_hourly_round_trip():
    prof = _profile()
    back = hx.read_hourly_xlsx(hx.write_hourly_xlsx([prof]))
    assert back.month == FEB and back.title == "01284918"
    assert back.values == prof.values


def _sheet(rows: list[list[object]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _cabinet_like(month: date, fill=lambda d, h: 1) -> list[list[object]]:
    days = hx.month_days(month)
    rows: list[list[object]] = [["Время"] + [d.strftime("%d.%m.%Y") for d in days]]
    for h in range(24):
        rows.append([f"{h:02d}-{h + 1:02d}"] + [fill(d, h) for d in days])
    return rows


def test_hourly_reads_text_dates_and_decimal_comma():
    rows = _cabinet_like(date(2021, 1, 1), lambda d, h: "1,5" if h == 1 else 2)
    prof = hx.read_hourly_xlsx(_sheet(rows))
    assert prof.month == date(2021, 1, 1)
    assert prof.values[(date(2021, 1, 31), 1)] == Decimal("1.5")
    assert len(prof.values) == 31 * 24


def test_hourly_broken_cells_named():
    rows = _cabinet_like(date(2021, 1, 1))
    rows[3][2] = "abc"  # C4: 02.01.2021, hour 02-03
    rows[5][1] = -1  # B6
    rows[7][0] = "6-7"  # A8
    with pytest.raises(ExportFormatError) as e:
        hx.read_hourly_xlsx(_sheet(rows))
    where = {i.where: i for i in e.value.issues}
    assert set(where) == {"C4", "B6", "A8"}
    assert "02.01.2021 02-03" in where["C4"].what and where["C4"].fix
    assert "negative" in where["B6"].what
    assert "06-07" in where["A8"].what


def test_hourly_wrong_dates():
    rows = _cabinet_like(date(2021, 1, 1))
    rows[0][5] = "32.01.2021"
    with pytest.raises(ExportFormatError) as e:
        hx.read_hourly_xlsx(_sheet(rows))
    assert e.value.issues[0].where == "F1"
    rows = _cabinet_like(date(2021, 1, 1))
    rows[0] = rows[0][:-1]
    with pytest.raises(ExportFormatError, match="30 dates given, 31 expected"):
        hx.read_hourly_xlsx(_sheet(rows))
    with pytest.raises(ExportFormatError, match="more than one month"):
        hx.read_hourly_xlsx(_sheet(_cabinet_like(date(2021, 1, 1))), month=date(2021, 2, 1))


def test_not_xlsx():
    with pytest.raises(ExportFormatError, match="not an xlsx"):
        hx.read_hourly_xlsx(b"meter;value\n1;2\n")
    with pytest.raises(ExportFormatError, match="cannot read the .xls workbook"):
        hx.read_hourly_xlsx(b"\xd0\xcf\x11\xe0" + b"\0" * 100)
    with pytest.raises(ExportFormatError, match="cannot read the workbook"):
        hx.read_hourly_xlsx(b"PK\x03\x04garbage")


# text a spreadsheet can hold (control characters cannot be stored in xlsx at all);
# NaN/inf cannot be stored as numbers either, so they arrive as the text a user could type
cell_values = st.one_of(st.none(), st.integers(-10**6, 10**6),
                        st.floats(allow_nan=True, allow_infinity=True).map(lambda f: f if f == f and abs(f) != float("inf")
                                                                           else str(f)),
                        st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=15), st.booleans())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 25), st.integers(0, 33), cell_values), max_size=8))
def test_fuzz_hourly_never_crash(edits):
    rows = _cabinet_like(date(2021, 1, 1))
    for r, c, v in edits:
        while len(rows) <= r:
            rows.append([])
        while len(rows[r]) <= c:
            rows[r].append(None)
        rows[r][c] = v
    try:
        prof = hx.read_hourly_xlsx(_sheet(rows))
    except ExportFormatError as e:
        assert e.issues and all(i.where and i.what and i.fix for i in e.issues)
    else:
        assert all(v >= 0 for v in prof.values.values())


# ------------------------------------------------------------------ integral template

def _template_rows() -> list[ix.IntegralRow]:
    return [
        ix.IntegralRow("01284918", "A+", "День", Decimal("12345.67"), None, "780100000027780001",
                       "Комендантский пр., д.140", "Ожидание", "РТП 100, яч.2"),
        ix.IntegralRow("01284918", "A+", "Ночь", Decimal("5432.1"), None, "780100000027780001",
                       "Комендантский пр., д.140", "Ожидание", "РТП 100, яч.2"),
        ix.IntegralRow("20300109", "A+", "Сутки", Decimal("435"), None, "780100000027780002", "Склад",
                       "Ожидание", ""),
    ]


def test_integral_template_cell_by_cell():
    wb = load_workbook(io.BytesIO(ix.write_integral_xlsx(_template_rows())))
    ws = wb.active
    assert [c.value for c in ws[1]] == ["Код ЭО", "Наименование ЭО", "Статус ЭО", "Номер ПУ", "Наименование ИК",
                                        "Измеряемая величина", "Шкала", "Предыдущие показания", "Текущие показания"]
    assert [c.value for c in ws[2]] == ["780100000027780001", "Комендантский пр., д.140", "Ожидание", "01284918",
                                        "РТП 100, яч.2", "А+", "День", pytest.approx(12345.67), None]
    assert ws["D2"].number_format == "@"
    assert ws["F3"].value == "А+" and ws["G3"].value == "Ночь" and ws["H3"].value == pytest.approx(5432.1)
    assert ws["D4"].value == "20300109" and ws["G4"].value == "Сутки"
    assert ws.max_row == 4


def _filled(currents: list[object]) -> bytes:
    wb = load_workbook(io.BytesIO(ix.write_integral_xlsx(_template_rows())))
    ws = wb.active
    for i, v in enumerate(currents):
        ws.cell(row=2 + i, column=9, value=v)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_integral_filled_with_comma_and_point():
    res = ix.read_integral_xlsx(_filled(["12 400,5", 5440.25, "450"]))
    assert [r.status for r in res] == ["ok", "ok", "ok"]
    assert [r.row for r in res] == [2, 3, 4]
    assert res[0].reading.current == Decimal("12400.5") and res[0].reading.previous == Decimal("12345.67")
    assert res[0].reading.obis == "1.0.1.8.1.255"
    assert res[1].reading.obis == "1.0.1.8.2.255"
    assert res[2].reading.obis == "1.0.1.8.0.255"
    assert res[0].reading.quantity == "A+"  # Cyrillic А+ in the sheet


def test_integral_all_zones_rule_and_row_errors():
    res = ix.read_integral_xlsx(_filled(["12400,5", None, "45x"]))
    by_row = {r.row: r for r in res}
    assert by_row[2].status == "error" and "all its zones" in by_row[2].issues[0].what
    assert by_row[3].status == "empty"
    assert by_row[4].status == "error"
    assert by_row[4].issues[0].where == "row 4, column «Текущие показания» (I4)"
    assert "not a number" in by_row[4].issues[0].what


def test_integral_unknown_zone_and_quantity():
    rows = _template_rows()
    rows[2].zone, rows[2].quantity = "Вечер", "Б+"
    res = ix.read_integral_xlsx(ix.write_integral_xlsx(rows))
    bad = res[2]
    assert bad.status == "error"
    assert {i.where.split(",")[1].strip() for i in bad.issues} == {"column «Измеряемая величина» (F4)",
                                                                   "column «Шкала» (G4)"}


def test_integral_header_missing():
    with pytest.raises(ExportFormatError, match="header row not found"):
        ix.read_integral_xlsx(_sheet([["a", "b"], [1, 2]]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 10), cell_values), max_size=8))
def test_fuzz_integral_never_crash(edits):
    wb = load_workbook(io.BytesIO(ix.write_integral_xlsx(_template_rows())))
    ws = wb.active
    for r, c, v in edits:
        ws.cell(row=r + 1, column=c + 1, value=v)
    buf = io.BytesIO()
    wb.save(buf)
    try:
        res = ix.read_integral_xlsx(buf.getvalue())
    except ExportFormatError as e:
        assert e.issues and all(i.where and i.what and i.fix for i in e.issues)
    else:
        for r in res:
            assert r.status in ("ok", "empty", "error")
            assert (r.status == "error") == bool(r.issues)
            if r.status == "ok":
                assert r.reading.current is not None and r.reading.current >= 0
