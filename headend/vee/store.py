"""Database side of VEE shared by the batch hook, the periodic scan and the API:
meter facts, thresholds, value history, and writing findings/marks/clears."""
from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, tzinfo
from typing import Any

import psycopg

from askue.headend.storage import pgarrays, values
from askue.headend.vee.model import Clear, Finding, Mark, MeterFacts, MeterValue, Result
from askue.headend.vee.thresholds import ThresholdConfig

log = logging.getLogger(__name__)

# Reasons that keep a value out of billing until someone looks at it (billing calls billable()).
# serial_mismatch: the ingest holds a meter's values while the serial it reports differs from the
# registry's, until an operator confirms (headend/ingest/identity.py, registry/identity.py).
BLOCKING_REASONS = frozenset({"reverse_reading", "spike", "over_limit", "duplicate", "wrong_period", "frozen",
                              "clock_drift", "serial_mismatch"})


def billable(quality: str, reasons: Iterable[str]) -> bool:
    """Whether billing may use a value: actual, manual or substituted values without a
    blocking VEE reason, and estimates (flagged as such)."""
    return quality in ("A", "E", "S", "M") and not (set(reasons) & BLOCKING_REASONS)


@dataclass(frozen=True)
class MeterRow:
    """A meter as the DB knows it: rule facts plus the ids events are filed under."""

    id: int
    facts: MeterFacts
    org_id: int | None
    site_id: int | None
    account_id: int | None
    gateway_id: str | None
    last_contact: datetime | None
    status: str


_METER_SQL = """
SELECT m.id, m.code, m.resource, m.serial, m.model, o.code, m.digits, m.multiplier, m.installed_at,
       rp.code, rb.code, m.verification_due, m.status, s.code, m.is_balance, m.org_id, m.site_id, m.account_id,
       m.gateway_id, m.last_contact, m.reported_serial
FROM meters m
LEFT JOIN organisations o ON o.id = m.org_id
LEFT JOIN sites s ON s.id = m.site_id
LEFT JOIN meters rp ON rp.id = m.replaces_id
LEFT JOIN meters rb ON rb.id = m.replaced_by_id
"""


async def load_meters(conn: psycopg.AsyncConnection, tz: tzinfo, ids: Sequence[int] | None = None,
                      where: str = "TRUE", params: Sequence[Any] = ()) -> dict[int, MeterRow]:
    if ids is not None:
        pgarrays.enable(conn)
        cur = await conn.execute(_METER_SQL + " WHERE m.id = ANY(%b::bigint[])", (pgarrays.int8(list(ids)),))
    else:
        cur = await conn.execute(_METER_SQL + f" WHERE {where}", params)
    out: dict[int, MeterRow] = {}
    for r in await cur.fetchall():
        (mid, code, resource, serial, model, org, digits, mult, installed, replaces, replaced_by, due, status,
         site, is_bal, org_id, site_id, account_id, gw, last_contact, reported_serial) = r
        facts = MeterFacts(
            code=code, resource=resource if resource != "unknown" else "electricity", serial=serial,
            model=model, organisation=org, digits=digits, multiplier=mult or 1.0,
            installed_at=datetime.combine(installed, time(0), tzinfo=tz) if installed else None,
            replaces=replaces, replaced_by=replaced_by, verification_due=due,
            decommissioned=status == "decommissioned", house=site, is_balance=is_bal,
            identity_changed=bool(serial and reported_serial and serial != reported_serial))
        out[mid] = MeterRow(mid, facts, org_id, site_id, account_id, gw, last_contact, status)
    await _with_versions(conn, tz, out)
    return out


async def _with_versions(conn: psycopg.AsyncConnection, tz: tzinfo, meters: dict[int, MeterRow]) -> None:
    """Dated registry versions of the meters that have several: rules judge each value by its day's."""
    from askue.headend.registry.meters import params_on

    dated = await params_on(conn, list(meters))
    for mid, vs in dated.items():
        m = meters[mid]
        versions = tuple((datetime.combine(vf, time(0), tzinfo=tz) if vf.year > 1 else datetime.min.replace(tzinfo=tz),
                          digits, mult) for vf, mult, digits in vs)
        meters[mid] = dataclasses.replace(m, facts=dataclasses.replace(m.facts, versions=versions))


async def load_thresholds(conn: psycopg.AsyncConnection) -> ThresholdConfig:
    """Overrides from vee_thresholds; a row that does not validate (edited by hand) is
    skipped with a warning rather than stopping VEE for everyone."""
    from askue.headend.vee.thresholds import ThresholdError

    cfg = ThresholdConfig()
    cur = await conn.execute("SELECT id, scope, name, resource, settings FROM vee_thresholds ORDER BY id")
    for row_id, scope, name, resource, settings in await cur.fetchall():
        try:
            cfg.set(scope, name or None, settings or {}, resource=resource or None)
        except ThresholdError as e:
            log.warning("vee_thresholds row %s ignored: %s", row_id, e)
    return cfg


async def save_thresholds(conn: psycopg.AsyncConnection, scope: str, name: str | None, settings: dict,
                          resource: str | None = None, actor: str = "system") -> None:
    """Validate and store one override (ThresholdError on a bad key/value)."""
    ThresholdConfig().set(scope, name, settings, resource=resource)
    await conn.execute(
        "INSERT INTO vee_thresholds (scope, name, resource, settings, updated_by) VALUES (%s, %s, %s, %s, %s) "
        "ON CONFLICT (scope, name, resource) DO UPDATE SET settings = EXCLUDED.settings, "
        "updated_by = EXCLUDED.updated_by, updated_at = now()",
        (scope, name or "", resource or "", json.dumps(settings), actor))


async def load_values(conn: psycopg.AsyncConnection, meter_ids: Sequence[int], codes: dict[int, str],
                      kinds: Iterable[str], start: datetime, end: datetime,
                      obis: Sequence[str] | None = None) -> dict[int, list[MeterValue]]:
    """Stored values of some meters in [start, end] as history (new=False)."""
    out: dict[int, list[MeterValue]] = {m: [] for m in meter_ids}
    for kind in kinds:
        period = "period_s" if kind == "interval" else "NULL::int"
        q = (f"SELECT meter_id, obis, ts, value, received_at, {period}, quality FROM {values.TABLES[kind]} "
             "WHERE meter_id = ANY(%s) AND ts >= %s AND ts <= %s")
        params: list[Any] = [list(meter_ids), start, end]
        if obis is not None:
            q += " AND obis = ANY(%s)"
            params.append(list(obis))
        cur = await conn.execute(q + " ORDER BY meter_id, obis, ts", params)
        for mid, o, ts, value, rx, period_s, quality in await cur.fetchall():
            out[mid].append(MeterValue(codes[mid], o, kind, ts, value, received_at=rx, period_s=period_s,
                                  quality=quality, new=False))
    return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return v


async def write_findings(conn: psycopg.AsyncConnection, findings: Sequence[Finding],
                         meters_by_code: dict[str, MeterRow], site_ids: dict[str, int] | None = None) -> int:
    """Raise events once per condition (the unique indexes drop repeats). Returns how many were new."""
    rows = [f for f in findings if f.event]
    if not rows:
        return 0
    cols: dict[str, list] = {k: [] for k in ("kind", "sev", "mid", "site", "org", "acc", "gw", "obis", "ts", "key",
                                              "title", "title_en", "ev")}
    for f in rows:
        m = meters_by_code.get(f.meter)
        cols["kind"].append(f.kind)
        cols["sev"].append(f.severity)
        cols["mid"].append(m.id if m else None)
        site = m.site_id if m else None
        if f.kind == "house_imbalance" and site_ids:
            site = site_ids.get(str(f.evidence.get("house")), site)
        cols["site"].append(site)
        cols["org"].append(m.org_id if m else None)
        cols["acc"].append(m.account_id if m else None)
        cols["gw"].append(m.gateway_id if m else None)
        cols["obis"].append(f.obis)
        cols["ts"].append(f.ts)
        cols["key"].append(f.key)
        cols["title"].append(f.title_ru)
        cols["title_en"].append(f.title_en)
        cols["ev"].append(json.dumps({"meter": f.meter, **_jsonable(f.evidence)}, ensure_ascii=False))
    cur = await conn.execute(
        "INSERT INTO abnormal_events (kind, severity, meter_id, site_id, org_id, account_id, gateway_id, obis, ts, "
        "dedup_key, title, title_en, evidence) "
        "SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], "
        "%s::text[], %s::text[], %s::timestamptz[], %s::text[], %s::text[], %s::text[], %s::jsonb[]) "
        "ON CONFLICT DO NOTHING RETURNING id",
        [cols[k] for k in ("kind", "sev", "mid", "site", "org", "acc", "gw", "obis", "ts", "key", "title",
                           "title_en", "ev")])
    return len(await cur.fetchall())


async def write_clears(conn: psycopg.AsyncConnection, clears: Sequence[Clear], meters_by_code: dict[str, MeterRow],
                       auto_close: dict[str, bool]) -> int:
    """Mark conditions cleared; with auto_close the event is resolved by 'vee'.

    Clears are many (every in-range read is one) and open events few: only meters with
    an uncleared event are looked at, and per condition only the latest clear counts."""
    if not clears:
        return 0
    latest: dict[tuple[int, str], datetime] = {}
    for c in clears:
        m = meters_by_code.get(c.meter)
        if m is not None and (latest.get((m.id, c.key)) is None or c.ts > latest[(m.id, c.key)]):
            latest[(m.id, c.key)] = c.ts
    if not latest:
        return 0
    cur = await conn.execute("SELECT DISTINCT meter_id FROM abnormal_events WHERE cleared_at IS NULL "
                             "AND meter_id = ANY(%s)", (sorted({k[0] for k in latest}),))
    open_meters = {r[0] for r in await cur.fetchall()}
    keys = [k for k in latest if k[0] in open_meters]
    if not keys:
        return 0
    codes = {m.id: code for code, m in meters_by_code.items()}
    cur = await conn.execute(
        "UPDATE abnormal_events e SET cleared_at = u.ts, "
        "auto_closed = u.auto AND e.state <> 'resolved', "
        "resolved_by = CASE WHEN u.auto AND e.state <> 'resolved' THEN 'vee' ELSE e.resolved_by END, "
        "resolved_at = CASE WHEN u.auto AND e.state <> 'resolved' THEN now() ELSE e.resolved_at END, "
        "comment = CASE WHEN u.auto AND e.state <> 'resolved' THEN "
        "coalesce(e.comment || '; ', '') || 'условие устранено / condition cleared' ELSE e.comment END, "
        "state = CASE WHEN u.auto THEN 'resolved' ELSE e.state END "
        "FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[], %s::bool[]) AS u(mid, prefix, ts, auto) "
        "WHERE e.meter_id = u.mid AND e.cleared_at IS NULL AND starts_with(e.dedup_key, u.prefix) "
        "AND coalesce(e.ts, e.raised_at) <= u.ts RETURNING e.id",
        ([k[0] for k in keys], [k[1] for k in keys], [latest[k] for k in keys],
         [auto_close.get(codes[k[0]], True) for k in keys]))
    return len(await cur.fetchall())


async def write_marks(conn: psycopg.AsyncConnection, marks: Sequence[Mark], kinds_by_obis: dict[tuple[str, str], str],
                      ids_by_code: dict[str, int]) -> None:
    """Add reasons to stored values (quality stays; billing reads reasons via billable())."""
    grouped: dict[str, dict[tuple[int, str, datetime], list[str]]] = {}
    for mk in marks:
        mid = ids_by_code.get(mk.meter)
        kind = kinds_by_obis.get((mk.meter, mk.obis))
        if mid is None or kind is None:
            continue
        lst = grouped.setdefault(kind, {}).setdefault((mid, mk.obis, mk.ts), [])
        if mk.reason not in lst:
            lst.append(mk.reason)
    for kind, items in grouped.items():
        keys = list(items)
        await conn.execute(
            f"UPDATE {values.TABLES[kind]} t SET reasons = ARRAY(SELECT DISTINCT x FROM unnest(t.reasons || "
            "string_to_array(u.r, ',')) AS x ORDER BY x) "
            "FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[], %s::text[]) AS u(mid, obis, ts, r) "
            "WHERE t.meter_id = u.mid AND t.obis = u.obis AND t.ts = u.ts",
            ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [",".join(items[k]) for k in keys]))


async def apply_result(conn: psycopg.AsyncConnection, res: Result, meters: dict[int, MeterRow],
                       kinds_by_obis: dict[tuple[str, str], str], cfg: ThresholdConfig,
                       site_ids: dict[str, int] | None = None) -> int:
    by_code = {m.facts.code: m for m in meters.values()}
    await write_marks(conn, res.marks, kinds_by_obis, {c: m.id for c, m in by_code.items()})
    raised = await write_findings(conn, res.findings, by_code, site_ids)
    auto = {c: cfg.for_meter(m.facts).auto_close for c, m in by_code.items()}
    await write_clears(conn, res.clears, by_code, auto)
    return raised
