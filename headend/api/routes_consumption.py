"""Consumption by day, month or year per meter, account, house or organisation."""
from __future__ import annotations

from datetime import date
from typing import Literal

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query

from askue.headend.api.auth import require_principal
from askue.headend.api.deps import db
from askue.headend.auth.permissions import Principal
from askue.headend.storage.queries import consumption as cq

router = APIRouter(tags=["consumption"])

_EXISTS = {
    "meter": "SELECT org_id FROM meters WHERE code = %s",
    "account": "SELECT org_id FROM accounts WHERE code = %s",
    "house": "SELECT org_id FROM sites WHERE code = %s",
    "organisation": "SELECT id FROM organisations WHERE code = %s",
}


@router.get("/consumption/{level}/{key}")
async def get_consumption(
    level: Literal["meter", "account", "house", "organisation"], key: str,
    granularity: Literal["day", "month", "year"] = "day",
    start: date | None = Query(None, alias="from", description="first local day (inclusive)"),
    end: date | None = Query(None, alias="to", description="last local day (exclusive)"),
    resource: Literal["electricity", "cold_water", "hot_water", "heat", "gas"] | None = None,
    meter_class: Literal["individual", "balance"] | None = Query(None, description="individual or balance (ОДПУ)"),
    group: Literal["total", "meter", "account", "house"] = Query("total", description="break the figures down"),
    principal: Principal = Depends(require_principal), conn: psycopg.AsyncConnection = Depends(db),
) -> dict:
    """Rows of (bucket, resource, tariff zone, individual/balance, [group key]) → consumption × multiplier.

    Zone 0 is the total (or single-rate) register; zones 1..n are the tariff zones.
    Days and months are local to the head-end's time zone.
    """
    if start and end and end <= start:
        raise HTTPException(422, "`to` must be after `from`")
    row = await (await conn.execute(_EXISTS[level], (key,))).fetchone()
    if row is None or not principal.sees_org(row[0]):
        raise HTTPException(404, f"{level} {key!r} not found")
    q = cq.ConsumptionQuery(level=level, key=key, granularity=granularity, start=start, end=end,
                            resource=resource, meter_class=meter_class, group=group)
    rows = await cq.consumption(conn, q, principal.scope)
    if group == "total":
        for r in rows:
            r.pop("group_key")
    return {"level": level, "key": key, "granularity": granularity, "items": rows}
