"""Registry services and the ingest's registry checks on real PostgreSQL: first contact and
foreign gateways, dated moves judged by receive time, the in-memory view reloading after a
registry change made elsewhere, units and dead letters, serial holds confirmed, dated
parameters carried into later versions with the daily sums kept exact, the file import's
new columns, acts from a file."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from headend_helpers import data_msg, merge_conn, pending, reg

from askue.cli import main as askue_main
from askue.contract import MeterStatus, decode_data
from askue.headend.auth.permissions import Principal, Scope
from askue.headend.errors import Invalid
from askue.headend.events.describe import describe
from askue.headend.ingest import merge
from askue.headend.registry import entities, holds, meters
from askue.headend.registry.importer import import_file
from askue.headend.storage.queries import consumption as cq
from askue.headend.vee.rules.common import MSK

ADMIN = Principal("admin-test", "admin", None)
T = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


async def _setup(conn: psycopg.AsyncConnection) -> None:
    await entities.save(conn, ADMIN, "organisation", "uk1", {"name": "УК 1"})
    await entities.save(conn, ADMIN, "site", "h1", {"org": "uk1", "address": "ул. Ленина, 1"})
    await entities.save(conn, ADMIN, "site", "h2", {"org": "uk1", "address": "ул. Мира, 2"})
    for gw in ("gw1", "gw2"):
        await entities.save(conn, ADMIN, "gateway", gw, {"org": "uk1"})


async def _rows(conn, sql: str, *args) -> list[tuple]:
    return await (await conn.execute(sql, args)).fetchall()


async def test_first_contact_foreign_gateway_and_dated_move(pg_dsn: str) -> None:
    conn = await merge_conn(pg_dsn)
    await _setup(conn)
    ctx = merge.MergeContext()
    # an unknown code: an unassigned meter bound to the gateway that sent it
    await merge.write(conn, ctx, pending(data_msg([reg("m1", 1.0, T)], gw="gw1")))
    assert await _rows(conn, "SELECT m.status, b.gateway_id, b.gateway_code, b.source, b.valid_from FROM meters m "
                             "JOIN meter_bindings b ON b.meter_id = m.id") == [
        ("unassigned", "gw1", "m1", "first_contact", None)]
    # the same code from another gateway: quarantined, its status ignored, an event
    await merge.write(conn, ctx, pending(data_msg([reg("m1", 555.0, T + timedelta(hours=1))], gw="gw2", seq=2,
                                                  meters=[MeterStatus(meter_id="m1", serial="EVIL")])))
    assert await _rows(conn, "SELECT value FROM register_readings") == [(1.0,)]
    assert await _rows(conn, "SELECT reported_serial FROM meters") == [(None,)]
    assert await _rows(conn, "SELECT reason, gateway_id, bound_gateway, value FROM quarantined_values") == [
        ("foreign_gateway", "gw2", "gw1", 555.0)]
    (kind, ev), = await _rows(conn, "SELECT kind, evidence FROM abnormal_events")
    assert kind == "foreign_gateway"
    assert describe(kind, ev, resource="electricity", tz=MSK).startswith(
        "Шлюз gw2 прислал 1 показание для прибора учёта «m1», привязанного к шлюзу gw1")
    # the registry moves m1 to gw2 from T + 2 h; the view of this process reloads by itself
    await meters.save(conn, ADMIN, "m1", {"resource": "electricity", "house": "h1"})
    await meters.bind(conn, ADMIN, "m1", "gw2", "m1", T + timedelta(hours=2))
    late_gw1 = reg("m1", 2.0, T + timedelta(hours=1, minutes=30))  # read by gw1 before the move, delivered now
    after_gw1 = reg("m1", 3.0, T + timedelta(hours=3))  # gw1 after the move: not its meter any more
    await merge.write(conn, ctx, pending(data_msg([late_gw1, after_gw1], gw="gw1", seq=3),
                                         data_msg([reg("m1", 4.0, T + timedelta(hours=4))], gw="gw2", seq=4)))
    assert [r[0] for r in await _rows(conn, "SELECT value FROM register_readings ORDER BY ts")] == [1.0, 2.0, 4.0]
    assert await _rows(conn, "SELECT value FROM quarantined_values WHERE gateway_id = 'gw1'") == [(3.0,)]
    # the earlier quarantined value is released onto m1: gw2 holds the code from T + 2 h only
    with pytest.raises(Invalid, match="no meter bound as 'm1'"):
        await holds.release(conn, ADMIN, gateway="gw2", code="m1")
    assert (await holds.release(conn, ADMIN, gateway="gw2", code="m1", meter="m1")) == {"released": 1, "stored": 1}
    await conn.close()


async def test_another_process_sees_a_registry_change(pg_dsn: str) -> None:
    conn, other = await merge_conn(pg_dsn), await merge_conn(pg_dsn)
    await _setup(conn)
    await meters.save(conn, ADMIN, "e1", {"resource": "electricity", "serial": "111", "gateway": "gw1"})
    ctx = merge.MergeContext()
    await merge.write(other, ctx, pending(data_msg([reg("e1", 1.0, T)], gw="gw1")))
    # moved by someone else, in another connection: the next batch here already knows
    await meters.bind(conn, ADMIN, "e1", "gw2", "e1", T + timedelta(minutes=30))
    await merge.write(other, ctx, pending(data_msg([reg("e1", 2.0, T + timedelta(hours=1))], gw="gw1", seq=2)))
    assert await _rows(conn, "SELECT count(*) FROM quarantined_values") == [(1,)]
    await conn.close()
    await other.close()


async def test_units_dead_letters_and_serial_hold(pg_dsn: str) -> None:
    conn = await merge_conn(pg_dsn)
    await _setup(conn)
    await meters.save(conn, ADMIN, "h-1", {"resource": "heat", "serial": "H1", "gateway": "gw1"})
    await meters.save(conn, ADMIN, "e1", {"resource": "electricity", "serial": "0012345", "multiplier": 40,
                                          "gateway": "gw1"})
    ctx = merge.MergeContext()
    heat = [reg("h-1", 10.0, T, obis="6.0.1.0.0.255", unit="GJ"), reg("h-1", 1.0, T + timedelta(hours=1),
                                                                       obis="6.0.1.0.0.255", unit="m3")]
    await merge.write(conn, ctx, pending(data_msg(heat, gw="gw1")))
    assert [(round(v, 9), o, u) for v, o, u in await _rows(conn, "SELECT value, orig_value, orig_unit FROM "
                                                                  "register_readings")] == [
        (round(10 / 4.1868, 9), 10.0, "GJ")]
    (topic, payload, reason), = await _rows(conn, "SELECT topic, payload, reason FROM dead_letters")
    assert topic == "askue/v1/gw1/data" and "'m3' is not a unit of register 6.0.1.0.0.255 of a heat meter" in reason
    assert [v.unit for v in decode_data(payload).values] == ["m3"]  # the refused value, whole, replayable
    # leading zeros aside the serial matches; another one holds the meter's values from billing
    st = MeterStatus(meter_id="e1", serial="12345", ct_ratio=20.0, vt_ratio=1.0)
    await merge.write(conn, ctx, pending(data_msg([reg("e1", 1.0, T)], gw="gw1", seq=2, meters=[st])))
    st2 = MeterStatus(meter_id="e1", serial="999", ct_ratio=20.0, vt_ratio=1.0)
    await merge.write(conn, ctx, pending(data_msg([reg("e1", 2.0, T + timedelta(hours=1))], gw="gw1", seq=3,
                                                  meters=[st2])))
    assert await _rows(conn, "SELECT value, reasons FROM register_readings r JOIN meters m ON m.id = r.meter_id "
                             "WHERE m.code = 'e1' ORDER BY ts") == [(1.0, []), (2.0, ["serial_mismatch"])]
    ev = {k: (e, state) for k, e, state in await _rows(conn, "SELECT kind, evidence, state FROM abnormal_events")}
    assert describe("ratio_mismatch", ev["ratio_mismatch"][0], resource="electricity", tz=MSK) == \
        "Коэффициент трансформации в счётчике 20 × 1 = 20 не совпадает с учётным 40"
    assert describe("serial_mismatch", ev["serial_mismatch"][0], resource="electricity", tz=MSK).startswith(
        "Счётчик сообщает заводской номер 999, в реестре 0012345")
    out = await holds.confirm_serial(conn, ADMIN, "e1", take_reported=True, comment="проверено на месте")
    assert out == {"meter": "e1", "serial": "999", "values_released": 1}
    assert await _rows(conn, "SELECT reasons FROM register_readings WHERE value = 2.0") == [([],)]
    assert (await _rows(conn, "SELECT state FROM abnormal_events WHERE kind = 'serial_mismatch'")) == [("resolved",)]
    await conn.close()


async def test_dated_parameters_carry_and_daily_sums_stay_exact(pg_dsn: str) -> None:
    conn = await merge_conn(pg_dsn)
    await _setup(conn)
    await meters.save(conn, ADMIN, "e1", {"resource": "electricity", "house": "h1", "gateway": "gw1", "digits": 6})
    ctx = merge.MergeContext()
    start = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    await merge.write(conn, ctx, pending(data_msg([reg("e1", 100.0 + 10 * d, start + timedelta(days=d))
                                                   for d in range(31)], gw="gw1")))
    m = await meters.find(conn, ADMIN, "e1")
    await meters.save(conn, ADMIN, "e1", {"house": "h2", "valid_from": "20.03.2026"})
    await meters.save(conn, ADMIN, "e1", {"multiplier": 2, "valid_from": "2026-03-10"})  # carried into 20 March
    await meters.save(conn, ADMIN, "e1", {"multiplier": 5, "valid_from": "2026-03-25"})
    await meters.save(conn, ADMIN, "e1", {"multiplier": 3, "valid_from": "2026-03-10"})  # up to the 25th only
    vs = await meters.versions(conn, m)
    assert [(x["valid_from"], x["multiplier"], x["site_id"]) for x in vs] == [
        (meters.FOREVER, 1.0, 1), (date(2026, 3, 10), 3.0, 1), (date(2026, 3, 20), 3.0, 2), (date(2026, 3, 25), 5.0, 2)]
    expected = {date(2026, 3, d): 10.0 * (1 if d < 10 else 3 if d < 25 else 5) for d in range(2, 32)}
    scope = Scope(None)
    for compact in (False, True):
        if compact:
            await conn.execute("SELECT askue_consumption_compact()")
        per_meter = await cq.consumption(conn, cq.ConsumptionQuery(level="meter", key="e1", start=date(2026, 3, 2),
                                                                   end=date(2026, 4, 1)), scope)
        assert {r["bucket"]: r["value"] for r in per_meter} == pytest.approx(expected)
        for house, days in (("h1", range(2, 20)), ("h2", range(20, 32))):
            summed = await cq.consumption(conn, cq.ConsumptionQuery(level="house", key=house, start=date(2026, 3, 2),
                                                                    end=date(2026, 4, 1)), scope)
            assert {r["bucket"]: r["value"] for r in summed} == pytest.approx(
                {date(2026, 3, d): expected[date(2026, 3, d)] for d in days}), house
    # the documents' readings statement rates each day by its version too
    stmt = await cq.readings_statement(conn, cq.ConsumptionQuery(level="meter", key="e1", start=date(2026, 3, 2),
                                                                 end=date(2026, 4, 1)), scope)
    assert [r["consumption"] for r in stmt] == [pytest.approx(sum(expected.values()))]
    month = await cq.consumption(conn, cq.ConsumptionQuery(level="organisation", key="uk1", granularity="month",
                                                           start=date(2026, 3, 1), end=date(2026, 4, 1)), scope)
    assert [r["value"] for r in month] == [pytest.approx(sum(expected.values()))]
    audit = await _rows(conn, "SELECT old, new FROM audit_log WHERE action = 'registry.meter.params' ORDER BY id")
    assert audit[-1] == ({"valid_from": "2026-03-10", "multiplier": 2.0}, {"valid_from": "2026-03-10",
                                                                           "multiplier": 3.0})
    await conn.close()


async def test_per_field_errors_and_scope(pg_dsn: str) -> None:
    conn = await merge_conn(pg_dsn)
    await _setup(conn)
    with pytest.raises(Invalid) as e:
        await entities.save(conn, ADMIN, "organisation", "uk2", {"inn": "12", "kind": "банк"}, create=True)
    assert {x["field"] for x in e.value.details["errors"]} == {"inn", "kind"}
    assert await _rows(conn, "SELECT count(*) FROM organisations") == [(1,)]
    uk1 = (await _rows(conn, "SELECT id FROM organisations WHERE code = 'uk1'"))[0][0]
    await entities.save(conn, ADMIN, "organisation", "uk2", {"name": "УК 2"})
    await entities.save(conn, ADMIN, "site", "hb", {"org": "uk2", "address": "x"})
    org_admin = Principal("uk1adm", "org_admin", frozenset({uk1}))
    with pytest.raises(Invalid, match="does not exist"):
        await meters.save(conn, org_admin, "x1", {"resource": "gas", "house": "hb"}, create=True)
    with pytest.raises(Invalid, match="does not exist"):  # a gateway of another organisation is not there for it
        await entities.save(conn, ADMIN, "gateway", "gwb", {"org": "uk2"})
        await meters.save(conn, org_admin, "x1", {"resource": "gas", "gateway": "gwb"}, create=True)
    await conn.close()


def test_import_ratios_dated_change_and_binding(pg_dsn: str, tmp_path: Path, capsys) -> None:
    head = "org_code,house_code,house_address,meter_id,serial,resource,Ктт,Ктн,Шлюз,Код на шлюзе,Действует с\n"
    p = tmp_path / "r.csv"
    p.write_text(head + "uk1,h1,ул. Ленина 1,e1,111,electricity,20,1,gw1,flat-1,\n", encoding="utf-8")
    assert import_file(pg_dsn, p).errors == []
    with psycopg.connect(pg_dsn) as c:
        assert c.execute("SELECT m.multiplier, m.ct_ratio, b.gateway_id, b.gateway_code FROM meters m "
                         "JOIN meter_bindings b ON b.meter_id = m.id").fetchall() == [(20.0, 20.0, "gw1", "flat-1")]
    # a new CT from a date: a new version, the earlier days keep theirs; imported again: nothing changes
    p.write_text(head + "uk1,h1,ул. Ленина 1,e1,111,electricity,40,1,gw1,flat-1,15.03.2026\n", encoding="utf-8")
    assert import_file(pg_dsn, p).updated == {"meters": 1}
    again = import_file(pg_dsn, p)
    assert again.errors == [] and again.created == {} and again.updated == {}
    with psycopg.connect(pg_dsn) as c:
        assert c.execute("SELECT valid_from, multiplier FROM meter_params ORDER BY valid_from").fetchall() == [
            (date(1, 1, 1), 20.0), (date(2026, 3, 15), 40.0)]
    # a binding the registry cannot make is that row's error, in its column
    p.write_text(head + "uk1,h1,ул. Ленина 1,e2,222,electricity,1,1,gw1,flat-1,\n", encoding="utf-8")
    res = import_file(pg_dsn, p)
    assert [(e.row, e.column) for e in res.errors] == [(2, "meter_id")] and "already uses code" in res.errors[0].reason
    with psycopg.connect(pg_dsn) as c:
        assert c.execute("SELECT count(*) FROM meters WHERE code = 'e2'").fetchone() == (0,)


def test_acts_from_a_file(pg_dsn: str, tmp_path: Path, capsys) -> None:
    reg_csv = tmp_path / "r.csv"
    reg_csv.write_text("org_code,meter_id,serial,resource,tariff_zones,gateway_id\nuk1,e1,111,electricity,2,gw1\n",
                       encoding="utf-8")
    assert import_file(pg_dsn, reg_csv).errors == []
    acts = tmp_path / "acts.csv"
    acts.write_text("Вид акта;Дата и время;Прибор учёта;Конечные T1;Конечные T2;Новый счётчик;Заводской номер нового;"
                    "Ктт нового;Начальные T1;Начальные T2;Номер акта\n"
                    "замена;15.03.2026 10:30;e1;1200,5;300;e1-new;222;5;0,1;0;17\n"
                    "замена;16.03.2026 10:30;e9;1;1;e9-new;999;;0;0;18\n", encoding="utf-8")
    assert askue_main(["headend", "--dsn", pg_dsn, "acts", str(acts)]) == 1
    out = capsys.readouterr()
    assert "recorded 1 of 2 act(s); 0 already recorded; 1 error(s)" in out.out
    assert "row 3, column Прибор учёта: meter 'e9' not found" in out.err
    assert askue_main(["headend", "--dsn", pg_dsn, "acts", str(acts)]) == 1
    assert "recorded 0 of 2 act(s); 1 already recorded" in capsys.readouterr().out
    with psycopg.connect(pg_dsn) as c:
        assert c.execute("SELECT m.code, r.obis, r.value FROM register_readings r JOIN meters m ON m.id = r.meter_id "
                         "ORDER BY 1, 2").fetchall() == [
            ("e1", "1.0.1.8.1.255", 1200.5), ("e1", "1.0.1.8.2.255", 300.0),
            ("e1-new", "1.0.1.8.1.255", 0.1), ("e1-new", "1.0.1.8.2.255", 0.0)]
        assert c.execute("SELECT status, replaced_by_id IS NOT NULL FROM meters WHERE code = 'e1'").fetchone() == (
            "decommissioned", True)
        assert c.execute("SELECT multiplier, installed_at FROM meters WHERE code = 'e1-new'").fetchone() == (
            5.0, date(2026, 3, 15))


async def test_exports_rate_each_day_by_the_multiplier_then_in_force(pg_dsn: str) -> None:
    from askue.headend.billing import exporters
    from askue.headend.billing.formats import xml80020

    conn = await merge_conn(pg_dsn)
    await entities.save(conn, ADMIN, "organisation", "uk8", {"name": "УК 8", "inn": "7707083893"})
    await meters.save(conn, ADMIN, "tp1", {"resource": "electricity", "org": "uk8", "ct_ratio": 20})
    await meters.save(conn, ADMIN, "tp1", {"ct_ratio": 40, "valid_from": "2026-03-11"})
    mid = (await _rows(conn, "SELECT id FROM meters WHERE code = 'tp1'"))[0][0]
    for day in (10, 11):  # every half-hour 0.5 kWh on the meter's own side
        for t, *_ in xml80020.day_slots(date(2026, 3, day), MSK):
            end = t + timedelta(minutes=30)
            await conn.execute("INSERT INTO intervals (meter_id, obis, ts, received_at, value, period_s) "
                               "VALUES (%s, '1.0.1.29.0.255', %s, %s, 0.5, 1800)", (mid, end, end))
    org = await exporters.get_org(conn, "uk8")
    for day, mult in ((10, 20), (11, 40)):
        _, body = await exporters.export_80020(conn, org, date(2026, 3, day), tz=MSK, number=day)
        periods = xml80020.parse(body, tz=MSK).areas[0].points[0].channels[0].periods
        assert {float(p.value) for p in periods} == {0.5 * mult}, day
    prof = await exporters.hourly_profile(conn, "tp1", date(2026, 3, 1), tz=MSK)
    assert (prof.values[(date(2026, 3, 10), 23)], prof.values[(date(2026, 3, 11), 0)]) == (20, 40)
    await conn.close()
