"""Customers on top of the operator pages' data (test_web_fixtures.build), for the cabinet's
service, page, access and browser tests (no tests here).

- «ООО Север» (login `ooo`, a legal entity): LS-1 (meter e1, two zones) as «Руководитель» and
  LS-3 (meter e3) as «Бухгалтер»; its «Энергетик» `energ` and «Бухгалтер» `buh` on LS-1.
- A household `kv2` (LS-2: cold-water meter w1) as «Руководитель».
- `south`, a customer of the other organisation (LS-9: e2, hw2): what nobody else may see.
e1 gets «Расчётный коэф.» 20, losses 5 % and a complete hourly profile for the previous
local month (0.5 kWh per hour of the meter's own, at :00 of each hour).
"""
from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta

import psycopg

from askue.headend.auth.permissions import Principal
from askue.headend.customers import accounts
from askue.headend.storage import values

PASSWORD = "клиент-пароль-1"
CUSTOMERS = {
    "ooo": [("LS-1", "manager"), ("LS-3", "accountant")],
    "energ": [("LS-1", "energetic")],
    "buh": [("LS-1", "accountant")],
    "kv2": [("LS-2", "manager")],
    "south": [("LS-9", "manager")],
}
# what each customer must never see: another customer's serials, accounts, names, addresses
FOREIGN = {"ooo": ("S-E2", "S-HW2", "LS-9", "Сидоров", "ул. Мира 2", "S-W1", "Петров", "S-E5", "Соколов"),
           "kv2": ("S-E2", "S-HW2", "LS-9", "Сидоров", "ул. Мира 2", "S-E1", "Иванов", "S-E3", "Кузнецов",
                   "ул. Садовая 3"),
           "south": ("S-E1", "S-E3", "S-W1", "LS-1", "LS-2", "Иванов", "Петров")}
HOUR_KWH = 0.5
TZ = "Europe/Moscow"


def previous_month(today: date) -> date:
    return (today.replace(day=1) - timedelta(days=1)).replace(day=1)


async def _add(dsn: str, now: datetime) -> None:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    admin = Principal("admin", "admin", None)
    for login, accs in CUSTOMERS.items():
        await accounts.create(conn, admin, accounts.NewCustomer(login, f"Потребитель {login}", "", accs, PASSWORD))
    await conn.execute("UPDATE meters SET multiplier = 20, losses_pct = 5 WHERE code = 'e1'")
    # the multiplier of every dated version too, as if it had been 20 from the start
    await conn.execute("UPDATE meter_params SET multiplier = 20 WHERE meter_id = (SELECT id FROM meters WHERE code = 'e1')")
    from askue.headend.storage import meta

    tz = await meta.timezone(conn)
    first = previous_month(now.astimezone(tz).date())
    nxt = (first + timedelta(days=32)).replace(day=1)
    mid = (await (await conn.execute("SELECT id FROM meters WHERE code = 'e1'")).fetchone())[0]
    rows, d = [], first
    while d < nxt:
        for h in range(24):
            end = datetime.combine(d, time(h), tz).astimezone(UTC) + timedelta(hours=1)
            rows.append(values.ValueRow("interval", mid, "1.0.1.29.0.255", end, "meter", now, HOUR_KWH, "A", [],
                                        "gateway", period_s=3600))
        d += timedelta(days=1)
    async with conn.transaction():
        await values.insert(conn, rows)
    await conn.close()


def add_customers(dsn: str, now: datetime | None = None) -> None:
    asyncio.run(_add(dsn, now or datetime.now(UTC)))
