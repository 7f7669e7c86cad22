"""Map markers for the map page (scoped to the principal), and the names other pages
import from here. The other pages' reads are storage read models
(`storage/queries/*`) and services."""
from __future__ import annotations

from datetime import datetime

import psycopg
from psycopg.rows import dict_row

from askue.headend.auth.permissions import Principal
from askue.headend.contact import BUCKET_COLOR, MAP_BUCKETS, contact_bucket  # noqa: F401 (the map's names)
from askue.headend.storage.queries import registry


async def visible_orgs(conn: psycopg.AsyncConnection, p: Principal) -> list[dict]:
    return await registry.visible_organisations(conn, p.scope)


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
