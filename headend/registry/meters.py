"""Meters: create, update, dated parameters, bindings to gateways, history.

Parameters that change over a meter's life — the multiplier (Ктт × Ктн), digit capacity,
tariff zones, organisation, house and account, location, the unit its display shows — are
dated versions (`meter_params`): a change from a day applies to that day and later,
never to the past. The meters row mirrors the latest version for every reader; consumption,
snapshots, exports and VEE look up the version in force at each value's day. A change
dated inside a closed billing period records a recalculation, the closed figures stay.

Everything else about a meter (serial, model, resource, dates of verification, class,
status) is changed in place, audited.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

from askue.headend.auth import audit
from askue.headend.auth.permissions import Action, Principal
from askue.headend.errors import Conflict, Invalid, NotFound
from askue.headend.registry import cache, entities
from askue.headend.registry import validate as v
from askue.headend.storage import meta, pgarrays

FOREVER = date(1, 1, 1)  # valid_from of a meter's first version: its whole past
# dated: API field -> meter_params / meters column
DATED = {"multiplier": "multiplier", "ct_ratio": "ct_ratio", "vt_ratio": "vt_ratio", "digits": "digits",
         "tariff_zones": "tariff_zones", "org": "org_id", "house": "site_id", "account": "account_id",
         "lat": "lat", "lon": "lon", "unit": "unit"}
PARAM_COLUMNS = ("multiplier", "ct_ratio", "vt_ratio", "digits", "tariff_zones", "org_id", "site_id", "account_id",
                 "lat", "lon", "unit")
PLAIN = ("serial", "model", "resource", "installed_at", "verified_at", "verification_due", "is_balance", "status",
         "bus", "bus_address")
CHECKS = {
    "serial": lambda f, x: v.text(f, x, 64), "model": lambda f, x: v.text(f, x, 100), "resource": v.resource,
    "installed_at": v.day, "verified_at": v.day, "verification_due": v.day, "is_balance": v.flag,
    "status": v.status, "multiplier": v.positive, "ct_ratio": v.positive, "vt_ratio": v.positive,
    "digits": lambda f, x: v.whole(f, x, 1, 12), "tariff_zones": lambda f, x: v.whole(f, x, 1, 8),
    "org": lambda f, x: v.code(f, x, required=False), "house": lambda f, x: v.code(f, x, required=False),
    "account": lambda f, x: v.code(f, x, required=False), "lat": v.latitude, "lon": v.longitude,
    "unit": lambda f, x: v.text(f, x, 20), "bus": lambda f, x: v.text(f, x, 50),
    "bus_address": lambda f, x: v.text(f, x, 50),
    "gateway": lambda f, x: v.code(f, x, required=False), "gateway_code": lambda f, x: v.code(f, x, required=False),
    "valid_from": v.day, "comment": lambda f, x: v.text(f, x, 2000),
}


@dataclass
class MeterRef:
    id: int
    code: str
    org_id: int | None
    resource: str
    status: str


async def find(conn: psycopg.AsyncConnection, principal: Principal, code: str, *, lock: bool = False) -> dict:
    """The meter row by its registry code, within the principal's organisations."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("SELECT * FROM meters WHERE code = %s" + (" FOR UPDATE" if lock else ""), (code,))
    m = await cur.fetchone()
    if m is None or not principal.sees_org(m["org_id"]):
        raise NotFound(f"meter {code!r} not found", f"прибор учёта «{code}» не найден")
    return m


async def today(conn: psycopg.AsyncConnection) -> date:
    return datetime.now(await meta.timezone(conn)).date()


# ---- parameter versions ---------------------------------------------------------------------
async def versions(conn: psycopg.AsyncConnection, meter: Mapping[str, Any]) -> list[dict]:
    """The meter's parameter versions, oldest first (its row alone when it has none yet)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("SELECT * FROM meter_params WHERE meter_id = %s ORDER BY valid_from", (meter["id"],))
    rows = await cur.fetchall()
    if rows:
        return rows
    return [{"meter_id": meter["id"], "valid_from": FOREVER, **{c: meter.get(c) for c in PARAM_COLUMNS},
             "created_by": "registry", "created_at": None, "comment": None, "_virtual": True}]


async def _dated_values(conn: psycopg.AsyncConnection, principal: Principal, clean: dict, base: dict,
                        meter_org: int | None) -> dict[str, Any]:
    """API fields of a dated change → columns, references resolved and kept consistent:
    an account brings its house and organisation, a house its organisation; Ктт × Ктн is
    the multiplier."""
    out: dict[str, Any] = {}
    for f in ("digits", "tariff_zones", "lat", "lon", "unit"):
        if f in clean:
            out[DATED[f]] = clean[f]
    if "account" in clean:
        aid, aorg = await entities.resolve(conn, principal, entities.Ref("accounts", "account_id", "account",
                                                                         "лицевой счёт"), "account", clean["account"])
        out["account_id"] = aid
        if aid is not None:
            cur = await conn.execute("SELECT site_id FROM accounts WHERE id = %s", (aid,))
            site = (await cur.fetchone())[0]
            if site is not None and "house" not in clean:
                out["site_id"] = site
            if "org" not in clean:
                out["org_id"] = aorg
    if "house" in clean:
        sid, sorg = await entities.resolve(conn, principal, entities.HOUSE, "house", clean["house"])
        out["site_id"] = sid
        if sid is not None and "org" not in clean and "account" not in clean:
            out["org_id"] = sorg
    if "org" in clean:
        out["org_id"] = (await entities.resolve(conn, principal, entities.ORG, "org", clean["org"]))[0]
    if "org_id" in out and out["org_id"] is not None and not principal.sees_org(out["org_id"]):
        raise Invalid("org", "org: another organisation", "org: чужая организация")
    if any(clean.get(k) is not None for k in ("multiplier", "ct_ratio", "vt_ratio")):
        ct, vt = clean.get("ct_ratio", base.get("ct_ratio")), clean.get("vt_ratio", base.get("vt_ratio"))
        if clean.get("multiplier") is not None and "ct_ratio" not in clean and "vt_ratio" not in clean \
                and abs((ct or 1.0) * (vt or 1.0) - clean["multiplier"]) > 1e-9 * clean["multiplier"]:
            ct = vt = None  # a multiplier alone that is not the known Ктт × Ктн: the ratios are not known
        product = (ct or 1.0) * (vt or 1.0)
        mult = clean.get("multiplier")
        if mult is not None and (ct is not None or vt is not None) and abs(mult - product) > 1e-9 * product:
            raise Invalid("multiplier", f"multiplier: {mult:g} is not Ктт × Ктн = {product:g}",
                          f"multiplier: {mult:g} не равен Ктт × Ктн = {product:g}")
        out["ct_ratio"], out["vt_ratio"] = ct, vt
        out["multiplier"] = mult if mult is not None and ct is None and vt is None else product
    if "unit" in out:
        out["unit"] = v.meter_unit("unit", out["unit"], base.get("_resource"))
    return out


async def change_params(conn: psycopg.AsyncConnection, principal: Principal | str, meter: Mapping[str, Any],
                        changes: Mapping[str, Any], valid_from: date, comment: str | None = None) -> bool:
    """Apply `changes` (columns of meter_params) from the local day `valid_from` on: a new
    version (or the one starting that day changed), carried into later versions that had
    the same old value. Consumption of the days from `valid_from` is re-rated; closed
    billing periods from then get recalculation records. False when nothing changed."""
    vs = await versions(conn, meter)
    i = max(k for k, x in enumerate(vs) if x["valid_from"] <= valid_from)
    base = vs[i]
    effective = {c: x for c, x in changes.items() if base.get(c) != x}
    if not effective:
        return False
    new = [dict(x) for x in vs]
    if base["valid_from"] == valid_from:
        target = new[i]
    else:
        target = {**base, "valid_from": valid_from, "comment": comment}
        new.insert(i + 1, target)
    target.update(effective)
    carrying = set(effective)
    for later in new[new.index(target) + 1:]:
        for c in sorted(carrying):
            if later.get(c) == base.get(c):
                later[c] = effective[c]
            else:
                carrying.discard(c)
    old_by_day = {x["valid_from"]: x for x in vs if not x.get("_virtual")}
    changed = [x for x in new if x["valid_from"] not in old_by_day
               or any(x.get(c) != old_by_day[x["valid_from"]].get(c) for c in PARAM_COLUMNS)]
    actor = principal.name if isinstance(principal, Principal) else principal
    mid = meter["id"]
    await conn.execute("SELECT set_config('askue.registry_rerate', 'on', true)")
    await conn.execute("SELECT askue_consumption_rerate(%s, %s, -1)", (mid, valid_from))
    for x in changed:
        await conn.execute("DELETE FROM meter_params WHERE meter_id = %s AND valid_from = %s", (mid, x["valid_from"]))
        await _insert_version(conn, mid, x, actor, comment if x is target else x.get("comment"))
    latest = new[-1]
    since = latest["valid_from"] if len(new) > 1 else None
    await conn.execute(
        "UPDATE meters SET " + ", ".join(f"{c} = %s" for c in PARAM_COLUMNS) + ", params_since = %s, updated_at = now() "
        "WHERE id = %s", [*(latest[c] for c in PARAM_COLUMNS), since, mid])
    await conn.execute("SELECT askue_consumption_rerate(%s, %s, 1)", (mid, valid_from))
    await conn.execute("SELECT set_config('askue.registry_rerate', 'off', true)")
    await audit.record(conn, principal, "registry.meter.params", "meter", meter["code"],
                       old={"valid_from": valid_from, **await _by_code(conn, {c: base.get(c) for c in effective})},
                       new={"valid_from": valid_from, **await _by_code(conn, effective)}, comment=comment)
    orgs = {x.get("org_id") for x in vs + new if x["valid_from"] >= valid_from or x is base} - {None}
    await recalculate_closed(conn, actor, orgs, valid_from,
                             f"registry change of meter {meter['code']} from {valid_from:%d.%m.%Y} / "
                             f"изменение параметров прибора учёта {meter['code']} с {valid_from:%d.%m.%Y}")
    await cache.bump(conn)
    return True


async def _by_code(conn: psycopg.AsyncConnection, d: Mapping[str, Any]) -> dict[str, Any]:
    """Parameter columns as people read them: organisation, house and account by code."""
    out = dict(d)
    for col, key, table in (("org_id", "org", "organisations"), ("site_id", "house", "sites"),
                            ("account_id", "account", "accounts")):
        if col in out:
            rid = out.pop(col)
            cur = await conn.execute(f"SELECT code FROM {table} WHERE id = %s", (rid,))  # noqa: S608
            row = await cur.fetchone()
            out[key] = row[0] if row else None
    return out


async def _insert_version(conn: psycopg.AsyncConnection, mid: int, x: Mapping[str, Any], actor: str,
                          comment: str | None) -> None:
    await conn.execute(
        "INSERT INTO meter_params (meter_id, valid_from, " + ", ".join(PARAM_COLUMNS) + ", created_by, comment) "
        "VALUES (%s, %s, " + ", ".join(["%s"] * len(PARAM_COLUMNS)) + ", %s, %s) "
        "ON CONFLICT (meter_id, valid_from) DO NOTHING",
        [mid, x["valid_from"], *(x.get(c) if c != "multiplier" else (x.get(c) or 1.0) for c in PARAM_COLUMNS),
         actor, comment])


async def recalculate_closed(conn: psycopg.AsyncConnection, actor: str, org_ids: set[int], since: date,
                             reason: str) -> list[dict]:
    """Recalculation records for every closed billing period of `org_ids` that ends after
    the local day `since` (closed figures themselves never change)."""
    from askue.headend.billing import snapshots

    if not org_ids:
        return []
    cur = await conn.execute(
        "SELECT org_id, month FROM billing_periods WHERE state = 'closed' AND org_id = ANY(%s) "
        "AND (month + interval '1 month')::date > %s ORDER BY month, org_id", (sorted(org_ids), since))
    made: list[dict] = []
    for org_id, month in await cur.fetchall():
        made += await snapshots.recalculate(conn, org_id, month, actor, reason)
    return made


# ---- create and update ----------------------------------------------------------------------
async def save(conn: psycopg.AsyncConnection, principal: Principal, code: str, data: Mapping[str, Any], *,
               create: bool | None = None, action: Action = Action.REGISTRY_EDIT) -> tuple[dict, bool]:
    """Create (`create=True`), update (`False`) or upsert (`None`: the file import) a meter.

    Dated fields take effect from `valid_from` (default: today; for a meter being created,
    or one the ingest created unassigned and the registry now describes, from its whole
    past). `gateway` (+ `gateway_code`, default the meter's code) binds it; `status`
    active makes an unassigned meter a registry meter. `action`: an act creates its new
    meter under the acts' permission."""
    principal.require(action)
    code = v.code("code", code)
    clean = v.collect(data, CHECKS)
    async with conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("SELECT * FROM meters WHERE code = %s FOR UPDATE", (code,))
        m = await cur.fetchone()
        adopting = m is not None and m["status"] == "unassigned"
        before = await _state(conn, m["id"]) if m is not None else {}
        if m is not None and not adopting and not principal.sees_org(m["org_id"]):
            if create is False:
                raise NotFound(f"meter {code!r} not found", f"прибор учёта «{code}» не найден")
            raise Conflict(f"meter {code!r} is taken by another organisation",
                           f"прибор учёта «{code}»: код занят другой организацией")
        if create is True and m is not None and not adopting:
            raise Conflict(f"meter {code!r} already exists", f"прибор учёта «{code}» уже существует")
        if create is False and m is None:
            raise NotFound(f"meter {code!r} not found", f"прибор учёта «{code}» не найден")
        if adopting and not principal.scope.everything and not await _gateway_seen(conn, principal, m["id"]):
            raise Conflict(f"meter {code!r} was first seen by another organisation's gateway; an administrator "
                           "can describe it", f"прибор учёта «{code}» впервые прислал шлюз другой организации; "
                           "описать его может администратор")
        if m is None:
            if clean.get("resource") is None:
                raise Invalid("resource", "resource is required", "resource: укажите ресурс")
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute("INSERT INTO meters (code, resource, status) VALUES (%s, %s, 'active') RETURNING *",
                              (code, clean["resource"]))
            m = await cur.fetchone()
            created = True
        else:
            created = False
        fresh = created or adopting
        default_org = min(principal.org_ids) if fresh and principal.org_ids and not m["org_id"] else None
        changed = await _apply(conn, principal, m, clean, FOREVER if fresh else clean.get("valid_from")
                               or await today(conn), default_org, action)
        if fresh and clean.get("status") is None:
            await conn.execute("UPDATE meters SET status = 'active' WHERE id = %s AND status = 'unassigned'", (m["id"],))
        after = await _state(conn, m["id"])
        diff = [k for k in (*PLAIN, "gateway_id") if after.get(k) != before.get(k)]  # dated ones: their own rows
        if created or adopting or diff:
            # dated changes are audited on their own (registry.meter.params); this row says what the meter became
            await audit.record(conn, principal, "registry.meter.create" if created else
                               ("registry.meter.adopt" if adopting else "registry.meter.update"), "meter", code,
                               old=None if created else {k: before.get(k) for k in diff},
                               new={k: after[k] for k in (diff if not created else _STATE) if after.get(k) is not None},
                               comment=clean.get("comment"))
            await cache.bump(conn)
        return after, created or adopting or changed


async def _gateway_seen(conn: psycopg.AsyncConnection, principal: Principal, meter_id: int) -> bool:
    cur = await conn.execute("SELECT g.org_id FROM meter_bindings b JOIN gateways g ON g.id = b.gateway_id "
                             "WHERE b.meter_id = %s AND b.valid_to IS NULL", (meter_id,))
    row = await cur.fetchone()
    return row is not None and row[0] is not None and principal.sees_org(row[0])


async def _apply(conn: psycopg.AsyncConnection, principal: Principal, m: dict, clean: dict, valid_from: date,
                 default_org: int | None, action: Action) -> bool:
    changed = False
    plain = {f: clean[f] for f in PLAIN if clean.get(f) is not None and clean[f] != m.get(f)}
    due = plain.get("verification_due", m.get("verification_due"))
    for f in ("installed_at", "verified_at"):
        at = plain.get(f, m.get(f))
        if due is not None and at is not None and due < at and ("verification_due" in plain or f in plain):
            raise Invalid("verification_due", f"verification_due: {due} is before {f} {at}",
                          f"verification_due: {due:%d.%m.%Y} раньше, чем {f} {at:%d.%m.%Y}")
    if plain:
        sets = ", ".join(f"{c} = %s" for c in plain)
        await conn.execute(f"UPDATE meters SET {sets}, updated_at = now() WHERE id = %s",  # noqa: S608
                           [*plain.values(), m["id"]])
        changed = True
        m = {**m, **plain}
    vs = await versions(conn, m)
    at = max((x for x in vs if x["valid_from"] <= valid_from), key=lambda x: x["valid_from"])
    dated = await _dated_values(conn, principal, clean, {**at, "_resource": m["resource"]}, m["org_id"])
    if default_org is not None and "org_id" not in dated:
        dated["org_id"] = default_org
    if "unit" not in clean and m.get("unit") and "resource" in plain:
        v.meter_unit("unit", m["unit"], m["resource"])
    if dated:
        changed |= await change_params(conn, principal, m, dated, valid_from, clean.get("comment"))
    if clean.get("gateway"):
        changed |= await bind(conn, principal, m["code"], clean["gateway"], clean.get("gateway_code"), None,
                              quiet_if_same=True, action=action)
    return changed


_STATE_SQL = """
SELECT m.*, o.code AS org, s.code AS house, a.code AS account FROM meters m
LEFT JOIN organisations o ON o.id = m.org_id LEFT JOIN sites s ON s.id = m.site_id
LEFT JOIN accounts a ON a.id = m.account_id WHERE m.id = %s
"""
_STATE = ("code", *PLAIN, "multiplier", "ct_ratio", "vt_ratio", "digits", "tariff_zones", "org", "house", "account",
          "lat", "lon", "unit", "gateway_id", "decommissioned_at", "params_since")


async def _state(conn: psycopg.AsyncConnection, meter_id: int) -> dict:
    """A meter as the API and the audit log show it: references by code."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_STATE_SQL, (meter_id,))
    row = await cur.fetchone()
    return {k: row.get(k) for k in _STATE}


async def link_replacement(conn: psycopg.AsyncConnection, principal: Principal, old_code: str,
                           new_code: str) -> bool:
    """The registry file's «Заменяет» column: `new_code` replaced `old_code` (without the act's
    readings; an exchange act records those). The old meter is removed on the new one's
    installation day."""
    principal.require(Action.REGISTRY_EDIT)
    new = await find(conn, principal, new_code, lock=True)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("SELECT * FROM meters WHERE code = %s FOR UPDATE", (old_code,))
    old = await cur.fetchone()
    if old is None or not principal.sees_org(old["org_id"]):
        raise Invalid("replaces", f"meter {old_code} to be replaced is not in the registry",
                      f"заменяемый прибор учёта {old_code} не найден в реестре")
    if old["replaced_by_id"] == new["id"] and new["replaces_id"] == old["id"]:
        return False
    await conn.execute("UPDATE meters SET replaces_id = %s WHERE id = %s", (old["id"], new["id"]))
    await conn.execute("UPDATE meters SET replaced_by_id = %s, status = 'decommissioned', "
                       "decommissioned_at = coalesce(decommissioned_at, %s) WHERE id = %s",
                       (new["id"], new["installed_at"], old["id"]))
    await audit.record(conn, principal, "registry.meter.replaced", "meter", old_code,
                       old={"status": old["status"]}, new={"replaced_by": new_code, "status": "decommissioned"})
    await cache.bump(conn)
    return True


# ---- bindings -------------------------------------------------------------------------------
async def check_gateway(conn: psycopg.AsyncConnection, principal: Principal, gateway: str) -> None:
    """Invalid on `gateway` unless the registry has that gateway and the principal sees it."""
    cur = await conn.execute("SELECT org_id FROM gateways WHERE id = %s", (gateway,))
    gw = await cur.fetchone()
    if gw is None or (gw[0] is not None and not principal.sees_org(gw[0])):
        raise Invalid("gateway", f"gateway: {gateway!r} does not exist; register it first (POST /api/v1/gateways) "
                                 "or let it connect once",
                      f"gateway: шлюз «{gateway}» не зарегистрирован; добавьте его в реестр или дождитесь первого "
                      "подключения")


async def bind(conn: psycopg.AsyncConnection, principal: Principal, code: str, gateway: str,
               gateway_code: str | None = None, at: datetime | None = None, *, quiet_if_same: bool = False,
               source: str = "registry", action: Action = Action.REGISTRY_EDIT) -> bool:
    """Bind the meter to `gateway` under `gateway_code` (default: the meter's code) from `at`
    (default: now; a first binding without `at` holds since the meter was first seen). The
    binding in force ends at `at`: moving a meter is this, dated."""
    principal.require(action)
    gateway = v.code("gateway", gateway)
    gateway_code = v.code("gateway_code", gateway_code, required=False) or code
    m = await find(conn, principal, code, lock=True)
    await check_gateway(conn, principal, gateway)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("SELECT * FROM meter_bindings WHERE meter_id = %s AND valid_to IS NULL FOR UPDATE", (m["id"],))
    current = await cur.fetchone()
    if current and current["gateway_id"] == gateway and current["gateway_code"] == gateway_code:
        if quiet_if_same:
            return False
        raise Conflict(f"meter {code!r} is already bound to {gateway} as {gateway_code}",
                       f"прибор учёта «{code}» уже привязан к шлюзу {gateway} под кодом {gateway_code}")
    now = datetime.now(await meta.timezone(conn))
    if at is not None and at.tzinfo is None:
        raise Invalid("at", "at: give the time with its UTC offset", "at: укажите время со смещением от UTC")
    if at is not None and at > now + timedelta(days=366):
        raise Invalid("at", "at: more than a year ahead", "at: более чем на год вперёд")
    start = at if at is not None else (now if current is not None else None)
    if start is None:
        # a first binding holds since the meter was first seen, but not before the code's last
        # meter on that gateway gave it up
        cur = await conn.execute("SELECT max(valid_to) FROM meter_bindings WHERE gateway_id = %s "
                                 "AND gateway_code = %s", (gateway, gateway_code))
        start = (await cur.fetchone())[0]
    if current and current["valid_from"] is not None and start is not None and start <= current["valid_from"]:
        raise Invalid("at", f"at: the binding in force starts at {current['valid_from'].isoformat()}; a move must "
                            "be later", f"at: действующая привязка начинается {current['valid_from']:%d.%m.%Y %H:%M}; "
                                        "перенос должен быть позже")
    cur = await conn.execute(
        "SELECT m.code FROM meter_bindings b JOIN meters m ON m.id = b.meter_id WHERE b.gateway_id = %s "
        "AND b.gateway_code = %s AND b.meter_id <> %s AND (b.valid_to IS NULL OR %s::timestamptz IS NULL "
        "OR b.valid_to > %s) LIMIT 1", (gateway, gateway_code, m["id"], start, start))
    taken = await cur.fetchone()
    if taken:
        raise Conflict(f"gateway {gateway} already uses code {gateway_code!r} for meter {taken[0]}; "
                       "move or unbind that meter first",
                       f"шлюз {gateway} уже использует код «{gateway_code}» для прибора учёта {taken[0]}; "
                       "сначала перенесите или отвяжите его")
    if current:
        await conn.execute("UPDATE meter_bindings SET valid_to = %s WHERE id = %s", (start, current["id"]))
    actor = principal.name
    await conn.execute(
        "INSERT INTO meter_bindings (meter_id, gateway_id, gateway_code, valid_from, source, created_by) "
        "VALUES (%s, %s, %s, %s, %s, %s)", (m["id"], gateway, gateway_code, start, source, actor))
    await conn.execute("UPDATE meters SET gateway_id = %s, updated_at = now() WHERE id = %s", (gateway, m["id"]))
    await audit.record(conn, principal, "registry.meter.bind", "meter", code,
                       old=None if current is None else {"gateway": current["gateway_id"],
                                                         "gateway_code": current["gateway_code"]},
                       new={"gateway": gateway, "gateway_code": gateway_code, "from": start})
    await cache.bump(conn)
    return True


async def unbind(conn: psycopg.AsyncConnection, principal: Principal, code: str, at: datetime | None = None,
                 *, source_act: bool = False) -> bool:
    """End the meter's binding at `at` (default now): values its gateway reads later are quarantined."""
    principal.require(Action.REGISTRY_ACTS if source_act else Action.REGISTRY_EDIT)
    m = await find(conn, principal, code, lock=True)
    at = at or datetime.now(await meta.timezone(conn))
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("SELECT * FROM meter_bindings WHERE meter_id = %s AND valid_to IS NULL FOR UPDATE", (m["id"],))
    current = await cur.fetchone()
    if current is None:
        return False
    if current["valid_from"] is not None and at <= current["valid_from"]:
        raise Invalid("at", "at: before the binding began", "at: раньше начала привязки")
    await conn.execute("UPDATE meter_bindings SET valid_to = %s WHERE id = %s", (at, current["id"]))
    await conn.execute("UPDATE meters SET gateway_id = NULL, updated_at = now() WHERE id = %s", (m["id"],))
    await audit.record(conn, principal, "registry.meter.unbind", "meter", code,
                       old={"gateway": current["gateway_id"], "gateway_code": current["gateway_code"]},
                       new={"until": at})
    await cache.bump(conn)
    return True


# ---- history (the meter card, the API) ------------------------------------------------------
async def history(conn: psycopg.AsyncConnection, principal: Principal, code: str) -> dict:
    """Parameter versions (with the days each was in force), bindings, acts and registry audit
    rows of one meter, for the meter card and `GET /meters/{code}/history`."""
    m = await find(conn, principal, code)
    vs = await versions(conn, m)
    names = await _names(conn, vs)
    params = []
    for i, x in enumerate(vs):
        until = vs[i + 1]["valid_from"] - timedelta(days=1) if i + 1 < len(vs) else None
        params.append({"valid_from": None if x["valid_from"] == FOREVER else x["valid_from"], "valid_until": until,
                       "multiplier": x["multiplier"], "ct_ratio": x["ct_ratio"], "vt_ratio": x["vt_ratio"],
                       "digits": x["digits"], "tariff_zones": x["tariff_zones"],
                       "org": names["org"].get(x["org_id"]), "house": names["site"].get(x["site_id"]),
                       "account": names["account"].get(x["account_id"]), "lat": x["lat"], "lon": x["lon"],
                       "unit": x["unit"], "by": x["created_by"], "at": x["created_at"], "comment": x["comment"]})
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("SELECT gateway_id AS gateway, gateway_code, valid_from, valid_to, source, created_by AS by, "
                      "created_at AS at FROM meter_bindings WHERE meter_id = %s ORDER BY valid_from NULLS FIRST, id",
                      (m["id"],))
    bindings = await cur.fetchall()
    await cur.execute(
        "SELECT a.id, a.kind, a.at, o.code AS old_meter, n.code AS new_meter, a.old_final, a.new_initial, "
        "a.gateway_id AS gateway, a.gateway_code, a.document, a.comment, a.created_by AS by, a.created_at "
        "FROM meter_acts a LEFT JOIN meters o ON o.id = a.old_meter_id LEFT JOIN meters n ON n.id = a.new_meter_id "
        "WHERE a.old_meter_id = %s OR a.new_meter_id = %s ORDER BY a.at, a.id", (m["id"], m["id"]))
    acts = await cur.fetchall()
    await cur.execute(
        "SELECT at, actor, action, old, new, comment FROM audit_log WHERE object_type = 'meter' AND object_id = %s "
        "AND action LIKE 'registry.%%' ORDER BY at DESC, id DESC LIMIT 200", (code,))
    changes = await cur.fetchall()
    return {"meter": code, "params": params, "bindings": bindings, "acts": acts, "changes": changes,
            "serial_hold": None if m["serial_hold_at"] is None else
            {"since": m["serial_hold_at"], "reported_serial": m["serial_hold_reported"], "registry_serial": m["serial"]}}


async def _names(conn: psycopg.AsyncConnection, vs: list[dict]) -> dict[str, dict[int, str]]:
    out: dict[str, dict[int, str]] = {}
    for key, table, col in (("org", "organisations", "org_id"), ("site", "sites", "site_id"),
                            ("account", "accounts", "account_id")):
        ids = sorted({x[col] for x in vs if x[col] is not None})
        cur = await conn.execute(f"SELECT id, code FROM {table} WHERE id = ANY(%s)", (ids,))  # noqa: S608
        out[key] = dict(await cur.fetchall())
    return out


async def params_on(conn: psycopg.AsyncConnection, meter_ids: list[int]) -> dict[int, list[tuple[date, float, int | None]]]:
    """(valid_from, multiplier, digits) of every version of meters that have more than one,
    oldest first: what billing and VEE need to rate each value by its day."""
    if not meter_ids:
        return {}
    pgarrays.enable(conn)
    cur = await conn.execute(
        "SELECT p.meter_id, p.valid_from, p.multiplier, p.digits FROM meter_params p JOIN meters m ON m.id = p.meter_id "
        "WHERE p.meter_id = ANY(%b::bigint[]) AND m.params_since IS NOT NULL ORDER BY p.meter_id, p.valid_from",
        (pgarrays.int8(meter_ids),))
    out: dict[int, list[tuple[date, float, int | None]]] = {}
    for mid, vf, mult, digits in await cur.fetchall():
        out.setdefault(mid, []).append((vf, mult, digits))
    return out


def local_midnight(d: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(d, time(0), tz)
