"""The database side of alerts: the outbox rows the triggers of migration 0320 write for
every raised and resolved event, the deliveries made from them for the matching
subscriptions, and their state (pending → sent | failed | cancelled).

Once only: an outbox row is made once per event and transition (a unique key), turned
into deliveries once (claimed with FOR UPDATE SKIP LOCKED, marked expanded in the same
transaction), and each delivery is sent in its own transaction that also marks it sent,
so a restart resumes exactly where the last commit left off.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

import psycopg
from psycopg.rows import dict_row

from askue.headend.auth.permissions import Principal
from askue.headend.events import service as events
from askue.headend.notify.messages import Notice

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
SYSTEM = Principal("notify", "admin", None)  # reads any event; each subscriber's own scope is checked apart
EVENT_PATH = "/web/events/{id}"  # the event's page (web router prefix /web)
GROUP_MAX = 20  # notices to one e-mail address sent in one message


@dataclass(frozen=True)
class Subscription:
    id: int
    user_id: int
    login: str
    role: str
    user_org_ids: frozenset[int] | None
    user_active: bool
    lang: str
    channel: str
    target: str
    secret: str | None
    kinds: tuple[str, ...]
    min_severity: str
    org_ids: frozenset[int] | None
    send_resolved: bool
    active: bool

    @property
    def principal(self) -> Principal:
        return Principal(self.login, self.role, self.user_org_ids)

    def may_hear(self, org_id: int | None) -> bool:
        """Switched on, its user active and allowed to see the organisation, and it asked for it."""
        return (self.active and self.user_active and self.principal.sees_org(org_id)
                and (self.org_ids is None or org_id in self.org_ids))

    def wants(self, kind: str, severity: str, org_id: int | None) -> bool:
        return (self.may_hear(org_id) and (not self.kinds or kind in self.kinds)
                and SEVERITY_RANK.get(severity, 0) >= SEVERITY_RANK[self.min_severity])


_SUBS = ("SELECT s.id, s.user_id, u.login, u.role, u.org_ids AS user_org_ids, u.active AS user_active, u.lang, "
         "s.channel, s.target, s.secret, s.kinds, s.min_severity, s.org_ids, s.send_resolved, s.active "
         "FROM notify_subscriptions s JOIN users u ON u.id = s.user_id")


def _subscription(r: dict) -> Subscription:
    return Subscription(r["id"], r["user_id"], r["login"], r["role"],
                        None if r["user_org_ids"] is None else frozenset(r["user_org_ids"]), r["user_active"],
                        r["lang"], r["channel"], r["target"], r["secret"], tuple(r["kinds"] or ()),
                        r["min_severity"], None if r["org_ids"] is None else frozenset(r["org_ids"]),
                        r["send_resolved"], r["active"])


async def subscriptions(conn: psycopg.AsyncConnection, ids: list[int] | None = None) -> dict[int, Subscription]:
    async with conn.cursor(row_factory=dict_row) as cur:
        if ids is None:
            await cur.execute(_SUBS + " WHERE s.active AND u.active")
        else:
            await cur.execute(_SUBS + " WHERE s.id = ANY(%s)", (ids,))
        return {r["id"]: _subscription(r) for r in await cur.fetchall()}


async def expand(conn: psycopg.AsyncConnection, limit: int = 500) -> int:
    """Turn outbox rows into deliveries; returns how many outbox rows were handled.

    A raise goes to every subscription that wants it; a resolution to the subscriptions
    that were told of the raise (and still want resolutions), so nobody hears of the end
    of something they never heard of. A resolution waits until its raise is expanded."""
    async with conn.transaction():
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT o.id, o.event_id, o.transition, e.kind, e.severity, e.org_id FROM notify_outbox o "
                "JOIN abnormal_events e ON e.id = o.event_id WHERE o.expanded_at IS NULL "
                "AND NOT (o.transition = 'resolved' AND EXISTS (SELECT 1 FROM notify_outbox r "
                "WHERE r.event_id = o.event_id AND r.transition = 'raised' AND r.expanded_at IS NULL)) "
                "ORDER BY o.id LIMIT %s FOR UPDATE OF o SKIP LOCKED", (limit,))
            rows = await cur.fetchall()
        if not rows:
            return 0
        subs = await subscriptions(conn)
        resolved = [r["event_id"] for r in rows if r["transition"] == "resolved"]
        told: dict[int, list[int]] = {}
        if resolved:
            cur = await conn.execute(
                "SELECT r.event_id, d.subscription_id FROM notify_outbox r JOIN notify_deliveries d "
                "ON d.outbox_id = r.id WHERE r.transition = 'raised' AND r.event_id = ANY(%s) "
                "AND d.subscription_id IS NOT NULL AND d.state <> 'cancelled' ORDER BY d.id", (resolved,))
            for event_id, sub_id in await cur.fetchall():
                told.setdefault(event_id, []).append(sub_id)
        made: list[tuple[int, int, int, str, str]] = []
        for r in rows:
            if r["transition"] == "raised":
                targets = [s for s in subs.values() if s.wants(r["kind"], r["severity"], r["org_id"])]
            else:
                targets = [subs[i] for i in told.get(r["event_id"], []) if i in subs
                           and subs[i].send_resolved and subs[i].may_hear(r["org_id"])]
            made += [(r["id"], s.id, s.user_id, s.channel, s.target) for s in targets]
        if made:
            await conn.execute(
                "INSERT INTO notify_deliveries (outbox_id, subscription_id, user_id, channel, target) "
                "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::text[], %s::text[]) "
                "ON CONFLICT DO NOTHING", [list(c) for c in zip(*made, strict=True)])
        await conn.execute("UPDATE notify_outbox SET expanded_at = now() WHERE id = ANY(%s)",
                           ([r["id"] for r in rows],))
    return len(rows)


async def claim(conn: psycopg.AsyncConnection, due_by: datetime | None = None) -> list[dict]:
    """The next deliveries due (by `due_by`, else now) to send as one message, locked until
    the caller's transaction ends: one delivery, and for e-mail up to GROUP_MAX − 1 more that
    are due for the same subscription."""
    due = "%(due)s" if due_by is not None else "now()"
    args = {"due": due_by}
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT d.id, d.outbox_id, d.subscription_id, d.user_id, d.channel, d.target, d.attempts, "
            "o.event_id, o.transition FROM notify_deliveries d JOIN notify_outbox o ON o.id = d.outbox_id "
            f"WHERE d.state = 'pending' AND d.next_attempt_at <= {due} ORDER BY d.next_attempt_at, d.id "
            "LIMIT 1 FOR UPDATE OF d SKIP LOCKED", args)
        first = await cur.fetchone()
        if first is None:
            return []
        if first["channel"] != "email" or first["subscription_id"] is None:
            return [first]
        await cur.execute(
            "SELECT d.id, d.outbox_id, d.subscription_id, d.user_id, d.channel, d.target, d.attempts, "
            "o.event_id, o.transition FROM notify_deliveries d JOIN notify_outbox o ON o.id = d.outbox_id "
            f"WHERE d.state = 'pending' AND d.next_attempt_at <= {due} AND d.subscription_id = %(sub)s "
            "AND d.id <> %(first)s ORDER BY d.id LIMIT %(n)s FOR UPDATE OF d SKIP LOCKED",
            args | {"sub": first["subscription_id"], "first": first["id"], "n": GROUP_MAX - 1})
        return sorted([first, *await cur.fetchall()], key=lambda d: d["id"])


async def mark_sent(conn: psycopg.AsyncConnection, ids: list[int]) -> None:
    await conn.execute("UPDATE notify_deliveries SET state = 'sent', sent_at = now(), attempts = attempts + 1, "
                       "last_error = NULL WHERE id = ANY(%s)", (ids,))


async def mark_failed(conn: psycopg.AsyncConnection, ids: list[int], error: str, *, permanent: bool,
                      max_attempts: int, retry_base_s: float) -> None:
    """Another attempt after retry_base_s·2^(n−1) (at most an hour), or failed for good."""
    await conn.execute(
        "UPDATE notify_deliveries SET attempts = attempts + 1, last_error = %s, "
        "state = CASE WHEN %s OR attempts + 1 >= %s THEN 'failed' ELSE 'pending' END, "
        "next_attempt_at = now() + make_interval(secs => least(%s * power(2, attempts), 3600)) "
        "WHERE id = ANY(%s)", (error[:1000], permanent, max_attempts, retry_base_s, ids))


async def cancel(conn: psycopg.AsyncConnection, ids: list[int], reason: str) -> None:
    await conn.execute("UPDATE notify_deliveries SET state = 'cancelled', last_error = %s WHERE id = ANY(%s)",
                       (reason, ids))


async def notices(conn: psycopg.AsyncConnection, deliveries: list[dict], *, lang: str, tz: tzinfo, base_url: str,
                  now: datetime) -> list[Notice]:
    """What each delivery announces, as the events service shows the event, with its context."""
    ids = sorted({d["event_id"] for d in deliveries})
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT e.id, e.org_id, o.name AS org_name, m.serial, a.subscriber, a.flat, s.code AS site_code, s.address "
            "FROM abnormal_events e LEFT JOIN organisations o ON o.id = e.org_id "
            "LEFT JOIN meters m ON m.id = e.meter_id LEFT JOIN accounts a ON a.id = coalesce(e.account_id, m.account_id) "
            "LEFT JOIN sites s ON s.id = coalesce(e.site_id, m.site_id) WHERE e.id = ANY(%s)", (ids,))
        context = {r.pop("id"): r for r in await cur.fetchall()}
    out = []
    for d in deliveries:
        row = await events.get_event(conn, SYSTEM, d["event_id"])
        ev = events.view(row, lang, tz, now) | context.get(d["event_id"], {})
        ev["description_ru"] = ev["description"] if lang == "ru" else events.view(row, "ru", tz, now)["description"]
        ev["description_en"] = events.view(row, "en", tz, now)["description"]
        out.append(Notice(f"askue-{d['id']}", d["transition"], ev, base_url + EVENT_PATH.format(id=d["event_id"])))
    return out


async def deliveries_for(conn: psycopg.AsyncConnection, principal: Principal, user_id: int, *,
                         limit: int = 50) -> list[dict]:
    """A user's latest notifications, newest first, within what the user may see now."""
    scope, params = principal.scope.sql("e.org_id")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT d.id, d.channel, d.target, d.state, d.attempts, d.next_attempt_at, d.sent_at, d.last_error, "
            "d.created_at, o.transition, e.id AS event_id, e.title, e.title_en, e.severity, e.kind "
            "FROM notify_deliveries d JOIN notify_outbox o ON o.id = d.outbox_id "
            f"JOIN abnormal_events e ON e.id = o.event_id WHERE d.user_id = %s AND {scope} "
            "ORDER BY d.id DESC LIMIT %s", [user_id, *params, limit])
        return await cur.fetchall()
