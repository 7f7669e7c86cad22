"""Meter lookups: list with search and filters, card with latest values."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from askue.headend.auth.permissions import Scope

METER_COLUMNS = """m.id, m.code, m.serial, m.model, m.resource, m.unit, m.digits, m.multiplier, m.tariff_zones,
    m.installed_at, m.verified_at, m.verification_due, m.is_balance, m.status, m.decommissioned_at,
    m.lat, m.lon, m.gateway_id, m.bus, m.bus_address, m.last_contact, m.last_ok, m.last_error, m.clock_drift_s,
    m.reported_serial, m.ct_ratio, m.vt_ratio, m.params_since, o.code AS org_code, o.name AS org_name, s.code AS site_code, s.address AS site_address,
    a.code AS account_code, a.subscriber AS account_subscriber, a.flat AS account_flat,
    rb.code AS replaced_by, rp.code AS replaces"""
METER_FROM = """meters m LEFT JOIN organisations o ON o.id = m.org_id LEFT JOIN sites s ON s.id = m.site_id
    LEFT JOIN accounts a ON a.id = m.account_id LEFT JOIN meters rb ON rb.id = m.replaced_by_id
    LEFT JOIN meters rp ON rp.id = m.replaces_id"""


@dataclass
class MeterFilter:
    q: str | None = None  # code, serial, account, subscriber or address contains
    status: str | None = None
    resource: str | None = None
    org: str | None = None  # organisation code
    site: str | None = None  # site code
    account: str | None = None  # account code
    gateway: str | None = None
    balance: bool | None = None


def _where(f: MeterFilter, scope: Scope) -> tuple[list[str], list[Any]]:
    scope_sql, params = scope.meters("m")
    conds = [scope_sql]
    if f.q:
        like = "%" + f.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conds.append("(m.code ILIKE %s OR m.serial ILIKE %s OR a.code ILIKE %s OR a.subscriber ILIKE %s "
                     "OR s.address ILIKE %s)")
        params += [like] * 5
    for col, val in (("m.status", f.status), ("m.resource", f.resource), ("o.code", f.org), ("s.code", f.site),
                     ("a.code", f.account), ("m.gateway_id", f.gateway), ("m.is_balance", f.balance)):
        if val is not None:
            conds.append(f"{col} = %s")
            params.append(val)
    return conds, params


async def list_meters(conn: psycopg.AsyncConnection, f: MeterFilter, scope: Scope,
                      after_code: str | None, limit: int) -> list[dict]:
    conds, params = _where(f, scope)
    if after_code is not None:
        conds.append("m.code > %s")
        params.append(after_code)
    sql = (f"SELECT {METER_COLUMNS} FROM {METER_FROM} WHERE {' AND '.join(conds)} ORDER BY m.code LIMIT %s")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, [*params, limit])
        return await cur.fetchall()


async def get_meter(conn: psycopg.AsyncConnection, code: str, scope: Scope) -> dict | None:
    cond, params = scope.meters("m")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {METER_COLUMNS}, m.org_id FROM {METER_FROM} WHERE m.code = %s AND {cond}",
                          [code, *params])
        return await cur.fetchone()


async def latest_registers(conn: psycopg.AsyncConnection, meter_id: int) -> list[dict]:
    """The newest reading of every register channel (e.g. each tariff zone) with both times."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT DISTINCT ON (obis) obis, value, ts, ts_source, received_at, quality, source "
            "FROM register_readings WHERE meter_id = %s ORDER BY obis, ts DESC", (meter_id,))
        return await cur.fetchall()
