"""Readings a person or a file offered and the head-end refused, kept for the rejected-readings
report (`rejected_readings`, migration 0311): what arrived, from whom, why. The readings
service records its refusals here, the billing importers the files they refuse. A refusal is
written on the caller's connection, in its transaction: an adapter that answers an error must
let that transaction commit (return the error response rather than raise through the
connection's context)."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from askue.headend.auth.permissions import Principal

SOURCES = ("manual", "file", "file_80020", "file_hourly")


@dataclass(frozen=True)
class Rejection:
    source: str  # one of SOURCES
    message: str
    message_ru: str
    meter_ref: str | None = None
    meter_id: int | None = None
    obis: str | None = None
    value: float | None = None
    value_text: str | None = None
    ts: datetime | None = None
    field: str | None = None
    file_name: str | None = None


def of_outcome(outcome, source: str) -> Rejection:
    """A refused `readings.service.Outcome`."""
    err = outcome.error
    v = outcome.input.value
    return Rejection(source, err.message if err else "refused", err.message_ru if err else "не принято",
                     meter_ref=outcome.input.meter, meter_id=outcome.meter_id, obis=outcome.input.obis,
                     value=v if isinstance(v, int | float) and math.isfinite(v) else None,
                     ts=outcome.ts or outcome.input.ts, field=getattr(err, "field", None) or
                     (err.details.get("field") if err else None))


async def record(conn: psycopg.AsyncConnection, who: Principal, items: Sequence[Rejection]) -> None:
    if not items:
        return
    orgs = None if who.org_ids is None else sorted(who.org_ids)
    async with conn.cursor() as cur:
        # a meter given by code only is found among the sender's organisations' meters, as the
        # readings service would have found it; another organisation's meter stays unnamed. The
        # refusal belongs to the meter's organisation, else to the sender's only one (a typo in
        # the meter number is still the sender's organisation's business)
        await cur.executemany(
            "WITH m AS (SELECT coalesce(%(mid)s::bigint, (SELECT id FROM meters WHERE code = %(ref)s AND "
            "(%(orgs)s::bigint[] IS NULL OR org_id = ANY(%(orgs)s::bigint[])))) AS id) "
            "INSERT INTO rejected_readings (source, actor, actor_role, actor_org_ids, ip, org_id, meter_id, meter_ref, "
            "obis, value, value_text, ts, field, message, message_ru, file_name) "
            "SELECT %(source)s, %(actor)s, %(role)s, %(orgs)s, %(ip)s, coalesce((SELECT org_id FROM meters WHERE id = m.id), "
            "(SELECT id FROM organisations WHERE cardinality(%(orgs)s::bigint[]) = 1 AND id = (%(orgs)s::bigint[])[1])), "
            "m.id, "
            "%(ref)s, %(obis)s, %(value)s, %(text)s, %(ts)s, %(field)s, %(msg)s, %(msg_ru)s, %(file)s FROM m",
            [{"mid": r.meter_id, "ref": (r.meter_ref or "")[:200] or None, "orgs": orgs, "source": r.source,
              "actor": who.name, "role": who.role, "ip": who.ip, "obis": r.obis, "value": r.value,
              "text": (r.value_text or "")[:200] or None, "ts": r.ts, "field": r.field, "msg": r.message[:2000],
              "msg_ru": r.message_ru[:2000], "file": (r.file_name or "")[:300] or None} for r in items])
