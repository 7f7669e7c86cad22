"""Registry import: organisations, houses, accounts and meters from CSV or xlsx.

One row per meter, as utilities keep their registers. Headers may be English
(the field names below) or the usual Russian ones («Лицевой счет», «Адрес»,
«Заводской номер», …); see docs/headend-registry.md. Every bad cell becomes a
RowError (row, column, reason); bad rows are not imported, good rows are
upserted by their codes, so importing the same file again changes nothing.
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg

from askue.headend.auth import audit

RESOURCES = {
    "electricity": "electricity", "электроэнергия": "electricity", "электричество": "electricity", "ээ": "electricity",
    "cold_water": "cold_water", "хвс": "cold_water", "холодная вода": "cold_water", "хвс/вода": "cold_water",
    "hot_water": "hot_water", "гвс": "hot_water", "горячая вода": "hot_water",
    "heat": "heat", "тепло": "heat", "отопление": "heat", "тепловая энергия": "heat",
    "gas": "gas", "газ": "gas",
}
ORG_KINDS = {"uk": "uk", "ук": "uk", "tsj": "tsj", "тсж": "tsj", "snt": "snt", "снт": "snt", "grid": "grid",
             "сетевая компания": "grid", "retailer": "retailer", "энергосбыт": "retailer", "other": "other"}

# canonical field -> accepted header spellings (compared lower-case, spaces/punctuation collapsed)
HEADERS: dict[str, tuple[str, ...]] = {
    "org_code": ("org_code", "код организации", "организация код", "код ук"),
    "org_name": ("org_name", "организация", "управляющая компания", "ук", "наименование организации"),
    "org_kind": ("org_kind", "тип организации"),
    "org_inn": ("org_inn", "инн"),
    "house_code": ("house_code", "site_code", "код дома", "код объекта"),
    "house_address": ("house_address", "address", "адрес", "адрес дома"),
    "house_lat": ("house_lat", "широта дома"),
    "house_lon": ("house_lon", "долгота дома"),
    "parent_code": ("parent_code", "substation", "тп", "подстанция", "код тп"),
    "account": ("account", "лицевой счет", "лицевой счёт", "лс", "номер лс"),
    "flat": ("flat", "квартира", "кв", "помещение"),
    "subscriber": ("subscriber", "абонент", "фио", "фио абонента", "потребитель"),
    "phone": ("phone", "телефон"),
    "email": ("email", "e-mail", "почта"),
    "meter_id": ("meter_id", "код счетчика", "идентификатор счетчика", "id счетчика"),
    "serial": ("serial", "заводской номер", "серийный номер", "номер счетчика", "№ счетчика"),
    "model": ("model", "модель", "тип счетчика", "марка"),
    "resource": ("resource", "ресурс", "тип ресурса", "вид ресурса", "услуга"),
    "unit": ("unit", "единица измерения", "ед изм"),
    "digits": ("digits", "разрядность", "значность"),
    "multiplier": ("multiplier", "коэффициент", "коэффициент трансформации", "ктт", "кт"),
    "tariff_zones": ("tariff_zones", "тарифность", "число тарифов", "тарифов"),
    "installed_at": ("installed_at", "дата установки", "дата ввода"),
    "verified_at": ("verified_at", "дата поверки", "дата последней поверки"),
    "verification_due": ("verification_due", "дата следующей поверки", "следующая поверка", "межповерочный до"),
    "is_balance": ("is_balance", "одпу", "балансный", "общедомовой"),
    "lat": ("lat", "широта"),
    "lon": ("lon", "долгота"),
    "gateway_id": ("gateway_id", "шлюз", "успд"),
    "bus": ("bus", "шина", "линия"),
    "bus_address": ("bus_address", "сетевой адрес", "адрес на шине"),
    "status": ("status", "статус", "состояние"),
    "replaces": ("replaces", "заменяет", "заменен счетчик"),
}
_NORM_RE = re.compile(r"[\s_.,:;№#()\-]+")


def _norm(h: str) -> str:
    return _NORM_RE.sub(" ", str(h).strip().lower().replace("ё", "е")).strip()


_ALIASES = {_norm(a): f for f, spellings in HEADERS.items() for a in spellings}
_RESOURCES = {_norm(k): v for k, v in RESOURCES.items()}
_ORG_KINDS = {_norm(k): v for k, v in ORG_KINDS.items()}


class RegistryFileError(ValueError):
    """The file as a whole cannot be read (format, encoding, missing columns)."""


@dataclass(frozen=True)
class RowError:
    row: int  # 1-based line/row number in the file, header = 1
    column: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column}: {self.reason}"


@dataclass
class RegistryRow:
    row: int
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImportResult:
    rows: int = 0
    imported: int = 0
    errors: list[RowError] = field(default_factory=list)
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False


def read_table(path: Path) -> tuple[list[str], list[tuple[int, list[Any]]]]:
    """Header and (row number, cells) of a CSV (UTF-8 or windows-1251, ';' or ',') or the first xlsx sheet."""
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        import openpyxl

        try:
            wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as e:  # openpyxl raises many types for broken files
            raise RegistryFileError(f"{path}: not a readable xlsx file ({e})") from None
        rows = [(i, list(r)) for i, r in enumerate(wb.worksheets[0].iter_rows(values_only=True), start=1)]
        wb.close()
    elif suffix in (".csv", ".txt"):
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            try:
                text = raw.decode("cp1251")  # Excel on Russian Windows saves CSV so
            except UnicodeDecodeError as e:
                line = raw[:e.start].count(b"\n") + 1
                raise RegistryFileError(f"{path}:{line}: the file is neither UTF-8 nor windows-1251 (byte "
                                        f"0x{raw[e.start]:02x}); save it as CSV UTF-8") from None
        try:
            dialect = csv.Sniffer().sniff(text[:4096], delimiters=";,\t")
        except csv.Error:
            dialect = csv.excel
        reader = csv.reader(io.StringIO(text, newline=""), dialect)
        try:
            rows = [(i, r) for i, r in enumerate(reader, start=1)]
        except csv.Error as e:  # e.g. a stray line break inside an unquoted cell
            raise RegistryFileError(f"{path}:{reader.line_num}: not a readable CSV line ({e}); "
                                    "check quotes and line breaks in that row") from None
    else:
        raise RegistryFileError(f"{path}: unsupported file type {suffix!r}; use .csv or .xlsx")
    rows = [(i, r) for i, r in rows if any(c not in (None, "") for c in r)]
    if not rows:
        raise RegistryFileError(f"{path}: the file is empty")
    header = ["" if h is None else str(h) for h in rows[0][1]]
    return header, rows[1:]


def map_header(header: list[str]) -> dict[int, str]:
    mapping: dict[int, str] = {}
    unknown = []
    for i, h in enumerate(header):
        if not h.strip():
            continue
        f = _ALIASES.get(_norm(h))
        if f is None:
            unknown.append(h)
        elif f in mapping.values():
            raise RegistryFileError(f"column {h!r} repeats field {f!r}")
        else:
            mapping[i] = f
    fields = set(mapping.values())
    if not ({"meter_id", "serial"} & fields):
        raise RegistryFileError("the file needs a meter_id or serial column («Заводской номер»); "
                                f"columns found: {', '.join(header)}")
    if unknown:
        raise RegistryFileError(f"unknown column(s) {', '.join(map(repr, unknown))}; known: "
                                f"{', '.join(HEADERS)} or their Russian names (see docs/headend-registry.md)")
    return mapping


def _s(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    s = str(v).strip()
    return s or None


def _num(v: Any, integer: bool = False) -> float | int:
    if isinstance(v, int | float) and not isinstance(v, bool):
        n = v
    else:
        n = float(str(v).strip().replace(" ", "").replace("\u00a0", "").replace(",", "."))
    if integer:
        if float(n) != int(n):
            raise ValueError(f"{v!r} is not a whole number")
        return int(n)
    return float(n)


def _date(v: Any) -> date:
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    s = str(v).strip()
    for fmt in ("%Y-%m-%d", "%d.%m.%Y", "%d.%m.%y", "%d/%m/%Y"):
        try:
            return datetime.strptime(s, fmt).date()
        except ValueError:
            pass
    raise ValueError(f"{s!r} is not a date (use YYYY-MM-DD or DD.MM.YYYY)")


def _bool(v: Any) -> bool:
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "да", "д", "+", "x", "одпу", "1.0"):
        return True
    if s in ("0", "false", "no", "нет", "н", "-", "", "0.0"):
        return False
    raise ValueError(f"{v!r} is not yes/no (да/нет, 1/0)")


def _check(field_: str, raw: Any) -> Any:
    """Convert one cell; raise ValueError with a reason the operator understands."""
    if field_ == "resource":
        r = _RESOURCES.get(_norm(raw))
        if r is None:
            raise ValueError(f"{raw!r} is not a resource; use electricity/cold_water/hot_water/heat/gas "
                             "(электроэнергия, ХВС, ГВС, тепло, газ)")
        return r
    if field_ == "org_kind":
        k = _ORG_KINDS.get(_norm(raw))
        if k is None:
            raise ValueError(f"{raw!r} is not an organisation kind; use УК, ТСЖ, СНТ, grid, retailer")
        return k
    if field_ == "digits":
        n = _num(raw, integer=True)
        if not 1 <= n <= 12:
            raise ValueError(f"{n} digits is out of range 1..12")
        return n
    if field_ == "tariff_zones":
        n = _num(raw, integer=True)
        if not 1 <= n <= 8:
            raise ValueError(f"{n} tariff zones is out of range 1..8")
        return n
    if field_ == "multiplier":
        n = _num(raw)
        if n <= 0:
            raise ValueError(f"multiplier {n} must be positive")
        return n
    if field_ in ("lat", "house_lat"):
        n = _num(raw)
        if not -90 <= n <= 90:
            raise ValueError(f"latitude {n} is out of range -90..90")
        return n
    if field_ in ("lon", "house_lon"):
        n = _num(raw)
        if not -180 <= n <= 180:
            raise ValueError(f"longitude {n} is out of range -180..180")
        return n
    if field_ in ("installed_at", "verified_at", "verification_due"):
        return _date(raw)
    if field_ == "is_balance":
        return _bool(raw)
    if field_ == "status":
        s = _norm(raw)
        st = {"active": "active", "активен": "active", "в работе": "active", "decommissioned": "decommissioned",
              "снят": "decommissioned", "демонтирован": "decommissioned"}.get(s)
        if st is None:
            raise ValueError(f"{raw!r} is not a status; use active/decommissioned (в работе/снят)")
        return st
    if field_ == "meter_id":
        s = _s(raw)
        if s and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}", s):
            raise ValueError(f"{s!r} is not a valid meter id (letters, digits, _ . : -, at most 64)")
        return s
    if field_ == "email":
        s = _s(raw)
        if s and "@" not in s:
            raise ValueError(f"{s!r} is not an e-mail address")
        return s
    return _s(raw)


def parse_rows(header: list[str], rows: Iterable[tuple[int, list[Any]]],
               default_org: str | None = None) -> tuple[list[RegistryRow], list[RowError]]:
    mapping = map_header(header)
    out: list[RegistryRow] = []
    errors: list[RowError] = []
    seen_meters: dict[str, int] = {}
    for rownum, cells in rows:
        vals: dict[str, Any] = {}
        errs: list[RowError] = []
        for i, f in mapping.items():
            raw = cells[i] if i < len(cells) else None
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                continue
            try:
                vals[f] = _check(f, raw)
            except ValueError as e:
                errs.append(RowError(rownum, header[i], str(e)))
        if not vals.get("meter_id") and vals.get("serial"):
            vals["meter_id"] = re.sub(r"[^A-Za-z0-9_.:-]", "-", vals["serial"])[:64].strip("-") or None
        col = lambda f: next((header[i] for i, x in mapping.items() if x == f), f)  # noqa: E731
        if not vals.get("meter_id") and not any(e.column in (col("meter_id"), col("serial")) for e in errs):
            errs.append(RowError(rownum, col("meter_id"), "meter id or serial is required"))
        if "resource" not in vals and not any(e.column == col("resource") for e in errs):
            errs.append(RowError(rownum, col("resource"), "resource is required"))
        vals.setdefault("org_code", default_org)
        if not vals.get("org_code") and vals.get("org_name"):
            vals["org_code"] = vals["org_name"]
        if not vals.get("org_code"):
            errs.append(RowError(rownum, col("org_code"), "organisation is required (a column or --org CODE)"))
        if vals.get("account") and not (vals.get("house_code") or vals.get("house_address")):
            errs.append(RowError(rownum, col("house_address"), "an account needs its house (address or code)"))
        mid = vals.get("meter_id")
        if mid and mid in seen_meters:
            errs.append(RowError(rownum, col("meter_id"), f"meter {mid} already listed in row {seen_meters[mid]}"))
        for a, b in (("installed_at", "verification_due"), ("verified_at", "verification_due")):
            if isinstance(vals.get(a), date) and isinstance(vals.get(b), date) and vals[b] < vals[a]:
                errs.append(RowError(rownum, col(b), f"{vals[b]} is before {a} {vals[a]}"))
        if errs:
            errors.extend(errs)
            continue
        seen_meters[mid] = rownum
        if not vals.get("house_code") and vals.get("house_address"):
            # houses without a code are keyed by their normalised address
            vals["house_code"] = "addr-" + hashlib.sha1(_norm(vals["house_address"]).encode()).hexdigest()[:12]
        out.append(RegistryRow(rownum, vals))
    return out, errors


_METER_FIELDS = ("serial", "model", "resource", "unit", "digits", "multiplier", "tariff_zones", "installed_at",
                 "verified_at", "verification_due", "is_balance", "lat", "lon", "gateway_id", "bus", "bus_address")


def _upsert(conn: psycopg.Connection, table: str, code: str, values: dict[str, Any], res: ImportResult) -> int:
    cols = [k for k, v in values.items() if v is not None]
    row = conn.execute(f"SELECT id, {', '.join(cols) or 'NULL'} FROM {table} WHERE code = %s", (code,)).fetchone()
    if row is None:
        names = ", ".join(["code", *cols])
        ph = ", ".join(["%s"] * (len(cols) + 1))
        new_id = conn.execute(f"INSERT INTO {table} ({names}) VALUES ({ph}) RETURNING id",
                              [code, *[values[c] for c in cols]]).fetchone()[0]
        res.created[table] = res.created.get(table, 0) + 1
        if table == "meters":  # the meter card's history shows what the registry said and when
            audit.record_sync(conn, "registry import", "registry_import", "meter", code,
                              new={c: values[c] for c in cols if c in _METER_FIELDS})
        return new_id
    if cols:
        sets = ", ".join(f"{c} = %s" for c in cols)
        changed = conn.execute(
            f"UPDATE {table} SET {sets} WHERE id = %s AND ({' OR '.join(f'{c} IS DISTINCT FROM %s' for c in cols)})",
            [*[values[c] for c in cols], row[0], *[values[c] for c in cols]]).rowcount
        if changed:
            res.updated[table] = res.updated.get(table, 0) + 1
            before = dict(zip(cols, row[1:], strict=True))
            diff = [c for c in cols if c in _METER_FIELDS and _differs(before[c], values[c])]
            if table == "meters" and diff:
                audit.record_sync(conn, "registry import", "registry_import", "meter", code,
                                  old={c: before[c] for c in diff}, new={c: values[c] for c in diff})
    return row[0]


def _differs(old: Any, new: Any) -> bool:
    if isinstance(old, int | float) and isinstance(new, int | float) and not isinstance(old, bool):
        return float(old) != float(new)
    return old != new


def apply_rows(conn: psycopg.Connection, rows: list[RegistryRow], res: ImportResult) -> None:
    """Upsert organisations, sites, accounts, meters in that order (inside the caller's transaction)."""
    replaces: list[tuple[RegistryRow, str, int]] = []
    for r in rows:
        v = r.values
        org_id = _upsert(conn, "organisations", v["org_code"],
                         {"name": v.get("org_name") or v["org_code"], "kind": v.get("org_kind"),
                          "inn": v.get("org_inn")}, res)
        parent_id = None
        if v.get("parent_code"):
            parent_id = _upsert(conn, "sites", v["parent_code"], {"org_id": org_id, "kind": "substation"}, res)
        site_id = None
        if v.get("house_code"):
            site_id = _upsert(conn, "sites", v["house_code"],
                              {"org_id": org_id, "kind": "house", "address": v.get("house_address"),
                               "lat": v.get("house_lat"), "lon": v.get("house_lon"), "parent_id": parent_id}, res)
        account_id = None
        if v.get("account"):
            account_id = _upsert(conn, "accounts", v["account"],
                                 {"org_id": org_id, "site_id": site_id, "flat": v.get("flat"),
                                  "subscriber": v.get("subscriber"), "phone": v.get("phone"),
                                  "email": v.get("email")}, res)
        meter = {k: v.get(k) for k in _METER_FIELDS}
        meter.update(org_id=org_id, site_id=site_id, account_id=account_id, status=v.get("status") or "active")
        meter_id = _upsert(conn, "meters", v["meter_id"], meter, res)
        if v.get("replaces"):
            replaces.append((r, v["replaces"], meter_id))
        res.imported += 1
    for r, old_code, new_id in replaces:
        old = conn.execute("SELECT id FROM meters WHERE code = %s", (old_code,)).fetchone()
        if old is None:
            res.errors.append(RowError(r.row, "replaces", f"meter {old_code} to be replaced is not in the registry"))
            continue
        conn.execute("UPDATE meters SET replaces_id = %s WHERE id = %s", (old[0], new_id))
        conn.execute("UPDATE meters SET replaced_by_id = %s, status = 'decommissioned', "
                     "decommissioned_at = coalesce(decommissioned_at, "
                     "(SELECT installed_at FROM meters WHERE id = %s)) WHERE id = %s", (new_id, new_id, old[0]))


def import_file(dsn: str, path: str | Path, *, dry_run: bool = False, default_org: str | None = None,
                strict: bool = False) -> ImportResult:
    """Import a registry file. Bad rows are reported and skipped (all rows skipped with strict=True)."""
    header, raw_rows = read_table(Path(path))
    rows, errors = parse_rows(header, raw_rows, default_org)
    res = ImportResult(rows=len(raw_rows), errors=errors, dry_run=dry_run)
    if strict and errors:
        return res
    with psycopg.connect(dsn) as conn:
        with conn.transaction(force_rollback=dry_run):
            apply_rows(conn, rows, res)
    res.errors.sort(key=lambda e: e.row)
    return res
