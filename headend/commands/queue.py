"""The dispatcher's side of the `commands` table: which commands can go now, marking them
sent, recording the gateways' results, expiring what waited too long. Several head-end
processes may run dispatchers at once: a command is claimed with FOR UPDATE SKIP LOCKED,
so only one of them publishes it."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import psycopg

from askue.contract.payloads import SCHEMA_VERSION, Command, CommandResult, encode
from askue.headend.auth import audit


@dataclass(frozen=True)
class Due:
    id: int
    mqtt_id: str
    gateway_id: str
    command: str
    args: dict
    expires_at: datetime
    left_s: float  # seconds until it expires (the MQTT message expiry)

    def payload(self) -> bytes:
        return encode(Command(v=SCHEMA_VERSION, id=self.mqtt_id, cmd=self.command, args=self.args,  # type: ignore[arg-type]
                              expires_at=self.expires_at))


async def claim_due(conn: psycopg.AsyncConnection, limit: int = 100) -> list[Due]:
    """Pending, unexpired commands of online gateways, oldest first, locked for this
    transaction (call inside one; mark the published ones sent before it commits)."""
    cur = await conn.execute(
        "SELECT c.id, c.mqtt_id, c.gateway_id, c.command, c.args, c.expires_at, "
        "extract(epoch FROM c.expires_at - now())::float8 FROM commands c JOIN gateways g ON g.id = c.gateway_id "
        "WHERE c.state = 'pending' AND g.online AND c.expires_at > now() ORDER BY c.id "
        "LIMIT %s FOR UPDATE OF c SKIP LOCKED", (limit,))
    return [Due(*r) for r in await cur.fetchall()]


async def mark_sent(conn: psycopg.AsyncConnection, ids: list[int]) -> None:
    if ids:
        await conn.execute("UPDATE commands SET state = 'sent', sent_at = now(), attempts = attempts + 1 "
                           "WHERE id = ANY(%s) AND state = 'pending'", (ids,))


async def record_result(conn: psycopg.AsyncConnection, gateway_id: str,
                        res: CommandResult) -> tuple[int | None, bool]:
    """Store a gateway's answer with its command: (the command's id, whether this answer was
    new). The id is None when no command of that gateway has this id (the answer is then the
    caller's to keep as a dead letter). An answer repeated by the gateway (QoS 1 redelivery)
    changes nothing."""
    cur = await conn.execute(
        "UPDATE commands SET state = CASE WHEN %s THEN 'done' ELSE 'failed' END, finished_at = %s, "
        "result = %s::jsonb, error = %s, late = (state = 'expired') "
        "WHERE mqtt_id = %s AND gateway_id = %s AND state NOT IN ('done', 'failed') "
        "RETURNING id, command, meter_id, (SELECT code FROM meters WHERE id = meter_id), state",
        (res.ok, res.finished_at, json.dumps(res.result), res.error, res.id, gateway_id))
    row = await cur.fetchone()
    if row is None:
        cur = await conn.execute("SELECT id FROM commands WHERE mqtt_id = %s AND gateway_id = %s",
                                 (res.id, gateway_id))
        known = await cur.fetchone()
        return (known[0] if known else None), False
    cid, command, meter_id, meter_code, state = row
    await audit.record(conn, f"gateway:{gateway_id}", "command_result", "meter" if meter_id else "gateway",
                       meter_code or gateway_id,
                       new={"id": cid, "command": command, "state": state, "result": res.result, "error": res.error})
    return cid, True


async def expire_due(conn: psycopg.AsyncConnection) -> list[int]:
    """Commands still pending or unanswered at their expiry become `expired`."""
    cur = await conn.execute(
        "UPDATE commands SET state = 'expired', finished_at = now() "
        "WHERE state IN ('pending', 'sent') AND expires_at <= now() RETURNING id")
    return [r[0] for r in await cur.fetchall()]


async def seconds_to_next_expiry(conn: psycopg.AsyncConnection) -> float | None:
    cur = await conn.execute("SELECT extract(epoch FROM min(expires_at) - now())::float8 FROM commands "
                             "WHERE state IN ('pending', 'sent')")
    row = await cur.fetchone()
    return None if row is None or row[0] is None else max(0.0, row[0])
