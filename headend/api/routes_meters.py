"""Meters: list with search and filters, card, readings and intervals by range."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query

from askue.headend import names
from askue.headend.api.auth import require_principal
from askue.headend.api.deps import db
from askue.headend.api.pagination import decode_cursor, page
from askue.headend.auth.permissions import Principal
from askue.headend.storage.queries import meters as mq
from askue.headend.storage.queries import values as vq
from askue.headend.storage.values import KINDS

router = APIRouter(tags=["meters"])
Limit = Annotated[int, Query(ge=1, le=10000)]


def _not_found(code: str) -> HTTPException:
    return HTTPException(404, f"meter {code!r} not found")


@router.get("/meters")
async def list_meters(
    q: str | None = Query(None, description="search in meter code, serial, account, subscriber, address"),
    status: Literal["active", "unassigned", "decommissioned"] | None = None,
    resource: Literal["electricity", "cold_water", "hot_water", "heat", "gas", "unknown"] | None = None,
    org: str | None = Query(None, description="organisation code"),
    site: str | None = Query(None, description="site (house) code"),
    account: str | None = Query(None, description="account (ЛС) code"),
    gateway: str | None = None,
    balance: bool | None = Query(None, description="true: balance (ОДПУ) meters only, false: individual only"),
    cursor: str | None = None, limit: Limit = 100,
    principal: Principal = Depends(require_principal), conn: psycopg.AsyncConnection = Depends(db),
) -> dict:
    after = decode_cursor(cursor, 1)
    f = mq.MeterFilter(q=q, status=status, resource=resource, org=org, site=site, account=account,
                       gateway=gateway, balance=balance)
    rows = await mq.list_meters(conn, f, principal.scope, after[0] if after else None, limit + 1)
    for r in rows:
        r.pop("id", None)
    return page(rows, limit, lambda r: [r["code"]])


async def _meter(conn: psycopg.AsyncConnection, code: str, principal: Principal) -> dict:
    m = await mq.get_meter(conn, code, principal.scope)
    if m is None:
        raise _not_found(code)
    return m


Lang = Annotated[Literal["ru", "en"], Query(description="language of `channel`, the channel's name "
                                                     "(«A+ Т1 (день)», «Объём ХВС»)")]


@router.get("/meters/{code}")
async def meter_card(code: str, lang: Lang = "ru", principal: Principal = Depends(require_principal),
                     conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    """Details, the latest value of every register (per tariff zone) with its times, last contact.
    Each value has `obis` and `channel`, its name as operators read it."""
    m = await _meter(conn, code, principal)
    latest = await mq.latest_registers(conn, m.pop("id"))
    m.pop("org_id", None)
    m["latest"] = [_value_out(r | {"kind": "register"}, lang, m["tariff_zones"]) for r in latest]
    return m


def _value_out(r: dict, lang: str = "ru", zones: int | None = None) -> dict:
    by_meter = r["ts_source"] == "meter"
    out = {"obis": r["obis"], "channel": names.channel(r["obis"], lang, zones=zones), "kind": r["kind"],
           "value": r["value"],
           "meter_time": r["ts"] if by_meter else None, "received_at": r["received_at"], "ts": r["ts"],
           "ts_source": r["ts_source"], "quality": r["quality"], "source": r["source"]}
    for k in ("reasons", "gateway_id", "seq", "period_s"):
        if k in r and r[k] is not None:
            out[k] = r[k]
    return out


async def _values(conn, principal, code, kinds, start, end, obis, cursor, limit, lang="ru") -> dict:
    m = await _meter(conn, code, principal)
    after = decode_cursor(cursor, 3)
    if after:
        try:
            after = (datetime.fromisoformat(after[0]), str(after[1]), str(after[2]))
        except (TypeError, ValueError):
            raise HTTPException(400, "cursor is not valid; pass the next_cursor of a previous page unchanged") from None
    if start and end and end <= start:
        raise HTTPException(422, "`to` must be after `from`")
    rows = await vq.meter_values(conn, m["id"], kinds, start, end, obis, after, limit + 1)
    res = page([_value_out(r, lang, m["tariff_zones"]) for r in rows], limit, lambda r: [r["ts"].isoformat(), r["kind"], r["obis"]])
    res["meter"] = code
    return res


@router.get("/meters/{code}/readings")
async def meter_readings(
    code: str,
    start: datetime | None = Query(None, alias="from", description="meter time from (inclusive), ISO 8601"),
    end: datetime | None = Query(None, alias="to", description="meter time to (exclusive), ISO 8601"),
    kind: str = Query("register,instant", description="comma-separated: register, instant, interval, event"),
    obis: str | None = None, cursor: str | None = None, limit: Limit = 1000, lang: Lang = "ru",
    principal: Principal = Depends(require_principal), conn: psycopg.AsyncConnection = Depends(db),
) -> dict:
    """Stored values in meter-time order, each with `meter_time` and `received_at` (gateway receive time)
    and `channel`, the name of its OBIS code."""
    kinds = sorted({k.strip() for k in kind.split(",") if k.strip()})
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise HTTPException(422, f"kind {','.join(bad) or '(empty)'} is unknown; use {', '.join(KINDS)}")
    return await _values(conn, principal, code, kinds, start, end, obis, cursor, limit, lang)


@router.get("/meters/{code}/intervals")
async def meter_intervals(
    code: str,
    start: datetime | None = Query(None, alias="from"), end: datetime | None = Query(None, alias="to"),
    obis: str | None = None, cursor: str | None = None, limit: Limit = 1000, lang: Lang = "ru",
    principal: Principal = Depends(require_principal), conn: psycopg.AsyncConnection = Depends(db),
) -> dict:
    """Load profile: energy per integration period; `meter_time` is the END of the period."""
    return await _values(conn, principal, code, ["interval"], start, end, obis, cursor, limit, lang)
