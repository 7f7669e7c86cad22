"""What the ingest set aside until an operator decides: values held from billing because
the meter reported another serial, and values quarantined because their gateway does not
write that meter.

- `confirm_serial`: the operator checked the meter; either the registry serial was wrong
  (take the reported one) or the meter is the registry's one after all. The hold ends, the
  held values lose their `serial_mismatch` reason (the billing feed then delivers them) and
  the event is resolved. A real exchange is recorded with an exchange act instead.
- `release` / `discard` quarantined values: released ones go through the one write path
  onto the meter the registry now binds their gateway's code to (or a meter named), in its
  canonical unit; discarded ones stay in the table, marked, with who and why.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from askue.headend import units
from askue.headend.auth import audit
from askue.headend.auth.permissions import Action, Principal
from askue.headend.errors import Conflict, Invalid, NotFound
from askue.headend.registry import cache, meters
from askue.headend.registry import validate as v
from askue.headend.registry.cache import Binding
from askue.headend.storage import values

RELEASE_MAX = 100_000


async def confirm_serial(conn: psycopg.AsyncConnection, principal: Principal, code: str, *,
                         take_reported: bool, comment: str | None = None) -> dict:
    principal.require(Action.REGISTRY_CONFIRM)
    comment = v.text("comment", comment, 2000)
    async with conn.transaction():
        m = await meters.find(conn, principal, code, lock=True)
        if m["serial_hold_at"] is None:
            raise Conflict(f"meter {code}: no serial mismatch to confirm",
                           f"прибор учёта {code}: нет расхождения заводского номера для подтверждения")
        reported = m["serial_hold_reported"]
        if take_reported:
            await conn.execute("UPDATE meters SET serial = %s, updated_at = now() WHERE id = %s", (reported, m["id"]))
        released = 0
        for kind in ("register", "interval", "instant"):
            cur = await conn.execute(
                f"UPDATE {values.TABLES[kind]} SET reasons = array_remove(reasons, 'serial_mismatch') "  # noqa: S608
                "WHERE meter_id = %s AND 'serial_mismatch' = ANY(reasons)", (m["id"],))
            released += cur.rowcount
        await conn.execute("UPDATE meters SET serial_hold_at = NULL, serial_hold_reported = NULL WHERE id = %s",
                           (m["id"],))
        note = ("заводской номер подтверждён оператором / serial confirmed" +
                (f": {reported}" if take_reported else f": {m['serial']}"))
        await conn.execute(
            "UPDATE abnormal_events SET state = 'resolved', resolved_by = %s, resolved_at = now(), "
            "cleared_at = coalesce(cleared_at, now()), comment = coalesce(comment || '; ', '') || %s "
            "WHERE meter_id = %s AND kind = 'serial_mismatch' AND state <> 'resolved'",
            (principal.name, note + (f" ({comment})" if comment else ""), m["id"]))
        await audit.record(conn, principal, "registry.meter.confirm_serial", "meter", code,
                           old={"serial": m["serial"], "reported_serial": reported, "held_since": m["serial_hold_at"]},
                           new={"serial": reported if take_reported else m["serial"], "values_released": released},
                           comment=comment)
        await cache.bump(conn)
    return {"meter": code, "serial": reported if take_reported else m["serial"], "values_released": released}


# ---- quarantine ---------------------------------------------------------------------------
_LIST_SQL = """
SELECT q.id, q.quarantined_at, q.reason, q.gateway_id, q.gateway_code, m.code AS meter, q.bound_gateway, q.kind,
       q.obis, q.ts, q.received_at, q.value, q.unit, q.state, q.decided_by, q.decided_at, r.code AS released_to
FROM quarantined_values q
LEFT JOIN meters m ON m.id = q.meter_id
LEFT JOIN gateways g ON g.id = q.gateway_id
LEFT JOIN meters r ON r.id = q.released_to
"""


def _scope(principal: Principal) -> tuple[str, list]:
    """A quarantined value concerns the meter's organisation and the sending gateway's."""
    if principal.scope.everything:
        return "TRUE", []
    orgs = sorted(principal.org_ids or ())
    return "(m.org_id = ANY(%s) OR g.org_id = ANY(%s))", [orgs, orgs]


async def list_quarantine(conn: psycopg.AsyncConnection, principal: Principal, *, state: str = "held",
                          gateway: str | None = None, code: str | None = None, limit: int = 500) -> list[dict]:
    if state not in ("held", "released", "discarded", "all"):
        raise Invalid("state", "state: held, released, discarded or all", "state: held, released, discarded или all")
    cond, params = _scope(principal)
    conds = [cond]
    if state != "all":
        conds.append("q.state = %s")
        params.append(state)
    if gateway:
        conds.append("q.gateway_id = %s")
        params.append(gateway)
    if code:
        conds.append("q.gateway_code = %s")
        params.append(code)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_LIST_SQL + f" WHERE {' AND '.join(conds)} ORDER BY q.id DESC LIMIT %s", [*params, limit])
    return await cur.fetchall()


async def summary(conn: psycopg.AsyncConnection, principal: Principal) -> list[dict]:
    """Held values per sending gateway and code: what the page lists."""
    cond, params = _scope(principal)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT q.gateway_id, q.gateway_code, q.reason, m.code AS meter, q.bound_gateway, count(*) AS n, "
        "min(q.ts) AS first_ts, max(q.ts) AS last_ts FROM quarantined_values q "
        "LEFT JOIN meters m ON m.id = q.meter_id LEFT JOIN gateways g ON g.id = q.gateway_id "
        f"WHERE q.state = 'held' AND {cond} GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2", params)
    return await cur.fetchall()


async def _held(conn: psycopg.AsyncConnection, principal: Principal, ids: list[int] | None, gateway: str | None,
                code: str | None) -> list[dict]:
    if not ids and not (gateway and code):
        raise Invalid("ids", "ids: name the values (ids) or a gateway and its code",
                      "ids: укажите значения (ids) или шлюз и код прибора")
    cond, params = _scope(principal)
    sel = ("SELECT q.* FROM quarantined_values q LEFT JOIN meters m ON m.id = q.meter_id "
           "LEFT JOIN gateways g ON g.id = q.gateway_id WHERE q.state = 'held' AND " + cond)
    if ids:
        sel += " AND q.id = ANY(%s)"
        params.append(ids)
    if gateway and code:
        sel += " AND q.gateway_id = %s AND q.gateway_code = %s"
        params += [gateway, code]
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(sel + " ORDER BY q.id LIMIT %s FOR UPDATE OF q", [*params, RELEASE_MAX])
    rows = await cur.fetchall()
    if not rows:
        raise NotFound("no quarantined values to decide on", "нет значений в карантине по этому запросу")
    return rows


async def release(conn: psycopg.AsyncConnection, principal: Principal, *, ids: list[int] | None = None,
                  gateway: str | None = None, code: str | None = None, meter: str | None = None,
                  comment: str | None = None) -> dict[str, Any]:
    """Store quarantined values on `meter`, or on the meter the registry now binds each one's
    gateway code to at its receive time. Nothing is stored when any value has no meter or a
    unit that does not fit it."""
    principal.require(Action.REGISTRY_CONFIRM)
    async with conn.transaction():
        rows = await _held(conn, principal, ids, gateway, code)
        target = await meters.find(conn, principal, v.code("meter", meter)) if meter else None
        if target is not None and target["status"] == "decommissioned":
            raise Invalid("meter", f"meter: {target['code']} is removed", f"meter: прибор учёта {target['code']} снят")
        binds: dict[tuple[str, str], list[Binding]] = {}
        if target is None:
            bindings, _, _ = await cache.lookup(conn, sorted({(r["gateway_id"], r["gateway_code"]) for r in rows}))
            binds = {k: list(cache.sorted_bindings(b)) for k, b in bindings.items()}
        resources: dict[int, str] = {}
        out: list[values.ValueRow] = []
        problems: list[str] = []
        now = datetime.now(UTC)
        for r in rows:
            mid = target["id"] if target else next(
                (b.meter_id for b in reversed(binds.get((r["gateway_id"], r["gateway_code"]), []))
                 if b.covers(r["received_at"])), None)
            if mid is None:
                problems.append(f"#{r['id']}: gateway {r['gateway_id']} has no meter bound as {r['gateway_code']!r} "
                                f"at {r['received_at']:%Y-%m-%d %H:%M}")
                continue
            if mid not in resources:
                cur = await conn.execute("SELECT resource, org_id FROM meters WHERE id = %s", (mid,))
                res, org = await cur.fetchone()
                if not principal.sees_org(org):
                    raise NotFound("the meter to release to is not found", "прибор учёта для выпуска не найден")
                resources[mid] = res
            try:
                c = units.convert(resources[mid], r["obis"], r["kind"], r["unit"])
            except units.UnitError as e:
                problems.append(f"#{r['id']}: {e.reason}")
                continue
            out.append(values.ValueRow(
                r["kind"], mid, r["obis"], r["ts"], r["ts_source"], r["received_at"],
                r["value"] if c.same else r["value"] * c.factor, r["quality"],
                sorted({*(r["reasons"] or ()), "released_from_quarantine"}), "gateway", r["gateway_id"], r["seq"],
                r["period_s"], r["archive"], None if c.same else r["value"], None if c.same else r["unit"]))
            r["_to"] = mid
        if problems:
            raise Invalid("ids", "not released: " + "; ".join(problems[:10]),
                          "не выпущено: " + "; ".join(problems[:10]))
        stored = await values.insert(conn, out)
        await conn.execute(
            "UPDATE quarantined_values q SET state = 'released', decided_by = %s, decided_at = %s, released_to = u.m "
            "FROM unnest(%s::bigint[], %s::bigint[]) AS u(id, m) WHERE q.id = u.id",
            (principal.name, now, [r["id"] for r in rows], [r["_to"] for r in rows]))
        await audit.record(conn, principal, "registry.quarantine.release", "quarantine",
                           f"{rows[0]['gateway_id']}/{rows[0]['gateway_code']}",
                           new={"values": len(rows), "stored": stored.count, "meters": sorted(set(resources))},
                           comment=v.text("comment", comment, 2000))
    return {"released": len(rows), "stored": stored.count}


async def discard(conn: psycopg.AsyncConnection, principal: Principal, *, ids: list[int] | None = None,
                  gateway: str | None = None, code: str | None = None, comment: str | None = None) -> dict[str, Any]:
    principal.require(Action.REGISTRY_CONFIRM)
    comment = v.text("comment", comment, 2000)
    if not comment:
        raise Invalid("comment", "comment: say why the values are discarded", "comment: укажите, почему значения отброшены")
    async with conn.transaction():
        rows = await _held(conn, principal, ids, gateway, code)
        await conn.execute("UPDATE quarantined_values SET state = 'discarded', decided_by = %s, decided_at = now() "
                           "WHERE id = ANY(%s)", (principal.name, [r["id"] for r in rows]))
        await audit.record(conn, principal, "registry.quarantine.discard", "quarantine",
                           f"{rows[0]['gateway_id']}/{rows[0]['gateway_code']}", new={"values": len(rows)},
                           comment=comment)
    return {"discarded": len(rows)}
