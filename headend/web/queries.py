"""Reads the pages need beyond the storage/VEE query modules (which are called
directly): visible organisations, consumption summed for a page, map markers,
latest readings of a meter. Every query is scoped to the principal."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import psycopg
from psycopg.rows import dict_row

from askue.headend.auth.permissions import Principal
from askue.headend.storage.queries import consumption as cq
from askue.headend.vee.rules.no_contact import BUCKETS

# Map legend, in the order operators know it; "disconnected" = never heard or silent > 2 weeks.
MAP_BUCKETS: tuple[tuple[str, str], ...] = (
    ("disconnected", "#616161"), ("30min", "#1b9e3e"), ("2h", "#7cb342"), ("1d", "#c0ca33"),
    ("2d", "#fbc02d"), ("1w", "#fb8c00"), ("2w", "#e64a19"),
)
BUCKET_COLOR = dict(MAP_BUCKETS)


def contact_bucket(last_contact: datetime | None, now: datetime) -> str:
    if last_contact is None:
        return "disconnected"
    silence = now - last_contact
    for upper, code, _ in BUCKETS:
        if upper is not None and silence <= upper:
            return code
    return "disconnected"


async def visible_orgs(conn: psycopg.AsyncConnection, p: Principal) -> list[dict]:
    scope, params = p.scope.sql("o.id")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT o.id, o.code, o.name FROM organisations o WHERE {scope} ORDER BY o.name, o.code",
                          params)
        return await cur.fetchall()


@dataclass
class Period:
    kind: str  # month | year | date
    start: date
    end: date  # exclusive
    chart_granularity: str  # day | month
    chart_start: date
    label: str


def parse_period(kind: str | None, value: str | None, today: date) -> Period:
    """month=YYYY-MM, year=YYYY, date=YYYY-MM-DD; a bad value raises ValueError naming the format."""
    kind = kind or "month"
    if kind == "year":
        y = int(value) if value else today.year
        if not 2000 <= y <= 2100:
            raise ValueError("year must be YYYY between 2000 and 2100")
        s = date(y, 1, 1)
        return Period("year", s, date(y + 1, 1, 1), "month", s, f"{y}")
    if kind == "date":
        d = date.fromisoformat(value) if value else today
        return Period("date", d, d + timedelta(days=1), "day", d.replace(day=1), d.strftime("%d.%m.%Y"))
    if kind != "month":
        raise ValueError("period must be month, year or date")
    if value:
        y, m = (int(x) for x in value.split("-"))
        s = date(y, m, 1)
    else:
        s = today.replace(day=1)
    e = date(s.year + (s.month == 12), s.month % 12 + 1, 1)
    return Period("month", s, e, "day", s, s.strftime("%m.%Y"))


async def org_consumption(conn: psycopg.AsyncConnection, p: Principal, org_codes: list[str], granularity: str,
                          start: date, end: date, group: str = "total") -> list[dict]:
    """Rows of the storage consumption query for each organisation, concatenated."""
    out: list[dict] = []
    for code in org_codes:
        q = cq.ConsumptionQuery(level="organisation", key=code, granularity=granularity, start=start, end=end,
                                group=group)
        for r in await cq.consumption(conn, q, p.scope):
            r["org"] = code
            out.append(r)
    return out


def totals(rows: list[dict]) -> list[dict]:
    """Sum over buckets per (resource, class, zone), ordered for the table."""
    acc: dict[tuple[str, str, int], list] = {}
    for r in rows:
        k = (r["resource"], r["meter_class"], r["zone"])
        a = acc.setdefault(k, [0.0, 0])
        a[0] += r["value"] or 0.0
        a[1] = max(a[1], r["meters"])
    return [{"resource": k[0], "meter_class": k[1], "zone": k[2], "value": v[0], "meters": v[1]}
            for k, v in sorted(acc.items(), key=lambda kv: (kv[0][0], kv[0][1] != "individual", kv[0][2]))]


def series(rows: list[dict], resource: str, meter_class: str = "individual", zone: int = 0) -> dict[date, float]:
    s: dict[date, float] = defaultdict(float)
    for r in rows:
        if r["resource"] == resource and r["meter_class"] == meter_class and r["zone"] == zone:
            s[r["bucket"]] += r["value"] or 0.0
    return dict(s)


async def account_consumption(conn: psycopg.AsyncConnection, p: Principal, org_codes: list[str], start: date,
                              end: date) -> dict[str, dict[tuple[str, int], float]]:
    rows = await org_consumption(conn, p, org_codes, "month", start, end, group="account")
    out: dict[str, dict[tuple[str, int], float]] = defaultdict(lambda: defaultdict(float))
    for r in rows:
        if r["group_key"] and r["meter_class"] == "individual":
            out[r["group_key"]][(r["resource"], r["zone"])] += r["value"] or 0.0
    return out


async def get_account(conn: psycopg.AsyncConnection, p: Principal, code: str) -> dict | None:
    scope, params = p.scope.sql("a.org_id")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT a.id, a.code, a.flat, a.subscriber, a.phone, a.email, o.code AS org_code, o.name AS org_name, "
            "s.code AS site_code, s.address FROM accounts a LEFT JOIN organisations o ON o.id = a.org_id "
            f"LEFT JOIN sites s ON s.id = a.site_id WHERE a.code = %s AND {scope}", [code, *params])
        return await cur.fetchone()


async def map_markers(conn: psycopg.AsyncConnection, p: Principal, now: datetime) -> dict:
    """Meters with coordinates (own, else their house's) and their contact bucket; the count without."""
    scope, params = p.scope.sql("m.org_id")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT m.code, m.serial, m.resource, m.status, m.last_contact, coalesce(m.lat, s.lat) AS lat, "
            "coalesce(m.lon, s.lon) AS lon, s.address, a.code AS account, a.subscriber "
            "FROM meters m LEFT JOIN sites s ON s.id = m.site_id LEFT JOIN accounts a ON a.id = m.account_id "
            f"WHERE m.status <> 'decommissioned' AND {scope} ORDER BY m.code", params)
        rows = await cur.fetchall()
    markers, without = [], 0
    for r in rows:
        if r["lat"] is None or r["lon"] is None:
            without += 1
            continue
        b = contact_bucket(r["last_contact"], now)
        markers.append({"code": r["code"], "serial": r["serial"], "resource": r["resource"], "lat": r["lat"],
                        "lon": r["lon"], "bucket": b, "color": BUCKET_COLOR[b], "address": r["address"],
                        "account": r["account"], "subscriber": r["subscriber"],
                        "last_contact": r["last_contact"].isoformat() if r["last_contact"] else None})
    counts = {code: 0 for code, _ in MAP_BUCKETS}
    for m in markers:
        counts[m["bucket"]] += 1
    return {"markers": markers, "without_coordinates": without, "total": len(rows), "counts": counts}


async def latest_readings(conn: psycopg.AsyncConnection, meter_id: int, limit: int = 100) -> list[dict]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT obis, ts, ts_source, received_at, value, quality, reasons, source FROM register_readings "
            "WHERE meter_id = %s ORDER BY ts DESC, obis LIMIT %s", (meter_id, limit))
        return await cur.fetchall()
