"""Registry import: organisations, houses, accounts, gateways and meters from CSV or xlsx.

One row per meter, as utilities keep their registers. Headers may be English
(the field names below) or the usual Russian ones («Лицевой счет», «Адрес»,
«Заводской номер», …); see docs/headend-registry.md. Every bad cell becomes a
RowError (row, column, reason); bad rows are not imported, good rows go through
the registry services (the same as the API and the pages: checks, dated parameters,
bindings, audit), upserted by their codes, so importing the same file again changes
nothing.
"""
from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import re
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from askue.headend.auth.permissions import Principal
from askue.headend.errors import Conflict, Invalid, NotFound
from askue.headend.registry import entities, meters
from askue.headend.registry import validate as v

T = TypeVar("T")

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
    "multiplier": ("multiplier", "коэффициент", "коэффициент трансформации", "кт", "расчетный коэффициент"),
    "ct_ratio": ("ct_ratio", "ктт", "коэффициент тт", "коэффициент трансформации тока"),
    "vt_ratio": ("vt_ratio", "ктн", "коэффициент тн", "коэффициент трансформации напряжения"),
    "tariff_zones": ("tariff_zones", "тарифность", "число тарифов", "тарифов"),
    "installed_at": ("installed_at", "дата установки", "дата ввода"),
    "verified_at": ("verified_at", "дата поверки", "дата последней поверки"),
    "verification_due": ("verification_due", "дата следующей поверки", "следующая поверка", "межповерочный до"),
    "is_balance": ("is_balance", "одпу", "балансный", "общедомовой"),
    "lat": ("lat", "широта"),
    "lon": ("lon", "долгота"),
    "gateway_id": ("gateway_id", "шлюз", "успд"),
    "gateway_code": ("gateway_code", "код на шлюзе", "код в успд"),
    "params_from": ("params_from", "valid_from", "действует с", "дата изменения"),
    "bus": ("bus", "шина", "линия"),
    "bus_address": ("bus_address", "сетевой адрес", "адрес на шине"),
    "status": ("status", "статус", "состояние"),
    "replaces": ("replaces", "заменяет", "заменен счетчик"),
}
_norm = v.norm
_ALIASES = {_norm(a): f for f, spellings in HEADERS.items() for a in spellings}


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


_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "resource": v.resource, "org_kind": v.org_kind, "status": v.status, "is_balance": v.flag,
    "digits": lambda f, x: v.whole(f, x, 1, 12), "tariff_zones": lambda f, x: v.whole(f, x, 1, 8),
    "multiplier": v.positive, "ct_ratio": v.positive, "vt_ratio": v.positive,
    "lat": v.latitude, "house_lat": v.latitude, "lon": v.longitude, "house_lon": v.longitude,
    "installed_at": v.day, "verified_at": v.day, "verification_due": v.day, "params_from": v.day,
    "meter_id": lambda f, x: v.code(f, x, required=False), "gateway_id": lambda f, x: v.code(f, x, required=False),
    "gateway_code": lambda f, x: v.code(f, x, required=False), "email": v.email,
}


def _check(field_: str, raw: Any) -> Any:
    """Convert one cell with the registry's own field checks; ValueError says why."""
    try:
        return _CHECKS.get(field_, lambda f, x: v.text(f, x, 500))(field_, raw)
    except Invalid as e:
        raise ValueError(e.message) from None


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


# file field -> the meter service's field
_METER_FIELDS = {"serial": "serial", "model": "model", "resource": "resource", "unit": "unit", "digits": "digits",
                 "multiplier": "multiplier", "ct_ratio": "ct_ratio", "vt_ratio": "vt_ratio",
                 "tariff_zones": "tariff_zones", "installed_at": "installed_at", "verified_at": "verified_at",
                 "verification_due": "verification_due", "is_balance": "is_balance", "lat": "lat", "lon": "lon",
                 "gateway_id": "gateway", "gateway_code": "gateway_code", "bus": "bus", "bus_address": "bus_address",
                 "status": "status", "params_from": "valid_from", "org_code": "org", "house_code": "house",
                 "account": "account"}
# the services' field -> the file's field, per object
_FILE_FIELD = {
    "organisation": {"name": "org_name", "kind": "org_kind", "inn": "org_inn"},
    "site": {"address": "house_address", "lat": "house_lat", "lon": "house_lon", "parent": "parent_code",
             "org": "org_code"},
    "account": {"house": "house_code", "org": "org_code"},
    "gateway": {"org": "org_code"},
    "meter": {"code": "meter_id", **{svc: f for f, svc in _METER_FIELDS.items()}},
}
IMPORTER = Principal("import", "admin", None)


def _given(values: dict[str, Any]) -> dict[str, Any]:
    """Cells left empty change nothing (a file need not repeat every column)."""
    return {k: x for k, x in values.items() if x is not None}


async def _exists(conn: psycopg.AsyncConnection, table: str, key: str, code: str) -> bool:
    cur = await conn.execute(f"SELECT 1 FROM {table} WHERE {key} = %s", (code,))  # noqa: S608
    return await cur.fetchone() is not None


async def _save(conn: psycopg.AsyncConnection, principal: Principal, kind: str, code: str, values: dict[str, Any],
                res: ImportResult) -> None:
    table, key = {"organisation": ("organisations", "code"), "site": ("sites", "code"),
                  "account": ("accounts", "code"), "gateway": ("gateways", "id"), "meter": ("meters", "code")}[kind]
    existed = await _exists(conn, table, key, code)
    if kind == "meter":
        _, changed = await meters.save(conn, principal, code, _given(values))
    else:
        _, changed = await entities.save(conn, principal, kind, code, _given(values))
    if not existed:
        res.created[table] = res.created.get(table, 0) + 1
    elif changed:
        res.updated[table] = res.updated.get(table, 0) + 1


async def _apply_row(conn: psycopg.AsyncConnection, principal: Principal, v_: dict[str, Any],
                     res: ImportResult) -> None:
    org = v_["org_code"]
    await _save(conn, principal, "organisation", org,
                {"name": v_.get("org_name") or org, "kind": v_.get("org_kind"), "inn": v_.get("org_inn")}, res)
    if v_.get("parent_code"):
        await _save(conn, principal, "site", v_["parent_code"], {"org": org, "kind": "substation"}, res)
    if v_.get("house_code"):
        await _save(conn, principal, "site", v_["house_code"],
                    {"org": org, "kind": "house", "address": v_.get("house_address"), "lat": v_.get("house_lat"),
                     "lon": v_.get("house_lon"), "parent": v_.get("parent_code")}, res)
    if v_.get("account"):
        await _save(conn, principal, "account", v_["account"],
                    {"org": org, "house": v_.get("house_code"), "flat": v_.get("flat"),
                     "subscriber": v_.get("subscriber"), "phone": v_.get("phone"), "email": v_.get("email")}, res)
    if v_.get("gateway_id") and not await _exists(conn, "gateways", "id", v_["gateway_id"]):
        # the registry file lists the gateways its meters are read by: registered before they connect
        await _save(conn, principal, "gateway", v_["gateway_id"], {"org": org}, res)
    await _save(conn, principal, "meter", v_["meter_id"],
                {svc: v_.get(f) for f, svc in _METER_FIELDS.items()}, res)


async def apply_rows(conn: psycopg.AsyncConnection, rows: list[RegistryRow], res: ImportResult,
                     principal: Principal = IMPORTER, columns: dict[str, str] | None = None) -> None:
    """Every row through the registry services (the API's and the pages'), each row on its own:
    a row the services refuse is reported with its cell and changes nothing."""
    columns = columns or {}
    replaces: list[tuple[RegistryRow, str]] = []
    for r in rows:
        kind = "meter"
        try:
            async with conn.transaction():
                await _apply_row(conn, principal, r.values, res)
        except (Invalid, Conflict, NotFound) as e:
            field_ = getattr(e, "field", "code")
            f = next((_FILE_FIELD[k].get(field_) for k in _FILE_FIELD if field_ in _FILE_FIELD[k]), None) \
                or _FILE_FIELD[kind].get(field_, field_)
            res.errors.append(RowError(r.row, columns.get(f, f), e.message))
            continue
        res.imported += 1
        if r.values.get("replaces"):
            replaces.append((r, r.values["replaces"]))
    for r, old_code in replaces:
        try:
            async with conn.transaction():
                await meters.link_replacement(conn, principal, old_code, r.values["meter_id"])
        except (Invalid, Conflict, NotFound) as e:
            res.errors.append(RowError(r.row, columns.get("replaces", "replaces"), e.message))


def import_file(dsn: str, path: str | Path, *, dry_run: bool = False, default_org: str | None = None,
                strict: bool = False) -> ImportResult:
    """Import a registry file. Bad rows are reported and skipped (all rows skipped with strict=True)."""
    header, raw_rows = read_table(Path(path))
    rows, errors = parse_rows(header, raw_rows, default_org)
    res = ImportResult(rows=len(raw_rows), errors=errors, dry_run=dry_run)
    if strict and errors:
        return res
    columns = {f: header[i] for i, f in map_header(header).items()}

    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            async with conn.transaction(force_rollback=dry_run):
                await apply_rows(conn, rows, res, IMPORTER, columns)

    run_async(run())
    res.errors.sort(key=lambda e: e.row)
    return res


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from synchronous code, in a thread of its own if an event loop is running here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1) as ex:
        return ex.submit(asyncio.run, coro).result()
