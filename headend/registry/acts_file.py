"""Install, exchange and removal acts from a CSV or xlsx file («ведомость замены»), one act
per row, through the same service as the API and the pages (`acts.record`).

Importing the same file again records nothing new: an act with the same kind, meters and
moment is already there. A row the service refuses is reported with its cell and records
nothing; the other rows go on (`strict`: nothing at all when any row is bad).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from askue.headend.auth.permissions import Principal
from askue.headend.errors import Conflict, Invalid, NotFound
from askue.headend.registry import acts
from askue.headend.registry import validate as v
from askue.headend.registry.importer import IMPORTER, RegistryFileError, RowError, read_table, run_async
from askue.headend.storage import meta

TARIFFS = ("total", "t1", "t2", "t3", "t4")
HEADERS: dict[str, tuple[str, ...]] = {
    "kind": ("kind", "act", "вид акта", "акт", "операция"),
    "at": ("at", "дата и время", "дата замены", "дата акта", "дата"),
    "meter": ("meter", "прибор учета", "код счетчика", "старый счетчик", "счетчик"),
    **{f"final_{t}": (f"final_{t}", *((f"конечные {t}", f"конечные показания {t}") if t != "total" else
                                      ("конечные показания", "конечное показание"))) for t in TARIFFS},
    "new_meter": ("new_meter", "новый счетчик", "код нового счетчика", "код нового"),
    "new_serial": ("new_serial", "заводской номер нового", "номер нового счетчика"),
    "new_model": ("new_model", "модель нового", "тип нового счетчика"),
    "new_ct_ratio": ("new_ct_ratio", "ктт нового"), "new_vt_ratio": ("new_vt_ratio", "ктн нового"),
    "new_multiplier": ("new_multiplier", "коэффициент нового"), "new_digits": ("new_digits", "разрядность нового"),
    "new_tariff_zones": ("new_tariff_zones", "тарифность нового"),
    **{f"initial_{t}": (f"initial_{t}", *((f"начальные {t}", f"начальные показания {t}") if t != "total" else
                                          ("начальные показания", "начальное показание"))) for t in TARIFFS},
    "resource": ("resource", "ресурс"), "org": ("org", "код организации"), "house": ("house", "код дома"),
    "account": ("account", "лицевой счет", "лс"), "gateway": ("gateway", "шлюз", "успд"),
    "gateway_code": ("gateway_code", "код на шлюзе"), "unit": ("unit", "единица измерения", "единица"),
    "document": ("document", "номер акта", "№ акта"), "comment": ("comment", "комментарий", "примечание"),
}
_ALIASES = {v.norm(a): f for f, spellings in HEADERS.items() for a in spellings}
KINDS = {"exchange": "exchange", "замена": "exchange", "install": "install", "установка": "install",
         "ввод": "install", "removal": "removal", "снятие": "removal", "демонтаж": "removal"}


@dataclass
class ActsResult:
    rows: int = 0
    recorded: int = 0
    already: int = 0
    errors: list[RowError] = field(default_factory=list)
    dry_run: bool = False


def _header(header: list[str]) -> dict[int, str]:
    mapping: dict[int, str] = {}
    unknown = []
    for i, h in enumerate(header):
        if not h.strip():
            continue
        f = _ALIASES.get(v.norm(h))
        if f is None:
            unknown.append(h)
        else:
            mapping[i] = f
    if unknown:
        raise RegistryFileError(f"unknown column(s) {', '.join(map(repr, unknown))}; known: {', '.join(HEADERS)} "
                                "or their Russian names (see docs/headend-registry.md)")
    if not {"kind", "at"} <= set(mapping.values()):
        raise RegistryFileError("an acts file needs the columns kind («Вид акта») and at («Дата и время»)")
    return mapping


def act_of(cells: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(kind, the service's act) from one row's cells."""
    kind = KINDS.get(v.norm(cells.get("kind") or ""))
    if kind is None:
        raise Invalid("kind", f"{cells.get('kind')!r} is not an act; use замена, установка or снятие",
                      f"«{cells.get('kind')}» — не вид акта; допустимо: замена, установка, снятие")
    data: dict[str, Any] = {k: cells[k] for k in ("meter", "at", "gateway", "gateway_code", "unit", "document",
                                                    "comment", "resource", "org", "house", "account")
                            if cells.get(k) not in (None, "")}
    final = {t.upper() if t != "total" else t: cells[f"final_{t}"] for t in TARIFFS
             if cells.get(f"final_{t}") not in (None, "")}
    initial = {t.upper() if t != "total" else t: cells[f"initial_{t}"] for t in TARIFFS
               if cells.get(f"initial_{t}") not in (None, "")}
    new = {k[4:]: cells[k] for k in cells if k.startswith("new_") and k != "new_meter" and cells[k] not in (None, "")}
    if cells.get("new_meter"):
        new["code"] = cells["new_meter"]
    if kind in ("exchange", "removal"):
        data["old_final"] = final
    if kind in ("exchange", "install"):
        data["new_initial"] = initial
        data["new_meter"] = new
    return kind, data


async def apply(conn: psycopg.AsyncConnection, header: list[str], rows: list[tuple[int, list[Any]]], res: ActsResult,
                principal: Principal = IMPORTER, *, strict: bool = False) -> None:
    mapping = _header(header)
    column = {f: header[i] for i, f in mapping.items()}
    tz = await meta.timezone(conn)
    for rownum, raw in rows:
        cells = {f: raw[i] for i, f in mapping.items() if i < len(raw)}
        cells = {k: (x.strip() if isinstance(x, str) else x) for k, x in cells.items()}
        try:
            kind, data = act_of(cells)
            at = v.moment("at", data.get("at"), tz)
            new_code = (data.get("new_meter") or {}).get("code")
            if at is not None and await acts.find_act(conn, kind, data.get("meter"), new_code, at):
                res.already += 1
                continue
            async with conn.transaction():
                await acts.record(conn, principal, kind, data)
            res.recorded += 1
        except (Invalid, Conflict, NotFound) as e:
            f = getattr(e, "field", "meter")
            name = f.replace("old_final.", "final_").replace("new_initial.", "initial_").replace("new_meter.", "new_")
            name = name.lower() if name.startswith(("final_", "initial_")) else name
            res.errors.append(RowError(rownum, column.get(name, column.get(f, f)), e.message))
    if strict and res.errors:
        raise _Rollback


class _Rollback(Exception):
    pass


def import_acts(dsn: str, path: str | Path, *, dry_run: bool = False, strict: bool = False) -> ActsResult:
    header, rows = read_table(Path(path))
    res = ActsResult(rows=len(rows), dry_run=dry_run)

    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            try:
                async with conn.transaction(force_rollback=dry_run):
                    await apply(conn, header, rows, res, strict=strict)
            except _Rollback:
                res.recorded = 0

    run_async(run())
    return res
