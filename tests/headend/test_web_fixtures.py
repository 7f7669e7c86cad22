"""Demo-like data for the operator pages, access and Grafana tests (no tests here).

Two organisations with houses that have coordinates, accounts, meters of every
resource (one decommissioned, one without coordinates, a balance meter), register
readings for the last 40 days ingested through the real merge path (so rollups are
filled as in production), contact times spread over the map legend's buckets,
gateways, abnormal events and users of every role.
"""
from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from askue.contract import DataMessage, Value
from askue.headend.auth.users import create_user
from askue.headend.ingest import merge
from askue.headend.ingest.batch import Pending
from askue.headend.registry.importer import import_file

REGISTRY = """org_code,org_name,house_code,house_address,house_lat,house_lon,account,subscriber,flat,meter_id,serial,model,resource,digits,multiplier,tariff_zones,is_balance,gateway_id,installed_at,verified_at,verification_due,lat,lon
uk1,УК Север,h1,ул. Ленина 1,55.75,37.61,LS-1,Иванов И.И.,1,e1,S-E1,Меркурий 234,electricity,6,1,2,no,gw1,2024-01-10,2024-01-10,2040-01-10,55.751,37.611
uk1,УК Север,h1,ул. Ленина 1,55.75,37.61,LS-2,Петров П.П.,2,w1,S-W1,ВСКМ 90,cold_water,5,1,1,no,gw1,2024-01-10,2024-01-10,2030-01-10,,
uk1,УК Север,h1,ул. Ленина 1,55.75,37.61,,,,odpu1,S-O1,Меркурий 230,electricity,6,30,1,yes,gw1,2023-05-01,2023-05-01,2039-05-01,55.7502,37.6102
uk1,УК Север,h3,ул. Садовая 3,59.93,30.33,LS-3,Кузнецов К.К.,7,e3,S-E3,Меркурий 206,electricity,6,1,1,no,gw1,2024-02-01,2024-02-01,2040-02-01,59.934,30.335
uk1,УК Север,h4,ул. Полевая 4,,,LS-4,Орлов О.О.,9,e4,S-E4,Меркурий 206,electricity,6,1,1,no,gw1,2024-02-01,2024-02-01,2040-02-01,,
uk1,УК Север,h4,ул. Полевая 4,,,LS-4,Орлов О.О.,9,e9,S-E9,Меркурий 206,electricity,6,1,1,no,gw1,2026-11-01,2026-11-01,2042-11-01,,
uk1,УК Север,h5,пр. Мира 5,56.84,60.6,LS-5,Соколов С.С.,3,e5,S-E5,Меркурий 206,electricity,6,1,1,no,gw1,2024-02-01,2024-02-01,2040-02-01,56.84,60.6
uk1,УК Север,h6,ул. Южная 6,47.23,39.72,LS-6,Волков В.В.,4,e6,S-E6,Меркурий 206,electricity,6,1,1,no,gw1,2024-02-01,2024-02-01,2040-02-01,47.23,39.72
uk1,УК Север,h7,ул. Озёрная 7,54.98,73.37,LS-7,Зайцев З.З.,5,e7,S-E7,Меркурий 206,electricity,6,1,1,no,gw1,2024-02-01,2024-02-01,2040-02-01,54.98,73.37
uk1,УК Север,h8,ул. Речная 8,53.2,50.15,LS-8,Лебедев Л.Л.,6,e8,S-E8,Меркурий 206,electricity,6,1,1,no,gw1,2024-02-01,2024-02-01,2040-02-01,53.2,50.15
uk2,УК Юг,h2,ул. Мира 2,45.04,38.98,LS-9,Сидоров С.С.,11,e2,S-E2,Энергомера CE301,electricity,5,1,1,no,gw2,2024-03-01,2024-03-01,2040-03-01,45.04,38.98
uk2,УК Юг,h2,ул. Мира 2,45.04,38.98,LS-9,Сидоров С.С.,11,hw2,S-HW2,ВСКМ 90,hot_water,5,1,1,no,gw2,2024-03-01,2024-03-01,2030-03-01,45.0401,38.9801
"""
# minutes since last contact per meter → one per legend bucket; None = never heard
CONTACT_AGE_MIN = {"e1": 10, "w1": 90, "odpu1": 12 * 60, "e3": 36 * 60, "e5": 4 * 1440, "e6": 10 * 1440,
                   "e7": 30 * 1440, "e8": None, "e2": 20, "hw2": 20, "e4": 60,
                   "e9": 60}  # e9 replaced e4 and has no coordinates (nor has its house)
EXPECTED_BUCKET = {"e1": "30min", "w1": "2h", "odpu1": "1d", "e3": "2d", "e5": "1w", "e6": "2w", "e7": "disconnected",
                   "e8": "disconnected", "e2": "30min", "hw2": "30min"}
DAYS = 40
PASSWORD = "секрет-пароль-1"
USERS = {"admin": ("admin", None), "disp": ("dispatcher", None), "uk1adm": ("org_admin", ["uk1"]),
         "uk2adm": ("org_admin", ["uk2"]), "viewer1": ("viewer", ["uk1"])}


def _series(meter: str, now: datetime) -> list[Value]:
    """One register reading per day at 12:00 UTC for DAYS days, per channel of the meter."""
    out = []
    start = (now - timedelta(days=DAYS)).replace(hour=12, minute=0, second=0, microsecond=0)
    chans = {"w1": [("8.0.1.0.0.255", 0.3)], "hw2": [("9.0.1.0.0.255", 0.2)],
             "e1": [("1.0.1.8.0.255", 10.0), ("1.0.1.8.1.255", 6.0), ("1.0.1.8.2.255", 4.0)],
             "odpu1": [("1.0.1.8.0.255", 3.0)]}.get(meter, [("1.0.1.8.0.255", 5.0)])
    unit = "m3" if meter in ("w1", "hw2") else "kWh"
    for obis, per_day in chans:
        for d in range(DAYS):
            at = start + timedelta(days=d)
            if at > now:
                break
            out.append(Value(meter_id=meter, obis=obis, kind="register", value=round(100 + per_day * d, 3),
                             unit=unit, received_at=at + timedelta(seconds=5), meter_time=at))
    if meter in ("e1", "e2"):  # half-hour load profile for the last 3 local days (billing 80020 needs it)
        end0 = (now - timedelta(days=4)).replace(hour=0, minute=0, second=0, microsecond=0)
        for k in range(1, 3 * 48 + 1):
            end = end0 + timedelta(minutes=30 * k)
            out.append(Value(meter_id=meter, obis="1.0.1.29.0.255", kind="interval", value=0.25, unit="kWh",
                             received_at=end + timedelta(seconds=30), meter_time=end, period_s=1800))
    return out


async def _ingest(dsn: str, now: datetime) -> None:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    await merge.prepare_connection(conn)
    ctx = merge.MergeContext()
    for seq, meter in enumerate(CONTACT_AGE_MIN, start=1):
        gw = "gw2" if meter in ("e2", "hw2") else "gw1"
        p = Pending()
        p.data.append(DataMessage(v=1, gateway_id=gw, seq=seq, sent_at=now, values=_series(meter, now), meters=[]))
        p.seen[gw] = now
        await merge.write(conn, ctx, p)
    await conn.close()


def _evidence(kind: str, now: datetime) -> dict:
    """What the VEE rule of each kind records, so the pages show real sentences."""
    day = (now - timedelta(days=1)).date().isoformat()
    return {"no_contact": {"last_session": (now - timedelta(days=30)).isoformat(), "bucket": "more"},
            "reverse_reading": {"previous": 1036.9, "previous_ts": (now - timedelta(days=1)).isoformat(),
                                "current": 1012.4, "drop": 24.5},
            "tamper": {"journal": "external influence journal", "code": 3, "meaning": "terminal cover opened"},
            "spike": {"day": day, "consumption": 2.4, "median": 0.25, "factor": 5.0, "history_days": 14},
            }[kind]


def build(dsn: str, tmp: Path, now: datetime | None = None) -> dict:
    """Fill the database; returns facts the tests check against (event ids etc.)."""
    now = now or datetime.now(UTC)
    (tmp / "registry.csv").write_text(REGISTRY, encoding="utf-8")
    res = import_file(dsn, tmp / "registry.csv")
    assert res.errors == [], res.errors
    asyncio.run(_ingest(dsn, now))
    facts: dict = {"events": {}, "now": now}
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("UPDATE organisations SET inn = CASE code WHEN 'uk1' THEN '7701234567' ELSE '2301234567' END")
        # readings are accepted on any day of the month (the default window opens on the 15th)
        c.execute("INSERT INTO billing_reading_windows (org_id, open_day, close_day, max_age_days, tolerance) "
                  "VALUES (NULL, 1, 28, 10, 3)")
        for code, age in CONTACT_AGE_MIN.items():
            c.execute("UPDATE meters SET last_contact = %s, last_ok = %s WHERE code = %s",
                      (None if age is None else now - timedelta(minutes=age), age is not None, code))
        c.execute("UPDATE meters SET status = 'decommissioned', decommissioned_at = %s WHERE code = 'e4'",
                  ((now - timedelta(days=3)).date(),))
        c.execute("UPDATE meters SET replaced_by_id = (SELECT id FROM meters WHERE code = 'e9') WHERE code = 'e4'")
        c.execute("UPDATE meters SET replaces_id = (SELECT id FROM meters WHERE code = 'e4') WHERE code = 'e9'")
        c.execute("""INSERT INTO gateways (id, org_id, name, online, version, last_seen, queue_depth, meters,
                     oldest_unsent_s, state_at) VALUES
                     ('gw1', (SELECT id FROM organisations WHERE code = 'uk1'), 'ТП-1', true, '0.3.1', %s, 12, 9, 4.5, %s),
                     ('gw2', (SELECT id FROM organisations WHERE code = 'uk2'), 'ТП-2', false, '0.3.0', %s, 340, 2, 7200, %s)
                     ON CONFLICT (id) DO UPDATE SET org_id = EXCLUDED.org_id, name = EXCLUDED.name,
                     online = EXCLUDED.online, version = EXCLUDED.version, last_seen = EXCLUDED.last_seen,
                     queue_depth = EXCLUDED.queue_depth, meters = EXCLUDED.meters,
                     oldest_unsent_s = EXCLUDED.oldest_unsent_s, state_at = EXCLUDED.state_at""",
                  (now - timedelta(minutes=1), now, now - timedelta(hours=3), now - timedelta(hours=3)))
        for key, meter, kind, sev, title, title_en in (
                ("nc_e7", "e7", "no_contact", "warning", "Нет связи со счётчиком", "No contact with the meter"),
                ("rev_e1", "e1", "reverse_reading", "critical", "Обратный ход показаний", "Reverse reading"),
                ("tamper_e3", "e3", "tamper", "critical", "Воздействие на счётчик", "Tamper"),
                ("nc_e2", "e2", "no_contact", "warning", "Нет связи со счётчиком", "No contact with the meter"),
                ("spike_hw2", "hw2", "spike", "warning", "Всплеск потребления", "Consumption spike")):
            row = c.execute(
                """INSERT INTO abnormal_events (kind, severity, meter_id, site_id, org_id, gateway_id, ts, title,
                   title_en, evidence, dedup_key, account_id)
                   SELECT %s, %s, m.id, m.site_id, m.org_id, m.gateway_id, %s, %s, %s, %s, %s, m.account_id
                   FROM meters m WHERE m.code = %s RETURNING id""",
                (kind, sev, now - timedelta(hours=5), title, title_en, json.dumps(_evidence(kind, now)),
                 f"{key}:test", meter)).fetchone()
            facts["events"][key] = row[0]
        for login, (role, orgs) in USERS.items():
            create_user(c, login, PASSWORD, role, orgs, name=login.title())
    return facts
