"""Local store-and-forward queue: SQLite in WAL mode.

Every value is committed here before it is published and deleted only after
the broker acknowledged the message that carried it (QoS 1 PUBACK):
put → get_batch → (publish) → batch_done. A crash between publish and
batch_done re-sends the batch after restart (the head-end dedupes by natural
key); nothing is deleted unacknowledged. The message sequence number is kept
in the same database, so it keeps rising across restarts.

The size is capped by a number of values; when full, the lowest-priority,
oldest values are evicted (instant first, then profile intervals, billing
registers and journal events last) and counted per kind.
"""
from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from askue.contract.payloads import Value

log = logging.getLogger("askue.gateway.store")

# Lower is evicted first.
EVICT_PRIORITY = {"instant": 0, "interval": 1, "register": 2, "event": 2}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    meter_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    prio INTEGER NOT NULL,
    stored_at REAL NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_evict ON outbox (prio, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ledger (
    meter_id TEXT NOT NULL,
    obis TEXT NOT NULL,
    stored_to TEXT,
    acked_to TEXT,
    PRIMARY KEY (meter_id, obis)
);
"""


class StoreError(RuntimeError):
    """The store file cannot be opened or written (path, permissions, disk full, corruption)."""


@dataclass
class Batch:
    seq: int
    ids: list[int]
    bodies: list[bytes]  # each a JSON-encoded contract Value
    meter_ids: set[str]
    taken_at: float

    def __len__(self) -> int:
        return len(self.ids)

    def values(self) -> list[Value]:
        dec = msgspec.json.Decoder(Value)
        return [dec.decode(b) for b in self.bodies]


_enc = msgspec.json.Encoder()


class Store:
    def __init__(self, path: str | Path, max_values: int = 2_000_000, synchronous: str = "FULL"):
        self.path = Path(path)
        self.max_values = max_values
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'FULL' else 'NORMAL'}")
            self.db.execute("PRAGMA busy_timeout=5000")
            self.db.executescript(_SCHEMA)
            (self._count,) = self.db.execute("SELECT count(*) FROM outbox").fetchone()
            # Diagnostics and ledger reads use their own connection, so they may run on the event
            # loop while the writer thread commits (WAL: readers never wait for the writer).
            self.ro = self.db if str(path) == ":memory:" else sqlite3.connect(
                str(path), isolation_level=None, check_same_thread=False)
        except (sqlite3.Error, OSError) as e:
            raise StoreError(f"store {path}: cannot open: {e} (check the path, its permissions and free space)") \
                from None
        self._cursor = 0  # highest outbox id handed out in a batch during this run
        self._retry: deque[Batch] = deque()
        self._inflight: dict[int, Batch] = {}  # seq -> batch

    def close(self) -> None:
        if self.ro is not self.db:
            self.ro.close()
        self.db.close()

    # ---- writing -------------------------------------------------------------------------
    def put(self, values: Sequence[Value]) -> int:
        """Commit values (one transaction; the profile ledger moves with them). Returns evicted count."""
        if not values:
            return 0
        now = time.time()
        rows = [(v.meter_id, v.kind, EVICT_PRIORITY[v.kind], now, _enc.encode(v)) for v in values]
        marks: dict[tuple[str, str], datetime] = {}
        for v in values:
            # The ledger remembers how far profiles, journals and archives have been read, per
            # meter and channel (journals share one mark, "events"; each archive one, by its
            # name), so reads resume there after any outage.
            if v.meter_time is None:
                continue
            if v.kind == "interval":
                k = (v.meter_id, v.obis)
            elif v.kind == "event":
                k = (v.meter_id, "events")
            elif v.archive is not None:
                k = (v.meter_id, v.archive)
            else:
                continue
            if k not in marks or v.meter_time > marks[k]:
                marks[k] = v.meter_time
        evicted = 0
        try:
            with self._tx():
                self.db.executemany("INSERT INTO outbox (meter_id, kind, prio, stored_at, body) VALUES (?,?,?,?,?)",
                                    rows)
                self._count += len(rows)
                for (meter_id, obis), t in marks.items():
                    self.db.execute(
                        "INSERT INTO ledger (meter_id, obis, stored_to) VALUES (?,?,?) "
                        "ON CONFLICT (meter_id, obis) DO UPDATE SET stored_to = max(coalesce(stored_to, ''), "
                        "excluded.stored_to)", (meter_id, obis, _ts(t)))
                if self._count > self.max_values:
                    evicted = self._evict(self._count - self.max_values)
        except sqlite3.Error as e:
            self._count = self.db.execute("SELECT count(*) FROM outbox").fetchone()[0]
            raise StoreError(f"store {self.path}: cannot write {len(rows)} values: {e}") from None
        return evicted

    def _evict(self, k: int) -> int:
        per_kind = self.db.execute(
            "SELECT kind, count(*) FROM (SELECT kind FROM outbox ORDER BY prio, id LIMIT ?) GROUP BY kind", (k,)
        ).fetchall()
        self.db.execute("DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY prio, id LIMIT ?)", (k,))
        for kind, n in per_kind:
            self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                            "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value", (f"evicted.{kind}", n))
        self._count -= k
        log.warning("store full (%d values): evicted %s", self.max_values,
                    ", ".join(f"{n} {kind}" for kind, n in per_kind))
        return k

    def _tx(self):
        return _Tx(self.db)

    # ---- reading and acknowledging -------------------------------------------------------
    def get_batch(self, max_values: int) -> Batch | None:
        """The oldest values not yet handed out, under a new sequence number; None when empty.
        A released batch comes back first, under its original sequence number."""
        if self._retry:
            b = self._retry.popleft()
            self._inflight[b.seq] = b
            return b
        rows = self.db.execute("SELECT id, meter_id, body FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                               (self._cursor, max_values)).fetchall()
        if not rows:
            return None
        seq = self.next_seq()
        self._cursor = rows[-1][0]
        b = Batch(seq=seq, ids=[r[0] for r in rows], bodies=[r[2] for r in rows], meter_ids={r[1] for r in rows},
                  taken_at=time.monotonic())
        self._inflight[seq] = b
        return b

    def next_seq(self) -> int:
        """The next message sequence number; persisted, so it keeps rising across restarts."""
        with self._tx():
            self.db.execute("INSERT INTO meta (key, value) VALUES ('seq', 1) "
                            "ON CONFLICT (key) DO UPDATE SET value = value + 1")
            (seq,) = self.db.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()
        return seq

    def batch_done(self, batch: Batch) -> None:
        """The broker acknowledged the batch: delete its values, advance the acknowledged ledger."""
        self._inflight.pop(batch.seq, None)
        dec = msgspec.json.Decoder(Value)
        marks: dict[tuple[str, str], str] = {}
        for body in batch.bodies:
            if b'"interval"' in body:
                v = dec.decode(body)
                if v.kind == "interval" and v.meter_time is not None:
                    k = (v.meter_id, v.obis)
                    t = _ts(v.meter_time)
                    if t > marks.get(k, ""):
                        marks[k] = t
        with self._tx():
            cur = self.db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in batch.ids])
            self._count -= max(cur.rowcount, 0)
            for (meter_id, obis), t in marks.items():
                self.db.execute(
                    "INSERT INTO ledger (meter_id, obis, acked_to) VALUES (?,?,?) "
                    "ON CONFLICT (meter_id, obis) DO UPDATE SET acked_to = max(coalesce(acked_to, ''), "
                    "excluded.acked_to)", (meter_id, obis, t))

    def release(self, batch: Batch) -> None:
        """The broker refused the batch: send it again later (same sequence number)."""
        self._inflight.pop(batch.seq, None)
        self._retry.append(batch)

    # ---- state ---------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return self._count

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def pending_unsent(self) -> bool:
        """Values not yet handed to the publisher in this run."""
        if self._retry:
            return True
        return self.ro.execute("SELECT 1 FROM outbox WHERE id > ? LIMIT 1", (self._cursor,)).fetchone() is not None

    def oldest_age_s(self) -> float | None:
        row = self.ro.execute("SELECT stored_at FROM outbox ORDER BY id LIMIT 1").fetchone()
        return None if row is None else max(0.0, time.time() - row[0])

    def evicted(self) -> dict[str, int]:
        return {k.split(".", 1)[1]: v for k, v in
                self.ro.execute("SELECT key, value FROM meta WHERE key LIKE 'evicted.%'").fetchall()}

    def last_seq(self) -> int:
        row = self.ro.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()
        return row[0] if row else 0

    def ledger(self, meter_id: str, obis: str) -> tuple[datetime | None, datetime | None]:
        """(newest interval end stored, newest interval end acknowledged by the broker)."""
        row = self.ro.execute("SELECT stored_to, acked_to FROM ledger WHERE meter_id = ? AND obis = ?",
                              (meter_id, obis)).fetchone()
        if row is None:
            return None, None
        return tuple(datetime.fromisoformat(x) if x else None for x in row)  # type: ignore[return-value]

    def ledger_for_meter(self, meter_id: str) -> dict[str, datetime]:
        """Newest stored time per ledger channel of a meter: profile OBIS codes, "events" and the
        archive names ("day_start", "month_start")."""
        return {obis: datetime.fromisoformat(t) for obis, t in
                self.ro.execute("SELECT obis, stored_to FROM ledger WHERE meter_id = ? AND stored_to IS NOT NULL",
                                (meter_id,)).fetchall()}

    def all_bodies(self) -> Iterable[bytes]:
        """Every stored value (tests and diagnostics)."""
        return (r[0] for r in self.ro.execute("SELECT body FROM outbox ORDER BY id"))


def _ts(t: datetime) -> str:
    """Fixed-width UTC text, so SQLite's max() on strings orders by time."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


class _Tx:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, et, ev, tb) -> None:
        if et is None:
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")


class AsyncStore:
    """The store as the event loop sees it: every write runs on one dedicated thread, so a
    commit's fsync (synchronous=FULL) never stalls polling, and values arriving while a
    commit runs are committed together in the next one (group commit)."""

    def __init__(self, store: Store):
        from concurrent.futures import ThreadPoolExecutor

        self.store = store
        self._ex = ThreadPoolExecutor(1, thread_name_prefix="askue-store")
        self._pending: list[Value] = []
        self._waiters: list[asyncio.Future] = []
        self._flushing = False
        self.commits = 0
        self.on_commit: Callable[[], None] = lambda: None  # the publisher's wake-up

    async def call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._ex, fn, *args)

    async def put(self, values: Sequence[Value]) -> None:
        """Returns once the values are committed (or raises StoreError)."""
        if not values:
            return
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.extend(values)
        self._waiters.append(fut)
        if not self._flushing:
            self._flushing = True
            loop.create_task(self._flush())
        await fut

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, waiters = self._pending, self._waiters
                self._pending, self._waiters = [], []
                try:
                    await self.call(self.store.put, batch)
                    self.commits += 1
                except Exception as e:  # StoreError (disk full…): every waiting job learns it
                    for w in waiters:
                        if not w.done():
                            w.set_exception(e)
                else:
                    for w in waiters:
                        if not w.done():
                            w.set_result(None)
                    self.on_commit()
        finally:
            self._flushing = False

    async def get_batch(self, max_values: int) -> Batch | None:
        return await self.call(self.store.get_batch, max_values)

    async def batch_done(self, batch: Batch) -> None:
        await self.call(self.store.batch_done, batch)

    async def release(self, batch: Batch) -> None:
        await self.call(self.store.release, batch)

    async def next_seq(self) -> int:
        return await self.call(self.store.next_seq)

    async def close(self) -> None:
        while self._flushing:
            await asyncio.sleep(0.01)
        await self.call(self.store.close)
        self._ex.shutdown(wait=True)
