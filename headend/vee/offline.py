"""Offline check of a readings file: the same rules as the live path, on CSV files.

Formats (docs/vee.md): meters.csv `meter_id,serial,resource,digits,multiplier,
installed_at,replaces,verification_due` (+ optional `model,organisation,house,
is_balance,nominal_voltage,decommissioned`); readings.csv `meter_id,channel,kind,ts,
received_at,value,period_s`. Bad rows are reported with file, row number and reason;
the rest is still checked. The report has one row per finding:
`meter_id,kind,ts,severity,details`.
"""
from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path

from askue.headend.vee import engine
from askue.headend.vee.model import KINDS, RESOURCES, SEVERITY_ORDER, Finding, MeterFacts, MeterValue
from askue.headend.vee.rules.common import MSK, Ctx
from askue.headend.vee.thresholds import ThresholdConfig

METER_COLUMNS = ("meter_id", "serial", "resource", "digits", "multiplier", "installed_at", "replaces",
                 "verification_due")
OPTIONAL_METER_COLUMNS = ("model", "organisation", "house", "is_balance", "nominal_voltage", "decommissioned")
READING_COLUMNS = ("meter_id", "channel", "kind", "ts", "received_at", "value", "period_s")
REPORT_COLUMNS = ("meter_id", "kind", "ts", "severity", "details")
_OBIS = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
_TRUE = {"1", "true", "yes", "y", "да", "t"}
_FALSE = {"", "0", "false", "no", "n", "нет", "f"}


class FileFormatError(ValueError):
    """A whole file cannot be read (missing, wrong header): nothing to check."""


@dataclass(frozen=True)
class RowError:
    file: str
    row: int  # line number in the file (the header is line 1)
    reason: str
    meter: str = ""  # meter code, when the row names one


@dataclass
class CheckResult:
    findings: list[Finding] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    meters: int = 0
    readings: int = 0


class _RowProblem(ValueError):
    pass


def _read_csv(path: Path, required: Iterable[str]) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise FileFormatError(f"{path}: cannot read ({e.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = raw.decode("cp1251")
        except UnicodeDecodeError:
            raise FileFormatError(f"{path}: not UTF-8 or windows-1251 text") from None
    first = text.split("\n", 1)[0]
    delim = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise FileFormatError(f"{path}: empty file; the first line must be the header "
                              f"{','.join(required)}") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise FileFormatError(f"{path}: header lacks column(s) {', '.join(missing)}; "
                              f"expected {','.join(required)}")
    rows = []
    for line_no, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            rows.append((line_no, {"__error__": f"{len(cells)} cells, the header has {len(header)}"}))
            continue
        rows.append((line_no, {h: (cells[i].strip() if i < len(cells) else "") for i, h in enumerate(header)}))
    return header, rows


def _parse_time(s: str, col: str) -> datetime:
    try:
        t = datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith("Z") else s)
    except ValueError:
        raise _RowProblem(f"{col}: {s!r} is not an ISO 8601 time (e.g. 2026-11-01T00:00:00+03:00)") from None
    if t.tzinfo is None:
        raise _RowProblem(f"{col}: {s!r} has no UTC offset; add one, e.g. +03:00")
    return t


def _parse_date(s: str, col: str) -> date | None:
    if not s:
        return None
    try:
        return date.fromisoformat(s[:10]) if len(s) >= 10 and s[4] == "-" else datetime.strptime(s, "%d.%m.%Y").date()
    except ValueError:
        raise _RowProblem(f"{col}: {s!r} is not a date (YYYY-MM-DD or DD.MM.YYYY)") from None


def _parse_float(s: str, col: str) -> float:
    try:
        x = float(s.replace(",", ".").replace(" ", "").replace("\u00a0", ""))
    except ValueError:
        raise _RowProblem(f"{col}: {s!r} is not a number") from None
    if not math.isfinite(x):
        raise _RowProblem(f"{col}: {s!r} is not a finite number")
    return x


def _meter(row: dict[str, str], tz: tzinfo) -> MeterFacts:
    mid = row["meter_id"]
    if not mid:
        raise _RowProblem("meter_id: empty")
    resource = row["resource"].lower()
    if resource not in RESOURCES:
        raise _RowProblem(f"resource: {row['resource']!r} is not one of {'|'.join(RESOURCES)}")
    digits = None
    if row["digits"]:
        try:
            digits = int(row["digits"])
        except ValueError:
            raise _RowProblem(f"digits: {row['digits']!r} is not an integer") from None
        if not 1 <= digits <= 12:
            raise _RowProblem(f"digits: {digits} out of range 1..12")
    mult = _parse_float(row["multiplier"], "multiplier") if row["multiplier"] else 1.0
    if mult <= 0:
        raise _RowProblem(f"multiplier: {mult} must be positive")
    installed = None
    if row["installed_at"]:
        s = row["installed_at"]
        installed = (_parse_time(s, "installed_at") if "T" in s or " " in s.strip()
                     else datetime.combine(_parse_date(s, "installed_at"), time(0), tzinfo=tz))  # type: ignore[arg-type]
    nominal = _parse_float(row["nominal_voltage"], "nominal_voltage") if row.get("nominal_voltage") else 230.0
    flags = {}
    for col in ("is_balance", "decommissioned"):
        v = row.get(col, "").lower()
        if v not in _TRUE | _FALSE:
            raise _RowProblem(f"{col}: {row[col]!r} is not true/false")
        flags[col] = v in _TRUE
    return MeterFacts(code=mid, resource=resource, serial=row["serial"] or None, model=row.get("model") or None,
                      organisation=row.get("organisation") or None, digits=digits, multiplier=mult,
                      installed_at=installed, replaces=row["replaces"] or None,
                      verification_due=_parse_date(row["verification_due"], "verification_due"),
                      nominal_voltage=nominal, house=row.get("house") or None, **flags)


def _reading(row: dict[str, str], line: int, meters: dict[str, MeterFacts]) -> MeterValue:
    mid = row["meter_id"]
    if not mid:
        raise _RowProblem("meter_id: empty")
    if mid not in meters:
        raise _RowProblem(f"meter_id: {mid!r} is not in the meters file; add a row for it there")
    obis = row["channel"]
    if not _OBIS.match(obis):
        raise _RowProblem(f"channel: {obis!r} is not an OBIS code (six groups, e.g. 1.0.1.8.0.255)")
    kind = row["kind"].lower()
    if kind not in KINDS:
        raise _RowProblem(f"kind: {row['kind']!r} is not one of {'|'.join(KINDS)}")
    ts = _parse_time(row["ts"], "ts")
    received = _parse_time(row["received_at"], "received_at") if row["received_at"] else None
    value = _parse_float(row["value"], "value")
    period = None
    if kind == "interval":
        if not row["period_s"]:
            raise _RowProblem("period_s: required for an interval (e.g. 1800)")
        try:
            period = int(row["period_s"])
        except ValueError:
            raise _RowProblem(f"period_s: {row['period_s']!r} is not an integer number of seconds") from None
        if not 0 < period <= 86400:
            raise _RowProblem(f"period_s: {period} out of range 1..86400")
    elif row["period_s"]:
        raise _RowProblem(f"period_s: only intervals have a period, this row is a {kind}")
    if kind == "event" and value != int(value):
        raise _RowProblem(f"value: a journal event code must be an integer, got {row['value']!r}")
    if kind in ("register", "interval") and value < 0:
        raise _RowProblem(f"value: a {kind} cannot be negative ({value})")
    return MeterValue(meter=mid, obis=obis, kind=kind, ts=ts, value=value, received_at=received,
                 period_s=period, row=line)


def load(meters_path: Path, readings_path: Path, tz: tzinfo = MSK
         ) -> tuple[dict[str, MeterFacts], list[MeterValue], list[RowError]]:
    errors: list[RowError] = []
    meters: dict[str, MeterFacts] = {}
    _, mrows = _read_csv(meters_path, METER_COLUMNS)
    for line, row in mrows:
        try:
            if "__error__" in row:
                raise _RowProblem(row["__error__"])
            m = _meter(row, tz)
            if m.code in meters:
                raise _RowProblem(f"meter_id: {m.code!r} listed twice")
            meters[m.code] = m
        except _RowProblem as e:
            errors.append(RowError(meters_path.name, line, str(e), row.get("meter_id", "")))
    # A meter that another one replaces is retired: no contact/verification alarms.
    for m in list(meters.values()):
        if m.replaces and m.replaces in meters:
            meters[m.replaces] = replace(meters[m.replaces], replaced_by=m.code)
    values: list[MeterValue] = []
    _, rrows = _read_csv(readings_path, READING_COLUMNS)
    for line, row in rrows:
        try:
            if "__error__" in row:
                raise _RowProblem(row["__error__"])
            values.append(_reading(row, line, meters))
        except _RowProblem as e:
            errors.append(RowError(readings_path.name, line, str(e), row.get("meter_id", "")))
    return meters, values, errors


def check(meters: dict[str, MeterFacts], values: list[MeterValue], now: datetime, cfg: ThresholdConfig,
          tz: tzinfo = MSK) -> list[Finding]:
    by_meter: dict[str, list[MeterValue]] = {}
    for v in values:
        by_meter.setdefault(v.meter, []).append(v)
    findings: list[Finding] = []
    for mid, meter in meters.items():
        ctx = Ctx(now=now, thresholds=cfg.for_meter(meter), tz=tz)
        vs = by_meter.get(mid, [])
        res = engine.check_series(meter, vs, ctx)
        last = max((v.received_at or v.ts for v in vs), default=None)
        res.extend(engine.check_meter_state(meter, last, ctx))
        findings += res.findings
    period = _imbalance_period(meters, by_meter, tz)
    if period:
        findings += engine.check_houses(meters, by_meter, period, cfg, now).findings
    findings.sort(key=lambda f: (f.meter, f.ts, -SEVERITY_ORDER[f.severity], f.kind))
    return findings


def _imbalance_period(meters: dict[str, MeterFacts], by_meter: dict[str, list[MeterValue]],
                      tz: tzinfo) -> tuple[datetime, datetime] | None:
    """The whole local days covered by the balance meters' reads."""
    ts = [v.ts for m in meters.values() if m.is_balance for v in by_meter.get(m.code, [])
          if v.kind == "register"]
    if not ts:
        return None
    a = min(ts).astimezone(tz)
    b = max(ts).astimezone(tz)
    start = datetime.combine(a.date() + (timedelta(days=1) if a.time() > time(1) else timedelta()), time(0), tzinfo=tz)
    end = datetime.combine(b.date() + (timedelta(days=1) if b.time() >= time(23) else timedelta()), time(0), tzinfo=tz)
    return (start, end) if end > start else None


def run_check(meters_path: Path, readings_path: Path, now: datetime, cfg: ThresholdConfig | None = None,
              tz: tzinfo = MSK) -> CheckResult:
    meters, values, errors = load(meters_path, readings_path, tz)
    findings = check(meters, values, now, cfg or ThresholdConfig(), tz)
    return CheckResult(findings=findings, errors=errors, meters=len(meters), readings=len(values))


def write_report(result: CheckResult, out: io.TextIOBase | io.StringIO) -> None:
    w = csv.writer(out, lineterminator="\n")
    w.writerow(REPORT_COLUMNS)
    for e in result.errors:
        w.writerow([e.meter, "bad_row", "", "error", f"{e.file} row {e.row}: {e.reason}"])
    for f in result.findings:
        w.writerow([f.meter, f.kind, f.ts.isoformat(), f.severity, f.details()])
