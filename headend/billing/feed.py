"""The billing pull feed: register readings (with quality, reasons and source) in the
order their transactions became final, behind an opaque resumable cursor.

Why not `id > cursor`: ids come from a sequence when a row is inserted, but rows
become visible when their transaction commits. A batch that took ids 100–199 and
commits after a batch with ids 200–299 would be skipped by a consumer that had
already moved past 299. Every insert or update of a register reading is logged in
`billing_changes` by a trigger — one entry per writing statement holding the keys as
arrays — with the writing transaction's id (xid8). A page returns only entries whose
transaction id is below the xmin of the current snapshot — every such transaction has
finished, and no transaction still running or yet to start can add an entry there —
ordered by (xid, seq, position). The cursor is the last (xid, seq, position)
delivered, so pages neither skip nor repeat. A reading changed later
(VEE re-flagged it, an estimate was replaced) is delivered again with its new state;
consumers upsert by (meter, obis, ts).
"""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

CURSOR_PREFIX = "v2"
_CURSOR = re.compile(r"^v2\.(\d{1,20})\.(\d{1,20})\.(\d{1,10})$")
MAX_LIMIT = 10_000


class CursorError(ValueError):
    """The cursor string is not one this server handed out."""


@dataclass(frozen=True)
class Cursor:
    xid: int = 0
    seq: int = 0
    pos: int = 0  # position inside the logged statement's batch

    def encode(self) -> str:
        raw = f"{CURSOR_PREFIX}.{self.xid}.{self.seq}.{self.pos}".encode()
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
        return Cursor(int(m.group(1)), int(m.group(2)), int(m.group(3)))


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
    archive: str | None = None  # day_start | month_start: the meter's own value at that boundary

    def as_dict(self) -> dict:
        return {"meter": self.meter, "obis": self.obis, "ts": self.ts.isoformat(), "value": self.value,
                "quality": self.quality, "estimated": self.quality in ("E", "S"), "reasons": self.reasons,
                "source": self.source, "received_at": self.received_at.isoformat(), "archive": self.archive}


@dataclass(frozen=True)
class FeedPage:
    items: list[FeedItem]
    next_cursor: str
    has_more: bool


# Batches of the change log are read by primary key, only as many as needed to fill
# the page, then unnested in order; readings and meters are looked up for those keys
# only. Entries filtered out (another organisation, a blocked or deleted reading)
# still move the cursor on: a blocked reading comes again when VEE clears it, because
# that update is logged anew.
_PAGE_SQL = """
WITH horizon AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin),
batches AS MATERIALIZED (
    SELECT c.xid, c.seq, cardinality(c.meter_ids) AS n FROM billing_changes c
    WHERE (c.xid, c.seq) >= (%(xid)s::text::xid8, %(seq)s::bigint) AND c.xid < (SELECT xmin FROM horizon)
    ORDER BY c.xid, c.seq LIMIT %(limit)s + 1),  -- + 1: the cursor's own batch may be used up
needed AS MATERIALIZED (
    SELECT xid, seq FROM (
        SELECT xid, seq, coalesce(sum(n) OVER (ORDER BY xid, seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
                                  0) AS before
        FROM batches) b
    WHERE before < %(limit)s + %(pos)s),
log AS MATERIALIZED (
    SELECT c.xid, c.seq, k.pos, k.meter_id, k.obis, k.ts
    FROM needed JOIN billing_changes c ON c.xid = needed.xid AND c.seq = needed.seq
    CROSS JOIN LATERAL unnest(c.meter_ids, c.obis, c.ts) WITH ORDINALITY AS k(meter_id, obis, ts, pos)
    WHERE (c.xid, c.seq, k.pos) > (%(xid)s::text::xid8, %(seq)s::bigint, %(pos)s::bigint)
    ORDER BY c.xid, c.seq, k.pos LIMIT %(limit)s)
SELECT log.xid::text, log.seq, log.pos, m.code, r.meter_id, r.obis, r.ts, r.value, r.quality, r.reasons, r.source,
       r.received_at, m.org_id,
       (r.meter_id IS NOT NULL
        AND (%(orgs)s::bigint[] IS NULL OR m.org_id = ANY(%(orgs)s::bigint[]))
        AND (%(quality)s::text[] IS NULL OR r.quality = ANY(%(quality)s::text[]))
        AND NOT (r.reasons && %(block)s::text[])) AS visible,
       r.archive
FROM log
LEFT JOIN meters m ON m.id = log.meter_id
LEFT JOIN LATERAL (SELECT * FROM register_readings r
                   WHERE r.meter_id = log.meter_id AND r.obis = log.obis AND r.ts = log.ts) r ON TRUE
ORDER BY log.xid, log.seq, log.pos
"""


async def fetch_page(conn: psycopg.AsyncConnection, cursor: Cursor, *, limit: int = 1000,
                     org_ids: frozenset[int] | None = None, quality: list[str] | None = None,
                     exclude_reasons: list[str] | None = None) -> FeedPage:
    """One page after `cursor`, scoped to `org_ids` (None: every organisation).

    Run it in its own statement snapshot (autocommit or READ COMMITTED): the xmin
    horizon must be the one of this query. Readings carrying any of
    `exclude_reasons` (VEE's blocking reasons) are not delivered; when VEE clears the
    reason the update is logged and the reading comes then. A page scans at most
    `limit` log entries, so it may hold fewer items while `has_more` is true.
    """
    limit = max(1, min(int(limit), MAX_LIMIT))
    params = {"xid": str(cursor.xid), "seq": cursor.seq, "pos": cursor.pos, "limit": limit,
              "orgs": sorted(org_ids) if org_ids is not None else None, "quality": quality,
              "block": list(exclude_reasons or [])}
    cur = await conn.execute(_PAGE_SQL, params)
    rows = await cur.fetchall()
    latest: dict[tuple[int, str, datetime], FeedItem] = {}
    for r in rows:
        if not r[13]:
            continue
        item = FeedItem(meter=r[3], meter_id=r[4], obis=r[5], ts=r[6], value=r[7], quality=r[8],
                        reasons=list(r[9] or ()), source=r[10], received_at=r[11], org_id=r[12], archive=r[14])
        key = (item.meter_id, item.obis, item.ts)
        latest.pop(key, None)  # logged twice in this page (inserted, then updated): one item, current state
        latest[key] = item
    nxt = Cursor(int(rows[-1][0]), rows[-1][1], rows[-1][2]) if rows else cursor
    return FeedPage(list(latest.values()), nxt.encode(), len(rows) == limit)


async def prune(conn: psycopg.AsyncConnection, keep: timedelta = timedelta(days=62)) -> int:
    """Drop change-log entries older than `keep`; a consumer further behind resyncs
    from period snapshots."""
    cur = await conn.execute("DELETE FROM billing_changes WHERE at < now() - %s", (keep,))
    return cur.rowcount
