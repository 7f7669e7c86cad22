"""A meter's history for its card («История прибора учёта»): what happened to the meter
and when, newest first, from every source that knows something.

Today's sources:
- `registry_dates`: dated facts of the registry row — installed, verified, decommissioned,
  replaced by / replaces (the exchange as the registry records it today);
- `audit_trail`: the action history about the meter — registry changes with their old and
  new values (import), manual readings and corrections of its registers, profile files.

- `registry_record`: the registry's dated parameter versions (kind "parameter", `changes`
  the old and new value of each field, `at` the day it takes effect) and its install,
  exchange and removal acts (`related` the other meter, `readings` the final and initial
  readings per channel). The audit rows of those same changes are left to this source.

A source is an async function (conn, meter row) → list[HistoryEntry]; its entries show on
the card, in the card's PDF and Excel, and in `meter_history()`'s callers.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any

import psycopg
from psycopg.rows import dict_row

from askue.headend import names
from askue.headend.auth import audit
from askue.headend.units import amount, number


@dataclass(frozen=True)
class Change:
    field: str  # registry field (names.field gives its label)
    old: Any
    new: Any


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime | date  # when it happened or takes effect (a date for dated registry facts)
    kind: str  # installed | verified | decommissioned | replaced_by | replaces | registry | manual_reading
    #            | correction | profile_file | parameter | exchange | install | removal
    changes: tuple[Change, ...] = ()
    actor: str | None = None
    ip: str | None = None
    comment: str | None = None
    related: str | None = None  # the other meter of an exchange
    obis: str | None = None  # the channel a reading entry is about
    readings: tuple[tuple[str, float | None, float | None], ...] = ()  # (obis, old/final, new/initial)
    detail: dict = field(default_factory=dict)

    def sort_key(self) -> datetime:
        return self.at if isinstance(self.at, datetime) else datetime.combine(self.at, time(12), tzinfo=UTC)


HistorySource = Callable[[psycopg.AsyncConnection, dict], Awaitable[list[HistoryEntry]]]


async def registry_dates(conn: psycopg.AsyncConnection, meter: dict) -> list[HistoryEntry]:
    out = []
    if meter.get("installed_at"):
        out.append(HistoryEntry(meter["installed_at"], "installed", related=meter.get("replaces")))
    if meter.get("verified_at") and meter.get("verified_at") != meter.get("installed_at"):
        out.append(HistoryEntry(meter["verified_at"], "verified"))
    if meter.get("decommissioned_at"):
        out.append(HistoryEntry(meter["decommissioned_at"], "decommissioned", related=meter.get("replaced_by")))
    return out


def _audit_entry(row: dict, code: str) -> HistoryEntry:
    old, new = row["old"] or {}, row["new"] or {}
    common = {"actor": row["actor"], "ip": row["ip"], "comment": row["comment"]}
    if row["action"] in ("manual_reading", "correction"):
        obis = (row["object_id"] or "").split("/")[1] if "/" in (row["object_id"] or "") else None
        return HistoryEntry(row["at"], row["action"], obis=obis,
                            readings=((obis or "", old.get("value"), new.get("value")),),
                            detail={"source": new.get("source"), "reasons": new.get("reasons") or []}, **common)
    if row["action"] == "billing.import_hourly":
        return HistoryEntry(row["at"], "profile_file", detail=dict(new), **common)
    fields = sorted(set(old) | set(new), key=lambda f: (list(names.FIELDS).index(f) if f in names.FIELDS else 99, f))
    return HistoryEntry(row["at"], "registry", tuple(Change(f, old.get(f), new.get(f)) for f in fields),
                        detail={"created": not old, "action": row["action"]}, **common)


# audit rows whose change `registry_record` tells from the registry's own tables
_TOLD_BY_REGISTRY = ("registry.meter.params", "registry.act.install", "registry.act.exchange", "registry.act.removal")


async def audit_trail(conn: psycopg.AsyncConnection, meter: dict) -> list[HistoryEntry]:
    code = meter["code"]
    rows = await audit.rows_about(conn, ["meter"], code)
    rows += await audit.rows_about(conn, ["register", "interval"], f"{code}/", prefix=True)
    return [_audit_entry(r, code) for r in rows if r["action"] not in _TOLD_BY_REGISTRY]


_PARAMS = ("multiplier", "ct_ratio", "vt_ratio", "digits", "tariff_zones", "org", "house", "account", "lat", "lon",
           "unit")


async def registry_record(conn: psycopg.AsyncConnection, meter: dict) -> list[HistoryEntry]:
    """Dated parameter versions after the first (what changed against the version before)
    and the acts the meter takes part in."""
    out: list[HistoryEntry] = []
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """SELECT p.valid_from, p.multiplier, p.ct_ratio, p.vt_ratio, p.digits, p.tariff_zones, o.code AS org,
                      s.code AS house, a.code AS account, p.lat, p.lon, p.unit, p.created_by, p.comment
               FROM meter_params p LEFT JOIN organisations o ON o.id = p.org_id LEFT JOIN sites s ON s.id = p.site_id
               LEFT JOIN accounts a ON a.id = p.account_id
               WHERE p.meter_id = %s ORDER BY p.valid_from""", (meter["id"],))
        versions = await cur.fetchall()
        for before, v in zip(versions, versions[1:], strict=False):
            changes = tuple(Change(f, before[f], v[f]) for f in _PARAMS if before[f] != v[f])
            out.append(HistoryEntry(v["valid_from"], "parameter", changes, actor=v["created_by"],
                                    comment=v["comment"]))
        await cur.execute(
            """SELECT x.kind, x.at, x.old_final, x.new_initial, x.document, x.comment, x.created_by,
                      o.code AS old_code, n.code AS new_code, x.old_meter_id = %s AS is_old
               FROM meter_acts x LEFT JOIN meters o ON o.id = x.old_meter_id LEFT JOIN meters n ON n.id = x.new_meter_id
               WHERE x.old_meter_id = %s OR x.new_meter_id = %s ORDER BY x.at""",
            (meter["id"], meter["id"], meter["id"]))
        for x in await cur.fetchall():
            final, initial = x["old_final"] or {}, x["new_initial"] or {}
            readings = tuple((o, final.get(o), initial.get(o)) for o in sorted(set(final) | set(initial)))
            out.append(HistoryEntry(x["at"], x["kind"], actor=x["created_by"], comment=x["comment"],
                                    related=x["new_code"] if x["is_old"] else x["old_code"], readings=readings,
                                    detail={"document": x["document"], "role": "old" if x["is_old"] else "new"}))
    return out


SOURCES: list[HistorySource] = [registry_dates, audit_trail, registry_record]


async def meter_history(conn: psycopg.AsyncConnection, meter: dict,
                        sources: list[HistorySource] | None = None) -> list[HistoryEntry]:
    """Every source's entries for a meter the caller already found in its scope, newest first."""
    out: list[HistoryEntry] = []
    for src in sources or SOURCES:
        out += await src(conn, meter)
    return sorted(out, key=HistoryEntry.sort_key, reverse=True)


TITLES: dict[str, tuple[str, str]] = {
    "installed": ("Установлен", "Installed"), "verified": ("Поверен", "Verified"),
    "decommissioned": ("Снят с учёта", "Decommissioned"), "registry": ("Изменение в реестре", "Registry change"),
    "manual_reading": ("Ручной ввод показаний", "Manual reading"),
    "correction": ("Исправление показания", "Reading corrected"),
    "profile_file": ("Загрузка почасовых объёмов из файла", "Hourly volumes loaded from a file"),
    "parameter": ("Изменение параметра", "Parameter change"), "exchange": ("Замена прибора учёта", "Meter exchange"),
    "install": ("Установка прибора учёта", "Meter installation"), "removal": ("Снятие прибора учёта", "Meter removal"),
}


def _val(name: str, v: Any, lang: str) -> str:
    if v is None or v == "":
        return "—"
    if isinstance(v, bool):
        return ("yes" if v else "no") if lang == "en" else ("да" if v else "нет")
    if isinstance(v, int | float):
        return number(v, lang, 6)
    if name == "resource":
        return names.resource(str(v), lang)
    if name == "status":
        return names.meter_status(str(v), lang)
    if isinstance(v, date):
        return v.strftime("%d.%m.%Y")
    text = str(v)
    if len(text) == 10 and text[4] == "-" and text[7] == "-":  # a date as JSON keeps it
        try:
            return date.fromisoformat(text).strftime("%d.%m.%Y")
        except ValueError:
            pass
    return text


def describe(e: HistoryEntry, resource: str | None, lang: str = "ru", tz: tzinfo | None = None) -> tuple[str, str]:
    """(title, details) of an entry as an operator reads them."""
    title = names.pick(TITLES.get(e.kind, (e.kind, e.kind)), lang) if e.kind in TITLES else e.kind
    en = lang == "en"
    parts: list[str] = []
    if e.kind == "installed" and e.related:
        parts.append(f"replaces meter {e.related}" if en else f"взамен прибора {e.related}")
    if e.kind == "decommissioned" and e.related:
        parts.append(f"replaced by meter {e.related}" if en else f"заменён прибором {e.related}")
    if e.kind == "exchange" and e.related:
        parts.append((f"replaced by meter {e.related}" if en else f"заменён прибором {e.related}")
                     if e.detail.get("role") == "old" else
                     (f"replaces meter {e.related}" if en else f"взамен прибора {e.related}"))
    if e.kind in ("exchange", "install", "removal") and e.readings:
        parts.append("readings final / initial" if en else "показания конечные / начальные")
    if e.detail.get("document"):
        parts.append(f"act No. {e.detail['document']}" if en else f"акт № {e.detail['document']}")
    if e.kind == "registry" and e.detail.get("created"):
        title = "Entered into the registry" if en else "Внесён в реестр"
    for c in e.changes:
        if e.kind == "registry" and e.detail.get("created"):
            parts.append(f"{names.field(c.field, lang)}: {_val(c.field, c.new, lang)}")
        else:
            parts.append(f"{names.field(c.field, lang)}: {_val(c.field, c.old, lang)} → {_val(c.field, c.new, lang)}")
    for obis, old, new in e.readings:
        name = names.channel(obis, lang) if obis else ""
        if e.kind == "correction":
            parts.append(f"{name}: {amount(old, resource, obis, lang)} → {amount(new, resource, obis, lang)}")
        elif e.kind in ("exchange", "install", "removal"):
            parts.append(f"{name}: {amount(old, resource, obis, lang) if old is not None else '—'} / "
                         f"{amount(new, resource, obis, lang) if new is not None else '—'}")
        else:
            parts.append(f"{name}: {amount(new, resource, obis, lang)}")
    if e.kind in ("manual_reading", "correction") and e.detail.get("source"):
        parts.append(names.source(e.detail["source"], lang))
    if e.detail.get("reasons"):
        parts.append(names.reasons(e.detail["reasons"], lang))
    if e.kind == "profile_file":
        parts.append(f"month {e.detail.get('month')}, hours stored: {e.detail.get('inserted')}" if en else
                      f"месяц {e.detail.get('month')}, записано часов: {e.detail.get('inserted')}")
    return title, "; ".join(p for p in parts if p)
