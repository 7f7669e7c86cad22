"""Manual readings, corrections and the expected value: one implementation for every
path (the API's `/meters/{code}/readings`, the operators' entry page, billing's
`/billing/manual-readings` and the integral template import).

A reading is accepted when:
- the meter exists in the principal's organisations and is not decommissioned;
- the value is a finite number inside the register's capacity (10^digits);
- the organisation's reading window is open, the reading is not from the future nor
  older than the window's `max_age_days`, and its billing month is not closed;
- no reading is stored for that meter, channel and time (an estimate gives way: a real
  value replaces it; anything else is changed by a correction);
- it is not below the previous billable reading — unless that is a rollover of the
  register (the same rule as VEE's reverse_reading: the forward step across the
  capacity is at most `rollover_max_share` of it);
- the consumption it implies is not far above what is expected «по среднему»
  (`tolerance` × average daily use × days + 10); such a reading needs confirmation
  and is stored with the reason `far_above_expected` once confirmed.

A customer (role `customer`) enters readings of its own accounts only, where its role
on the account works with readings; they are always `consumer_reported`, and when
the organisation requires it they wait for its confirmation instead of being stored
(`readings/confirmations.py`, status `pending`).

Stored with quality M, source `manual` (reason `manual`) or `file`, reason
`consumer_reported` when the consumer reported it; written through
`storage.values.insert`, so VEE's hook judges it like any other value; audited. A
rejected reading is kept in `rejected_readings` (`readings/rejections.py`) for the
rejected-readings report.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

import psycopg

from askue.headend.auth import audit
from askue.headend.auth.permissions import Action, Principal
from askue.headend.errors import Conflict, Invalid, NeedsConfirmation, NotFound, ServiceError
from askue.headend.readings import confirmations, rejections
from askue.headend.readings.window import Window, load_window
from askue.headend.storage import meta, values
from askue.headend.vee import estimate, store
from askue.headend.vee.model import MeterValue
from askue.headend.vee.rules.common import forward_delta, main_register
from askue.headend.vee.store import BLOCKING_REASONS

A_PLUS = "1.0.1.8.0.255"
CONSUMER = "consumer_reported"
FAR_ABOVE = "far_above_expected"
FUTURE_SLACK = timedelta(minutes=5)


@dataclass(frozen=True)
class ReadingInput:
    meter: str  # meter code or serial number
    obis: str = A_PLUS
    value: float = math.nan
    ts: datetime | None = None  # when the reading was taken; None: now
    consumer: bool = False  # reported by the consumer rather than read by staff
    comment: str = ""


@dataclass(frozen=True)
class Expected:
    """What an entry field shows beside it."""

    obis: str
    at: datetime
    last_value: float | None
    last_ts: datetime | None
    average_daily: float | None
    expected: float | None
    confirm_above: float | None  # a reading above this needs confirmation

    @property
    def method(self) -> str | None:
        return "average" if self.expected is not None else None

    def as_dict(self) -> dict:
        return {"obis": self.obis, "at": self.at, "last_value": self.last_value, "last_ts": self.last_ts,
                "average_daily": self.average_daily, "expected": self.expected, "method": self.method,
                "confirm_above": self.confirm_above}


@dataclass
class Outcome:
    """What became of one reading."""

    input: ReadingInput
    status: str  # accepted | rejected | needs_confirmation | not_stored | pending (waits for the organisation)
    error: ServiceError | None = None
    meter: str | None = None  # the meter's code
    meter_id: int | None = None
    ts: datetime | None = None
    reasons: list[str] = field(default_factory=list)
    expected: float | None = None
    previous: float | None = None
    billing_month: date | None = None
    average_daily: float | None = None
    org_id: int | None = None

    @property
    def message_ru(self) -> str:
        return self.error.message_ru if self.error else {"accepted": "принято",
                                                         "pending": "передано на подтверждение"}.get(self.status, "")

    @property
    def message_en(self) -> str:
        return self.error.message if self.error else {"accepted": "accepted",
                                                      "pending": "waits for confirmation"}.get(self.status, "")

    def as_dict(self) -> dict:
        return {"meter": self.input.meter, "obis": self.input.obis, "status": self.status,
                "message_ru": self.message_ru, "message_en": self.message_en, "expected": self.expected,
                "previous": self.previous, "billing_month": f"{self.billing_month:%Y-%m}" if self.billing_month else None,
                "details": {"avg_daily": self.average_daily, "reasons": self.reasons,
                            **({"field": self.error.field} if isinstance(self.error, Invalid) else {})}}


@dataclass(frozen=True)
class _Meter:
    id: int
    code: str
    org_id: int | None
    row: store.MeterRow
    account_id: int | None = None


async def find_meter(conn: psycopg.AsyncConnection, principal: Principal, ref: str) -> _Meter:
    """A meter by code (or serial number) among those the principal sees."""
    scope, params = principal.scope.meters("")
    cur = await conn.execute(
        f"SELECT id, code, org_id, account_id FROM meters WHERE (code = %s OR serial = %s) AND {scope} "
        "ORDER BY (code = %s) DESC, (status = 'active') DESC LIMIT 1", [ref, ref, *params, ref])
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"meter {ref} not found", f"прибор учёта {ref} не найден", field="meter")
    rows = await store.load_meters(conn, await meta.timezone(conn), ids=[row[0]])
    return _Meter(row[0], row[1], row[2], rows[row[0]], row[3])


async def _history(conn: psycopg.AsyncConnection, m: _Meter, obis: str, before: datetime,
                   days: int) -> list[MeterValue]:
    """Billable register readings of one channel in the `days` before `before`."""
    cur = await conn.execute(
        f"SELECT ts, value, received_at, quality, reasons FROM {values.TABLES['register']} "
        "WHERE meter_id = %s AND obis = %s AND ts < %s AND ts >= %s ORDER BY ts",
        (m.id, obis, before, before - timedelta(days=days)))
    return [MeterValue(m.code, obis, "register", ts, v, received_at=rx, quality=q, new=False)
            for ts, v, rx, q, rs in await cur.fetchall() if q in ("A", "M") and not set(rs or ()) & BLOCKING_REASONS]


async def _expected(conn: psycopg.AsyncConnection, m: _Meter, obis: str, at: datetime, w: Window) -> Expected:
    facts = m.row.facts
    th = (await store.load_thresholds(conn)).for_meter(facts)
    hist = await _history(conn, m, obis, at, max(th.average_lookback_days, 400))
    last = hist[-1] if hist else None
    main = main_register(facts)
    # «по среднему» on the channel asked for: treat it as the main register for this estimate
    base = [v if obis == main else MeterValue(v.meter, main, v.kind, v.ts, v.value, v.received_at, v.period_s,
                                         v.quality, v.new) for v in hist]
    avg = estimate.average_daily(facts, base, at, th)
    exp = confirm = None
    if last is not None and avg is not None:
        days = (at - last.ts).total_seconds() / 86400
        exp = last.value + avg * days
        confirm = last.value + w.tolerance * avg * max(days, 1.0) + 10.0  # the floor keeps small users enterable
        if facts.capacity:
            exp %= facts.capacity
        exp = round(exp, 3)
    return Expected(obis, at, last.value if last else None, last.ts if last else None, avg, exp,
                    None if confirm is None else round(confirm, 3))


async def expected(conn: psycopg.AsyncConnection, principal: Principal, meter: str, obis: str = A_PLUS,
                   at: datetime | None = None) -> Expected:
    """The last reading before `at` and the value expected then «по среднему»."""
    m = await find_meter(conn, principal, meter)
    at = at or datetime.now(UTC)
    return await _expected(conn, m, obis, at, await load_window(conn, m.org_id))


def _invalid(f: str, en: str, ru: str) -> Invalid:
    return Invalid(f, en, ru)


async def _check(conn: psycopg.AsyncConnection, principal: Principal, r: ReadingInput, now: datetime,
                 confirm: bool) -> Outcome:
    out = Outcome(r, "rejected")
    try:
        m = await find_meter(conn, principal, r.meter)
        out.meter, out.meter_id, out.org_id = m.code, m.id, m.org_id
        principal.require_on(m.account_id, "readings")
        facts = m.row.facts
        if m.row.status == "decommissioned":
            raise _invalid("meter", f"meter {m.code} is decommissioned", f"прибор учёта {m.code} выведен из эксплуатации")
        cap = facts.capacity
        if not math.isfinite(r.value) or r.value < 0 or (cap is not None and r.value >= cap):
            raise _invalid("value", f"reading {r.value} is outside the register range"
                           + (f" (0…{cap:g})" if cap else " (a finite number ≥ 0)"),
                           f"показание {r.value} вне диапазона счётного механизма" + (f" (0…{cap:g})" if cap else ""))
        tz = await meta.timezone(conn)
        w = await load_window(conn, m.org_id)
        today = now.astimezone(tz).date()
        month = w.month_for(today)
        if month is None:
            lo, hi = w.bounds(today.replace(day=1))
            raise _invalid("ts", f"readings are not accepted now; the window runs from day {w.open_day} to day "
                                 f"{w.close_day} of the next month (next: {lo} – {hi})",
                           f"приём показаний закрыт; окно: с {w.open_day} числа по {w.close_day} число следующего "
                           f"месяца (ближайшее: {lo:%d.%m.%Y} – {hi:%d.%m.%Y})")
        out.billing_month = month
        ts = (r.ts or now).astimezone(UTC)
        out.ts = ts
        if ts > now + FUTURE_SLACK:
            raise _invalid("ts", "the reading's time is in the future", "дата снятия показания в будущем")
        if ts < now - timedelta(days=w.max_age_days):
            raise _invalid("ts", f"the reading is older than {w.max_age_days} days",
                           f"показание снято более {w.max_age_days} дней назад")
        state = await (await conn.execute("SELECT state FROM billing_periods WHERE org_id = %s AND month = %s",
                                          (m.org_id, month))).fetchone()
        if state and state[0] == "closed":
            raise Conflict(f"billing period {month:%Y-%m} is closed", f"расчётный период {month:%m.%Y} закрыт")
        same = await values.get(conn, "register", m.id, r.obis, ts)
        if same is not None and same.quality not in ("E", "S"):
            raise Conflict(
                f"meter {m.code} already has a {r.obis} reading at {ts.isoformat()}"
                + ("; an automatic reading is not overwritten" if same.quality == "A"
                   else "; change it with a correction and a reason"),
                "на это время уже есть показание, полученное автоматически" if same.quality == "A"
                else "на это время показание уже введено; измените его корректировкой с указанием причины")
        exp = await _expected(conn, m, r.obis, ts, w)
        out.expected, out.previous, out.average_daily = exp.expected, exp.last_value, exp.average_daily
        th = (await store.load_thresholds(conn)).for_meter(facts)
        if exp.last_value is not None and forward_delta(exp.last_value, r.value, facts, th) is None:
            raise _invalid("value", f"reading {r.value} is below the previous one {exp.last_value}",
                               f"показание {r.value} меньше предыдущего {exp.last_value}")
        if exp.confirm_above is not None and exp.last_value is not None:
            use = forward_delta(exp.last_value, r.value, facts, th) or 0.0
            if exp.last_value + use > exp.confirm_above:
                if not confirm:
                    raise NeedsConfirmation(
                        f"consumption {use:g} is above the expected (expected reading about {exp.expected:.2f}); "
                        "check and confirm",
                        f"расход {use:g} больше ожидаемого (ожидаемое показание около {exp.expected:.2f}); "
                        "проверьте и подтвердите", expected=exp.expected, previous=exp.last_value)
                out.reasons.append(FAR_ABOVE)
        out.status = "accepted"
    except NeedsConfirmation as e:
        out.status, out.error = "needs_confirmation", e
    except ServiceError as e:
        out.error = e
    return out


async def submit(conn: psycopg.AsyncConnection, principal: Principal, readings: list[ReadingInput], *,
                 source: str = "manual", confirm: bool = False, dry_run: bool = False,
                 all_or_nothing: bool = False, now: datetime | None = None) -> list[Outcome]:
    """Check and store readings in one transaction; one outcome per reading, in order.

    `confirm` stores readings that only failed the expected-value check (the person saw
    the expected value and insists). `all_or_nothing` stores nothing if any reading is
    not accepted (a file is one act). `dry_run` checks only.
    """
    principal.require(Action.READINGS_ENTER)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    if principal.is_customer:
        readings = [replace(r, consumer=True) for r in readings]
    outcomes: list[Outcome] = []
    async with conn.transaction():
        for r in readings:
            outcomes.append(await _check(conn, principal, r, now, confirm))
        accepted = [o for o in outcomes if o.status == "accepted"]
        if dry_run or (all_or_nothing and len(accepted) < len(outcomes)):
            if all_or_nothing and not dry_run:
                for o in accepted:
                    o.status = "not_stored"
                    o.error = Conflict("not stored: other rows of the file have errors",
                                       "не сохранено: в файле есть ошибки")
                await _record_refused(conn, principal, outcomes, source)
            return outcomes
        if principal.is_customer:
            accepted = await _hold(conn, principal, accepted, source)
        rows = []
        for o in accepted:
            o.reasons = sorted({*o.reasons, *(["manual"] if source == "manual" else []),
                                *([CONSUMER] if o.input.consumer else [])})
            rows.append(values.ValueRow("register", o.meter_id, o.input.obis, o.ts, "meter", now, o.input.value, "M",
                                        o.reasons, source))
        stored = await values.insert(conn, rows)
        new = {(r.meter_id, r.obis, r.ts) for r in stored.rows}
        for o, row in zip(accepted, rows, strict=True):
            if (row.meter_id, row.obis, row.ts) not in new:  # a value arrived meanwhile
                o.status, o.error = "rejected", Conflict(
                    f"meter {o.meter} already has a {o.input.obis} reading at {o.ts.isoformat()}",
                    "на это время показание уже есть")
                continue
            await audit.record(conn, principal, "manual_reading", "register", f"{o.meter}/{o.input.obis}/{o.ts.isoformat()}",
                               new={"value": o.input.value, "quality": "M", "source": source,
                                    "consumer": o.input.consumer, "expected": o.expected, "reasons": o.reasons},
                               comment=o.input.comment)
        await _record_refused(conn, principal, outcomes, source)
        if principal.is_customer:
            await confirmations.note(conn, principal, [_held(o) for o in accepted if o.status == "accepted"],
                                     source, "accepted")
    return outcomes


def _held(o: Outcome) -> confirmations.Held:
    return confirmations.Held(o.meter_id, o.input.obis, o.ts, o.input.value, FAR_ABOVE in o.reasons)


async def _hold(conn: psycopg.AsyncConnection, principal: Principal, accepted: list[Outcome],
                source: str) -> list[Outcome]:
    """A customer's readings whose organisation confirms them wait (status pending); the rest go on."""
    need: dict[int | None, bool] = {}
    for o in accepted:
        if o.org_id not in need:
            need[o.org_id] = await confirmations.required(conn, o.org_id)
    held = [o for o in accepted if need[o.org_id]]
    await confirmations.note(conn, principal, [_held(o) for o in held], source, "pending")
    for o in held:
        o.status = "pending"
        await audit.record(conn, principal, "customer_reading_submit", "register",
                           f"{o.meter}/{o.input.obis}/{o.ts.isoformat()}",
                           new={"value": o.input.value, "status": "pending"}, comment=o.input.comment)
    return [o for o in accepted if not need[o.org_id]]


async def _record_refused(conn: psycopg.AsyncConnection, principal: Principal, outcomes: list[Outcome],
                          source: str) -> None:
    """Refused readings go to the rejected-readings report; a reading waiting for confirmation
    is a question, not a refusal, and one not stored for another row's error was not judged."""
    await rejections.record(conn, principal, [rejections.of_outcome(o, source) for o in outcomes
                                              if o.status == "rejected"])


async def enter(conn: psycopg.AsyncConnection, principal: Principal, reading: ReadingInput, *,
                confirm: bool = False, now: datetime | None = None) -> Outcome:
    """One reading; raises the reason it was not stored."""
    (o,) = await submit(conn, principal, [reading], confirm=confirm, now=now)
    if o.error is not None:
        raise o.error
    return o


async def correct(conn: psycopg.AsyncConnection, principal: Principal, meter: str, kind: str, obis: str,
                  ts: datetime, value: float, reason: str) -> values.Stored:
    """Change a stored value with a reason: quality M, source manual, reason `corrected`;
    the old value goes to the audit log. Returns what it was."""
    principal.require(Action.VALUES_CORRECT)
    if kind not in ("register", "interval"):
        raise _invalid("kind", "only register readings and intervals are corrected", "исправляются только "
                       "показания и интервалы профиля")
    if not math.isfinite(value) or value < 0:
        raise _invalid("value", "a value is a finite, non-negative number", "значение — неотрицательное число")
    if len((reason or "").strip()) < 3:
        raise _invalid("reason", "say why the value is changed", "укажите причину исправления")
    m = await find_meter(conn, principal, meter)
    async with conn.transaction():
        old = await values.correct(conn, kind, m.id, obis, ts, value)
        if old is None:
            raise NotFound(f"meter {m.code} has no {kind} {obis} at {ts.isoformat()}; enter a new reading instead",
                           f"у прибора учёта {m.code} нет значения {obis} на {ts.isoformat()}; введите новое показание")
        await audit.record(conn, principal, "correction", kind, f"{m.code}/{obis}/{ts.isoformat()}",
                           old={"value": old.value, "quality": old.quality, "reasons": old.reasons, "source": old.source},
                           new={"value": value, "quality": "M", "source": "manual"}, comment=reason)
    return old


async def edits(conn: psycopg.AsyncConnection, principal: Principal, meter: str) -> list[dict]:
    """Manual readings and corrections of one meter: who, when, old, new, why."""
    m = await find_meter(conn, principal, meter)
    return await audit.object_history(conn, ["manual_reading", "correction"], f"{m.code}/")

