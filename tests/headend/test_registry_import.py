"""Registry import from CSV and xlsx into a real database, with row-level errors."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import openpyxl
import psycopg
import pytest

from askue.cli import main as askue_main
from askue.headend.registry.importer import RegistryFileError, import_file

GOOD_CSV = """Код организации;Организация;Тип организации;ИНН;Код дома;Адрес;ТП;Лицевой счет;Квартира;ФИО;Код счетчика;Заводской номер;Модель;Ресурс;Разрядность;Коэффициент;Тарифность;Дата установки;Дата поверки;Дата следующей поверки;ОДПУ
uk1;УК Север;УК;7701234567;h1;г. Пример, ул. Ленина, 1;tp1;LS-001;1;Иванов И.И.;e-001;0012345;Меркурий 230;электроэнергия;6;1;2;01.02.2020;01.02.2020;01.02.2036;нет
uk1;УК Север;УК;7701234567;h1;г. Пример, ул. Ленина, 1;tp1;LS-001;1;Иванов И.И.;w-001;77-001;ВСХ-15;ХВС;5;1;1;2021-03-04;2021-03-04;2027-03-04;нет
uk1;УК Север;УК;7701234567;h1;г. Пример, ул. Ленина, 1;tp1;;;;odpu-1;555;ЦЭ6850;электроэнергия;6;"30,0";1;01.01.2019;;;да
"""


def _write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def test_csv_import_creates_registry_and_is_idempotent(pg_dsn: str, tmp_path: Path) -> None:
    p = _write(tmp_path, "reg.csv", GOOD_CSV, "cp1251")  # as Excel on Russian Windows saves it
    res = import_file(pg_dsn, p)
    assert res.errors == [] and res.imported == 3
    assert res.created == {"organisations": 1, "sites": 2, "accounts": 1, "meters": 3}
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(
            "SELECT m.code, m.serial, m.resource, m.digits, m.multiplier, m.tariff_zones, m.installed_at, "
            "m.verification_due, m.is_balance, m.status, a.code, s.code, s.address, p.code, o.code, o.kind, o.inn "
            "FROM meters m JOIN organisations o ON o.id = m.org_id JOIN sites s ON s.id = m.site_id "
            "LEFT JOIN sites p ON p.id = s.parent_id LEFT JOIN accounts a ON a.id = m.account_id ORDER BY m.code"
        ).fetchall()
    assert rows[0] == ("e-001", "0012345", "electricity", 6, 1.0, 2, date(2020, 2, 1), date(2036, 2, 1), False,
                       "active", "LS-001", "h1", "г. Пример, ул. Ленина, 1", "tp1", "uk1", "uk", "7701234567")
    assert rows[1][:3] == ("odpu-1", "555", "electricity") and rows[1][4] == 30.0 and rows[1][8] is True
    assert rows[1][10] is None
    assert rows[2][:3] == ("w-001", "77-001", "cold_water")
    again = import_file(pg_dsn, p)
    assert again.errors == [] and again.created == {} and again.updated == {}


def test_bad_rows_reported_with_row_and_column_good_rows_kept(pg_dsn: str, tmp_path: Path) -> None:
    text = ("org_code,house_address,account,meter_id,resource,digits,multiplier,installed_at,verification_due,lat\n"
            "o1,ул. Мира 5,A1,m-ok,electricity,6,1,2020-01-01,2030-01-01,55.7\n"
            "o1,ул. Мира 5,A2,m-bad1,водка,6,1,2020-01-01,2030-01-01,55.7\n"
            "o1,ул. Мира 5,A3,m-bad2,heat,99,-2,31.02.2020,,55.7\n"
            "o1,ул. Мира 5,A4,,gas,5,1,,,\n"
            "o1,ул. Мира 5,A5,m-ok,gas,5,1,,,\n"
            "o1,ул. Мира 5,A6,m-bad3,gas,5,1,2020-01-01,2019-01-01,120\n")
    p = _write(tmp_path, "reg.csv", text)
    dry = import_file(pg_dsn, p, dry_run=True)
    assert dry.imported == 1
    got = [(e.row, e.column, e.reason.split(" ")[0]) for e in dry.errors]
    assert got == [(3, "resource", "'водка'"), (4, "digits", "99"), (4, "multiplier", "multiplier"),
                   (4, "installed_at", "'31.02.2020'"), (5, "meter_id", "meter"), (6, "meter_id", "meter"),
                   (7, "lat", "latitude"), (7, "verification_due", "2019-01-01")]
    with psycopg.connect(pg_dsn) as conn:  # dry run stored nothing
        assert conn.execute("SELECT count(*) FROM meters").fetchone()[0] == 0
    real = import_file(pg_dsn, p)
    assert real.imported == 1 and len(real.errors) == len(dry.errors)
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT code FROM meters").fetchall() == [("m-ok",)]
    strict = import_file(pg_dsn, p, strict=True)
    assert strict.imported == 0


def test_xlsx_import_with_dates_and_replacement(pg_dsn: str, tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["org_code", "house_code", "house_address", "meter_id", "serial", "resource", "installed_at",
               "replaces", "status"])
    ws.append(["o1", "h9", "ул. Садовая 9", "old-1", "111", "hot_water", date(2015, 5, 1), None, "в работе"])
    ws.append(["o1", "h9", "ул. Садовая 9", "new-1", "222", "гвс", date(2024, 6, 3), "old-1", None])
    p = tmp_path / "reg.xlsx"
    wb.save(p)
    res = import_file(pg_dsn, p)
    assert res.errors == [] and res.imported == 2
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute("SELECT m.code, m.status, m.decommissioned_at, r.code, b.code FROM meters m "
                            "LEFT JOIN meters r ON r.id = m.replaces_id LEFT JOIN meters b ON b.id = m.replaced_by_id "
                            "ORDER BY m.code").fetchall()
    assert rows == [("new-1", "active", None, "old-1", None), ("old-1", "decommissioned", date(2024, 6, 3), None, "new-1")]


def test_unknown_meter_from_ingest_becomes_active_on_import(pg_dsn: str, tmp_path: Path) -> None:
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("INSERT INTO meters (code, status, resource) VALUES ('m-new', 'unassigned', 'unknown')")
    import_file(pg_dsn, _write(tmp_path, "r.csv", "org_code,meter_id,resource\no1,m-new,electricity\n"))
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT status, resource FROM meters").fetchall() == [("active", "electricity")]


@pytest.mark.parametrize("name, content, match", [
    ("r.csv", "foo,bar\n1,2\n", "meter_id or serial"),
    ("r.csv", "meter_id,resource,color\n1,gas,red\n", "unknown column"),
    ("r.csv", "", "empty"),
    ("r.json", "{}", "unsupported file type"),
    ("r.xlsx", "not a zip", "not a readable xlsx"),
])
def test_unreadable_files_give_a_clear_error(pg_dsn: str, tmp_path: Path, name: str, content: str, match: str) -> None:
    with pytest.raises(RegistryFileError, match=match):
        import_file(pg_dsn, _write(tmp_path, name, content))


def test_cli_import_dry_run_and_exit_codes(pg_dsn: str, tmp_path: Path, capsys) -> None:
    p = _write(tmp_path, "r.csv", "meter_id,resource\nm1,electricity\nm2,plasma\n")
    assert askue_main(["headend", "--dsn", pg_dsn, "import", str(p), "--org", "o1", "--dry-run"]) == 1
    cap = capsys.readouterr()
    assert "row 3, column resource: 'plasma' is not a resource" in cap.err
    assert "would import 1 of 2 row(s); 1 error(s)" in cap.out
    assert askue_main(["headend", "--dsn", pg_dsn, "import", str(tmp_path / "missing.csv")]) == 2


def test_shipped_example_registry_imports_cleanly(pg_dsn: str) -> None:
    example = Path(__file__).resolve().parents[2] / "configs" / "registry-example.csv"
    res = import_file(pg_dsn, example)
    assert res.errors == [] and res.imported == 4
    # the file's «Шлюз» column registers the gateway its meters are bound to
    assert res.created == {"organisations": 1, "sites": 2, "accounts": 2, "gateways": 1, "meters": 4}
