"""Customers' readings that wait for the organisation's confirmation.

An organisation may require that readings its customers submit are confirmed by its
staff before they count (`customer_settings.confirm_readings`). Such a reading passes
every check of readings/service.py when submitted, then waits here as «Ожидание»; the
УК admin confirms it (it is stored through the same service, judged as of the time the
customer submitted it) or rejects it with a reason («Отклонено»). Readings stored at
once are noted here too, so the customer's page shows what became of each one.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import dict_row

from askue.headend.auth import audit
from askue.headend.auth.permissions import Action, Principal
from askue.headend.errors import Conflict, Invalid, NotFound


@dataclass(frozen=True)
class Held:
    meter_id: int
    obis: str
    ts: datetime
    value: float
    far_above: bool


async def required(conn: psycopg.AsyncConnection, org_id: int | None) -> bool:
    row = await (await conn.execute("SELECT confirm_readings FROM customer_settings WHERE org_id = %s",
                                    (org_id,))).fetchone()
    return bool(row and row[0])


async def set_required(conn: psycopg.AsyncConnection, principal: Principal, org_id: int, on: bool) -> None:
    principal.require(Action.CUSTOMERS_MANAGE)
    if not principal.scope.sees(org_id):
        raise NotFound("organisation not found", "организация не найдена")
    await conn.execute("INSERT INTO customer_settings (org_id, confirm_readings) VALUES (%s, %s) "
                       "ON CONFLICT (org_id) DO UPDATE SET confirm_readings = EXCLUDED.confirm_readings", (org_id, on))
    await audit.record(conn, principal, "customer_settings", "organisation", str(org_id), new={"confirm_readings": on})


async def note(conn: psycopg.AsyncConnection, principal: Principal, held: list[Held], source: str,
               status: str) -> list[int]:
    """Rows for submitted readings: `pending` (to confirm) or `accepted` (stored at once)."""
    ids = []
    for h in held:
        cur = await conn.execute(
            "INSERT INTO customer_submissions (meter_id, obis, ts, value, source, far_above, submitted_by, status, "
            "decided_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, CASE WHEN %s = 'accepted' THEN now() END) "
            "RETURNING id", (h.meter_id, h.obis, h.ts, h.value, "file" if source == "file" else "web", h.far_above,
                             principal.name, status, status))
        ids.append((await cur.fetchone())[0])
    return ids


async def pending(conn: psycopg.AsyncConnection, principal: Principal, limit: int = 500) -> list[dict]:
    """Readings waiting for this principal's organisations, oldest first."""
    principal.require(Action.READINGS_CONFIRM)
    cond, params = principal.scope.meters("m")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""SELECT c.id, c.obis, c.ts, c.value, c.source, c.far_above, c.submitted_by, c.submitted_at,
                       m.code AS meter, m.serial, m.tariff_zones, a.code AS account, a.subscriber, s.address
                FROM customer_submissions c JOIN meters m ON m.id = c.meter_id
                LEFT JOIN accounts a ON a.id = m.account_id LEFT JOIN sites s ON s.id = m.site_id
                WHERE c.status = 'pending' AND {cond} ORDER BY c.submitted_at, c.id LIMIT %s""", [*params, limit])
        return await cur.fetchall()


async def decide(conn: psycopg.AsyncConnection, principal: Principal, submission_id: int, accept: bool,
                 reason: str = "") -> None:
    """Confirm (store through the readings service) or reject with a reason."""
    from askue.headend.readings import service

    principal.require(Action.READINGS_CONFIRM)
    async with conn.transaction():
        cond, params = principal.scope.meters("m")
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT c.*, m.code AS meter FROM customer_submissions c JOIN meters m ON m.id = c.meter_id "
                f"WHERE c.id = %s AND {cond} FOR UPDATE OF c", [submission_id, *params])
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"submitted reading {submission_id} not found", "переданное показание не найдено")
        if row["status"] != "pending":
            raise Conflict("this reading is already decided", "по этому показанию решение уже принято")
        if not accept and len(reason.strip()) < 3:
            raise Invalid("reason", "say why the reading is rejected", "укажите причину отклонения")
        if accept:
            # judged as of the time the customer submitted it: the window and the 10 days run from then
            (o,) = await service.submit(
                conn, principal, [service.ReadingInput(row["meter"], row["obis"], row["value"], row["ts"],
                                                       consumer=True, comment=f"submission {submission_id}")],
                confirm=row["far_above"], now=row["submitted_at"])
            if o.error is not None:
                raise o.error
        await conn.execute("UPDATE customer_submissions SET status = %s, reason = %s, decided_by = %s, "
                           "decided_at = now() WHERE id = %s",
                           ("accepted" if accept else "rejected", reason.strip() or None, principal.name,
                            submission_id))
        await audit.record(conn, principal, "customer_reading_confirm" if accept else "customer_reading_reject",
                           "register", f"{row['meter']}/{row['obis']}/{row['ts'].isoformat()}",
                           new={"value": row["value"], "submission": submission_id}, comment=reason or None)
