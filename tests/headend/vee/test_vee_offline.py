"""`askue vee check`: files in, report out, through the same rule code."""
from __future__ import annotations

import csv
from pathlib import Path

from askue.cli import main

METERS = """meter_id,serial,resource,digits,multiplier,installed_at,replaces,verification_due
E1,111,electricity,5,1,2025-01-01,,2030-01-01
E2,222,electricity,6,1,2025-01-01,,2026-11-01
E3,444,electricity,6,1,2026-11-10,E2,2032-01-01
W1,333,cold_water,5,1,,,2026-12-10
BAD,555,plasma,5,1,,,
"""
READINGS = """meter_id,channel,kind,ts,received_at,value,period_s
E1,1.0.1.8.0.255,register,2026-11-18T00:00:00+03:00,2026-11-18T00:00:30+03:00,99990.0,
E1,1.0.1.8.0.255,register,2026-11-19T00:00:00+03:00,2026-11-19T00:00:30+03:00,99998.1,
E1,1.0.1.8.0.255,register,2026-11-20T00:00:00+03:00,2026-11-20T00:00:30+03:00,2.3,
E1,1.0.1.8.0.255,register,2026-11-21T00:00:00+03:00,2026-11-21T00:00:30+03:00,1.0,
E2,1.0.1.8.0.255,register,2026-11-05T00:00:00+03:00,2026-11-05T00:00:30+03:00,5000,
E3,1.0.1.8.0.255,register,2026-11-11T00:00:00+03:00,2026-11-11T00:00:30+03:00,3,
E3,0.0.99.98.4.255,event,2026-11-11T05:00:00+03:00,2026-11-11T06:00:00+03:00,1,
X9,1.0.1.8.0.255,register,2026-11-11T00:00:00+03:00,,3,
E3,1.0.1.29.0.255,interval,2026-11-11T04:10:00,,0.5,1800
E3,1.0.1.29.0.255,interval,2026-11-11T04:30:00+03:00,,0.5,
W1,8.0.1.0.0.255,register,2026-11-21T10:00:00+03:00,2026-11-21T10:00:05+03:00,"12,5",
W1,8.0.1.0.0.255,register,2026-11-21T11:00:00+03:00,2026-11-21T11:00:05+03:00,abc,
"""


def _run(tmp_path: Path, meters: str, readings: str, *extra: str) -> tuple[int, list[dict[str, str]]]:
    (tmp_path / "meters.csv").write_text(meters, encoding="utf-8")
    (tmp_path / "readings.csv").write_text(readings, encoding="utf-8")
    out = tmp_path / "report.csv"
    rc = main(["vee", "check", "--meters", str(tmp_path / "meters.csv"), "--readings",
               str(tmp_path / "readings.csv"), "--now", "2026-11-21T12:00:00+03:00", "--out", str(out), *extra])
    rows = list(csv.DictReader(out.open(encoding="utf-8"))) if out.exists() else []
    return rc, rows


def test_report_rows_and_bad_rows(tmp_path):
    rc, rows = _run(tmp_path, METERS, READINGS)
    assert rc == 0
    assert list(rows[0]) == ["meter_id", "kind", "ts", "severity", "details"]
    found = {(r["meter_id"], r["kind"]) for r in rows}
    # rollover 99998.1 → 2.3 is consumption; 2.3 → 1.0 is a reverse
    reverse = [r for r in rows if r["kind"] == "reverse_reading"]
    assert [(r["meter_id"], r["ts"]) for r in reverse] == [("E1", "2026-11-21T00:00:00+03:00")]
    assert "previous=2.3" in reverse[0]["details"]
    assert ("E3", "tamper") in found
    assert ("E3", "no_contact") in found and ("E2", "no_contact") not in found  # E2 was replaced by E3
    assert ("E2", "verification_overdue") not in found
    assert ("W1", "verification_due") in found
    bad = {r["details"] for r in rows if r["kind"] == "bad_row"}
    assert bad == {
        "meters.csv row 6: resource: 'plasma' is not one of electricity|cold_water|hot_water|heat|gas",
        "readings.csv row 9: meter_id: 'X9' is not in the meters file; add a row for it there",
        "readings.csv row 10: ts: '2026-11-11T04:10:00' has no UTC offset; add one, e.g. +03:00",
        "readings.csv row 11: period_s: required for an interval (e.g. 1800)",
        "readings.csv row 13: value: 'abc' is not a number",
    }


def test_missing_header_column_is_usage_error(tmp_path, capsys):
    rc, rows = _run(tmp_path, METERS.replace("digits,", ""), READINGS)
    assert rc == 2 and rows == []
    assert "header lacks column(s) digits" in capsys.readouterr().err


def test_semicolon_files_and_exchange_do_not_raise(tmp_path):
    meters = METERS.replace(",", ";").splitlines()[0:4]
    readings = "\n".join([
        "meter_id;channel;kind;ts;received_at;value;period_s",
        "E2;1.0.1.8.0.255;register;2026-11-20T00:00:00+03:00;2026-11-20T00:00:10+03:00;5000;",
        "E3;1.0.1.8.0.255;register;2026-11-20T12:00:00+03:00;2026-11-20T12:00:10+03:00;3;",
        "E3;1.0.1.8.0.255;register;2026-11-21T11:00:00+03:00;2026-11-21T11:00:10+03:00;9;",
    ])
    rc, rows = _run(tmp_path, "\n".join(meters) + "\n", readings + "\n")
    assert rc == 0
    assert [r for r in rows if r["kind"] not in ("verification_due",)] == []


def test_thresholds_file_changes_the_verdict(tmp_path):
    (tmp_path / "vee.yaml").write_text("defaults:\n  clock_drift_s: 10\n", encoding="utf-8")
    readings = READINGS.splitlines()[0] + "\nW1,8.0.1.0.0.255,register,2026-11-21T10:00:00+03:00," \
        "2026-11-21T10:00:30+03:00,12.5,\n"
    rc, rows = _run(tmp_path, METERS, readings)
    assert "clock_drift" not in {r["kind"] for r in rows}
    rc, rows = _run(tmp_path, METERS, readings, "--thresholds", str(tmp_path / "vee.yaml"))
    assert rc == 0 and "clock_drift" in {r["kind"] for r in rows}
    (tmp_path / "bad.yaml").write_text("defaults:\n  clock_drift: 10\n", encoding="utf-8")
    rc, _ = _run(tmp_path, METERS, readings, "--thresholds", str(tmp_path / "bad.yaml"))
    assert rc == 2


def test_cli_thresholds_import_and_scan(pg_dsn, capsys):
    import psycopg

    repo = Path(__file__).resolve().parents[3]
    assert main(["vee", "thresholds", "--dsn", pg_dsn, "--file", str(repo / "configs" / "vee.yaml")]) == 0
    assert "override(s)" in capsys.readouterr().out
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute("SELECT scope, name, resource FROM vee_thresholds ORDER BY 1, 2, 3").fetchall()
    assert ("organisation", "uk_sever", "electricity") in rows and ("model", "CE308", "") in rows
    assert main(["vee", "scan", "--dsn", pg_dsn]) == 0
    assert "ScanStats" in capsys.readouterr().out
    assert main(["vee", "scan", "--dsn", "postgresql://postgres@127.0.0.1:1/x"]) == 1
