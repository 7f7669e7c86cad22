"""VEE API (under /api/v1): abnormal events (list, counts, export, acknowledge,
resolve), manual readings with the expected value, corrections; every change audited.

Every endpoint needs a token (`require_principal`) and is scoped to the principal's
organisations: another organisation's events and meters answer 404. Changing
endpoints need a role that may act (admin, dispatcher, org_admin).
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from typing import Annotated, Literal

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field, field_validator

from askue.headend.api.auth import Principal, org_scope, require_principal
from askue.headend.api.deps import db
from askue.headend.api.pagination import decode_cursor, page
from askue.headend.vee import estimate, export, store
from askue.headend.vee.catalogue import KINDS
from askue.headend.vee.model import Value
from askue.headend.vee.rules.common import main_register
from askue.headend.vee.rules.no_contact import bucket

router = APIRouter(tags=["vee"])
ACTORS = frozenset({"admin", "dispatcher", "org_admin"})
State = Literal["open", "acknowledged", "resolved"]
Limit = Annotated[int, Query(ge=1, le=1000)]
EXPORT_MAX = 50000
_OBIS = r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$"


def _may_act(principal: Principal) -> None:
    if principal.role not in ACTORS:
        raise HTTPException(403, f"role {principal.role!r} may only read; acting needs admin, dispatcher or org_admin")


def _actor(principal: Principal) -> str:
    return principal.name


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


# ---- events --------------------------------------------------------------------------
_EVENT_SELECT = """
SELECT e.id, e.kind, e.severity, e.state, e.ts, e.raised_at, e.title, e.title_en, e.evidence, e.obis,
       m.code AS meter, a.code AS account, s.code AS site, o.code AS organisation, e.gateway_id,
       e.acknowledged_by, e.acknowledged_at, e.resolved_by, e.resolved_at, e.comment, e.cleared_at, e.auto_closed
FROM abnormal_events e
LEFT JOIN meters m ON m.id = e.meter_id
LEFT JOIN accounts a ON a.id = coalesce(e.account_id, m.account_id)
LEFT JOIN sites s ON s.id = e.site_id
LEFT JOIN organisations o ON o.id = e.org_id
"""


class EventFilter(BaseModel):
    organisation: str | None = None
    kind: list[str] | None = None
    state: list[State] | None = None
    start: datetime | None = None
    end: datetime | None = None
    meter: str | None = None
    account: str | None = None
    site: str | None = None
    severity: str | None = None
    show_resolved: bool = False


def _filter(
    organisation: str | None = Query(None, description="organisation code"),
    kind: list[str] | None = Query(None, description="event kind(s), e.g. no_contact, reverse_reading"),
    state: list[State] | None = Query(None, description="open / acknowledged / resolved"),
    start: datetime | None = Query(None, alias="from", description="events observed at or after (ISO 8601)"),
    end: datetime | None = Query(None, alias="to", description="events observed before (ISO 8601)"),
    meter: str | None = Query(None, description="meter code"),
    account: str | None = Query(None, description="account (ЛС) code"),
    site: str | None = Query(None, description="house (site) code"),
    severity: Literal["info", "warning", "critical"] | None = None,
    show_resolved: bool = Query(False, description="include resolved events (ignored when `state` is given)"),
) -> EventFilter:
    for k in kind or []:
        if k not in KINDS:
            raise HTTPException(422, f"kind {k!r} is unknown; use one of {', '.join(sorted(KINDS))}")
    for t, name in ((start, "from"), (end, "to")):
        if t is not None and t.tzinfo is None:
            raise HTTPException(422, f"{name}: give a UTC offset, e.g. 2026-11-01T00:00:00+03:00")
    return EventFilter(organisation=organisation, kind=kind, state=state, start=start, end=end, meter=meter,
                       account=account, site=site, severity=severity, show_resolved=show_resolved)


def _where(f: EventFilter, principal: Principal) -> tuple[str, list]:
    scope, sp = org_scope(principal, "e.org_id")
    conds, params = [scope], list(sp)
    if f.organisation:
        conds.append("o.code = %s")
        params.append(f.organisation)
    if f.kind:
        conds.append("e.kind = ANY(%s)")
        params.append(f.kind)
    if f.state:
        conds.append("e.state = ANY(%s)")
        params.append(list(f.state))
    elif not f.show_resolved:
        conds.append("e.state <> 'resolved'")
    if f.start:
        conds.append("coalesce(e.ts, e.raised_at) >= %s")
        params.append(f.start)
    if f.end:
        conds.append("coalesce(e.ts, e.raised_at) < %s")
        params.append(f.end)
    if f.meter:
        conds.append("m.code = %s")
        params.append(f.meter)
    if f.account:
        conds.append("a.code = %s")
        params.append(f.account)
    if f.site:
        conds.append("(s.code = %s OR m.site_id = (SELECT id FROM sites WHERE code = %s))")
        params += [f.site, f.site]
    if f.severity:
        conds.append("e.severity = %s")
        params.append(f.severity)
    return " AND ".join(conds), params


def _event_out(r: dict, lang: str, now: datetime) -> dict:
    out = dict(r)
    out["title"] = r["title"] if lang == "ru" else (r["title_en"] or r["kind"])
    out["title_ru"], out["title_en"] = r["title"], r["title_en"]
    if r["kind"] == "no_contact" and r["state"] != "resolved" and r["evidence"].get("last_session"):
        # the bucket moves on while the meter stays silent
        last = datetime.fromisoformat(r["evidence"]["last_session"])
        code, label = bucket(now - last)
        out["bucket"], out["bucket_ru"] = code, label
    return out


async def _fetch_events(conn: psycopg.AsyncConnection, where: str, params: list, limit: int,
                        after_id: int | None = None) -> list[dict]:
    q = _EVENT_SELECT + " WHERE " + where
    if after_id is not None:
        q += " AND e.id < %s"
        params = params + [after_id]
    q += " ORDER BY e.id DESC LIMIT %s"
    async with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        await cur.execute(q, params + [limit])
        return await cur.fetchall()


@router.get("/events")
async def list_events(f: EventFilter = Depends(_filter), lang: Literal["ru", "en"] = "ru",
                      cursor: str | None = None, limit: Limit = 100,
                      principal: Principal = Depends(require_principal),
                      conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    """Abnormal events (нештатные ситуации), newest first; resolved ones only with show_resolved."""
    after = decode_cursor(cursor, 1)
    where, params = _where(f, principal)
    rows = await _fetch_events(conn, where, params, limit + 1, int(after[0]) if after else None)
    now = datetime.now().astimezone()
    return page([_event_out(r, lang, now) for r in rows], limit, lambda r: [r["id"]])


@router.get("/events/counts")
async def event_counts(f: EventFilter = Depends(_filter), principal: Principal = Depends(require_principal),
                       conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    """Counts per kind and state (for dashboards)."""
    where, params = _where(f, principal)
    q = ("SELECT e.kind, e.state, count(*) FROM abnormal_events e LEFT JOIN meters m ON m.id = e.meter_id "
         "LEFT JOIN accounts a ON a.id = coalesce(e.account_id, m.account_id) LEFT JOIN sites s ON s.id = e.site_id "
         "LEFT JOIN organisations o ON o.id = e.org_id WHERE " + where + " GROUP BY 1, 2 ORDER BY 1, 2")
    cur = await conn.execute(q, params)
    by_kind: dict[str, dict] = {}
    for kind, state, n in await cur.fetchall():
        ru, en, _ = KINDS.get(kind, (kind, kind, ""))
        k = by_kind.setdefault(kind, {"kind": kind, "title_ru": ru, "title_en": en, "total": 0})
        k[state] = n
        k["total"] += n
    return {"items": list(by_kind.values()), "total": sum(k["total"] for k in by_kind.values())}


@router.get("/events/export")
async def export_events(request: Request, f: EventFilter = Depends(_filter),
                        format: Literal["csv", "xlsx", "pdf"] = "csv", lang: Literal["ru", "en"] = "ru",
                        principal: Principal = Depends(require_principal),
                        conn: psycopg.AsyncConnection = Depends(db)) -> Response:
    """The filtered list as CSV, XLSX or PDF (at most 50 000 rows)."""
    where, params = _where(f, principal)
    rows = await _fetch_events(conn, where, params, EXPORT_MAX)
    tz = await store.db_timezone(conn)
    stamp = datetime.now(tz).strftime("%Y%m%d_%H%M")
    if format == "csv":
        body, media = export.to_csv(rows, lang, tz), "text/csv; charset=utf-8"
    elif format == "xlsx":
        body = export.to_xlsx(rows, lang, tz)
        media = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    else:
        try:
            body = export.to_pdf(rows, lang, tz)
        except export.ExportError as e:
            raise HTTPException(503, str(e)) from None
        media = "application/pdf"
    return Response(body, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="events_{stamp}.{format}"'})


async def _event(conn: psycopg.AsyncConnection, event_id: int, principal: Principal) -> dict:
    scope, sp = org_scope(principal, "e.org_id")
    async with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        await cur.execute(_EVENT_SELECT + " WHERE e.id = %s AND " + scope, [event_id, *sp])
        row = await cur.fetchone()
    if row is None:
        raise HTTPException(404, f"event {event_id} not found")
    return row


@router.get("/events/{event_id}")
async def get_event(event_id: int, lang: Literal["ru", "en"] = "ru", principal: Principal = Depends(require_principal),
                    conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    return _event_out(await _event(conn, event_id, principal), lang, datetime.now().astimezone())


class Comment(BaseModel):
    comment: str = Field("", max_length=2000)


class ResolveBody(BaseModel):
    comment: str = Field(..., min_length=1, max_length=2000, description="what was done (required)")


async def _transition(conn, request, principal, event_id: int, to: str, comment: str) -> dict:
    _may_act(principal)
    ev = await _event(conn, event_id, principal)
    if ev["state"] == "resolved":
        raise HTTPException(409, f"event {event_id} is already resolved")
    if to == "acknowledged" and ev["state"] == "acknowledged":
        raise HTTPException(409, f"event {event_id} is already acknowledged")
    who = _actor(principal)
    async with conn.transaction():
        if to == "acknowledged":
            await conn.execute("UPDATE abnormal_events SET state = 'acknowledged', acknowledged_by = %s, "
                               "acknowledged_at = now(), comment = coalesce(nullif(%s, ''), comment) WHERE id = %s",
                               (who, comment, event_id))
        else:
            await conn.execute("UPDATE abnormal_events SET state = 'resolved', resolved_by = %s, resolved_at = now(), "
                               "comment = %s WHERE id = %s", (who, comment, event_id))
        await conn.execute(
            "INSERT INTO audit_log (actor, ip, action, object_type, object_id, old, new, comment) "
            "VALUES (%s, %s, %s, 'abnormal_event', %s, %s, %s, %s)",
            (who, _ip(request), "event_" + ("acknowledge" if to == "acknowledged" else "resolve"), str(event_id),
             json.dumps({"state": ev["state"]}), json.dumps({"state": to}), comment or None))
    return _event_out(await _event(conn, event_id, principal), "ru", datetime.now().astimezone())


@router.post("/events/{event_id}/acknowledge")
async def acknowledge(event_id: int, request: Request, body: Comment | None = None,
                      principal: Principal = Depends(require_principal),
                      conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    """open → acknowledged (who and when recorded; optional comment)."""
    return await _transition(conn, request, principal, event_id, "acknowledged", body.comment if body else "")


@router.post("/events/{event_id}/resolve")
async def resolve(event_id: int, body: ResolveBody, request: Request,
                  principal: Principal = Depends(require_principal),
                  conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    """open/acknowledged → resolved with a comment."""
    return await _transition(conn, request, principal, event_id, "resolved", body.comment)


# ---- manual readings and corrections ------------------------------------------------------
async def _meter(conn: psycopg.AsyncConnection, code: str, principal: Principal) -> store.MeterRow:
    tz = await store.db_timezone(conn)
    scope, sp = org_scope(principal, "m.org_id")
    rows = await store.load_meters(conn, tz, where=f"m.code = %s AND {scope}", params=[code, *sp])
    if not rows:
        raise HTTPException(404, f"meter {code!r} not found")
    return next(iter(rows.values()))


async def expected_value(conn: psycopg.AsyncConnection, m: store.MeterRow, obis: str, at: datetime) -> dict:
    """The last reading before `at` and the value expected at `at` «по среднему»."""
    cfg = await store.load_thresholds(conn)
    th = cfg.for_meter(m.facts)
    hist = await store.load_values(conn, [m.id], {m.id: m.facts.meter_id}, ("register",),
                                   at - timedelta(days=th.average_lookback_days), at, [obis])
    vals = [v for v in hist[m.id]]
    last = max((v for v in vals if v.quality in ("A", "M")), key=lambda v: v.ts, default=None)
    facts = m.facts
    if obis != main_register(facts):
        # average on the channel asked for: treat it as the main register for this estimate
        vals = [Value(v.meter_id, main_register(facts), v.kind, v.ts, v.value, v.received_at, v.period_s,
                      v.quality, v.new) for v in vals]
    avg = estimate.average_daily(facts, vals, at, th)
    exp = None
    if last is not None and avg is not None:
        exp = last.value + avg * (at - last.ts).total_seconds() / 86400
        if facts.capacity:
            exp %= facts.capacity
    return {"obis": obis, "at": at, "last_value": last.value if last else None, "last_ts": last.ts if last else None,
            "average_daily": avg, "expected": None if exp is None else round(exp, 3),
            "method": "average" if exp is not None else None}


@router.get("/meters/{code}/expected")
async def get_expected(code: str, obis: str = Query("1.0.1.8.0.255", pattern=_OBIS), at: datetime | None = None,
                       principal: Principal = Depends(require_principal),
                       conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    """What the manual-readings form shows beside the field: last reading and the expected value."""
    if at is not None and at.tzinfo is None:
        raise HTTPException(422, "at: give a UTC offset, e.g. 2026-11-20T10:00:00+03:00")
    m = await _meter(conn, code, principal)
    return await expected_value(conn, m, obis, at or datetime.now().astimezone())


class _ReadingAt(BaseModel):
    """A register value at a meter time, as a person enters it."""

    obis: str = Field("1.0.1.8.0.255", pattern=_OBIS)
    ts: datetime
    value: float

    @field_validator("ts")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("give a UTC offset, e.g. 2026-11-20T10:00:00+03:00")
        return v

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v) or v < 0:
            raise ValueError("a register reading is a finite, non-negative number")
        return v


class ManualReading(_ReadingAt):
    comment: str | None = Field(None, max_length=2000)


async def _ensure_partition(conn, table: str, ts: datetime) -> None:
    mode = await (await conn.execute("SELECT value FROM askue_meta WHERE key = 'storage_mode'")).fetchone()
    if mode and mode[0] == "plain":
        from datetime import UTC

        await conn.execute("SELECT askue_ensure_month_partition(%s, %s)",
                           (table, ts.astimezone(UTC).date().replace(day=1)))


async def _recompute(conn, meter_id: int, obis: str, ts: datetime) -> None:
    from askue.headend.storage import rollups

    await rollups.recompute(conn, meter_id, obis, ts, ts)


@router.post("/meters/{code}/readings", status_code=201)
async def enter_reading(code: str, body: ManualReading, request: Request,
                        principal: Principal = Depends(require_principal),
                        conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    """A manual register reading (quality M, source manual), checked against the expected
    value; a reading that already exists at that time is changed through /corrections."""
    _may_act(principal)
    m = await _meter(conn, code, principal)
    exp = await expected_value(conn, m, body.obis, body.ts)
    reasons = ["manual"]
    if exp["last_value"] is not None and exp["last_ts"] < body.ts and body.value < exp["last_value"]:
        reasons.append("below_previous")
    if exp["expected"] is not None and exp["last_value"] is not None:
        expected_use = exp["expected"] - exp["last_value"]
        if expected_use > 0 and body.value - exp["last_value"] > 5 * expected_use:
            reasons.append("far_above_expected")
    await _ensure_partition(conn, "register_readings", body.ts)
    async with conn.transaction():
        cur = await conn.execute(
            "INSERT INTO register_readings (meter_id, obis, ts, ts_source, received_at, value, quality, reasons, "
            "source) VALUES (%s, %s, %s, 'meter', now(), %s, 'M', %s, 'manual') "
            "ON CONFLICT (meter_id, obis, ts) DO NOTHING RETURNING id",
            (m.id, body.obis, body.ts, body.value, reasons))
        if await cur.fetchone() is None:
            raise HTTPException(409, f"meter {code!r} already has a {body.obis} reading at {body.ts.isoformat()}; "
                                     "change it with POST /meters/{code}/corrections and a reason")
        await conn.execute(
            "INSERT INTO audit_log (actor, ip, action, object_type, object_id, old, new, comment) "
            "VALUES (%s, %s, 'manual_reading', 'register', %s, NULL, %s, %s)",
            (_actor(principal), _ip(request), f"{code}/{body.obis}/{body.ts.isoformat()}",
             json.dumps({"value": body.value, "quality": "M", "expected": exp["expected"]}), body.comment))
        await _recompute(conn, m.id, body.obis, body.ts)
    return {"meter": code, "obis": body.obis, "ts": body.ts, "value": body.value, "quality": "M",
            "reasons": reasons, "expected": exp["expected"], "last_value": exp["last_value"],
            "deviation": None if exp["expected"] is None else round(body.value - exp["expected"], 3)}


class Correction(_ReadingAt):
    kind: Literal["register", "interval"] = "register"
    reason: str = Field(..., min_length=3, max_length=2000, description="why the value is changed (required)")


@router.post("/meters/{code}/corrections")
async def correct_value(code: str, body: Correction, request: Request,
                        principal: Principal = Depends(require_principal),
                        conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    """Change a stored value with a reason: it becomes quality M, source manual, reason
    `corrected`; the old value is kept in the audit log."""
    _may_act(principal)
    m = await _meter(conn, code, principal)
    table = store.TABLES[body.kind]
    async with conn.transaction():
        # One statement reads the old state and changes it (the UPDATE locks the row): TimescaleDB
        # cannot SELECT … FOR UPDATE a row still in a compressed chunk, but it can update one.
        cur = await conn.execute(
            f"UPDATE {table} n SET value = %s, quality = 'M', source = 'manual', "
            "reasons = ARRAY(SELECT DISTINCT x FROM unnest(n.reasons || ARRAY['corrected']) x ORDER BY x) "
            f"FROM {table} o WHERE o.meter_id = n.meter_id AND o.obis = n.obis AND o.ts = n.ts "
            "AND n.meter_id = %s AND n.obis = %s AND n.ts = %s RETURNING o.value, o.quality, o.reasons, o.source",
            (body.value, m.id, body.obis, body.ts))
        old = await cur.fetchone()
        if old is None:
            raise HTTPException(404, f"meter {code!r} has no {body.kind} {body.obis} at {body.ts.isoformat()}; "
                                     "enter a new reading with POST /meters/{code}/readings")
        await conn.execute(
            "INSERT INTO audit_log (actor, ip, action, object_type, object_id, old, new, comment) "
            "VALUES (%s, %s, 'correction', %s, %s, %s, %s, %s)",
            (_actor(principal), _ip(request), body.kind, f"{code}/{body.obis}/{body.ts.isoformat()}",
             json.dumps({"value": old[0], "quality": old[1], "reasons": old[2], "source": old[3]}),
             json.dumps({"value": body.value, "quality": "M", "source": "manual"}), body.reason))
        await _recompute(conn, m.id, body.obis, body.ts)
    return {"meter": code, "kind": body.kind, "obis": body.obis, "ts": body.ts, "old_value": old[0],
            "value": body.value, "quality": "M", "reason": body.reason}


@router.get("/meters/{code}/edits")
async def meter_edits(code: str, principal: Principal = Depends(require_principal),
                      conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    """Audit of manual readings and corrections of one meter: who, when, old, new, why."""
    m = await _meter(conn, code, principal)
    async with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        await cur.execute(
            "SELECT at, actor, ip, action, object_type, object_id, old, new, comment FROM audit_log "
            "WHERE action IN ('manual_reading', 'correction') AND object_id LIKE %s ORDER BY at DESC, id DESC "
            "LIMIT 1000", (f"{m.facts.meter_id}/%",))
        return {"items": await cur.fetchall()}


# ---- thresholds --------------------------------------------------------------------------
class ThresholdBody(BaseModel):
    scope: Literal["default", "resource", "model", "organisation"]
    name: str | None = Field(None, max_length=200, description="resource, model or organisation code")
    resource: str | None = Field(None, max_length=50, description="narrows an organisation override")
    settings: dict = Field(..., description="threshold: value, e.g. {\"spike_factor\": 4}")


async def _org_codes(conn: psycopg.AsyncConnection, principal: Principal) -> set[str] | None:
    if principal.org_ids is None:
        return None
    cur = await conn.execute("SELECT code FROM organisations WHERE id = ANY(%s)", (sorted(principal.org_ids),))
    return {r[0] for r in await cur.fetchall()}


@router.get("/vee/thresholds")
async def list_thresholds(principal: Principal = Depends(require_principal),
                          conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    """Built-in defaults and the stored overrides (an organisation sees its own only)."""
    import dataclasses

    from askue.headend.vee.thresholds import RESOURCE_DEFAULTS, Thresholds

    mine = await _org_codes(conn, principal)
    async with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        await cur.execute("SELECT scope, name, resource, settings, updated_by, updated_at FROM vee_thresholds "
                          "ORDER BY scope, name, resource")
        rows = [r for r in await cur.fetchall()
                if r["scope"] != "organisation" or mine is None or r["name"] in mine]
    defaults = {k: (dict(v) if k == "tamper_codes" else v) for k, v in dataclasses.asdict(Thresholds()).items()}
    return {"defaults": defaults, "resource_defaults": RESOURCE_DEFAULTS, "overrides": rows}


@router.put("/vee/thresholds")
async def set_threshold(body: ThresholdBody, request: Request, principal: Principal = Depends(require_principal),
                        conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    """Store one override (validated); org_admin only for its own organisation."""
    from askue.headend.vee.thresholds import ThresholdError

    _may_act(principal)
    mine = await _org_codes(conn, principal)
    if mine is not None and body.scope == "organisation" and body.name not in mine:
        # Another organisation is not visible to this principal: same answer as for none at all.
        raise HTTPException(404, f"organisation {body.name!r} not found")
    if mine is not None and body.scope != "organisation":
        raise HTTPException(403, "an organisation's token may set thresholds of its own organisation only")
    if principal.role == "dispatcher" and body.scope != "organisation":
        raise HTTPException(403, "default, resource and model thresholds are set by an admin")
    async with conn.transaction():
        old = await (await conn.execute(
            "SELECT settings FROM vee_thresholds WHERE scope = %s AND name = %s AND resource = %s",
            (body.scope, body.name or "", body.resource or ""))).fetchone()
        try:
            await store.save_thresholds(conn, body.scope, body.name, body.settings, body.resource, _actor(principal))
        except ThresholdError as e:
            raise HTTPException(422, str(e)) from None
        await conn.execute(
            "INSERT INTO audit_log (actor, ip, action, object_type, object_id, old, new) "
            "VALUES (%s, %s, 'thresholds', 'vee_thresholds', %s, %s, %s)",
            (_actor(principal), _ip(request), f"{body.scope}/{body.name or ''}/{body.resource or ''}",
             json.dumps(old[0]) if old else None, json.dumps(body.settings)))
    return {"scope": body.scope, "name": body.name, "resource": body.resource, "settings": body.settings}


@router.get("/meters/{code}/thresholds")
async def meter_thresholds(code: str, principal: Principal = Depends(require_principal),
                           conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    """The thresholds in force for one meter after every override."""
    import dataclasses

    m = await _meter(conn, code, principal)
    th = (await store.load_thresholds(conn)).for_meter(m.facts)
    return {k: (dict(v) if k == "tamper_codes" else v) for k, v in dataclasses.asdict(th).items()}
