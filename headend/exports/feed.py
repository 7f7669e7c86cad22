"""The billing pull feed: register readings (with quality, reasons and source) in the
order their transactions became final, behind an opaque resumable cursor.

Why not `id > cursor`: ids come from a sequence when a row is inserted, but rows
become visible when their transaction commits. A batch that took ids 100–199 and
commits after a batch with ids 200–299 would be skipped by a consumer that had
already moved past 299. Every insert or update of a register reading is logged in
`billing_changes` by a trigger, with the writing transaction's id (xid8). A page
returns only entries whose transaction id is below the xmin of the current
snapshot — every such transaction has finished, and no transaction still running
or yet to start can add an entry there — ordered by (xid, seq). The cursor is the
last (xid, seq) delivered, so pages neither skip nor repeat. A reading changed later
(VEE re-flagged it, an estimate was replaced) is delivered again with its new state;
consumers upsert by (meter, obis, ts).
"""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

CURSOR_PREFIX = "v1"
_CURSOR = re.compile(r"^v1\.(\d{1,20})\.(\d{1,20})$")
MAX_LIMIT = 10_000


class CursorError(ValueError):
    """The cursor string is not one this server handed out."""


@dataclass(frozen=True)
class Cursor:
    xid: int = 0
    seq: int = 0

    def encode(self) -> str:
        raw = f"{CURSOR_PREFIX}.{self.xid}.{self.seq}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def decode(text: str | None) -> Cursor:
        if not text:
            return Cursor()
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        except (ValueError, UnicodeDecodeError):
            raw = ""
        m = _CURSOR.match(raw)
        if not m:
            raise CursorError("cursor not recognised: pass back the next_cursor of a previous page unchanged, "
                              "or omit it to start from the beginning")
        return Cursor(int(m.group(1)), int(m.group(2)))


@dataclass(frozen=True)
class FeedItem:
    meter: str
    meter_id: int
    obis: str
    ts: datetime
    value: float
    quality: str
    reasons: list[str]
    source: str
    received_at: datetime
    org_id: int | None

    def as_dict(self) -> dict:
        return {"meter": self.meter, "obis": self.obis, "ts": self.ts.isoformat(), "value": self.value,
                "quality": self.quality, "estimated": self.quality in ("E", "S"), "reasons": self.reasons,
                "source": self.source, "received_at": self.received_at.isoformat()}


@dataclass(frozen=True)
class FeedPage:
    items: list[FeedItem]
    next_cursor: str
    has_more: bool


_PAGE_SQL = """
SELECT c.xid::text::numeric, c.seq, m.code, r.meter_id, r.obis, r.ts, r.value, r.quality, r.reasons, r.source,
       r.received_at, m.org_id
FROM billing_changes c
JOIN register_readings r ON r.meter_id = c.meter_id AND r.obis = c.obis AND r.ts = c.ts
JOIN meters m ON m.id = c.meter_id
WHERE (c.xid, c.seq) > (%(xid)s::text::xid8, %(seq)s)
  AND c.xid < pg_snapshot_xmin(pg_current_snapshot())
  AND (%(orgs)s::bigint[] IS NULL OR m.org_id = ANY(%(orgs)s::bigint[]))
  AND (%(quality)s::text[] IS NULL OR r.quality = ANY(%(quality)s::text[]))
  AND NOT (r.reasons && %(block)s::text[])
ORDER BY c.xid, c.seq
LIMIT %(limit)s
"""


async def fetch_page(conn: psycopg.AsyncConnection, cursor: Cursor, *, limit: int = 1000,
                     org_ids: frozenset[int] | None = None, quality: list[str] | None = None,
                     exclude_reasons: list[str] | None = None) -> FeedPage:
    """One page after `cursor`, scoped to `org_ids` (None: every organisation).

    Run it in its own statement snapshot (autocommit or READ COMMITTED): the xmin
    horizon must be the one of this query. Readings carrying any of
    `exclude_reasons` (VEE's blocking reasons) are not delivered; when VEE clears the
    reason the update is logged and the reading comes then.
    """
    limit = max(1, min(int(limit), MAX_LIMIT))
    params = {"xid": str(cursor.xid), "seq": cursor.seq, "limit": limit + 1,
              "orgs": sorted(org_ids) if org_ids is not None else None, "quality": quality,
              "block": list(exclude_reasons or [])}
    cur = await conn.execute(_PAGE_SQL, params)
    rows = await cur.fetchall()
    has_more = len(rows) > limit
    rows = rows[:limit]
    items = [FeedItem(meter=r[2], meter_id=r[3], obis=r[4], ts=r[5], value=r[6], quality=r[7],
                      reasons=list(r[8] or ()), source=r[9], received_at=r[10], org_id=r[11]) for r in rows]
    nxt = Cursor(int(rows[-1][0]), rows[-1][1]) if rows else cursor
    return FeedPage(items, nxt.encode(), has_more)


async def prune(conn: psycopg.AsyncConnection, keep: timedelta = timedelta(days=62)) -> int:
    """Drop change-log entries older than `keep`; a consumer further behind resyncs
    from period snapshots."""
    cur = await conn.execute("DELETE FROM billing_changes WHERE at < now() - %s", (keep,))
    return cur.rowcount
