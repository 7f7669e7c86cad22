"""Меркурий 230/234 frames against recorded golden exchanges and public descriptions, plus
fuzzing of the parsers.

Golden frames: wirenboard/wb-mqtt-serial, test/TEMDeviceTest.Mercury230ReadEnergy.dat,
test/TEMDeviceTest.Mercury230ReadParams.dat and test/TEMDeviceTest.Mercury230Exception.dat
(frames exchanged with a Mercury 230 at the universal address 0; the expected values
3196200, 300444, 24128, 69, 24043 and 553095 are asserted in that project's test/em_test.cpp).
Protocol facts: Incotex, "Протокол обмена трёхфазных счётчиков Меркурий ... 230, 231, 234"
(https://www.incotexcom.ru/support/docs/protocol).

The reads added for the meter's memory (profile, journals, day/month archives, ratios,
variant) have no public capture: each test names the public reader or emulator whose byte
layout (and, where it has one, recorded answer) it checks — lapinpavell/mercury234-emul
(answers of a Меркурий 234 in parameters.json/data.json), devices-reader/device_2,
Prizmer/tu_mercury23X, GreezXII/Mercury230Configurator.
"""
from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from askue.drivers.base import MeterSpec, get_driver
from askue.drivers.errors import AuthError, DriverError, FrameError, ProtocolError
from askue.drivers.mercury import archives, journals, params
from askue.drivers.mercury import frames as f
from askue.drivers.mercury import profile as prof
from askue.drivers.mercury.simulator import MercurySession, numeric_serial
from askue.drivers.sim.meter import SimMeter
from askue.drivers.transport import Transport


def h(s: str) -> bytes:
    return bytes.fromhex(s)


# ---- golden requests -----------------------------------------------------------------------
def test_open_channel_request_matches_recorded_frame():
    assert f.open_request(0, 1, "111111") == h("00 01 01 01 01 01 01 01 01 77 81")


def test_energy_request_matches_recorded_frame():
    assert f.energy_request(0, f.Array.FROM_RESET, 0, 0) == h("00 05 00 00 10 25")


@pytest.mark.parametrize("bwri,frame", [
    (0x11, "00 08 11 11 4D BA"), (0x21, "00 08 11 21 4D AE"), (0x12, "00 08 11 12 0D BB"), (0x00, "00 08 11 00 8D B6"),
])
def test_aux_requests_match_recorded_frames(bwri, frame):
    assert f.aux_request(0, bwri) == h(frame)


# ---- golden replies ------------------------------------------------------------------------
def test_status_ok_reply():
    assert f.check_reply(h("00 00 01 B0"), 0, f.STATUS_LEN, "open channel") == b"\x00"


def test_energy_reply_decodes_to_documented_values():
    data = f.check_reply(h("00 30 00 28 C5 FF FF FF FF 04 00 9C 95 FF FF FF FF 44 AB"), 0, f.ENERGY_LEN, "energy")
    values = [f.decode_u32(data[i:i + 4]) for i in (0, 4, 8, 12)]
    assert values == [3196200, None, 300444, None]  # A+ Wh, A- not measured, R+ varh, R- not measured


@pytest.mark.parametrize("frame,raw", [
    ("00 00 40 5E B0 1C", 24128), ("00 00 45 00 32 B4", 69), ("00 00 EB 5D 8F 2D", 24043), ("00 48 87 70 E2 26", 553095),
])
def test_aux_replies_decode_to_documented_values(frame, raw):
    assert f.decode_u24(f.check_reply(h(frame), 0, f.AUX_ONE_LEN, "param")).raw == raw


def test_power_direction_bits():
    v = f.decode_u24(h("48 87 70"))
    assert (v.active_negative, v.reactive_negative) == (False, True)
    assert f.encode_u24(v.raw, v.active_negative, v.reactive_negative) == h("48 87 70")


def test_internal_error_status_reply_is_typed():
    with pytest.raises(f.MercuryStatusError) as e:
        f.check_reply(h("00 02 80 71"), 0, f.AUX_ONE_LEN, "read U2")
    assert e.value.status == 2 and "internal counter error" in str(e.value)


@pytest.mark.parametrize("status,typ", [(1, f.MercuryStatusError), (2, f.MercuryStatusError), (3, AuthError),
                                        (4, f.MercuryStatusError), (5, f.MercuryChannelClosed)])
def test_every_documented_status_has_a_typed_error(status, typ):
    with pytest.raises(typ):
        f.check_reply(f.status_reply(7, status), 7, f.ENERGY_LEN, "energy")


def test_refused_open_channel_is_an_auth_error():
    with pytest.raises(AuthError):
        f.check_reply(f.status_reply(7, 1), 7, f.STATUS_LEN, "open", opening=True)


def test_crc_error_and_foreign_address_are_frame_errors():
    bad = bytearray(h("00 30 00 28 C5 FF FF FF FF 04 00 9C 95 FF FF FF FF 44 AB"))
    bad[-1] ^= 0x5A
    with pytest.raises(FrameError, match="CRC"):
        f.check_reply(bytes(bad), 0, f.ENERGY_LEN, "energy")
    with pytest.raises(FrameError, match="address"):
        f.check_reply(f.status_reply(3), 4, f.STATUS_LEN, "test")


# ---- codecs --------------------------------------------------------------------------------
def test_time_roundtrip_and_bcd_check():
    t = datetime(2026, 11, 22, 23, 59, 7)
    enc = f.encode_time(t)
    assert enc == h("07 59 23 07 22 11 26 01")  # Sunday = 7, winter flag set
    assert f.decode_time(enc).local == t
    with pytest.raises(ProtocolError, match="BCD"):
        f.decode_time(h("0A 00 00 01 01 01 26 01"))
    with pytest.raises(ProtocolError, match="invalid date"):
        f.decode_time(h("00 00 00 01 31 02 26 01"))


def test_serial_roundtrip():
    data = f.encode_serial("03328747", date(2019, 5, 17))
    assert data == bytes([3, 32, 87, 47, 17, 5, 19])
    assert f.decode_serial(data) == ("03328747", date(2019, 5, 17))
    with pytest.raises(ProtocolError):
        f.decode_serial(bytes([3, 132, 87, 47, 17, 5, 19]))


def test_password_validation():
    assert f.password_bytes("123456", 1) == bytes([1, 2, 3, 4, 5, 6])
    assert f.password_bytes(None, 2) == bytes([2] * 6)
    with pytest.raises(ValueError, match="6 digits"):
        f.password_bytes("12345", 1)
    with pytest.raises(ValueError, match="access level"):
        f.open_request(1, 3, "111111")


def test_numeric_serial_for_replaced_meter():
    assert numeric_serial("12345678") == "12345678"
    assert numeric_serial("12345678R") == "12345679"


# ---- fuzzing: typed error, never anything else -------------------------------------------------
@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=40), st.sampled_from([f.STATUS_LEN, f.ENERGY_LEN, f.TIME_LEN, f.SERIAL_LEN, f.AUX_ONE_LEN]))
def test_fuzzed_replies_give_typed_errors(frame, expect_len):
    try:
        data = f.check_reply(frame, frame[0] if frame else 1, expect_len, "fuzz")
    except DriverError:
        return
    if expect_len == f.TIME_LEN:
        try:
            f.decode_time(data)
        except ProtocolError:
            pass
    elif expect_len == f.SERIAL_LEN:
        try:
            f.decode_serial(data)
        except ProtocolError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=24), max_size=6))
def test_simulator_survives_fuzzed_requests(chunks):
    session = MercurySession({1: SimMeter(id="m1", serial="00000001", password="111111")})
    for c in chunks:
        for reply in session.feed(c):
            assert f.crc_ok(reply.data)


def test_simulator_status_codes():
    m = SimMeter(id="m1", serial="12345678", password="111111")
    s = MercurySession({5: m})
    assert s.feed(f.energy_request(5))[0].data == f.status_reply(5, 5)  # channel not open
    assert s.feed(f.open_request(5, 1, "654321"))[0].data == f.status_reply(5, 1)  # wrong password
    assert s.feed(f.open_request(5, 1, "111111"))[0].data == f.status_reply(5, 0)
    # Level 1 cannot set the time; a correction beyond 4 minutes is an invalid parameter.
    assert s.feed(f.set_time_request(5, datetime(2026, 1, 1, 12)))[0].data == f.status_reply(5, 3)
    far = (m.clock().astimezone(m.local_tz) + timedelta(minutes=10)).replace(tzinfo=None)
    assert s.feed(f.correct_time_request(5, far))[0].data == f.status_reply(5, 1)
    assert s.feed(f.energy_request(5, f.Array.MONTH, 3, 0))[0].data == f.status_reply(5, 1)
    assert s.feed(f.energy_request(6)) == []  # nobody at address 6
    # Split delivery of one request still gets one answer.
    req = f.time_request(5)
    assert s.feed(req[:2]) == [] and len(s.feed(req[2:])[0].data) == f.TIME_LEN


def test_aux_block_reply_lengths():
    # Block reads 0x08 0x16: powers and cos phi give sum + 3 phases (15-byte answer), U and I
    # the 3 phases (12 bytes) - as read by psxbox/Psxbox.Protocols Psxbox.Mercury/Mercury230Reader.cs.
    assert [f.aux_reply_len(b, True) for b in (0x00, 0x04, 0x08, 0x30, 0x11, 0x21)] == [15, 15, 15, 15, 12, 12]
    assert f.aux_reply_len(0x11, False) == f.AUX_ONE_LEN == 6


def test_simulator_aux_block_reply_lengths():
    m = SimMeter(id="m1", serial="12345678", password="111111")
    s = MercurySession({5: m})
    s.feed(f.open_request(5, 1, "111111"))
    for bwri in (0x00, 0x11, 0x21, 0x30, 0x40):
        (reply,) = s.feed(f.aux_request(5, bwri, block=True))
        assert len(reply.data) == f.aux_reply_len(bwri, True)
    (reply,) = s.feed(f.aux_request(5, 0x11, block=True))
    volts = [f.decode_u24(reply.data[1 + 3 * i:4 + 3 * i]).raw / 100 for i in range(3)]
    assert all(220 <= v <= 240 for v in volts)


# ---- wb-mqtt-serial captures not covered above ----------------------------------------------
# wirenboard/wb-mqtt-serial test/TMercury230Test.ReadEnergy.dat (second answer) and
# TMercury230Test.ReadParams.dat; the values are the ones test/mercury230_test.cpp asserts.
def test_second_energy_reply_of_the_capture():
    data = f.check_reply(h("00 30 00 29 C5 FF FF FF FF 04 00 9D 95 FF FF FF FF 45 BB"), 0, f.ENERGY_LEN, "energy")
    assert [f.decode_u32(data[i:i + 4]) for i in (0, 4, 8, 12)] == [3196201, None, 300445, None]


@pytest.mark.parametrize("bwri,req,reply,raw", [
    (0x22, "00 08 11 22 0D AF", "00 00 60 00 28 24", 96),  # I2
    (0x13, "00 08 11 13 CC 7B", "00 00 E5 C4 4B 27", 50405),  # U3
])
def test_more_aux_exchanges_of_the_capture(bwri, req, reply, raw):
    assert f.aux_request(0, bwri) == h(req)
    assert f.decode_u24(f.check_reply(h(reply), 0, f.AUX_ONE_LEN, "param")).raw == raw


def test_level_2_open_with_a_custom_password_matches_the_capture():
    # TMercury230CustomPasswordTest.Test.dat: access level 2, password bytes 12 13 14 15 16 17.
    assert f.open_request(0, 2, bytes.fromhex("12 13 14 15 16 17")) == h("00 01 02 12 13 14 15 16 17 34 17")


def test_channel_not_open_status_of_the_capture():
    # TMercury230Test.Reconnect.dat: the meter answers 00 05 C1 B3 ("channel not open").
    with pytest.raises(f.MercuryChannelClosed):
        f.check_reply(h("00 05 C1 B3"), 0, f.AUX_ONE_LEN, "read U2")


class ScriptedLine(Transport):
    """A line that plays a recorded exchange: each request must be the recorded bytes."""

    def __init__(self, script: list[tuple[str, str]]):
        super().__init__()
        self.script = [(h(a), h(b)) for a, b in script]

    async def open(self) -> None:
        self._reader = asyncio.StreamReader()
        self._writer = _ScriptWriter(self)  # type: ignore[assignment]


class _ScriptWriter:
    def __init__(self, line: ScriptedLine):
        self.line = line

    def write(self, data: bytes) -> None:
        want, reply = self.line.script.pop(0)
        assert data == want, f"sent {data.hex(' ')}, the capture has {want.hex(' ')}"
        self.line._reader.feed_data(reply)  # type: ignore[union-attr]

    async def drain(self) -> None:
        return None

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        return None

    async def wait_closed(self) -> None:
        return None


async def test_driver_replays_the_reconnect_capture_byte_for_byte():
    # TMercury230Test.Reconnect.dat: open, U2 refused with "channel not open", open again, U2.
    line = ScriptedLine([
        ("00 01 01 01 01 01 01 01 01 77 81", "00 00 01 B0"),
        ("00 08 11 12 0D BB", "00 05 C1 B3"),
        ("00 01 01 01 01 01 01 01 01 77 81", "00 00 01 B0"),
        ("00 08 11 12 0D BB", "00 00 EB 5D 8F 2D"),
    ])
    drv = get_driver("mercury")(line, MeterSpec(id="wb", driver="mercury", address=0, password="111111"))
    await drv._open_channel()
    data = await drv._read(f.aux_request(0, 0x12), f.AUX_ONE_LEN, "read U2")
    assert f.decode_u24(data).raw == 24043 and not line.script


# ---- transformer ratios, variant (08 02, 08 12) -----------------------------------------------
def test_ratios_answer_of_a_mercury_234():
    # lapinpavell/mercury234-emul parameters.json, code 0x02: "0x00010001", "two binary bytes
    # for Kn and two binary bytes for Kt".
    assert params.decode_ratios(h("00 01 00 01")) == params.Ratios(vt=1, ct=1)
    # devices-reader/device_2 get_koeffs.pas reads kU then kI, each PopByte*$100 + PopByte.
    assert params.decode_ratios(h("00 3C 01 90")) == params.Ratios(vt=60, ct=400)
    assert params.encode_ratios(60, 400) == h("00 3C 01 90")
    assert params.ratios_request(7) == f.with_crc(h("07 08 02"))
    with pytest.raises(ProtocolError, match="4 data bytes"):
        params.decode_ratios(h("00 01 00"))


def test_variant_answer_of_a_mercury_234():
    # lapinpavell/mercury234-emul parameters.json, code 0x12: "0xB4E3C297DF58" (6 bytes). The
    # second byte E3: bit 5 set (power profile kept), constant code 3 = 500 impulses per kWh
    # (Prizmer/tu_mercury23X Mercury23XDriver.cs ReadVariantExecute).
    v = params.decode_variant(h("B4 E3 C2 97 DF 58"))
    assert (v.constant, v.keeps_profile) == (500, True)
    assert params.decode_variant(h("00 04 00")).constant == 1000  # a 3-byte (older firmware) answer
    assert params.decode_variant(h("00 C4 00")).keeps_profile is False
    assert params.decode_variant(params.encode_variant(1250)) == params.Variant(1250, True, h("00 22 00 00 00 00"))
    with pytest.raises(ProtocolError, match="3 or 6"):
        params.decode_variant(h("00 04"))


# ---- power profile (08 13, 06) ---------------------------------------------------------------
def test_last_record_answer_of_a_mercury_234():
    # lapinpavell/mercury234-emul parameters.json, code 0x13: "0x00010A09000403081E" — pointer
    # 00 01 (a 234 counts records), status 0A (incomplete interval, winter time), 09:00
    # 04.03.08, period 1E = 30 min; field order of devices-reader/device_2 get_graph_top10.pas.
    last = prof.decode_last_record(h("00 01 0A 09 00 04 03 08 1E"), prof.LARGE)
    assert (last.index, last.status, last.stamp, last.period_min) == (1, 0x0A, datetime(2008, 3, 4, 9, 0), 30)
    assert not last.wrapped
    # A Меркурий 230 gives the byte address: 00 01 cannot be one.
    with pytest.raises(ProtocolError, match="profile_memory"):
        prof.decode_last_record(h("00 01 0A 09 00 04 03 08 1E"), prof.SMALL)
    # device_2 get_graph_top.pas: the 230's pointer is the record's address, 0x10 per record.
    assert prof.decode_last_record(h("7F F0 09 23 30 01 12 26 1E"), prof.SMALL).index == 0x7FF
    assert prof.encode_last_record(0x7FF, 9, datetime(2026, 12, 1, 23, 30), 30, prof.SMALL) == h(
        "7F F0 09 23 30 01 12 26 1E")


def test_profile_memory_requests():
    # devices-reader/device_2 get_graph_data.pas: 06 03 <address high> <low> 0F (15 bytes);
    # get_graph_data10.pas: memory byte 83 once the address passes 0xFFFF (Меркурий 233/234).
    assert prof.memory_request(1, 0xFFF, prof.SMALL) == f.with_crc(h("01 06 03 FF F0 0F"))
    assert prof.memory_request(1, 0x0FFF, prof.LARGE) == f.with_crc(h("01 06 03 FF F0 0F"))
    assert prof.memory_request(1, 0x1000, prof.LARGE) == f.with_crc(h("01 06 83 00 00 0F"))
    assert prof.memory_request(1, 0x1FFF, prof.LARGE) == f.with_crc(h("01 06 83 FF F0 0F"))
    with pytest.raises(ValueError):
        prof.memory_request(1, 0x1000, prof.SMALL)


def test_profile_record_layout():
    # device_2 get_graph_data.pas pops: status, hour, minute, day, month, year (BCD), period,
    # then four counts low byte first (PopByte + PopByte*$100), FF FF = none; Prizmer ReadSlice
    # reads the same (BitConverter.ToUInt16 at 8 + 2i).
    rec = prof.decode_record(h("08 10 30 02 12 26 1E 23 01 FF FF 10 00 FF FF"))
    assert (rec.stamp, rec.status, rec.period_min, rec.counts) == (datetime(2026, 12, 2, 10, 30), 8, 30,
                                                                   (0x123, None, 16, None))
    assert prof.encode_record(8, datetime(2026, 12, 2, 10, 30), 30, (0x123, None, 16, None)) == h(
        "08 10 30 02 12 26 1E 23 01 FF FF 10 00 FF FF")
    # Energy = count / (2 × constant): device_2 get_koeffs.pas (Kp·2 "для расчета энергии по
    # получасам"), Prizmer ReadSlice (count·(60/T)/(2·A) kW over T).
    assert prof.energy(0x123, 1000) == pytest.approx(0.1455)
    assert prof.count_of(0.1455, 1000) == 0x123
    assert prof.decode_record(prof.EMPTY_RECORD).stamp is None  # a slot never written
    assert prof.decode_record(h("00 25 61 02 12 26 1E 00 00 00 00 00 00 00 00")).stamp is None  # not a time


# ---- journals (04 NN RR) -----------------------------------------------------------------------
def test_journal_request_and_record():
    # GreezXII/Mercury230Configurator ReadJournalRecordRequest.cs: 04 <journal> <record 0..9>;
    # ReadJournalResponse.cs: 15-byte answer, two times of sec, min, hour, day, month, year.
    assert journals.journal_request(0x59, journals.Journal.CASE, 9) == f.with_crc(h("59 04 12 09"))
    assert journals.JOURNAL_REPLY_LEN == 15
    rec = journals.decode_journal_record(h("00 00 10 01 12 26 30 15 10 01 12 26"))
    assert (rec.first, rec.second) == (datetime(2026, 12, 1, 10, 0, 0), datetime(2026, 12, 1, 10, 15, 30))
    empty = journals.decode_journal_record(bytes(12))  # year 0: never written (ReadJournalResponse.cs)
    assert (empty.first, empty.second, empty.damaged) == (None, None, False)
    assert journals.decode_journal_record(h("00 00 10 01 13 26") + bytes(6)).damaged  # month 13
    with pytest.raises(ValueError):
        journals.journal_request(1, 1, 10)


def test_journal_records_as_spodes_entries():
    on, off = datetime(2026, 12, 1, 10, 0), datetime(2026, 12, 1, 12, 0)
    rec = journals.JournalRecord(on, off)
    assert [(e.obis, e.code) for e in journals.events_of(journals.Journal.POWER, rec)] == [
        ("0.0.99.98.2.255", 2), ("0.0.99.98.2.255", 1)]
    assert [(e.obis, e.code) for e in journals.events_of(journals.Journal.PHASE_C, rec)] == [
        ("0.0.99.98.0.255", 6), ("0.0.99.98.0.255", 5)]
    assert [(e.obis, e.code, e.stamp) for e in journals.events_of(journals.Journal.CASE, rec)] == [
        ("0.0.99.98.4.255", 4, on)]
    small = journals.JournalRecord(on, on + timedelta(minutes=3))
    assert [(e.code, e.stamp) for e in journals.events_of(journals.Journal.CLOCK, small)] == [
        (68, on + timedelta(minutes=3))]
    assert [e.code for e in journals.events_of(journals.Journal.CLOCK, rec)] == [3]


# ---- energy at day and month starts (05 B/C/D) ------------------------------------------------
def test_archive_array_codes():
    # lapinpavell/mercury234-emul data.json, code 0x05: array 0xB0 "at the beginning of the
    # month", 0xC0 "at the start of the current day", 0xD0 "at the beginning of the previous day".
    days = archives.available("day_start", date(2026, 1, 15))
    assert [(f.energy_request(0, a.array, a.month, 2)[2], a.boundary) for a in days] == [
        (0xD0, datetime(2026, 1, 14)), (0xC0, datetime(2026, 1, 15))]
    months = archives.available("month_start", date(2026, 1, 15))
    assert [(f.energy_request(0, a.array, a.month, 0)[2], a.boundary) for a in months][-3:] == [
        (0xBB, datetime(2025, 11, 1)), (0xBC, datetime(2025, 12, 1)), (0xB1, datetime(2026, 1, 1))]
    assert len(months) == 12 and months[0].boundary == datetime(2025, 2, 1)  # one value per month number
    assert archives.boundary_of(0xB, 12, date(2026, 1, 15)) == datetime(2025, 12, 1)
    assert archives.boundary_of(0x4, 0, date(2026, 1, 15)) is None
