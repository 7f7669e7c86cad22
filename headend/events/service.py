"""Abnormal events (нештатные ситуации): filter, list, count, read, acknowledge, resolve.

Used alike by the API (`events/api.py`), the operators' pages (`web/pages_events.py`) and
exports. Every query is limited to the principal's organisations; another
organisation's event is NotFound. Every transition is audited.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Literal

import psycopg
from psycopg.rows import dict_row

from askue.headend.auth import audit
from askue.headend.auth.permissions import Action, Principal
from askue.headend.errors import Conflict, Invalid, NotFound
from askue.headend.events.catalogue import KINDS
from askue.headend.events.describe import describe
from askue.headend.vee.rules.no_contact import bucket

State = Literal["open", "acknowledged", "resolved"]
STATES = ("open", "acknowledged", "resolved")
SEVERITIES = ("info", "warning", "critical")
EXPORT_MAX = 50000

_SELECT = """
SELECT e.id, e.kind, e.severity, e.state, e.ts, e.raised_at, e.title, e.title_en, e.evidence, e.obis,
       m.code AS meter, m.resource, a.code AS account, s.code AS site, o.code AS organisation, e.gateway_id,
       e.acknowledged_by, e.acknowledged_at, e.resolved_by, e.resolved_at, e.comment, e.cleared_at, e.auto_closed
FROM abnormal_events e
LEFT JOIN meters m ON m.id = e.meter_id
LEFT JOIN accounts a ON a.id = coalesce(e.account_id, m.account_id)
LEFT JOIN sites s ON s.id = e.site_id
LEFT JOIN organisations o ON o.id = e.org_id
"""


@dataclass(frozen=True)
class EventFilter:
    organisation: str | None = None  # organisation code
    kind: tuple[str, ...] = ()
    state: tuple[str, ...] = ()
    start: datetime | None = None  # observed at or after
    end: datetime | None = None  # observed before
    meter: str | None = None  # meter code
    account: str | None = None
    site: str | None = None  # house code
    severity: str | None = None
    show_resolved: bool = False  # ignored when `state` is given

    def __post_init__(self) -> None:
        for k in self.kind:
            if k not in KINDS:
                raise Invalid("kind", f"kind {k!r} is unknown; use one of {', '.join(sorted(KINDS))}",
                              f"вид ситуации {k!r} неизвестен")
        for s in self.state:
            if s not in STATES:
                raise Invalid("state", f"state {s!r} is unknown; use one of {', '.join(STATES)}",
                              f"состояние {s!r} неизвестно")
        if self.severity is not None and self.severity not in SEVERITIES:
            raise Invalid("severity", f"severity {self.severity!r} is unknown; use one of {', '.join(SEVERITIES)}",
                          f"важность {self.severity!r} неизвестна")
        for t, name in ((self.start, "from"), (self.end, "to")):
            if t is not None and t.tzinfo is None:
                raise Invalid(name, f"{name}: give a UTC offset, e.g. 2026-11-01T00:00:00+03:00",
                              f"{name}: укажите смещение от UTC, например 2026-11-01T00:00:00+03:00")


def _where(f: EventFilter, principal: Principal) -> tuple[str, list]:
    scope, params = principal.scope.sql("e.org_id")
    conds = [scope]
    if f.organisation:
        conds.append("o.code = %s")
        params.append(f.organisation)
    if f.kind:
        conds.append("e.kind = ANY(%s)")
        params.append(list(f.kind))
    if f.state:
        conds.append("e.state = ANY(%s)")
        params.append(list(f.state))
    elif not f.show_resolved:
        conds.append("e.state <> 'resolved'")
    for cond, val in (("coalesce(e.ts, e.raised_at) >= %s", f.start), ("coalesce(e.ts, e.raised_at) < %s", f.end),
                      ("m.code = %s", f.meter), ("a.code = %s", f.account), ("e.severity = %s", f.severity)):
        if val is not None and val != "":
            conds.append(cond)
            params.append(val)
    if f.site:
        conds.append("(s.code = %s OR m.site_id = (SELECT id FROM sites WHERE code = %s))")
        params += [f.site, f.site]
    return " AND ".join(conds), params


async def list_events(conn: psycopg.AsyncConnection, principal: Principal, f: EventFilter, *, limit: int,
                      before_id: int | None = None) -> list[dict]:
    """Events newest first (by id); `before_id` continues a page."""
    where, params = _where(f, principal)
    if before_id is not None:
        where += " AND e.id < %s"
        params.append(before_id)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_SELECT + " WHERE " + where + " ORDER BY e.id DESC LIMIT %s", [*params, limit])
        return await cur.fetchall()


async def count_events(conn: psycopg.AsyncConnection, principal: Principal, f: EventFilter) -> dict:
    """Counts per kind and state, with the kinds' titles (for dashboards and menu badges)."""
    where, params = _where(f, principal)
    cur = await conn.execute(
        "SELECT e.kind, e.state, count(*) FROM abnormal_events e LEFT JOIN meters m ON m.id = e.meter_id "
        "LEFT JOIN accounts a ON a.id = coalesce(e.account_id, m.account_id) LEFT JOIN sites s ON s.id = e.site_id "
        "LEFT JOIN organisations o ON o.id = e.org_id WHERE " + where + " GROUP BY 1, 2 ORDER BY 1, 2", params)
    by_kind: dict[str, dict] = {}
    for kind, state, n in await cur.fetchall():
        ru, en, _ = KINDS.get(kind, (kind, kind, ""))
        k = by_kind.setdefault(kind, {"kind": kind, "title_ru": ru, "title_en": en, "total": 0})
        k[state] = n
        k["total"] += n
    return {"items": list(by_kind.values()), "total": sum(k["total"] for k in by_kind.values())}


async def get_event(conn: psycopg.AsyncConnection, principal: Principal, event_id: int) -> dict:
    scope, params = principal.scope.sql("e.org_id")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_SELECT + " WHERE e.id = %s AND " + scope, [event_id, *params])
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"event {event_id} not found", f"нештатная ситуация № {event_id} не найдена")
    return row


async def transition(conn: psycopg.AsyncConnection, principal: Principal, event_id: int,
                     to: Literal["acknowledged", "resolved"], comment: str = "") -> dict:
    """open → acknowledged (comment optional), open/acknowledged → resolved (comment required)."""
    principal.require(Action.EVENTS_ACT)
    comment = (comment or "").strip()[:2000]
    if to == "resolved" and not comment:
        raise Invalid("comment", "say what was done: resolving needs a comment",
                      "укажите, что сделано (комментарий обязателен)")
    async with conn.transaction():
        ev = await get_event(conn, principal, event_id)
        await conn.execute("SELECT 1 FROM abnormal_events WHERE id = %s FOR UPDATE", (event_id,))
        state = (await (await conn.execute("SELECT state FROM abnormal_events WHERE id = %s",
                                           (event_id,))).fetchone())[0]
        if state == "resolved":
            raise Conflict(f"event {event_id} is already resolved", f"ситуация № {event_id} уже закрыта")
        if to == "acknowledged" and state == "acknowledged":
            raise Conflict(f"event {event_id} is already acknowledged", f"ситуация № {event_id} уже принята")
        if to == "acknowledged":
            await conn.execute("UPDATE abnormal_events SET state = 'acknowledged', acknowledged_by = %s, "
                               "acknowledged_at = now(), comment = coalesce(nullif(%s, ''), comment) WHERE id = %s",
                               (principal.name, comment, event_id))
        else:
            await conn.execute("UPDATE abnormal_events SET state = 'resolved', resolved_by = %s, resolved_at = now(), "
                               "comment = %s WHERE id = %s", (principal.name, comment, event_id))
        await audit.record(conn, principal, "event_acknowledge" if to == "acknowledged" else "event_resolve",
                           "abnormal_event", str(event_id), old={"state": ev["state"]}, new={"state": to},
                           comment=comment)
    return await get_event(conn, principal, event_id)


def view(row: dict, lang: str, tz: tzinfo, now: datetime | None = None) -> dict:
    """An event as people read it: title and a sentence in `lang`, times as stored."""
    now = now or datetime.now(tz)
    out = dict(row)
    out["title_ru"], out["title_en"] = row["title"], row["title_en"]
    out["title"] = row["title"] if lang == "ru" else (row["title_en"] or row["kind"])
    out["description"] = describe(row["kind"], row["evidence"], resource=row.get("resource"), obis=row.get("obis"),
                                  lang=lang, tz=tz, now=now)
    if row["kind"] == "no_contact" and row["state"] != "resolved" and (row["evidence"] or {}).get("last_session"):
        # the bucket moves on while the meter stays silent
        last = datetime.fromisoformat(row["evidence"]["last_session"])
        out["bucket"], out["bucket_ru"] = bucket(now - last)
    return out
