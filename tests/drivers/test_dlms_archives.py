"""Day- and month-start billing profiles (СПОДЭС 1.0.98.2.0.255 / 1.0.98.1.0.255) and the
transformer ratios (1.0.0.4.2.255 / 1.0.0.4.3.255): the driver against the simulator over the
TCP wrapper and HDLC on a pty, and against the object layouts of real СПОДЭС meters.

Golden data: the capture-object lists (attribute 3) of KPZ "M2M" СПОДЭС meters as stored in
the DLMS_SPODES project (PyPI dlms-spodes 0.74.13, test/Types/KPZ/09054d324d5f31/1.6.2.typ for
the single-phase M2M_1, test/Types/KPZ/09054d324d5f33/1.6.2.typ for the three-phase M2M_3).
Their association object lists hold both ratios as class 1 (Data) and the profiles as class 7.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from gurux_dlms import GXByteBuffer, GXDLMSClient
from gurux_dlms.objects import GXDLMSProfileGeneric
from test_dlms_driver import NOW, line, sim_meter, spec

from askue.drivers.base import Kind, get_driver
from askue.drivers.dlms import axdr, cosem
from askue.drivers.dlms.driver import archive_column
from askue.drivers.errors import Unsupported
from askue.drivers.sim.meter import MSK, Faults

# Capture objects of 1.0.98.2.0.255 on a KPZ M2M_1 (single phase): the clock, then per
# quantity (A+, A-, R+, R-) tariffs 1-4 and the total.
KPZ_M2M1_DAILY_COLUMNS = bytes.fromhex(
    "0115020412000809060000010000ff0f02120000"
    + "".join(
        f"020412000309060100{q:02x}08{t:02x}ff0f02120000" for q in (1, 2, 3, 4) for t in (1, 2, 3, 4, 0)
    )
)
# 1.0.98.1.0.255 on a KPZ M2M_3 (three phases): the same 20 registers, then per phase
# (21-24, 41-44, 61-64) A+ A- R+ R- totals, then maximum demand 1.0.1.6.0.255 (class 4).
KPZ_M2M3_MONTHLY_COLUMNS = bytes.fromhex(
    "0122020412000809060000010000ff0f02120000"
    + "".join(
        f"020412000309060100{q:02x}08{t:02x}ff0f02120000" for q in (1, 2, 3, 4) for t in (1, 2, 3, 4, 0)
    )
    + "".join(f"020412000309060100{c:02x}0800ff0f02120000" for c in (21, 22, 23, 24, 41, 42, 43, 44, 61, 62, 63, 64))
    + "020412000409060100010600ff0f02120000"
)


def msk(*a: int) -> datetime:
    return datetime(*a, tzinfo=MSK).astimezone(UTC)


def test_kpz_daily_layout_is_what_the_simulator_serves():
    # The golden bytes above are spelled as a pattern; check them against the literal start
    # and end of the object list as published, then against the simulator's encoding.
    assert KPZ_M2M1_DAILY_COLUMNS.hex().startswith(
        "0115020412000809060000010000ff0f02120000020412000309060100010801ff0f02120000"
    )
    assert KPZ_M2M1_DAILY_COLUMNS.hex().endswith("020412000309060100040800ff0f02120000")
    served = axdr.array(
        [
            axdr.structure(
                axdr.integer(axdr.LONG_UNSIGNED, cosem.CLOCK),
                axdr.octets(cosem.obis_bytes(cosem.CLOCK_OBIS)),
                axdr.integer(axdr.INTEGER, 2),
                axdr.integer(axdr.LONG_UNSIGNED, 0),
            )
        ]
        + [
            axdr.structure(
                axdr.integer(axdr.LONG_UNSIGNED, cosem.REGISTER),
                axdr.octets(cosem.obis_bytes(cosem.energy_obis(q, t))),
                axdr.integer(axdr.INTEGER, 2),
                axdr.integer(axdr.LONG_UNSIGNED, 0),
            )
            for q in cosem.ENERGY_QUANTITIES
            for t in (1, 2, 3, 4, 0)
        ]
    )
    assert served == KPZ_M2M1_DAILY_COLUMNS


def test_columns_kept_from_a_three_phase_monthly_profile():
    """Through gurux's parser, as the driver reads attribute 3: the 32 cumulative registers
    are kept, maximum demand (a demand, not a register reading) is not."""
    client = GXDLMSClient(True)
    pg = GXDLMSProfileGeneric(cosem.MONTHLY_PROFILE_OBIS)
    client.updateValue(pg, 3, GXDLMSClient.getValue(GXByteBuffer(KPZ_M2M3_MONTHLY_COLUMNS), False))
    columns = [(obj.logicalName, int(obj.objectType)) for obj, _co in pg.captureObjects]
    assert len(columns) == 34 and columns[0] == (cosem.CLOCK_OBIS, cosem.CLOCK)
    kept = [ln for ln, ot in columns[1:] if archive_column(ln, ot)]
    assert len(kept) == 32 and "1.0.1.6.0.255" not in kept
    assert kept[:5] == ["1.0.1.8.1.255", "1.0.1.8.2.255", "1.0.1.8.3.255", "1.0.1.8.4.255", "1.0.1.8.0.255"]
    assert kept[-1] == "1.0.64.8.0.255"


@pytest.fixture(params=["tcp", "pty"])
def kind(request) -> str:
    return request.param


async def test_day_starts_by_range(kind, tmp_path):
    m = sim_meter(history_days=5)
    start, end = msk(2026, 11, 7), msk(2026, 11, 10)  # start included, end excluded
    async with line(kind, {17: m}, tmp_path) as t:
        d = get_driver("dlms")(t, spec())
        await d.connect()
        got = await d.read_archive("day_start", start, end)
        late = await d.read_archive("day_start", end, NOW + timedelta(days=1))
        await d.close()
    assert sorted({r.meter_time for r in got}) == [msk(2026, 11, 7), msk(2026, 11, 8), msk(2026, 11, 9)]
    assert {r.meter_time for r in late} == {msk(2026, 11, 10)}
    assert all(r.kind == Kind.REGISTER and r.archive == "day_start" for r in got + late)
    by = {(r.obis, r.meter_time): r for r in got + late}
    assert len(by) == len(got + late) == 4 * 20
    for (obis, when), r in by.items():
        regs = m.registers(when)
        if obis.startswith("1.0.1.8."):
            assert r.value == pytest.approx(regs.get(int(obis.split(".")[4]), 0.0), abs=1e-9) and r.unit == "kWh"
        if obis == "1.0.3.8.0.255":
            assert r.value == pytest.approx(round(regs[0] * 0.25, 3)) and r.unit == "kvarh"
    # What arrived is exactly what the meter put on the line.
    record = {(o, t): v for k, o, t, v in m.served if k == "register"}
    assert {(r.obis, r.meter_time): r.value for r in got + late} == record


async def test_month_starts_and_the_ring_depth(tmp_path):
    m = sim_meter(history_days=100, options={"month_archive_depth": 2, "day_archive_depth": 10})
    async with line("tcp", {17: m}, tmp_path) as t:
        d = get_driver("dlms")(t, spec())
        await d.connect()
        months = await d.read_archive("month_start", NOW - timedelta(days=120), NOW)
        days = await d.read_archive("day_start", NOW - timedelta(days=30), NOW)
        await d.close()
    # The meter keeps 2 months and 10 days: older boundaries were overwritten in its ring.
    assert sorted({r.meter_time for r in months}) == [msk(2026, 10, 1), msk(2026, 11, 1)]
    assert sorted({r.meter_time for r in days})[0] == msk(2026, 11, 1)
    assert len({r.meter_time for r in days}) == 10
    oct1 = {r.obis: r.value for r in months if r.meter_time == msk(2026, 10, 1)}
    assert oct1["1.0.1.8.0.255"] == pytest.approx(m.registers(msk(2026, 10, 1))[0], abs=1e-9)


async def test_boundaries_follow_the_meter_clock(tmp_path):
    """A meter whose clock runs 2 min fast captured its day start 2 min early in real time:
    the value is the register then, stamped 00:00 meter time."""
    m = sim_meter(history_days=3, faults=Faults(clock_jump_at=NOW - timedelta(days=10), clock_jump_s=120.0))
    async with line("tcp", {17: m}, tmp_path) as t:
        d = get_driver("dlms")(t, spec())
        await d.connect()
        got = await d.read_archive("day_start", msk(2026, 11, 10), NOW + timedelta(hours=1))
        await d.close()
    a_plus = [r for r in got if r.obis == "1.0.1.8.0.255"]
    assert [r.meter_time for r in a_plus] == [msk(2026, 11, 10)]
    assert a_plus[0].value == pytest.approx(m.registers(msk(2026, 11, 10) - timedelta(minutes=2))[0], abs=1e-9)


async def test_ratios_on_connect(kind, tmp_path):
    m = sim_meter(options={"ct_ratio": 40, "vt_ratio": 100})
    async with line(kind, {17: m}, tmp_path) as t:
        d = get_driver("dlms")(t, spec())
        ident = await d.connect()
        await d.close()
    assert (ident.ct_ratio, ident.vt_ratio) == (40.0, 100.0)


async def test_ratios_missing_unset_or_not_readable(tmp_path):
    async with line("tcp", {17: sim_meter(options={"ct_ratio": None, "vt_ratio": 0})}, tmp_path) as t:
        ident = await get_driver("dlms")(t, spec()).connect()
    assert (ident.ct_ratio, ident.vt_ratio) == (None, None)  # no such object; 0 = not programmed
    async with line("tcp", {17: sim_meter(options={"ct_ratio": 40})}, tmp_path) as t:
        ident = await get_driver("dlms")(t, spec(password=None)).connect()
    assert ident.ct_ratio is None  # the public client may not read it


async def test_ratios_are_read_once_an_hour_not_every_poll(tmp_path):
    m = sim_meter(options={"ct_ratio": 40, "vt_ratio": 1})
    async with line("tcp", {17: m}, tmp_path) as t:
        d = get_driver("dlms")(t, spec())
        sent: list[bytes] = []
        write = t.write

        async def spy(data: bytes) -> None:
            sent.append(data)
            await write(data)

        t.write = spy  # type: ignore[method-assign]
        for _ in range(3):
            assert (await d.connect()).ct_ratio == 40.0
            await d.close()
    ratio_gets = [f for f in sent if cosem.obis_bytes(cosem.CT_RATIO_OBIS) in f]
    assert len(ratio_gets) == 1


async def test_meter_without_billing_profiles_is_unsupported(tmp_path):
    """A model without the daily profile answers object-undefined; the driver says so as
    Unsupported (the gateway then stops asking that meter for it)."""
    m = sim_meter(options={"billing_profiles": False})
    async with line("tcp", {17: m}, tmp_path) as t:
        d = get_driver("dlms")(t, spec())
        await d.connect()
        with pytest.raises(Unsupported, match="no billing profile 1.0.98.2.0.255"):
            await d.read_archive("day_start", NOW - timedelta(days=1), NOW)
        with pytest.raises(Unsupported, match="unknown archive"):
            await d.read_archive("week_start", NOW - timedelta(days=1), NOW)
        assert await d.read_registers()  # the session is still good
        await d.close()
