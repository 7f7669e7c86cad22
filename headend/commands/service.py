"""Commands to gateways as an operator gives and follows them: check the role, the target
(a meter in the principal's organisations, or a gateway it sees) and the arguments, store
the command as pending with its expiry, audit it; list and show commands with what became
of them. Publishing and results are the dispatcher's (`commands/dispatcher.py`, through
`commands/queue.py`); this module never speaks MQTT.
"""
from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import psycopg
from psycopg.rows import dict_row

from askue.headend.auth import audit
from askue.headend.auth.permissions import Principal
from askue.headend.commands.catalogue import KINDS, OPEN_STATES, STATE_TITLES, CommandKind
from askue.headend.commands.describe import result_sentence
from askue.headend.errors import Conflict, Invalid, NeedsConfirmation, NotFound
from askue.headend.storage.queries import gateways as gq
from askue.headend.storage.queries import meters as mq

MIN_TTL_S, MAX_TTL_S = 10, 7 * 86400
MAX_PROFILE_RANGE = timedelta(days=92)

_COLUMNS = """c.id, c.mqtt_id, c.gateway_id, c.meter_id, m.code AS meter, c.org_id, c.command, c.args, c.state,
    c.created_by, c.created_at, c.expires_at, c.sent_at, c.attempts, c.finished_at, c.result, c.error, c.late"""
_FROM = "commands c LEFT JOIN meters m ON m.id = c.meter_id"


@dataclass(frozen=True)
class _Target:
    kind: str  # meter | gateway
    code: str  # meter code or gateway id
    gateway_id: str
    meter_id: int | None
    org_id: int | None


def new_mqtt_id() -> str:
    return "hc-" + uuid.uuid4().hex


def _kind(command: str, target: str) -> CommandKind:
    k = KINDS.get(command)
    if k is None or target not in k.targets:
        names = ", ".join(n for n, kk in KINDS.items() if target in kk.targets)
        raise Invalid("command", f"unknown command {command!r} for a {target}; one of: {names}",
                      f"неизвестная команда «{command}»; возможны: {names}")
    return k


async def _meter_target(conn: psycopg.AsyncConnection, principal: Principal, code: str) -> _Target:
    m = await mq.get_meter(conn, code, principal.scope)
    if m is None:
        raise NotFound(f"meter {code!r} not found", f"прибор учёта {code} не найден", field="meter")
    if m["status"] == "decommissioned":
        raise Conflict(f"meter {code} is decommissioned", f"прибор учёта {code} снят с учёта")
    if not m["gateway_id"]:
        raise Conflict(f"meter {code} is read by no gateway (it has no gateway in the registry)",
                       f"прибор учёта {code} не подключён к шлюзу (в реестре не указан шлюз)")
    return _Target("meter", m["code"], m["gateway_id"], m["id"], m["org_id"])


async def _gateway_target(conn: psycopg.AsyncConnection, principal: Principal, gateway: str) -> _Target:
    g = await gq.get_gateway(conn, gateway, principal.scope)
    if g is None:
        raise NotFound(f"gateway {gateway!r} not found", f"шлюз {gateway} не найден", field="gateway")
    return _Target("gateway", g["id"], g["id"], None, None)


def _aware(t: datetime | None, name: str) -> datetime:
    if t is None:
        raise Invalid(name, f"{name}: a time is required", "укажите время" if name != "start" else "укажите начало")
    if t.tzinfo is None:
        raise Invalid(name, f"{name}: give a UTC offset, e.g. 2026-11-20T00:00:00+03:00",
                      "укажите время с часовым поясом")
    return t.astimezone(UTC)


def _profile_range(start: datetime | None, end: datetime | None, now: datetime) -> dict[str, str]:
    s, e = _aware(start, "start"), _aware(end, "end")
    if s >= now:
        raise Invalid("start", "start: the range must begin in the past", "начало периода должно быть в прошлом")
    if e <= s:
        raise Invalid("end", "end: must be after start", "конец периода должен быть позже начала")
    if e - s > MAX_PROFILE_RANGE:
        raise Invalid("end", f"the range is longer than {MAX_PROFILE_RANGE.days} days; read it in parts",
                      f"период длиннее {MAX_PROFILE_RANGE.days} дней; читайте профиль по частям")
    return {"start": s.isoformat().replace("+00:00", "Z"), "end": min(e, now + timedelta(hours=1)).isoformat()
            .replace("+00:00", "Z")}


def _ttl(expires_in_s: float | None, default: float) -> float:
    ttl = default if expires_in_s is None else expires_in_s
    if not isinstance(ttl, int | float) or not math.isfinite(ttl) or not MIN_TTL_S <= ttl <= MAX_TTL_S:
        raise Invalid("expires_in_s", f"expires_in_s: {MIN_TTL_S} to {MAX_TTL_S} seconds",
                      f"срок действия команды: от {MIN_TTL_S} с до 7 суток")
    return float(ttl)


async def send(conn: psycopg.AsyncConnection, principal: Principal, command: str, *, meter: str | None = None,
               gateway: str | None = None, start: datetime | None = None, end: datetime | None = None,
               confirm: bool = False, expires_in_s: float | None = None, default_ttl_s: float = 3600,
               now: datetime | None = None) -> dict:
    """Store a command for a meter (through its gateway) or a whole gateway; returns its row.

    The role is checked before anything is looked up; a target outside the principal's
    organisations is NotFound. A relay command without `confirm` raises
    NeedsConfirmation and stores nothing; so does every refusal."""
    if (meter is None) == (gateway is None):
        raise Invalid("meter", "give a meter or a gateway", "укажите прибор учёта или шлюз")
    target_kind = "meter" if meter is not None else "gateway"
    kind = _kind(command, target_kind)
    principal.require(kind.action(target_kind))
    ttl = _ttl(expires_in_s, default_ttl_s)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    target = await (_meter_target(conn, principal, meter) if meter is not None
                    else _gateway_target(conn, principal, gateway or ""))
    args: dict[str, Any] = {"meter_id": target.code} if target.kind == "meter" else {}
    if kind.name == "read_profile":
        args |= _profile_range(start, end, now)
    if kind.timeout_s is not None:
        args["timeout_s"] = kind.timeout_s
    if kind.confirm and not confirm:
        what = "disconnect" if kind.name == "relay_disconnect" else "reconnect"
        raise NeedsConfirmation(
            f"switching the relay ({what} the load of meter {target.code}) needs an explicit confirmation: "
            "send it again with confirm: true",
            f"{kind.title_ru.lower()} прибора учёта {target.code}: подтвердите действие", field="confirm")
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT id, state FROM commands WHERE state = ANY(%s) AND command = %s AND gateway_id = %s "
            "AND meter_id IS NOT DISTINCT FROM %s AND args = %s::jsonb ORDER BY id LIMIT 1 FOR UPDATE",
            (list(OPEN_STATES), kind.name, target.gateway_id, target.meter_id, json.dumps(args)))
        dup = await cur.fetchone()
        if dup is not None:
            raise Conflict(f"the same command is already waiting (no. {dup[0]}, {dup[1]})",
                           f"такая команда уже в очереди: № {dup[0]}, {STATE_TITLES[dup[1]][0]}", id=dup[0])
        cur = await conn.execute(
            "INSERT INTO commands (mqtt_id, gateway_id, meter_id, org_id, command, args, created_by, created_ip, "
            "expires_at) VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s, now() + make_interval(secs => %s)) "
            "RETURNING id, expires_at",
            (new_mqtt_id(), target.gateway_id, target.meter_id, target.org_id, kind.name, json.dumps(args),
             principal.name, principal.ip, ttl))
        cid, expires_at = await cur.fetchone()
        await audit.record(conn, principal, "command", target.kind, target.code,
                           new={"id": cid, "command": kind.name, "args": args, "gateway": target.gateway_id,
                                "expires_at": expires_at})
    return await _one(conn, "c.id = %s", [cid])


async def _one(conn: psycopg.AsyncConnection, cond: str, params: list) -> dict:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM {_FROM} WHERE {cond}", params)
        row = await cur.fetchone()
    if row is None:
        raise NotFound("command not found", "команда не найдена")
    return row


async def list_commands(conn: psycopg.AsyncConnection, principal: Principal, *, meter: str | None = None,
                        gateway: str | None = None, limit: int = 20) -> list[dict]:
    """The newest commands of a meter, or of a gateway (its own and those of the meters of it
    the principal sees), newest first."""
    if meter is not None:
        m = await mq.get_meter(conn, meter, principal.scope)
        if m is None:
            raise NotFound(f"meter {meter!r} not found", f"прибор учёта {meter} не найден")
        cond, params = "c.meter_id = %s", [m["id"]]
    else:
        g = await gq.get_gateway(conn, gateway or "", principal.scope)
        if g is None:
            raise NotFound(f"gateway {gateway!r} not found", f"шлюз {gateway} не найден")
        seen, sp = principal.scope.sql("c.org_id")
        cond, params = f"c.gateway_id = %s AND (c.meter_id IS NULL OR {seen})", [g["id"], *sp]
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM {_FROM} WHERE {cond} ORDER BY c.id DESC LIMIT %s",
                          [*params, limit])
        return await cur.fetchall()


async def get(conn: psycopg.AsyncConnection, principal: Principal, command_id: int) -> dict:
    row = await _one(conn, "c.id = %s", [command_id])
    if row["meter_id"] is not None:
        visible = principal.sees_org(row["org_id"])
    else:
        visible = await gq.get_gateway(conn, row["gateway_id"], principal.scope) is not None
    if not visible:
        raise NotFound("command not found", "команда не найдена")
    return row


def view(row: dict, lang: str, tz: tzinfo) -> dict:
    """A command as the pages and exports show it."""
    kind = KINDS[row["command"]]
    args = row["args"] or {}
    period = ""
    if row["command"] == "read_profile" and "start" in args and "end" in args:
        s = datetime.fromisoformat(args["start"].replace("Z", "+00:00")).astimezone(tz)
        e = datetime.fromisoformat(args["end"].replace("Z", "+00:00")).astimezone(tz)
        period = f"{s:%d.%m.%Y %H:%M} – {e:%d.%m.%Y %H:%M}"
    return {**row, "title": kind.title(lang), "period": period,
            "state_title": STATE_TITLES[row["state"]][lang == "en"],
            "sentence": result_sentence(row["command"], row["state"], row["result"], row["error"],
                                        row["sent_at"] is not None, tz, lang),
            "open": row["state"] in OPEN_STATES}


def as_json(row: dict, tz: tzinfo) -> dict:
    """A command for the API: plain fields, times with offsets, and the sentence in both languages."""
    return {"id": row["id"], "command": row["command"], "meter": row["meter"], "gateway": row["gateway_id"],
            "args": row["args"], "state": row["state"], "created_by": row["created_by"],
            "created_at": row["created_at"], "expires_at": row["expires_at"], "sent_at": row["sent_at"],
            "finished_at": row["finished_at"], "attempts": row["attempts"], "result": row["result"],
            "error": row["error"], "late": row["late"],
            "message_ru": view(row, "ru", tz)["sentence"], "message_en": view(row, "en", tz)["sentence"]}
