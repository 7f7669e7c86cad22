"""Меркурий 230 frames against recorded golden exchanges, plus fuzzing of the parsers.

Golden frames: wirenboard/wb-mqtt-serial, test/TEMDeviceTest.Mercury230ReadEnergy.dat,
test/TEMDeviceTest.Mercury230ReadParams.dat and test/TEMDeviceTest.Mercury230Exception.dat
(frames exchanged with a Mercury 230 at the universal address 0; the expected values
3196200, 300444, 24128, 69, 24043 and 553095 are asserted in that project's test/em_test.cpp).
Protocol facts: Incotex, "Протокол обмена трёхфазных счётчиков Меркурий ... 230, 231, 234"
(https://www.incotexcom.ru/support/docs/protocol).
"""
from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from askue.drivers.errors import AuthError, DriverError, FrameError, ProtocolError
from askue.drivers.mercury import frames as f
from askue.drivers.mercury.simulator import MercurySession, numeric_serial
from askue.drivers.sim.meter import SimMeter


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
