"""The registry issue end to end, on a real head-end (MQTT ingest + API in one process,
mosquitto, PostgreSQL/TimescaleDB): a month of data from gateways that share meter codes,
a CT change dated mid-month after the month was closed, a meter exchange with final and
initial readings (the gateway kept polling the new meter before the act was entered), heat
meters reporting kWh, GJ and Гкал. Consumption per day and per month is checked against
figures worked out by hand below; bad input gets a clear error and stores nothing.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import aiomqtt
import httpx
import psycopg
import pytest
import pytest_asyncio
from headend_helpers import wait_healthy

from askue.contract import DataMessage, MeterStatus, Value, encode
from askue.devservices.ports import free_port
from askue.headend.api.auth import create_token
from askue.headend.app import run_headend
from askue.headend.config import Settings

MSK = ZoneInfo("Europe/Moscow")
A_PLUS, T1, T2, HEAT = "1.0.1.8.0.255", "1.0.1.8.1.255", "1.0.1.8.2.255", "6.0.1.0.0.255"
GCAL_PER_KWH = 3.6 / 4186.8  # 1 kWh = 3.6 MJ; 1 Гкал = 4186.8 MJ (calIT)
GCAL_PER_GJ = 1 / 4.1868


def at(day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=MSK)


def reading(code: str, obis: str, value: float, t: datetime, unit: str = "kWh") -> Value:
    return Value(meter_id=code, obis=obis, kind="register", value=value, unit=unit, meter_time=t,
                 received_at=t + timedelta(seconds=5))


# ---- the month's readings, one at 12:00 every day (what the meters count) ------------------------
def ct_raw(d: int) -> float:  # ct-1, secondary kWh: 2 a day
    return 100.0 + 2 * (d - 1)


def ex_old(d: int) -> tuple[float, float]:  # ex-old T1, T2 up to 19 March
    return 1000.0 + 3 * (d - 1), 500.0 + 1 * (d - 1)


def ex_new(d: int) -> tuple[float, float]:  # ex-new from 20 March: initial 0.2 / 0.1 at 10:00, +0.5 / +0.2 by noon
    return round(0.7 + 3 * (d - 20), 6), round(0.3 + 1 * (d - 20), 6)


HEAT_RAW = {"heat-kwh": (lambda d: 10000.0 + 500 * (d - 1), "kWh"),
            "heat-gj": (lambda d: 100.0 + 2 * (d - 1), "GJ"),
            "heat-gcal": (lambda d: 50.0 + 0.5 * (d - 1), "Гкал")}


class Head:
    def __init__(self, http: httpx.AsyncClient, pub: aiomqtt.Client, dsn: str) -> None:
        self.http, self.pub, self.dsn, self.seq = http, pub, dsn, 0

    async def send(self, gw: str, values: list[Value], meters: list[MeterStatus] | None = None) -> None:
        self.seq += 1
        msg = DataMessage(v=1, gateway_id=gw, seq=self.seq, sent_at=values[-1].received_at, values=values,
                          meters=meters or [])
        await self.pub.publish(f"askue/v1/{gw}/data", encode(msg), qos=1)

    async def sql(self, q: str, *args) -> list[tuple]:
        async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as c:
            return await (await c.execute(q, args)).fetchall()

    async def until(self, q: str, want, *args, tries: int = 300) -> None:
        got = None
        for _ in range(tries):
            got = (await self.sql(q, *args))[0][0]
            if got == want:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{q}: {got!r}, expected {want!r}")

    async def ok(self, method: str, path: str, **kw) -> dict:
        r = await self.http.request(method, path, **kw)
        assert r.status_code < 300, (path, r.status_code, r.text[:500])
        return r.json()

    async def refused(self, method: str, path: str, status: int, field: str, **kw) -> dict:
        r = await self.http.request(method, path, **kw)
        assert r.status_code == status, (path, r.status_code, r.text[:500])
        detail = r.json()["detail"]
        fields = {detail["field"], *(e["field"] for e in detail.get("errors", []))}
        assert field in fields, detail
        assert detail["message"] and detail["message_ru"]
        return detail

    async def fingerprint(self) -> tuple:
        return tuple([(await self.sql(q))[0][0] for q in (
            "SELECT count(*) FROM meters", "SELECT count(*) FROM meter_acts", "SELECT count(*) FROM meter_bindings",
            "SELECT count(*) FROM register_readings", "SELECT count(*) FROM meter_params",
            "SELECT md5(string_agg(m::text, '|' ORDER BY id)) FROM meters m")])

    async def daily(self, level: str, key: str, start: str, end: str, **params) -> dict[tuple, float]:
        r = await self.ok("GET", f"/api/v1/consumption/{level}/{key}", params={"from": start, "to": end, **params})
        return {(i["bucket"], i["zone"]): i["value"] for i in r["items"]}


@pytest_asyncio.fixture
async def head(pg_dsn: str, mqtt_broker):
    port = free_port()
    s = Settings(dsn=pg_dsn, mqtt_host=mqtt_broker.host, mqtt_port=mqtt_broker.port, mqtt_group=f"reg{port}",
                 mqtt_client_id=f"reg{port}", api_port=port, batch_linger_s=0.02)
    with psycopg.connect(pg_dsn) as conn:
        token = create_token(conn, "registry-admin", "admin")
    task = asyncio.create_task(run_headend(s))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            await wait_healthy(http)
            async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port,
                                      protocol=aiomqtt.ProtocolVersion.V5) as pub:
                # the consumer subscribes after the API answers: wait until a probe gets through
                h = Head(http, pub, pg_dsn)
                for _ in range(100):
                    await h.send("probe", [reading("probe-1", A_PLUS, 1.0, at(1, 0))])
                    if (await h.sql("SELECT count(*) FROM meters WHERE code = 'probe-1'"))[0][0]:
                        break
                    await asyncio.sleep(0.1)
                yield h
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _registry(h: Head) -> None:
    for code, name in (("uk-a", "УК «Альфа»"), ("uk-b", "УК «Бета»")):
        await h.ok("POST", "/api/v1/organisations", json={"code": code, "name": name, "kind": "УК",
                                                          "inn": "7701234567" if code == "uk-a" else "7707654321"})
    await h.ok("POST", "/api/v1/sites", json={"code": "ha", "org": "uk-a", "address": "ул. Ленина, 1"})
    await h.ok("POST", "/api/v1/sites", json={"code": "hb", "org": "uk-b", "address": "ул. Мира, 2"})
    await h.ok("POST", "/api/v1/gateways", json={"id": "gw-a", "org": "uk-a", "name": "УСПД дома 1"})
    await h.ok("POST", "/api/v1/gateways", json={"id": "gw-b", "org": "uk-b"})
    meters = [
        {"code": "flat-1", "resource": "электроэнергия", "serial": "A-111", "house": "ha", "digits": 6,
         "gateway": "gw-a"},
        {"code": "b-flat-1", "resource": "electricity", "serial": "B-222", "house": "hb", "gateway": "gw-b",
         "gateway_code": "flat-1"},
        {"code": "ct-1", "resource": "electricity", "serial": "CT-1", "house": "ha", "ct_ratio": 20, "vt_ratio": 1,
         "digits": 6, "gateway": "gw-a"},
        {"code": "ex-old", "resource": "electricity", "serial": "OLD-1", "house": "ha", "ct_ratio": 10,
         "tariff_zones": 2, "digits": 6, "gateway": "gw-a", "gateway_code": "ex-1"},
        *({"code": c, "resource": "тепло", "serial": c.upper(), "house": "ha", "gateway": "gw-a"} for c in HEAT_RAW),
    ]
    for m in meters:
        await h.ok("POST", "/api/v1/meters", json=m)


@pytest.mark.storage_modes
async def test_registry_history_identity_and_units(head: Head) -> None:
    h = head
    await _registry(h)

    # ---- bad registry input: a clear error per field, nothing stored --------------------------
    before = await h.fingerprint()
    await h.refused("POST", "/api/v1/meters/flat-1/binding", 422, "gateway", json={"gateway": "gw-nope"})
    d = await h.refused("POST", "/api/v1/meters", 422, "digits",
                        json={"code": "bad-1", "resource": "плутоний", "digits": 13, "lat": 95})
    assert {e["field"] for e in d["errors"]} == {"resource", "digits", "lat"}
    assert "не ресурс" in d["message_ru"]
    assert await h.fingerprint() == before

    # ---- a month of data ---------------------------------------------------------------------
    for day in range(1, 32):
        t = at(day)
        await h.send("gw-a", [reading("flat-1", A_PLUS, 5000.0 + 4 * day, t)])
        await h.send("gw-b", [reading("flat-1", A_PLUS, 70.0 + day, t)])  # another УК's flat-1
        # the CT was replaced by a 40/5 one on 16 March; the meter says so before the registry does
        status = [MeterStatus(meter_id="ct-1", ct_ratio=40.0 if day >= 16 else 20.0, vt_ratio=1.0)]
        await h.send("gw-a", [reading("ct-1", A_PLUS, ct_raw(day), t)], status)
        await h.send("gw-a", [reading(code, HEAT, fn(day), t, unit) for code, (fn, unit) in HEAT_RAW.items()])
        if day <= 19:
            v1, v2 = ex_old(day)
            await h.send("gw-a", [reading("ex-1", T1, v1, t), reading("ex-1", T2, v2, t)],
                         [MeterStatus(meter_id="ex-1", serial="OLD-1")])
        elif day <= 25:  # the meter was exchanged on the 20th; the act is not entered yet
            v1, v2 = ex_new(day)
            await h.send("gw-a", [reading("ex-1", T1, v1, t), reading("ex-1", T2, v2, t)],
                         [MeterStatus(meter_id="ex-1", serial="NEW-1")])
    # a gateway nobody registered, with the same code; values in units that do not fit
    await h.send("gw-c", [reading("flat-1", A_PLUS, 1.0 + i, at(10 + i, 13)) for i in range(3)])
    await h.send("gw-a", [reading("flat-1", A_PLUS, 5041.0, at(10, 13), "furlong"),
                          reading("heat-gj", HEAT, 120.0, at(10, 13), "m3"),
                          reading("flat-1", A_PLUS, 5041.5, at(10, 14))])
    stored = 31 * 2 + 31 + 31 * 3 + 19 * 2 + 6 * 2 + 1
    await h.until("SELECT count(*) FROM register_readings r JOIN meters m ON m.id = r.meter_id "
                  "WHERE m.code <> 'probe-1'", stored)
    await h.until("SELECT count(*) FROM quarantined_values", 3)
    await h.until("SELECT count(*) FROM dead_letters", 1)

    # two gateways sharing a code: each on its own meter, the third one's quarantined with an event
    flat = await h.ok("GET", "/api/v1/meters/flat-1/readings", params={"limit": 100})
    assert [i["value"] for i in flat["items"]][:3] == [5004.0, 5008.0, 5012.0] and len(flat["items"]) == 32
    assert {i["value"] for i in flat["items"]} & {1.0, 2.0, 3.0, 71.0} == set()
    bflat = await h.ok("GET", "/api/v1/meters/b-flat-1/readings", params={"limit": 100})
    assert [i["value"] for i in bflat["items"]] == [70.0 + d for d in range(1, 32)]
    q = await h.ok("GET", "/api/v1/quarantine")
    assert {(i["gateway_id"], i["gateway_code"], i["meter"], i["bound_gateway"], i["reason"]) for i in q["items"]} \
        == {("gw-c", "flat-1", "flat-1", "gw-a", "foreign_gateway")}
    events = await h.ok("GET", "/api/v1/events", params={"limit": 200})
    by_kind: dict[str, list] = {}
    for e in events["items"]:
        by_kind.setdefault(e["kind"], []).append(e)
    (foreign,) = by_kind["foreign_gateway"]
    assert foreign["meter"] == "flat-1" and foreign["title"] == "Показания от чужого шлюза"
    assert foreign["description"].startswith("Шлюз gw-c прислал 3 показания для прибора учёта «flat-1», "
                                             "привязанного к шлюзу gw-a"), foreign["description"]
    # units: wrong or unknown units are dead letters with the reason, never stored
    (reason,) = (await h.sql("SELECT reason FROM dead_letters"))[0]
    assert "'furlong' is unknown" in reason and "'m3' is not a unit of register 6.0.1.0.0.255 of a heat meter" in reason
    assert (await h.sql("SELECT count(*) FROM register_readings WHERE ts = %s", at(10, 13)))[0][0] == 0
    # heat in Гкал whatever the meter sent, the original kept on the row
    rows = await h.sql("SELECT m.code, r.value, r.orig_value, r.orig_unit FROM register_readings r "
                       "JOIN meters m ON m.id = r.meter_id WHERE r.ts = %s AND m.resource = 'heat' ORDER BY 1",
                       at(2))
    assert [(c, round(v, 9), o, u) for c, v, o, u in rows] == [
        ("heat-gcal", 50.5, None, None), ("heat-gj", round(102.0 * GCAL_PER_GJ, 9), 102.0, "GJ"),
        ("heat-kwh", round(10500.0 * GCAL_PER_KWH, 9), 10500.0, "kWh")]
    # the meter's programmed transformer ratio against the registry's
    (ratio,) = by_kind["ratio_mismatch"]
    assert ratio["meter"] == "ct-1"
    assert ratio["description"] == "Коэффициент трансформации в счётчике 40 × 1 не совпадает с учётным 20 × 1"
    # the exchanged meter reports another serial: event, values held from billing, no reverse reading
    (serial,) = by_kind["serial_mismatch"]
    assert serial["meter"] == "ex-old" and "NEW-1" in serial["description"]
    assert "reverse_reading" not in by_kind
    held = await h.sql("SELECT count(*) FROM register_readings r JOIN meters m ON m.id = r.meter_id "
                       "WHERE m.code = 'ex-old' AND 'serial_mismatch' = ANY(r.reasons)")
    assert held == [(12,)]
    feed = await h.ok("GET", "/api/v1/billing/readings", params={"limit": 10000})
    assert not [i for i in feed["items"] if i["meter"] == "ex-old" and datetime.fromisoformat(i["ts"]) >= at(20)]

    # ---- the exchange act: bad input first -----------------------------------------------------
    act = {"meter": "ex-old", "at": "2026-03-20T10:00", "document": "А-17",
           "old_final": {"T1": "1056,5", "T2": 518.8},
           "new_meter": {"code": "ex-new", "serial": "NEW-1", "model": "Меркурий 234", "ct_ratio": 20, "digits": 6,
                         "tariff_zones": 2},
           "new_initial": {"T1": 0.2, "T2": 0.1}}
    before = await h.fingerprint()
    await h.refused("POST", "/api/v1/acts/exchange", 422, "new_initial.T1",
                    json={**act, "new_initial": {"T1": "две тысячи", "T2": 0.1}})
    d = await h.refused("POST", "/api/v1/acts/exchange", 422, "old_final.T1",
                        json={**act, "old_final": {"T1": 1000.0, "T2": 518.8}})
    assert "меньше последнего показания старого прибора 1\u00a0054" in d["message_ru"]
    assert await h.fingerprint() == before
    done = await h.ok("POST", "/api/v1/acts/exchange", json=act)
    assert done["moved_values"] == 12 and done["new_meter"] == "ex-new"
    for day in range(26, 32):  # the gateway goes on under the same code: now the new meter's
        v1, v2 = ex_new(day)
        await h.send("gw-a", [reading("ex-1", T1, v1, at(day)), reading("ex-1", T2, v2, at(day))],
                     [MeterStatus(meter_id="ex-1", serial="NEW-1")])
    await h.until("SELECT count(*) FROM register_readings r JOIN meters m ON m.id = r.meter_id "
                  "WHERE m.code = 'ex-new'", 2 + 12 * 2)
    assert (await h.sql("SELECT count(*) FROM register_readings r JOIN meters m ON m.id = r.meter_id WHERE "
                        "m.code = 'ex-old' AND (r.ts > %s OR 'serial_mismatch' = ANY(r.reasons))", at(20, 10))) \
        == [(0,)]
    events = {e["kind"]: e for e in (await h.ok("GET", "/api/v1/events", params={"show_resolved": "true",
                                                                              "meter": "ex-old"}))["items"]}
    assert events["serial_mismatch"]["state"] == "resolved"

    # ---- close March, then the CT change dated inside it -----------------------------------------
    closed = await h.ok("POST", "/api/v1/billing/periods/2026-03/close", params={"org": "uk-a"})
    assert closed["state"] == "closed"
    frozen = await h.ok("GET", "/api/v1/billing/periods/2026-03", params={"org": "uk-a"})
    ct_frozen = next(r for r in frozen["rows"] if r["meter"] == "ct-1")
    assert ct_frozen["consumption"] == pytest.approx(30 * 2 * 20)  # the registry said 20 all month
    r = await h.ok("PATCH", "/api/v1/meters/ct-1", json={"ct_ratio": 40, "valid_from": "16.03.2026",
                                                        "comment": "замена ТТ, акт 5"})
    assert r["changed"] and r["multiplier"] == 40
    after = await h.ok("GET", "/api/v1/billing/periods/2026-03", params={"org": "uk-a"})
    assert next(r for r in after["rows"] if r["meter"] == "ct-1") == ct_frozen  # the closed figure stands
    (recalc,) = [x for x in after["recalculations"] if x["meter"] == "ct-1"]
    # 14 days at 2 kWh × 20, 16 days at 2 kWh × 40
    assert (recalc["old_consumption"], recalc["new_consumption"]) == (1200.0, pytest.approx(14 * 40 + 16 * 80))
    assert "ct-1" in recalc["reason"]

    # ---- consumption per day and per month, worked out by hand -------------------------------------
    ct = await h.daily("meter", "ct-1", "2026-03-14", "2026-03-18")
    assert ct == {("2026-03-14", 0): pytest.approx(40.0), ("2026-03-15", 0): pytest.approx(40.0),
                  ("2026-03-16", 0): pytest.approx(80.0), ("2026-03-17", 0): pytest.approx(80.0)}
    month = await h.daily("meter", "ct-1", "2026-03-01", "2026-04-01", granularity="month")
    assert month == {("2026-03-01", 0): pytest.approx(1840.0)}
    # across the exchange: old meter × 10 until the act, new × 20 from its initial reading
    ex = await h.daily("house", "ha", "2026-03-19", "2026-03-22", resource="electricity")
    assert {k: v for k, v in ex.items() if k[1]} == {
        ("2026-03-19", 1): pytest.approx(30.0), ("2026-03-19", 2): pytest.approx(10.0),
        ("2026-03-20", 1): pytest.approx(2.5 * 10 + 0.5 * 20), ("2026-03-20", 2): pytest.approx(0.8 * 10 + 0.2 * 20),
        ("2026-03-21", 1): pytest.approx(60.0), ("2026-03-21", 2): pytest.approx(20.0)}
    t1 = (1056.5 - 1000.0) * 10 + (ex_new(31)[0] - 0.2) * 20
    t2 = (518.8 - 500.0) * 10 + (ex_new(31)[1] - 0.1) * 20
    assert (t1, t2) == (pytest.approx(1235.0), pytest.approx(412.0))
    for level, key in (("house", "ha"), ("organisation", "uk-a")):
        m = await h.daily(level, key, "2026-03-01", "2026-04-01", granularity="month", resource="electricity")
        assert (m[("2026-03-01", 1)], m[("2026-03-01", 2)]) == (pytest.approx(t1), pytest.approx(t2))
        assert m[("2026-03-01", 0)] == pytest.approx(30 * 4 + 1840.0)  # flat-1 (its 13:00 dead letter aside) + ct-1
    # heat: kWh, GJ and Гкал meters add up in Гкал
    heat_day = 500 * GCAL_PER_KWH + 2 * GCAL_PER_GJ + 0.5
    hd = await h.daily("house", "ha", "2026-03-10", "2026-03-11", resource="heat")
    assert hd == {("2026-03-10", 0): pytest.approx(heat_day)}
    hm = await h.daily("organisation", "uk-a", "2026-03-01", "2026-04-01", granularity="month", resource="heat")
    assert hm == {("2026-03-01", 0): pytest.approx(30 * heat_day)}
    # the presummed daily figures (organisation, by house) agree with the per-meter ones
    by_house = await h.ok("GET", "/api/v1/consumption/organisation/uk-a",
                          params={"from": "2026-03-16", "to": "2026-03-17", "group": "house"})
    assert {(i["zone"], i["resource"]): i["value"] for i in by_house["items"]}[(0, "electricity")] \
        == pytest.approx(4 + 80.0)

    # ---- billing: snapshots, feed and exports show both meters ----------------------------------------
    snap = {r["meter"]: r for r in after["rows"] if r["obis"] == T1}
    assert snap["ex-old"]["consumption"] == pytest.approx(565.0) and snap["ex-new"]["consumption"] == \
        pytest.approx(670.0)
    csv_text = (await h.http.get("/api/v1/billing/periods/2026-03", params={"org": "uk-a", "format": "csv"})).text
    head, *body = [ln.split(";") for ln in csv_text.lstrip("\ufeff").splitlines()]
    rows = {(r[0], r[1]): dict(zip(head, r, strict=True)) for r in body}
    pick = ("replaced_meter", "replaced_by", "unit")
    assert [rows[(code, T1)][c] for code in ("ex-old", "ex-new") for c in pick] == [
        "", "ex-new", "kWh", "ex-old", "", "kWh"]
    feed = await h.ok("GET", "/api/v1/billing/readings", params={"limit": 10000})
    acts_in_feed = {(i["meter"], i["obis"], i["value"]) for i in feed["items"]
                    if datetime.fromisoformat(i["ts"]) == at(20, 10)}
    assert acts_in_feed == {("ex-old", T1, 1056.5), ("ex-old", T2, 518.8), ("ex-new", T1, 0.2), ("ex-new", T2, 0.1)}

    # ---- history on the API; quarantined values released once the registry knows gw-c ---------------
    hist = await h.ok("GET", "/api/v1/meters/ct-1/history")
    assert [(p["valid_from"], p["multiplier"], p["ct_ratio"]) for p in hist["params"]] == [
        (None, 20.0, 20.0), ("2026-03-16", 40.0, 40.0)]
    assert hist["params"][0]["valid_until"] == "2026-03-15"
    ex_hist = await h.ok("GET", "/api/v1/meters/ex-new/history")
    (a,) = ex_hist["acts"]
    assert (a["kind"], a["old_meter"], a["new_meter"], a["document"]) == ("exchange", "ex-old", "ex-new", "А-17")
    assert [(b["gateway"], b["gateway_code"]) for b in ex_hist["bindings"]] == [("gw-a", "ex-1")]
    await h.ok("PATCH", "/api/v1/gateways/gw-c", json={"org": "uk-b"})
    await h.ok("POST", "/api/v1/meters", json={"code": "c-flat-1", "resource": "electricity", "house": "hb",
                                               "gateway": "gw-c", "gateway_code": "flat-1"})
    rel = await h.ok("POST", "/api/v1/quarantine/release", json={"gateway": "gw-c", "code": "flat-1"})
    assert rel == {"released": 3, "stored": 3}
    got = await h.ok("GET", "/api/v1/meters/c-flat-1/readings")
    assert [i["value"] for i in got["items"]] == [1.0, 2.0, 3.0]
