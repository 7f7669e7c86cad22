"""When readings are accepted: the monthly window of an organisation.

The window for billing month M runs from `open_day` of M to `close_day` of M+1 (local
days, both inclusive; per organisation in `billing_reading_windows`, default 15th →
5th). A reading may be at most `max_age_days` old when entered (the settlement centre
takes consumer readings "не позднее 10 дней после снятия"). A reading implying more
than `tolerance` × the expected consumption needs confirmation.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import psycopg

from askue.headend.errors import Invalid


@dataclass(frozen=True)
class Window:
    open_day: int = 15
    close_day: int = 5
    max_age_days: int = 10
    tolerance: float = 3.0

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

    def check(self) -> None:
        for name, v, lo, hi in (("open_day", self.open_day, 1, 28), ("close_day", self.close_day, 1, 28),
                                ("max_age_days", self.max_age_days, 0, 62)):
            if not lo <= v <= hi:
                raise Invalid(name, f"{name} must be {lo}..{hi}", f"{name}: допустимо от {lo} до {hi}")
        if not self.tolerance > 0:
            raise Invalid("tolerance", "tolerance must be above 0", "tolerance: должно быть больше 0")


async def load_window(conn: psycopg.AsyncConnection, org_id: int | None) -> Window:
    cur = await conn.execute(
        """SELECT open_day, close_day, max_age_days, tolerance FROM billing_reading_windows
           WHERE org_id = %s OR org_id IS NULL ORDER BY org_id IS NULL LIMIT 1""", (org_id,))
    row = await cur.fetchone()
    return Window(*row) if row else Window()


async def set_window(conn: psycopg.AsyncConnection, org_id: int | None, w: Window) -> None:
    w.check()
    if org_id is None:
        await conn.execute("DELETE FROM billing_reading_windows WHERE org_id IS NULL")
    await conn.execute(
        """INSERT INTO billing_reading_windows (org_id, open_day, close_day, max_age_days, tolerance)
           VALUES (%s, %s, %s, %s, %s)
           ON CONFLICT (org_id) DO UPDATE SET open_day = EXCLUDED.open_day, close_day = EXCLUDED.close_day,
               max_age_days = EXCLUDED.max_age_days, tolerance = EXCLUDED.tolerance""",
        (org_id, w.open_day, w.close_day, w.max_age_days, w.tolerance))
