"""Registry editing over HTTP (under /api/v1): organisations, houses, accounts, gateways,
meters with dated parameters and bindings, install/exchange/removal acts, serial
confirmation, quarantined values. A thin adapter over the registry services: bodies are
plain JSON objects checked field by field by the services, so a bad request answers 422
with every bad field (`detail.field`, `detail.errors`), as the pages and the import do.
"""
from __future__ import annotations

from typing import Any, Literal

import psycopg
from fastapi import APIRouter, Body, Depends, Query

from askue.headend.api.auth import require_principal
from askue.headend.api.deps import db
from askue.headend.auth.permissions import Principal
from askue.headend.errors import Invalid
from askue.headend.registry import acts, entities, holds, meters
from askue.headend.registry import validate as v
from askue.headend.storage import meta

router = APIRouter(tags=["registry"])
Json = dict[str, Any]
_KEY = {"organisation": "code", "site": "code", "account": "code", "gateway": "id"}


def _body(body: Any) -> Json:
    if not isinstance(body, dict):
        raise Invalid("body", "the body must be a JSON object", "тело запроса должно быть объектом JSON")
    return body


async def _create(kind: str, body: Json, principal: Principal, conn: psycopg.AsyncConnection) -> Json:
    body = dict(_body(body))
    key = body.pop(_KEY[kind], None)
    return (await entities.save(conn, principal, kind, key, body, create=True))[0]


async def _update(kind: str, key: str, body: Json, principal: Principal, conn: psycopg.AsyncConnection) -> Json:
    obj, changed = await entities.save(conn, principal, kind, key, _body(body), create=False)
    return {**obj, "changed": changed}


@router.post("/organisations", status_code=201)
async def create_organisation(body: Json = Body(...), principal: Principal = Depends(require_principal),
                              conn: psycopg.AsyncConnection = Depends(db)) -> Json:
    """`{code, name, kind, inn}` (admin)."""
    return await _create("organisation", body, principal, conn)


@router.patch("/organisations/{key}")
async def update_organisation(key: str, body: Json = Body(...), principal: Principal = Depends(require_principal),
                              conn: psycopg.AsyncConnection = Depends(db)) -> Json:
    return await _update("organisation", key, body, principal, conn)


@router.post("/sites", status_code=201)
async def create_site(body: Json = Body(...), principal: Principal = Depends(require_principal),
                      conn: psycopg.AsyncConnection = Depends(db)) -> Json:
    """A house (or substation): `{code, org, address, name, kind, lat, lon, parent}`."""
    return await _create("site", body, principal, conn)


@router.patch("/sites/{key}")
async def update_site(key: str, body: Json = Body(...), principal: Principal = Depends(require_principal),
                      conn: psycopg.AsyncConnection = Depends(db)) -> Json:
    return await _update("site", key, body, principal, conn)


@router.post("/accounts", status_code=201)
async def create_account(body: Json = Body(...), principal: Principal = Depends(require_principal),
                         conn: psycopg.AsyncConnection = Depends(db)) -> Json:
    """`{code, org, house, flat, subscriber, phone, email}`."""
    return await _create("account", body, principal, conn)


@router.patch("/accounts/{key}")
async def update_account(key: str, body: Json = Body(...), principal: Principal = Depends(require_principal),
                         conn: psycopg.AsyncConnection = Depends(db)) -> Json:
    return await _update("account", key, body, principal, conn)


@router.post("/gateways", status_code=201)
async def create_gateway(body: Json = Body(...), principal: Principal = Depends(require_principal),
                         conn: psycopg.AsyncConnection = Depends(db)) -> Json:
    """Register a gateway before it first connects: `{id, name, org}`."""
    return await _create("gateway", body, principal, conn)


@router.patch("/gateways/{gateway_id}")
async def update_gateway(gateway_id: str, body: Json = Body(...), principal: Principal = Depends(require_principal),
                         conn: psycopg.AsyncConnection = Depends(db)) -> Json:
    return await _update("gateway", gateway_id, body, principal, conn)


@router.post("/meters", status_code=201)
async def create_meter(body: Json = Body(...), principal: Principal = Depends(require_principal),
                       conn: psycopg.AsyncConnection = Depends(db)) -> Json:
    """`{code, resource, serial, model, digits, ct_ratio, vt_ratio | multiplier, tariff_zones, unit,
    org, house, account, lat, lon, installed_at, verified_at, verification_due, is_balance,
    gateway, gateway_code}`. A code the ingest created unassigned is taken over."""
    body = dict(_body(body))
    code = body.pop("code", None)
    return (await meters.save(conn, principal, code, body, create=True))[0]


@router.patch("/meters/{code}")
async def update_meter(code: str, body: Json = Body(...), principal: Principal = Depends(require_principal),
                       conn: psycopg.AsyncConnection = Depends(db)) -> Json:
    """Change fields; the dated ones (multiplier, ct_ratio, vt_ratio, digits, tariff_zones, org,
    house, account, lat, lon, unit) from `valid_from` (a day, default today), with `comment`."""
    obj, changed = await meters.save(conn, principal, code, _body(body), create=False)
    return {**obj, "changed": changed}


@router.get("/meters/{code}/history")
async def meter_history(code: str, principal: Principal = Depends(require_principal),
                        conn: psycopg.AsyncConnection = Depends(db)) -> Json:
    """Parameter versions with the days each was in force, gateway bindings, acts, registry changes."""
    return await meters.history(conn, principal, code)


@router.post("/meters/{code}/binding")
async def bind_meter(code: str, body: Json = Body(...), principal: Principal = Depends(require_principal),
                     conn: psycopg.AsyncConnection = Depends(db)) -> Json:
    """Bind (or move) the meter: `{gateway, gateway_code, at}`; the binding in force ends at `at`."""
    b = _body(body)
    unknown = set(b) - {"gateway", "gateway_code", "at"}
    if unknown:
        raise Invalid(sorted(unknown)[0], f"unknown field(s) {sorted(unknown)}; known: gateway, gateway_code, at",
                      "неизвестные поля; допустимы: gateway, gateway_code, at")
    at = v.moment("at", b.get("at"), await meta.timezone(conn))
    async with conn.transaction():
        await meters.bind(conn, principal, code, b.get("gateway"), b.get("gateway_code"), at)
    return (await meters.history(conn, principal, code))["bindings"][-1]


@router.post("/meters/{code}/unbind")
async def unbind_meter(code: str, body: Json | None = Body(None), principal: Principal = Depends(require_principal),
                       conn: psycopg.AsyncConnection = Depends(db)) -> Json:
    at = v.moment("at", (body or {}).get("at"), await meta.timezone(conn))
    async with conn.transaction():
        done = await meters.unbind(conn, principal, code, at)
    return {"meter": code, "unbound": done}


@router.post("/meters/{code}/confirm-serial")
async def confirm_serial(code: str, body: Json = Body(...), principal: Principal = Depends(require_principal),
                         conn: psycopg.AsyncConnection = Depends(db)) -> Json:
    """`{take_reported: true|false, comment}`: end the hold of the meter's values from billing."""
    b = _body(body)
    take = v.flag("take_reported", b.get("take_reported"))
    if take is None:
        raise Invalid("take_reported", "take_reported: true (the reported serial is right) or false (the registry's)",
                      "take_reported: true (верен номер со счётчика) или false (верен номер в реестре)")
    return await holds.confirm_serial(conn, principal, code, take_reported=take, comment=b.get("comment"))


@router.post("/acts/{kind}", status_code=201)
async def record_act(kind: Literal["install", "exchange", "removal"], body: Json = Body(...),
                     principal: Principal = Depends(require_principal),
                     conn: psycopg.AsyncConnection = Depends(db)) -> Json:
    """An install, exchange or removal act (docs/headend-registry.md): readings per tariff as
    `{"T1": 1234.5, "T2": 567.8}` (or `total`, or OBIS codes)."""
    return (await acts.record(conn, principal, kind, _body(body))).as_dict()


@router.get("/quarantine")
async def quarantine(state: Literal["held", "released", "discarded", "all"] = "held", gateway: str | None = None,
                     code: str | None = None, limit: int = Query(500, ge=1, le=10000),
                     principal: Principal = Depends(require_principal),
                     conn: psycopg.AsyncConnection = Depends(db)) -> Json:
    """Values set aside by the ingest (another gateway's meter, a removed meter)."""
    return {"items": await holds.list_quarantine(conn, principal, state=state, gateway=gateway, code=code,
                                                 limit=limit)}


def _ids(b: Json) -> list[int] | None:
    ids = b.get("ids")
    if ids is None:
        return None
    if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
        raise Invalid("ids", "ids: a list of numbers", "ids: список номеров")
    return ids


@router.post("/quarantine/release")
async def release(body: Json = Body(...), principal: Principal = Depends(require_principal),
                  conn: psycopg.AsyncConnection = Depends(db)) -> Json:
    """`{ids | gateway + code, meter?, comment}`: store them on the meter now bound (or `meter`)."""
    b = _body(body)
    return await holds.release(conn, principal, ids=_ids(b), gateway=b.get("gateway"), code=b.get("code"),
                               meter=b.get("meter"), comment=b.get("comment"))


@router.post("/quarantine/discard")
async def discard(body: Json = Body(...), principal: Principal = Depends(require_principal),
                  conn: psycopg.AsyncConnection = Depends(db)) -> Json:
    b = _body(body)
    return await holds.discard(conn, principal, ids=_ids(b), gateway=b.get("gateway"), code=b.get("code"),
                               comment=b.get("comment"))

