"""M-Bus frames, record decoding and OBIS mapping against published telegrams.

Golden RSP_UD telegrams are real meter answers from the libmbus test set
(rscada/libmbus, test/test-frames/EFE_Engelmann-WaterStar.hex and ZRM_Minol-Minocal-C2.hex);
the expected values come from that project's decoded reference files (*.norm.xml next to
them). Short frames: EN 13757-2 link layer as described at m-bus.com ("The M-Bus: A
Documentation", chapter 5): SND_NKE = 10 40 A CS 16, REQ_UD2 = 10 5B/7B A CS 16.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from askue.drivers.base import Kind
from askue.drivers.errors import DriverError, FrameError, ProtocolError, Unsupported
from askue.drivers.mbus import encode, obis
from askue.drivers.mbus import frames as f
from askue.drivers.mbus.records import decode_records
from askue.drivers.mbus.simulator import MBusSession
from askue.drivers.sim.meter import SimMeter

MSK = timezone(timedelta(hours=3))

WATERSTAR = bytes.fromhex(
    "68 51 51 68 08 0B 72 54 02 99 04 C5 14 00 06 0C 27 00 00 04 78 2E 25 4C 00 04 6D 0A 0C CD 13 04 13 4C 01 00 00"
    " 44 13 4B 01 00 00 84 01 13 4C 01 00 00 42 6C BF 1C 02 6C DF 1C 04 3B 00 00 00 00 14 3B 16 08 00 00 02 23 A7 04"
    " 01 FD 17 00 04 90 28 08 00 00 00 3F 16")
MINOCAL = bytes.fromhex(
    "68 EF EF 68 08 02 72 84 50 42 31 4D 6A 81 04 73 27 00 00 04 06 03 00 00 00 02 FD 17 00 00 84 04 6D 00 00 E1 11"
    " 84 04 06 03 00 00 00 84 05 06 03 00 00 00 04 13 4A 00 00 00 04 3B 00 00 00 00 54 3B 2B 00 00 00 54 6D 1E 08 61"
    " 19 04 2D 00 00 00 00 94 01 2D 14 00 00 00 94 01 6D 1E 08 61 19 02 59 17 08 02 5D F6 07 04 6D 2D 0C CD 13 82 80"
    " 01 6C C1 13 84 80 01 06 03 00 00 00 C2 80 01 6C C1 12 C4 80 01 06 03 00 00 00 82 81 01 6C C1 11 84 81 01 06 03"
    " 00 00 00 C2 81 01 6C A1 1C C4 81 01 06 03 00 00 00 82 82 01 6C A1 1B 84 82 01 06 03 00 00 00 C2 82 01 6C A1 1A"
    " C4 82 01 06 03 00 00 00 82 83 01 6C A1 19 84 83 01 06 03 00 00 00 C2 83 01 6C A1 18 C4 83 01 06 03 00 00 00 92"
    " 80 01 6C C1 13 94 80 01 3B 00 00 00 00 94 80 01 2D 00 00 00 00 8F 16")


def test_short_frames():
    assert f.snd_nke(1) == bytes.fromhex("10 40 01 41 16")
    assert f.req_ud2(1) == bytes.fromhex("10 5B 01 5C 16")
    assert f.req_ud2(1, fcb=True) == bytes.fromhex("10 7B 01 7C 16")
    assert f.parse_frame(bytes.fromhex("10 5B FE 59 16")) == f.Frame("short", 0x5B, 0xFE)
    assert f.parse_frame(b"\xe5").kind == "ack"
    with pytest.raises(ValueError, match="primary address"):
        f.req_ud2(251)


def test_waterstar_header_and_records():
    tel = f.decode_rsp_ud(WATERSTAR)
    h = tel.header
    assert (h.ident, h.manufacturer, h.version, h.medium, h.access, h.status) == ("04990254", "EFE", 0, 6, 12, 0x27)
    assert tel.address == 0x0B
    assert tel.records[0].quantity == "fabrication_number" and tel.records[0].value == 4990254
    assert tel.records[1].value == datetime(2014, 3, 13, 12, 10)
    assert tel.records[2].value == pytest.approx(0.332) and tel.records[2].unit == "m3"
    assert tel.records[3].storage == 1 and tel.records[3].value == pytest.approx(0.331)
    assert tel.records[-1].extensions == ("per_input_pulse",)  # 0.000008 m3 per pulse, not a register


def test_waterstar_maps_to_hot_water_obis():
    rs = {r.obis: r for r in obis.readings(f.decode_rsp_ud(WATERSTAR), MSK)}
    assert set(rs) == {"9.0.1.0.0.255", "9.0.2.0.0.255"}
    vol = rs["9.0.1.0.0.255"]
    assert (vol.kind, vol.value, vol.unit) == (Kind.REGISTER, 0.332, "m3")  # storage 0, not the per-pulse record
    assert vol.meter_time == datetime(2014, 3, 13, 9, 10, tzinfo=UTC)  # 12:10 MSK
    assert rs["9.0.2.0.0.255"].value == 0.0


def test_minocal_heat_meter_maps_to_heat_obis():
    tel = f.decode_rsp_ud(MINOCAL)
    assert (tel.header.ident, tel.header.manufacturer, tel.header.medium) == ("31425084", "ZRM", 0x04)
    rs = {r.obis: r.value for r in obis.readings(tel, MSK)}
    assert rs["6.0.1.0.0.255"] == pytest.approx(3000 * 3.6e-6)  # 3000 Wh in GJ
    assert rs["6.0.2.0.0.255"] == pytest.approx(0.074)
    assert rs["6.0.8.0.0.255"] == 0.0 and rs["6.0.9.0.0.255"] == 0.0
    assert rs["6.0.10.0.0.255"] == pytest.approx(20.71)
    assert rs["6.0.11.0.0.255"] == pytest.approx(20.38)
    # The maximum flow (function MAXIMUM_VALUE, storage 1) must not replace the current one.
    assert obis.meter_time(tel, MSK) == datetime(2014, 3, 13, 9, 45, tzinfo=UTC)


def test_medium_override_and_unknown_medium():
    tel = f.decode_rsp_ud(WATERSTAR)
    assert {r.obis for r in obis.readings(tel, MSK, "cold_water")} == {"8.0.1.0.0.255", "8.0.2.0.0.255"}
    gas = f.long_frame(8, 1, 0x72, f.encode_header(f.Header("00000001", "ASK", 1, 0x03, 0, 0)))
    with pytest.raises(Unsupported, match="medium"):
        obis.readings(f.decode_rsp_ud(gas), MSK)


def _date(data: bytes):
    (rec,) = decode_records(data).records
    return rec.value


def test_datetime_type_f_roundtrip():
    t = datetime(2026, 11, 22, 23, 59)
    assert _date(encode.datetime_record(t)) == t
    assert _date(bytes.fromhex("04 6D 0A 0C CD 13")) == datetime(2014, 3, 13, 12, 10)  # from WaterStar
    assert _date(bytes.fromhex("04 6D 8A 0C CD 13")) is None  # invalid bit
    assert decode_records(encode.datetime_record(t, invalid=True)).records[0].flags == ("time_invalid",)


def test_damaged_frames_are_typed():
    bad = bytearray(WATERSTAR)
    bad[-2] ^= 0xFF
    with pytest.raises(FrameError, match="checksum"):
        f.decode_rsp_ud(bytes(bad))
    with pytest.raises(FrameError, match="stop"):
        f.decode_rsp_ud(WATERSTAR[:-1] + b"\x00")
    with pytest.raises(FrameError, match="truncated"):
        f.decode_rsp_ud(WATERSTAR[:40])
    with pytest.raises(ProtocolError, match="RSP_UD"):
        f.decode_rsp_ud(f.snd_nke(1))
    # A record cut short inside an intact frame is an error, not a silently missing value.
    cut = f.long_frame(8, 1, 0x72, WATERSTAR[7:-2][:12] + bytes.fromhex("04 13 4C 01"))
    with pytest.raises(FrameError, match="record"):
        f.decode_rsp_ud(cut)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80))
def test_fuzzed_user_data_gives_typed_errors(data):
    frame = f.long_frame(8, 1, 0x72, data[:250])
    try:
        tel = f.decode_rsp_ud(frame)
        obis.readings(tel, MSK, "heat")
    except DriverError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=300))
def test_fuzzed_raw_bytes_give_typed_errors(data):
    try:
        f.decode_rsp_ud(data)
    except DriverError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(WATERSTAR) - 1), st.integers(1, 255))
def test_single_byte_corruption_is_detected(pos, flip):
    bad = bytearray(WATERSTAR)
    bad[pos] ^= flip
    try:
        tel = f.decode_rsp_ud(bytes(bad))
    except DriverError:
        return
    # Only a change that keeps length, checksum and stop byte consistent can pass, which a
    # single flipped byte never does.
    raise AssertionError(f"corruption at {pos} went unnoticed: {tel}")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=20), max_size=6))
def test_simulator_survives_fuzzed_requests(chunks):
    s = MBusSession({1: SimMeter(id="w", serial="12345678", resource="cold_water")})
    for c in chunks:
        for reply in s.feed(c):
            assert reply.data == b"\xe5" or f.decode_rsp_ud(reply.data).address == 1


def test_simulator_resyncs_after_noise_and_ignores_other_addresses():
    s = MBusSession({1: SimMeter(id="w", serial="12345678", resource="cold_water")})
    assert [r.data for r in s.feed(b"\x00\xff" + f.snd_nke(1))] == [b"\xe5"]
    assert s.feed(f.snd_nke(2)) == [] and s.feed(f.short_frame(f.C_REQ_UD2, f.BROADCAST_NO_REPLY)) == []
    (reply,) = s.feed(f.req_ud2(f.BROADCAST_REPLY))
    assert f.decode_rsp_ud(reply.data).header.medium == 0x16


def test_simulator_fcb_repeat_and_multi_telegram_readout():
    m = SimMeter(id="h", serial="12345678", resource="heat", mean_power=0.02, options={"records_per_telegram": 4})
    s = MBusSession({3: m})
    assert s.feed(f.snd_nke(3))[0].data == b"\xe5"
    (a,) = s.feed(f.req_ud2(3, fcb=False))
    (again,) = s.feed(f.req_ud2(3, fcb=False))
    assert again.data == a.data  # same FCB: the slave repeats, the master lost the answer
    (b,) = s.feed(f.req_ud2(3, fcb=True))
    (c,) = s.feed(f.req_ud2(3, fcb=False))
    ta, tb, tc = (f.decode_rsp_ud(x.data) for x in (a, b, c))
    assert (ta.more, tb.more, tc.more) == (True, True, False)
    assert [t.header.access for t in (ta, tb, tc)] == [0, 1, 2]
    assert sum(len(t.records) for t in (ta, tb, tc)) == 9
    assert len([x for x in m.served if x[0] in ("register", "instant")]) == 7  # each value recorded once
    # After SND_NKE any FCB starts a new readout.
    s.feed(f.snd_nke(3))
    (d,) = s.feed(f.req_ud2(3, fcb=True))
    assert f.decode_rsp_ud(d.data).header.access == 3


# ---- record decoder details not in the golden corpus (EN 13757-3 tables) ----------------------

@pytest.mark.parametrize(("vib", "raw", "quantity", "unit", "value"), [
    ("fb 01", 7, "energy", "Wh", 7e6),  # FB 01: 1 MWh
    ("fb 08", 12, "energy", "J", 1.2e9),  # FB 08: 0.1 GJ
    ("fb 09", 3, "energy", "J", 3e9),  # FB 09: 1 GJ
    ("fb 11", 2, "volume", "m3", 2000.0),  # FB 11: 1000 m3
    ("fb 29", 5, "power", "W", 5e6),  # FB 29: 1 MW
    ("fd 48", 2301, "voltage", "V", 230.1),  # FD 4n: 10^(n-9) V
    ("fd 59", 1500, "current", "A", 1.5),  # FD 59: 10^(9-12) A
    ("fd 6d", 3, "battery_operating_time", "s", 3 * 86400),  # FD 6D: days
    ("fd 6e", 14, "battery_operating_time", "month", 14),
    ("22", 5, "on_time", "s", 5 * 3600),  # 0x22: hours
    ("93 7d", 2, "volume", "m3", 2.0),  # VIFE 0x7D: x 10^3 applied (10^-3 m3 x 1000)
    ("93 75", 1234, "volume", "m3", 1234e-4),  # E111 0nnn: x 10^(5-6)
])
def test_extension_tables_and_corrections(vib, raw, quantity, unit, value):
    (rec,) = decode_records(encode.int_record(bytes.fromhex(vib), raw)).records
    assert (rec.quantity, rec.unit) == (quantity, unit)
    assert rec.value == pytest.approx(value)


@pytest.mark.parametrize(("data", "value"), [
    ("0D 13 C2 34 12", 1234 * 1e-3),  # LVAR 0xC2: positive BCD, 4 digits
    ("0D 13 D2 34 12", -1234 * 1e-3),  # LVAR 0xD2: negative BCD
    ("0D 13 E3 01 02 03", 0x030201 * 1e-3),  # LVAR 0xE3: 3-byte binary number
    ("0A 13 34 F2", -234 * 1e-3),  # BCD with F in the most significant digit: negative
    ("0D FD 11 03 43 42 41", "ABC"),  # LVAR text, last character first
])
def test_variable_length_and_bcd_values(data, value):
    (rec,) = decode_records(bytes.fromhex(data)).records
    assert rec.value == (pytest.approx(value) if isinstance(value, float) else value)


def test_dates_types_g_i_j_and_flags():
    from datetime import date, time

    (g,) = decode_records(bytes.fromhex("02 6C BF 1C")).records  # WaterStar: 31.12.2013
    assert g.value == date(2013, 12, 31)
    (i,) = decode_records(bytes.fromhex("06 6D 00 00 08 16 27 00")).records  # Landis+Gyr G350
    assert i.value == datetime(2016, 7, 22, 8, 0)
    (iv,) = decode_records(bytes.fromhex("06 6D 00 80 08 16 27 00")).records
    assert (iv.value, iv.flags) == (None, ("time_invalid",))
    (j,) = decode_records(bytes.fromhex("03 6D 05 1E 17")).records
    assert j.value == time(23, 30, 5)
    (zero,) = decode_records(bytes.fromhex("02 6C 00 00")).records  # not set
    assert (zero.value, zero.flags) == (None, ("date_invalid",))
    (bcd,) = decode_records(bytes.fromhex("0C 13 BD EB DD DD")).records  # digits A-F
    assert (bcd.value, bcd.flags) == (None, ("bcd_invalid",))


def test_storage_tariff_subunit_across_difes():
    rec_bytes = encode.int_record(encode.VOLUME_L, 5, storage=37, tariff=6, subunit=3)
    (rec,) = decode_records(rec_bytes).records
    assert (rec.storage, rec.tariff, rec.subunit) == (37, 6, 3)


@pytest.mark.parametrize(("data", "match"), [
    ("04 13 01 02", "ends inside its data"),  # 4-byte integer, 2 bytes left
    ("0D 13 F7 00", "reserved LVAR"),
    ("84 80 80 80 80 80 80 80 80 80 80 00 13 00 00 00 00", "more than 10 DIFEs"),
    ("04 93 80 80 80 80 80 80 80 80 80 80 00 00 00 00 00", "more than 10 VIFEs"),
    ("0D 7C 05 41 42", "ends inside its plain-text VIF"),
])
def test_records_that_cannot_be_delimited_are_frame_errors(data, match):
    with pytest.raises(FrameError, match=match):
        decode_records(bytes.fromhex(data))


def test_reserved_codes_skip_a_record_or_the_rest():
    d = decode_records(bytes.fromhex("04 6F 01 00 00 00 04 13 02 00 00 00 04 FD 7A 00 00 00 00 04 13 03 00 00 00"))
    assert [r.value for r in d.records] == [0.002, 0.003]  # reserved VIF 0x6F and FD 0x7A skipped
    assert [s.index for s in d.skipped] == [0, 2]
    d = decode_records(bytes.fromhex("04 13 02 00 00 00 3F 01 02 03"))  # reserved special function
    assert [r.value for r in d.records] == [0.002] and "remaining 4 bytes" in d.skipped[0].reason
