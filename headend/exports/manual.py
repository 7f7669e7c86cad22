"""Manual and consumer-reported register readings: accepted within the monthly window,
checked against the expected value, stored with quality M, source and author, and
passed through VEE's batch hook like any other new value.

The window for billing month M runs from `open_day` of M to `close_day` of M+1
(local days, both inclusive; per organisation in `billing_reading_windows`, default
15th → 5th). A reading may be at most `max_age_days` old when entered (the seed
settlement centre takes consumer readings "не позднее 10 дней после снятия").
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import psycopg

from askue.headend.storage import meta, values

log = logging.getLogger(__name__)

CONSUMER = "consumer_reported"


@dataclass(frozen=True)
class Window:
    open_day: int = 15
    close_day: int = 5
    max_age_days: int = 10
    tolerance: float = 3.0  # a reading implying more than tolerance × expected consumption needs confirmation

    def bounds(self, month: date) -> tuple[date, date]:
        first = month.replace(day=1)
        nxt = (first + timedelta(days=32)).replace(day=1)
        return first.replace(day=self.open_day), nxt.replace(day=self.close_day)

    def month_for(self, today: date) -> date | None:
        """The billing month whose window contains `today`, or None between windows."""
        this = today.replace(day=1)
        prev = (this - timedelta(days=1)).replace(day=1)
        for m in (prev, this):  # the previous month's window wins while both are open
            lo, hi = self.bounds(m)
            if lo <= today <= hi:
                return m
        return None


@dataclass
class ManualReading:
    meter: str  # meter code or serial number
    obis: str
    value: float
    ts: datetime | None = None  # when the reading was taken; default: now
    consumer: bool = False  # reported by the consumer rather than read by staff
    comment: str = ""


@dataclass
class ManualResult:
    meter: str
    obis: str
    status: str  # accepted | rejected | needs_confirmation
    message_ru: str
    message_en: str
    expected: float | None = None
    previous: float | None = None
    billing_month: str | None = None
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return self.__dict__.copy()


async def load_window(conn: psycopg.AsyncConnection, org_id: int | None) -> Window:
    cur = await conn.execute(
        """SELECT open_day, close_day, max_age_days, tolerance FROM billing_reading_windows
           WHERE org_id = %s OR org_id IS NULL ORDER BY org_id IS NULL LIMIT 1""", (org_id,))
    row = await cur.fetchone()
    return Window(*row) if row else Window()


async def set_window(conn: psycopg.AsyncConnection, org_id: int | None, w: Window) -> None:
    if not (1 <= w.open_day <= 28 and 1 <= w.close_day <= 28 and 0 <= w.max_age_days <= 62 and w.tolerance > 0):
        raise ValueError("window days must be 1..28, max_age_days 0..62, tolerance > 0")
    if org_id is None:
        await conn.execute("DELETE FROM billing_reading_windows WHERE org_id IS NULL")
    await conn.execute(
        """INSERT INTO billing_reading_windows (org_id, open_day, close_day, max_age_days, tolerance)
           VALUES (%s, %s, %s, %s, %s)
           ON CONFLICT (org_id) DO UPDATE SET open_day = EXCLUDED.open_day, close_day = EXCLUDED.close_day,
               max_age_days = EXCLUDED.max_age_days, tolerance = EXCLUDED.tolerance""",
        (org_id, w.open_day, w.close_day, w.max_age_days, w.tolerance))


def expected_value(history: list[tuple[datetime, float]], at: datetime, capacity: float | None
                   ) -> tuple[float | None, float | None, float | None]:
    """(previous reading, expected reading at `at`, average daily consumption) from
    billable history before `at`: the last reading plus the average daily consumption
    of up to the last 90 days. Rollovers are unwrapped."""
    hist = sorted((h for h in history if h[0] < at), key=lambda h: h[0])
    if not hist:
        return None, None, None
    last_ts, last = hist[-1]
    base = [h for h in hist if h[0] >= last_ts - timedelta(days=90)]
    if len(base) < 2 or (base[-1][0] - base[0][0]) < timedelta(days=1):
        return last, None, None
    total = 0.0
    for (_, a), (_, b) in zip(base, base[1:], strict=False):
        d = b - a
        if d < 0 and capacity is not None and 0 <= d + capacity < capacity / 2:
            d += capacity
        total += max(d, 0.0)
    days = (base[-1][0] - base[0][0]).total_seconds() / 86400
    avg = total / days
    exp = last + avg * (at - last_ts).total_seconds() / 86400
    if capacity is not None:
        exp %= capacity
    return last, exp, avg


async def _find_meter(conn: psycopg.AsyncConnection, ref: str, org_ids: frozenset[int] | None) -> tuple | None:
    cur = await conn.execute(
        """SELECT id, code, org_id, digits, multiplier, status FROM meters
           WHERE (code = %s OR serial = %s) AND (%s::bigint[] IS NULL OR org_id = ANY(%s::bigint[]))
           ORDER BY (code = %s) DESC, (status = 'active') DESC LIMIT 2""",
        (ref, ref, sorted(org_ids) if org_ids is not None else None,
         sorted(org_ids) if org_ids is not None else None, ref))
    rows = await cur.fetchall()
    return rows[0] if rows else None


async def submit(conn: psycopg.AsyncConnection, readings: list[ManualReading], *, author: str,
                 org_ids: frozenset[int] | None, now: datetime | None = None, confirm: bool = False,
                 source: str = "manual", dry_run: bool = False, all_or_nothing: bool = False) -> list[ManualResult]:
    """Check and store readings; one result per reading, in order.

    Runs in one transaction. `confirm` stores readings that only failed the
    expected-value check (the person saw the expected value and insists).
    `all_or_nothing` stores nothing if any reading is not accepted (file imports).
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    tz: ZoneInfo = await meta.timezone(conn)
    today = now.astimezone(tz).date()
    results: list[ManualResult] = []
    to_store: list[tuple[int, str, datetime, float, list[str], ManualReading]] = []
    codes: dict[int, str] = {}
    async with conn.transaction():
        for r in readings:
            res = await _check_one(conn, r, tz, today, now, org_ids, confirm)
            results.append(res)
            mid, ts = res.details.pop("_meter_id", None), res.details.pop("_ts", None)
            if mid is not None:
                codes[mid] = res.details.pop("_code", r.meter)
            if res.status == "accepted":
                to_store.append((mid, r.obis, ts, r.value, [CONSUMER] if r.consumer else [], r))
        if dry_run or (all_or_nothing and any(x.status != "accepted" for x in results)):
            if all_or_nothing and not dry_run:
                for x in results:
                    if x.status == "accepted":
                        x.status = "not_stored"
                        x.message_ru, x.message_en = ("не сохранено: в файле есть ошибки",
                                                      "not stored: other rows of the file have errors")
            return results
        await values.insert(conn, [values.ValueRow("register", mid, obis, ts, "meter", now, value, "M", reasons, source)
                                   for mid, obis, ts, value, reasons, _ in to_store])
        for mid, obis, ts, value, _, r in to_store:
            # same action and object id as VEE's manual entry, so its per-meter audit view lists these too
            await conn.execute(
                "INSERT INTO audit_log (actor, action, object_type, object_id, new, comment) "
                "VALUES (%s, 'manual_reading', 'register', %s, %s, %s)",
                (author, f"{codes[mid]}/{obis}/{ts.isoformat()}",
                 json.dumps({"value": value, "quality": "M", "source": source, "consumer": r.consumer,
                             "via": "billing"}), r.comment or None))
    return results


async def _check_one(conn: psycopg.AsyncConnection, r: ManualReading, tz: ZoneInfo, today: date, now: datetime,
                     org_ids: frozenset[int] | None, confirm: bool) -> ManualResult:
    def reject(ru: str, en: str, **kw) -> ManualResult:
        return ManualResult(r.meter, r.obis, "rejected", ru, en, **kw)

    meter = await _find_meter(conn, r.meter, org_ids)
    if meter is None:
        return reject(f"прибор учёта {r.meter} не найден", f"meter {r.meter} not found")
    mid, code, org_id, digits, _mult, status = meter
    if status == "decommissioned":
        return reject(f"прибор учёта {code} выведен из эксплуатации", f"meter {code} is decommissioned")
    if not (r.value == r.value) or r.value < 0 or (digits and r.value >= 10 ** digits):
        return reject(f"показание {r.value} вне диапазона счётного механизма",
                      f"reading {r.value} is outside the register range" + (f" (0…{10 ** digits})" if digits else ""))
    w = await load_window(conn, org_id)
    month = w.month_for(today)
    if month is None:
        lo, hi = w.bounds(today.replace(day=1))
        return reject(f"приём показаний закрыт; окно: с {w.open_day} числа по {w.close_day} число следующего месяца "
                      f"(ближайшее: {lo:%d.%m.%Y} – {hi:%d.%m.%Y})",
                      f"readings are not accepted now; the window runs from day {w.open_day} to day "
                      f"{w.close_day} of the next month (next: {lo} – {hi})")
    ts = (r.ts or now).astimezone(UTC)
    if ts > now + timedelta(minutes=5):
        return reject("дата снятия показания в будущем", "the reading's time is in the future")
    if ts < now - timedelta(days=w.max_age_days):
        return reject(f"показание снято более {w.max_age_days} дней назад",
                      f"the reading is older than {w.max_age_days} days")
    cur = await conn.execute("SELECT state FROM billing_periods WHERE org_id = %s AND month = %s", (org_id, month))
    row = await cur.fetchone()
    if row and row[0] == "closed":
        return reject(f"расчётный период {month:%m.%Y} закрыт", f"billing period {month:%Y-%m} is closed")
    cur = await conn.execute(
        """SELECT ts, value, quality, reasons FROM register_readings
           WHERE meter_id = %s AND obis = %s AND ts < %s AND ts >= %s ORDER BY ts""",
        (mid, r.obis, ts, ts - timedelta(days=400)))
    blocking = _blocking_reasons()
    history = [(t, v) for t, v, q, rs in await cur.fetchall() if q in ("A", "M") and not (set(rs or ()) & blocking)]
    cur = await conn.execute("SELECT quality FROM register_readings WHERE meter_id = %s AND obis = %s AND ts = %s",
                             (mid, r.obis, ts))
    same = await cur.fetchone()
    if same and same[0] == "A":
        return reject("на это время уже есть показание, полученное автоматически",
                      "an automatic reading already exists for this time")
    capacity = float(10 ** digits) if digits else None
    prev, exp, avg = expected_value(history, ts, capacity)
    last_ts = history[-1][0] if history else None
    vee = await _vee_expected(conn, mid, r.obis, ts)
    if vee is not None and vee.get("last_value") is not None:
        # the figure VEE's manual-entry form shows beside the field, so both screens agree
        prev, last_ts = vee["last_value"], vee["last_ts"]
        if vee.get("expected") is not None:
            exp, avg = vee["expected"], vee["average_daily"]
    base = {"expected": exp, "previous": prev, "billing_month": f"{month:%Y-%m}",
            "details": {"_meter_id": mid, "_ts": ts, "_code": code, "avg_daily": avg}}
    if prev is not None:
        d = r.value - prev
        if d < 0 and not (capacity is not None and 0 <= d + capacity < capacity / 2):
            return ManualResult(r.meter, r.obis, "rejected", f"показание {r.value} меньше предыдущего {prev}",
                                f"reading {r.value} is below the previous one {prev}", **base)
        if d < 0:
            d += capacity  # type: ignore[operator]
        if avg is not None and not confirm:
            days = max((ts - last_ts).total_seconds() / 86400, 1.0)
            limit = w.tolerance * avg * days + 10.0  # the floor keeps near-zero consumers enterable
            if d > limit:
                return ManualResult(r.meter, r.obis, "needs_confirmation",
                                    f"расход {d:g} больше ожидаемого (ожидаемое показание около {exp:.2f}); "
                                    "проверьте и подтвердите",
                                    f"consumption {d:g} is above the expected (expected reading about {exp:.2f}); "
                                    "check and confirm", **base)
    return ManualResult(r.meter, r.obis, "accepted", "принято", "accepted", **base)


async def _vee_expected(conn: psycopg.AsyncConnection, meter_id: int, obis: str, at: datetime) -> dict | None:
    """VEE's expected value («по среднему», its thresholds) when VEE is installed."""
    try:
        from askue.headend.vee import api as vee_api
        from askue.headend.vee import store as vee_store
    except ImportError:
        return None
    try:
        rows = await vee_store.load_meters(conn, await vee_store.db_timezone(conn), ids=[meter_id])
        if meter_id not in rows:
            return None
        return await vee_api.expected_value(conn, rows[meter_id], obis, at)
    except (AttributeError, TypeError) as e:  # VEE's interface moved on: fall back to our own estimate
        log.warning("VEE expected value unavailable (%s); using billing's own", e)
        return None


def _blocking_reasons() -> frozenset[str]:
    try:
        from askue.headend.vee.store import BLOCKING_REASONS
    except ImportError:
        return frozenset()
    return BLOCKING_REASONS


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tz)
