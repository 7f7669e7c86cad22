"""Install, exchange (замена ПУ) and removal acts.

An act records the moment and the registers' readings then: the old meter's final
readings per tariff, the new meter's serial, model, multiplier and initial readings per
tariff. The readings are stored as the meters' values (the one write path, so VEE and the
rollups see them), the binding of the gateway's code passes from the old meter to the new
one at that moment, and the gateway's values already stored on the old meter after it
(read before the act was entered) move to the new meter. Consumption across the exchange
is then (old final − old start) × old multiplier + (new end − new initial) × new
multiplier by construction: each meter is its own series from its own first reading.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

from askue.headend import units
from askue.headend.auth import audit
from askue.headend.auth.permissions import Action, Principal
from askue.headend.errors import Conflict, Invalid
from askue.headend.registry import cache, meters
from askue.headend.registry import validate as v
from askue.headend.storage import meta, values
from askue.headend.vee.rules.common import MAIN_REGISTER

KINDS = ("install", "exchange", "removal")
_OBIS = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
_TARIFF = re.compile(r"^(?:t|т)([0-8])$", re.IGNORECASE)
TOTAL_KEYS = ("total", "t0", "т0", "сумма", "общий", "сутки")
# events about values an act explains: the exchange is known, they are resolved with it
EXPLAINED = ("reverse_reading", "spike", "frozen_value", "serial_mismatch", "zero_consumption")
_NEW_FIELDS = ("code", "serial", "model", "digits", "ct_ratio", "vt_ratio", "multiplier", "tariff_zones", "unit",
               "verified_at", "verification_due")
_ACT_FIELDS = ("meter", "at", "old_final", "new_meter", "new_initial", "gateway", "gateway_code", "unit", "document",
               "comment", "org", "house", "account", "resource", "is_balance", "lat", "lon")


@dataclass
class ActResult:
    id: int
    kind: str
    at: datetime
    old_meter: str | None
    new_meter: str | None
    moved_values: int = 0

    def as_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "at": self.at.isoformat(), "old_meter": self.old_meter,
                "new_meter": self.new_meter, "moved_values": self.moved_values}


def register_of(resource: str, key: str, field: str) -> str:
    """The register a reading key names: an OBIS code, «T1»…«T8» (electricity tariffs) or
    «total» (the resource's main register)."""
    k = key.strip()
    if _OBIS.match(k):
        return k
    main = MAIN_REGISTER.get(resource, MAIN_REGISTER["electricity"])
    if k.lower() in TOTAL_KEYS:
        return main
    m = _TARIFF.match(k)
    if m and (resource == "electricity" or m.group(1) == "0"):
        return main if m.group(1) == "0" else f"1.0.1.8.{m.group(1)}.255"
    raise Invalid(field, f"{key!r} names no register; use total, T1…T8 or an OBIS code",
                  f"«{key}» — не регистр; укажите total, T1…T8 или код OBIS")


def _readings(resource: str, raw: Any, field: str, unit: str | None, errors: list[Invalid]) -> dict[str, float]:
    """{OBIS: value in the canonical unit} of an act's readings; problems go to `errors`."""
    if raw in (None, "", {}):
        errors.append(Invalid(field, "the readings per tariff are required",
                              "укажите показания по тарифам"))
        return {}
    if not isinstance(raw, Mapping):
        errors.append(Invalid(field, "give readings as {\"T1\": 123.4, …}",
                              "показания задаются как {\"T1\": 123,4, …}"))
        return {}
    out: dict[str, float] = {}
    for key, value in raw.items():
        f = f"{field}.{key}"
        try:
            obis = register_of(resource, str(key), f)
            n = v.reading(f, value)
            if unit:
                try:
                    n *= units.convert(resource, obis, "register", unit).factor
                except units.UnitError as e:
                    raise Invalid("unit", f"unit: {e.reason}", f"unit: {e.reason_ru}") from None
            out[obis] = n
        except Invalid as e:
            errors.append(e)
    return out


async def _last_readings(conn: psycopg.AsyncConnection, meter_id: int, obis: list[str],
                         at: datetime) -> dict[str, tuple[float, datetime]]:
    cur = await conn.execute(
        "SELECT k.o, r.value, r.ts FROM unnest(%s::text[]) AS k(o) CROSS JOIN LATERAL ("
        "SELECT value, ts FROM register_readings WHERE meter_id = %s AND obis = k.o AND ts <= %s "
        "AND NOT ('serial_mismatch' = ANY(coalesce(reasons, '{}'))) ORDER BY ts DESC LIMIT 1) r",
        (obis, meter_id, at))
    return {o: (val, ts) for o, val, ts in await cur.fetchall()}


async def _check_final(conn: psycopg.AsyncConnection, old: dict, final: dict[str, float], at: datetime,
                       keys: dict[str, str], tz: Any, errors: list[Invalid]) -> None:
    """A final reading below the old meter's last reading is a typo or a wrong meter."""
    last = await _last_readings(conn, old["id"], sorted(final), at)
    for obis, value in final.items():
        if obis in last and value < last[obis][0] - 1e-9:
            lv, lts = last[obis]
            f = f"old_final.{keys[obis]}"
            errors.append(Invalid(
                f, f"the final reading {value:g} is below the old meter's last reading {lv:g} "
                   f"({lts.astimezone(tz):%d.%m.%Y %H:%M})",
                f"конечное показание {units.number(value)} меньше последнего показания старого прибора "
                f"{units.number(lv)} ({lts.astimezone(tz):%d.%m.%Y %H:%M})"))


def _keys(raw: Any, resource: str) -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(raw, Mapping):
        for k in raw:
            try:
                out[register_of(resource, str(k), "x")] = str(k)
            except Invalid:
                pass
    return out


async def _moment(conn: psycopg.AsyncConnection, raw: Any, errors: list[Invalid]) -> datetime | None:
    tz = await meta.timezone(conn)
    try:
        at = v.moment("at", raw, tz)
    except Invalid as e:
        errors.append(e)
        return None
    if at is None:
        errors.append(Invalid("at", "at: the date and time of the act are required", "at: укажите дату и время акта"))
        return None
    if at > datetime.now(UTC) + timedelta(minutes=10):
        errors.append(Invalid("at", "at: the act cannot be dated in the future", "at: акт не может быть из будущего"))
    return at


def _new_meter_fields(raw: Any, errors: list[Invalid]) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        errors.append(Invalid("new_meter", "new_meter: give the new meter's code, serial, model, multiplier…",
                              "new_meter: укажите код, заводской номер, модель, коэффициент нового прибора"))
        return {}
    out: dict[str, Any] = {}
    for k, x in raw.items():
        if k not in _NEW_FIELDS:
            errors.append(Invalid(f"new_meter.{k}", f"new_meter.{k}: unknown field; known: {', '.join(_NEW_FIELDS)}",
                                  f"new_meter.{k}: неизвестное поле"))
            continue
        if x in (None, ""):
            continue
        try:
            out[k] = v.code(f"new_meter.{k}", x) if k == "code" else meters.CHECKS[k](f"new_meter.{k}", x)
        except Invalid as e:
            errors.append(e)
    if not out.get("serial"):
        errors.append(Invalid("new_meter.serial", "new_meter.serial: the new meter's serial is required",
                              "new_meter.serial: укажите заводской номер нового прибора"))
    if out.get("serial") and not out.get("code"):
        out["code"] = re.sub(r"[^A-Za-z0-9_.:-]", "-", out["serial"])[:64].strip("-") or None
    return out


def _unknown(data: Mapping[str, Any], errors: list[Invalid]) -> None:
    for k in data:
        if k not in _ACT_FIELDS:
            errors.append(Invalid(k, f"{k}: unknown field; known: {', '.join(_ACT_FIELDS)}", f"{k}: неизвестное поле"))


async def _codes(conn: psycopg.AsyncConnection, m: Mapping[str, Any]) -> dict[str, Any]:
    """The old meter's organisation, house and account as codes (what a new meter inherits)."""
    cur = await conn.execute(
        "SELECT (SELECT code FROM organisations WHERE id = %s), (SELECT code FROM sites WHERE id = %s), "
        "(SELECT code FROM accounts WHERE id = %s)", (m["org_id"], m["site_id"], m["account_id"]))
    org, house, account = await cur.fetchone()
    return {"org": org, "house": house, "account": account}


async def _store(conn: psycopg.AsyncConnection, meter_id: int, readings: dict[str, float], at: datetime,
                 reason: str) -> None:
    now = datetime.now(UTC)
    rows = [values.ValueRow("register", meter_id, obis, at, "meter", now, value, "M", [reason], "manual")
            for obis, value in sorted(readings.items())]
    await values.insert(conn, rows)


async def _stored_at(conn: psycopg.AsyncConnection, meter_id: int, readings: dict[str, float], at: datetime,
                     field: str, keys: dict[str, str], errors: list[Invalid]) -> None:
    cur = await conn.execute("SELECT obis, value FROM register_readings WHERE meter_id = %s AND ts = %s "
                             "AND obis = ANY(%s)", (meter_id, at, sorted(readings)))
    for obis, value in await cur.fetchall():
        if abs(value - readings[obis]) > 1e-9:
            f = f"{field}.{keys.get(obis, obis)}"
            errors.append(Invalid(f, f"a reading {value:g} is already stored for that moment",
                                  f"на этот момент уже есть показание {units.number(value)}"))


async def _move_after(conn: psycopg.AsyncConnection, old_id: int, new_id: int | None, at: datetime,
                      gateway_code: str | None = None) -> int:
    """Gateway values stored on the old meter that were read at or after `at`: to the new
    meter (an exchange) or to quarantine (a removal). Returns how many."""
    moved: list[values.ValueRow] = []
    changed: list[tuple[int, str, datetime]] = []
    for kind in ("register", "interval", "instant", "event"):
        table = values.TABLES[kind]
        extra = {"register": ", archive, orig_value, orig_unit", "interval": ", period_s, orig_value, orig_unit",
                 "instant": ", orig_value, orig_unit", "event": ""}[kind]
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(f"DELETE FROM {table} WHERE meter_id = %s AND source = 'gateway' AND received_at >= %s "  # noqa: S608
                          f"RETURNING obis, ts, ts_source, received_at, value, quality, reasons, gateway_id, seq{extra}",
                          (old_id, at))
        for r in await cur.fetchall():
            changed.append((old_id, r["obis"], r["ts"]))
            reasons = [x for x in r["reasons"] or () if x not in ("serial_mismatch", "meter_exchange",
                                                                   "reverse_reading")]
            moved.append(values.ValueRow(kind, new_id or 0, r["obis"], r["ts"], r["ts_source"], r["received_at"],
                                         r["value"], r["quality"], reasons, "gateway", r["gateway_id"], r["seq"],
                                         r.get("period_s"), r.get("archive"), r.get("orig_value"), r.get("orig_unit")))
    if changed:
        await values.refresh_rollups(conn, [c for c in changed])
    if not moved:
        return 0
    if new_id is not None:
        await values.insert(conn, moved)
    else:
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO quarantined_values (reason, gateway_id, gateway_code, meter_id, kind, obis, ts, ts_source, "
                "received_at, value, unit, quality, reasons, seq, period_s, archive) "
                "SELECT 'meter_removed', %s, coalesce(%s, m.code), m.id, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s "
                "FROM meters m WHERE m.id = %s",
                [(r.gateway_id or "", gateway_code, r.kind, r.obis, r.ts, r.ts_source, r.received_at,
                  r.orig_value if r.orig_value is not None else r.value, r.orig_unit or _canonical(r), r.quality,
                  r.reasons or None, r.seq, r.period_s, r.archive, old_id) for r in moved])
    return len(moved)


def _canonical(r: values.ValueRow) -> str:
    q = units.canonical(None, r.obis, r.kind)
    return q.canonical if q else ""


async def _resolve_explained(conn: psycopg.AsyncConnection, principal: Principal, meter_id: int, since: datetime,
                             why: str) -> None:
    await conn.execute(
        "UPDATE abnormal_events SET state = 'resolved', resolved_by = %s, resolved_at = now(), "
        "cleared_at = coalesce(cleared_at, now()), comment = coalesce(comment || '; ', '') || %s "
        "WHERE meter_id = %s AND kind = ANY(%s) AND state <> 'resolved' AND (coalesce(ts, raised_at) >= %s "
        "OR kind = 'serial_mismatch')", (principal.name, why, meter_id, list(EXPLAINED), since))


async def _clear_hold(conn: psycopg.AsyncConnection, meter_id: int) -> None:
    await conn.execute("UPDATE meters SET serial_hold_at = NULL, serial_hold_reported = NULL WHERE id = %s",
                       (meter_id,))
    for kind in ("register", "interval", "instant"):
        await conn.execute(f"UPDATE {values.TABLES[kind]} SET reasons = array_remove(reasons, 'serial_mismatch') "  # noqa: S608
                           "WHERE meter_id = %s AND 'serial_mismatch' = ANY(reasons)", (meter_id,))


async def _record(conn: psycopg.AsyncConnection, principal: Principal, kind: str, at: datetime, old: dict | None,
                  new_id: int | None, new_code: str | None, final: dict, initial: dict, gw: tuple[str | None, str | None],
                  data: Mapping[str, Any]) -> int:
    cur = await conn.execute(
        "INSERT INTO meter_acts (kind, at, old_meter_id, new_meter_id, old_final, new_initial, gateway_id, "
        "gateway_code, document, comment, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (kind, at, old["id"] if old else None, new_id, json.dumps(final), json.dumps(initial), gw[0], gw[1],
         v.text("document", data.get("document"), 100), v.text("comment", data.get("comment"), 2000),
         principal.name))
    act_id = (await cur.fetchone())[0]
    await audit.record(conn, principal, f"registry.act.{kind}", "meter", (old or {}).get("code") or new_code,
                       old=None if old is None else {"meter": old["code"], "final": final},
                       new={"act": act_id, "at": at, "meter": new_code, "initial": initial, "gateway": gw[0],
                            "gateway_code": gw[1]}, comment=data.get("comment"))
    return act_id


async def find_act(conn: psycopg.AsyncConnection, kind: str, old_code: str | None, new_code: str | None,
                   at: datetime) -> int | None:
    """An act already recorded with the same kind, meters and moment (a file imported again)."""
    cur = await conn.execute(
        "SELECT a.id FROM meter_acts a LEFT JOIN meters o ON o.id = a.old_meter_id "
        "LEFT JOIN meters n ON n.id = a.new_meter_id WHERE a.kind = %s AND a.at = %s "
        "AND o.code IS NOT DISTINCT FROM %s AND (%s::text IS NULL OR n.code IS NOT DISTINCT FROM %s)",
        (kind, at, old_code, new_code, new_code))
    row = await cur.fetchone()
    return row[0] if row else None


# ---- the acts -------------------------------------------------------------------------------
async def _old_side(conn: psycopg.AsyncConnection, principal: Principal, data: Mapping[str, Any],
                    errors: list[Invalid]) -> tuple[dict, ZoneInfo, datetime | None, str | None, dict[str, float]]:
    """The meter an exchange or removal takes out, the act's moment, its unit and the old
    meter's final readings, checked against what is stored; problems go to `errors`."""
    _unknown(data, errors)
    old = await meters.find(conn, principal, v.code("meter", data.get("meter")), lock=True)
    if old["status"] == "decommissioned":
        raise Conflict(f"meter {old['code']} is already removed", f"прибор учёта {old['code']} уже снят")
    tz = await meta.timezone(conn)
    at = await _moment(conn, data.get("at"), errors)
    unit = v.text("unit", data.get("unit"), 20)
    final = _readings(old["resource"], data.get("old_final"), "old_final", unit, errors)
    if at is not None and final:
        keys = _keys(data.get("old_final"), old["resource"])
        await _check_final(conn, old, final, at, keys, tz, errors)
        await _stored_at(conn, old["id"], final, at, "old_final", keys, errors)
    return old, tz, at, unit, final


async def exchange(conn: psycopg.AsyncConnection, principal: Principal, data: Mapping[str, Any]) -> ActResult:
    """Exchange: `meter` (old code), `at`, `old_final` {T1: …}, `new_meter` {code, serial, model,
    digits, ct_ratio, vt_ratio | multiplier, tariff_zones, unit, verified_at, verification_due},
    `new_initial` {T1: …}; optional `gateway_code` (the new meter's code on the gateway, default
    the old one's), `unit` (of the readings, default canonical), `document`, `comment`."""
    principal.require(Action.REGISTRY_ACTS)
    errors: list[Invalid] = []
    old, tz, at, unit, final = await _old_side(conn, principal, data, errors)
    initial = _readings(old["resource"], data.get("new_initial"), "new_initial", unit, errors)
    new = _new_meter_fields(data.get("new_meter"), errors)
    gateway_code = None
    try:
        gateway_code = v.code("gateway_code", data.get("gateway_code"), required=False)
    except Invalid as e:
        errors.append(e)
    if new.get("code"):
        cur = await conn.execute("SELECT 1 FROM meters WHERE code = %s AND status <> 'unassigned'", (new["code"],))
        if await cur.fetchone():
            errors.append(Invalid("new_meter.code", f"new_meter.code: meter {new['code']!r} already exists",
                                  f"new_meter.code: прибор учёта «{new['code']}» уже есть в реестре"))
    if at is not None and old["installed_at"] is not None and at.astimezone(tz).date() < old["installed_at"]:
        errors.append(Invalid("at", f"at: before the old meter was installed ({old['installed_at']})",
                              f"at: раньше установки старого прибора ({old['installed_at']:%d.%m.%Y})"))
    if errors:
        raise v.combined(errors)
    assert at is not None
    async with conn.transaction():
        inherit = {**await _codes(conn, old), "resource": old["resource"], "is_balance": old["is_balance"],
                   "lat": old["lat"], "lon": old["lon"], "installed_at": at.astimezone(tz).date()}
        fields = {k: x for k, x in {**inherit, **new}.items() if k != "code" and x is not None}
        created, _ = await meters.save(conn, principal, new["code"], fields, create=True,
                                       action=Action.REGISTRY_ACTS)
        cur = await conn.execute("SELECT id FROM meters WHERE code = %s", (new["code"],))
        new_id = (await cur.fetchone())[0]
        await _store(conn, old["id"], final, at, "exchange_final")
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("SELECT gateway_id, gateway_code, valid_from FROM meter_bindings WHERE meter_id = %s "
                          "AND valid_to IS NULL", (old["id"],))
        binding = await cur.fetchone()
        if binding is not None:
            if binding["valid_from"] is not None and at <= binding["valid_from"]:
                raise Invalid("at", "at: before the old meter's binding to its gateway began",
                              "at: раньше начала привязки старого прибора к шлюзу")
            await conn.execute("UPDATE meter_bindings SET valid_to = %s WHERE meter_id = %s AND valid_to IS NULL",
                               (at, old["id"]))
            await conn.execute(
                "INSERT INTO meter_bindings (meter_id, gateway_id, gateway_code, valid_from, source, created_by) "
                "VALUES (%s, %s, %s, %s, 'act', %s)",
                (new_id, binding["gateway_id"], gateway_code or binding["gateway_code"], at, principal.name))
            await conn.execute("UPDATE meters SET gateway_id = %s WHERE id = %s", (binding["gateway_id"], new_id))
        await _store(conn, new_id, initial, at, "exchange_initial")
        moved = await _move_after(conn, old["id"], new_id, at)
        await conn.execute("UPDATE meters SET status = 'decommissioned', decommissioned_at = %s, replaced_by_id = %s, "
                           "gateway_id = NULL, updated_at = now() WHERE id = %s",
                           (at.astimezone(tz).date(), new_id, old["id"]))
        await conn.execute("UPDATE meters SET replaces_id = %s WHERE id = %s", (old["id"], new_id))
        await _clear_hold(conn, old["id"])
        why = f"замена прибора учёта на {new['code']} / meter exchanged"
        await _resolve_explained(conn, principal, old["id"], at, why)
        gw = (binding["gateway_id"], gateway_code or binding["gateway_code"]) if binding else (None, None)
        act_id = await _record(conn, principal, "exchange", at, old, new_id, new["code"], final, initial, gw, data)
        await meters.recalculate_closed(conn, principal.name, {old["org_id"]} - {None}, at.astimezone(tz).date(),
                                        f"meter exchange {old['code']} → {new['code']} / замена прибора учёта")
        await cache.bump(conn)
    return ActResult(act_id, "exchange", at, old["code"], created["code"], moved)


async def install(conn: psycopg.AsyncConnection, principal: Principal, data: Mapping[str, Any]) -> ActResult:
    """Install a new meter: `new_meter` {code, serial, …}, `resource`, `org`/`house`/`account`,
    `at`, `new_initial` {T1: …}; optional `gateway` and `gateway_code` (bound from `at`)."""
    principal.require(Action.REGISTRY_ACTS)
    errors: list[Invalid] = []
    _unknown(data, errors)
    at = await _moment(conn, data.get("at"), errors)
    try:
        resource = v.resource("resource", data.get("resource"))
    except Invalid as e:
        errors.append(e)
        resource = None
    if resource is None and not any(e.field == "resource" for e in errors):
        errors.append(Invalid("resource", "resource is required", "resource: укажите ресурс"))
    unit = v.text("unit", data.get("unit"), 20)
    initial = _readings(resource or "electricity", data.get("new_initial"), "new_initial", unit, errors)
    new = _new_meter_fields(data.get("new_meter"), errors)
    gateway = gateway_code = None
    try:
        gateway = v.code("gateway", data.get("gateway"), required=False)
        gateway_code = v.code("gateway_code", data.get("gateway_code"), required=False)
        if gateway:
            await meters.check_gateway(conn, principal, gateway)
    except Invalid as e:
        errors.append(e)
    if errors:
        raise v.combined(errors)
    assert at is not None and resource is not None
    tz = await meta.timezone(conn)
    async with conn.transaction():
        fields = {k: x for k, x in new.items() if k != "code"}
        fields.update({k: data[k] for k in ("org", "house", "account", "is_balance", "lat", "lon") if data.get(k)
                       not in (None, "")})
        fields.update(resource=resource, installed_at=at.astimezone(tz).date())
        created, _ = await meters.save(conn, principal, new["code"], fields, create=True, action=Action.REGISTRY_ACTS)
        cur = await conn.execute("SELECT id FROM meters WHERE code = %s", (new["code"],))
        new_id = (await cur.fetchone())[0]
        if gateway:
            await meters.bind(conn, principal, new["code"], gateway, gateway_code, at, source="act",
                              action=Action.REGISTRY_ACTS)
        await _store(conn, new_id, initial, at, "install_initial")
        act_id = await _record(conn, principal, "install", at, None, new_id, new["code"], {}, initial,
                               (gateway, gateway_code or (new["code"] if gateway else None)), data)
        await cache.bump(conn)
    return ActResult(act_id, "install", at, None, created["code"])


async def removal(conn: psycopg.AsyncConnection, principal: Principal, data: Mapping[str, Any]) -> ActResult:
    """Remove a meter: `meter`, `at`, `old_final` {T1: …}. Its gateway's later values are quarantined."""
    principal.require(Action.REGISTRY_ACTS)
    errors: list[Invalid] = []
    old, tz, at, unit, final = await _old_side(conn, principal, data, errors)
    if errors:
        raise v.combined(errors)
    assert at is not None
    async with conn.transaction():
        await _store(conn, old["id"], final, at, "removal_final")
        cur = await conn.execute("SELECT gateway_id, gateway_code FROM meter_bindings WHERE meter_id = %s "
                                 "AND valid_to IS NULL", (old["id"],))
        binding = await cur.fetchone()
        if binding is not None:
            await meters.unbind(conn, principal, old["code"], at, source_act=True)
        moved = await _move_after(conn, old["id"], None, at, binding[1] if binding else None)
        await conn.execute("UPDATE meters SET status = 'decommissioned', decommissioned_at = %s, gateway_id = NULL, "
                           "updated_at = now() WHERE id = %s", (at.astimezone(tz).date(), old["id"]))
        await _clear_hold(conn, old["id"])
        act_id = await _record(conn, principal, "removal", at, old, None, None, final, {},
                               (binding[0], binding[1]) if binding else (None, None), data)
        await meters.recalculate_closed(conn, principal.name, {old["org_id"]} - {None}, at.astimezone(tz).date(),
                                        f"meter {old['code']} removed / прибор учёта снят")
        await cache.bump(conn)
    return ActResult(act_id, "removal", at, old["code"], None, moved)


async def record(conn: psycopg.AsyncConnection, principal: Principal, kind: str, data: Mapping[str, Any]) -> ActResult:
    if kind not in KINDS:
        raise Invalid("kind", f"kind: {kind!r} is not an act; use {', '.join(KINDS)}",
                      f"kind: «{kind}» — не вид акта (install, exchange, removal)")
    return await {"install": install, "exchange": exchange, "removal": removal}[kind](conn, principal, data)
