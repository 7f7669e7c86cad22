"""VEE threshold overrides as a service: list them, set one (validated, audited), and
the thresholds in force for a meter. An organisation's principal sees and sets only
its own organisation's overrides; default, resource and model overrides are an
admin's."""
from __future__ import annotations

import dataclasses

import psycopg
from psycopg.rows import dict_row

from askue.headend.auth import audit
from askue.headend.auth.permissions import Action, Principal
from askue.headend.errors import Forbidden, Invalid, NotFound
from askue.headend.readings.service import find_meter
from askue.headend.vee import store
from askue.headend.vee.thresholds import RESOURCE_DEFAULTS, ThresholdError, Thresholds


def _plain(th: Thresholds) -> dict:
    return {k: (dict(v) if k == "tamper_codes" else v) for k, v in dataclasses.asdict(th).items()}


async def _org_codes(conn: psycopg.AsyncConnection, principal: Principal) -> set[str] | None:
    if principal.org_ids is None:
        return None
    cur = await conn.execute("SELECT code FROM organisations WHERE id = ANY(%s)", (sorted(principal.org_ids),))
    return {r[0] for r in await cur.fetchall()}


async def list_overrides(conn: psycopg.AsyncConnection, principal: Principal) -> dict:
    """Built-in defaults and the stored overrides (an organisation sees its own only)."""
    mine = await _org_codes(conn, principal)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT scope, name, resource, settings, updated_by, updated_at FROM vee_thresholds "
                          "ORDER BY scope, name, resource")
        rows = [r for r in await cur.fetchall()
                if r["scope"] != "organisation" or mine is None or r["name"] in mine]
    return {"defaults": _plain(Thresholds()), "resource_defaults": RESOURCE_DEFAULTS, "overrides": rows}


async def set_override(conn: psycopg.AsyncConnection, principal: Principal, scope: str, name: str | None,
                       resource: str | None, settings: dict) -> None:
    principal.require(Action.THRESHOLDS_SET)
    mine = await _org_codes(conn, principal)
    if mine is not None and scope == "organisation" and name not in mine:
        # another organisation is not visible to this principal: the same answer as for none at all
        raise NotFound(f"organisation {name!r} not found", f"организация {name!r} не найдена")
    if mine is not None and scope != "organisation":
        raise Forbidden("an organisation's principal may set thresholds of its own organisation only",
                        "организация может менять только свои пороги")
    if principal.role == "dispatcher" and scope != "organisation":
        raise Forbidden("default, resource and model thresholds are set by an admin",
                        "общие пороги, пороги ресурса и модели меняет администратор")
    async with conn.transaction():
        old = await (await conn.execute(
            "SELECT settings FROM vee_thresholds WHERE scope = %s AND name = %s AND resource = %s",
            (scope, name or "", resource or ""))).fetchone()
        try:
            await store.save_thresholds(conn, scope, name, settings, resource, principal.name)
        except ThresholdError as e:
            raise Invalid("settings", str(e)) from None
        await audit.record(conn, principal, "thresholds", "vee_thresholds", f"{scope}/{name or ''}/{resource or ''}",
                           old=old[0] if old else None, new=settings)


async def for_meter(conn: psycopg.AsyncConnection, principal: Principal, meter: str) -> dict:
    """The thresholds in force for one meter after every override."""
    m = await find_meter(conn, principal, meter)
    return _plain((await store.load_thresholds(conn)).for_meter(m.row.facts))
