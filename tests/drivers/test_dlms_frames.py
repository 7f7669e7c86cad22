"""DLMS link and application frames against documented bytes, and fuzzing of every parser.

Sources of the golden frames:
- [GB] DLMS UA Green Book (DLMS UA 1000-2 Ed. 10), AARQ/AARE encoding examples
  (p. 444), as reproduced in the dlms-cosem test-suite (u9n/dlms-cosem
  tests/test_acse: "Example encodings from DLMS Green Book v10").
- [GX] A Gurux Director trace of a real HDLC session published at
  https://gist.github.com/knogi/f3d4853b936164882e5ed653498e7b61 (also
  https://pastebin.com/iKKsDimZ): SNRM/UA with negotiated 1010-byte frames, AARQ
  and AARE of the public client, GET of the association object list.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from gurux_dlms import GXDLMSClient
from gurux_dlms.enums import Authentication, Conformance, InterfaceType
from gurux_dlms.objects import GXDLMSRegister
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from askue.drivers.dlms import axdr, cosem, hdlc
from askue.drivers.dlms.address import parse_address
from askue.drivers.dlms.server import CosemServer, build_aare, initiate_response, spodes_event
from askue.drivers.dlms.simulator import HdlcSession, WrapperSession, make_session_factory
from askue.drivers.errors import FrameError, ProtocolError
from askue.drivers.sim.meter import JournalEntry, SimMeter

NOW = datetime(2026, 11, 10, 12, 7, 30, tzinfo=UTC)

# [GB] AARQ, LN referencing, low-level security, password "12345678".
GB_AARQ_LLS = bytes.fromhex(
    "6036A1090607608574050801018A0207808B0760857405080201AC0A80083132333435363738"
    "BE10040E01000000065F1F0400007E1F04B0"
)
# [GB] AARE accepting an LN association: conformance 00501F, server max PDU 0x01F4.
GB_AARE = bytes.fromhex(
    "6129A109060760857405080101A203020100A305A103020100BE10040E0800065F1F040000501F01F40007"
)

# [GX] client (0x10) <-> server (logical 1, one-byte address).
GX_SNRM = bytes.fromhex("7EA014032193 63E7 818008050203F2060203F2 03F07E".replace(" ", ""))
GX_UA = bytes.fromhex(
    "7EA020210373 7398 818014050203F2060203F20704000000010804000000010A757E".replace(" ", "")
)
GX_AARQ = bytes.fromhex(
    "7EA02B032110FBAFE6E600601DA109060760857405080101BE10040E01000000065F1F0400001E1DFFFFC5E47E"
)
GX_AARE_CONTROL = 0x30
GX_AARE_APDU = bytes.fromhex(
    "6129A109060760857405080101A203020100A305A103020100BE10040E0800065F1F040000101D03EF0007"
)
GX_GET = bytes.fromhex("7EA0190321326FD8E6E600C001C1000F0000280000FF020091537E")
GX_GET_REPLY_CONTROL = 0x52


def _meter(**kw) -> SimMeter:
    kw.setdefault("now", lambda: NOW)
    return SimMeter(id="m", serial="SN1", password="12345678", **kw)


def _rev24(v: int) -> int:
    # gurux keeps the conformance block bit-reversed relative to its BER bit string.
    return int(f"{v:024b}"[::-1], 2)


# ---- HDLC ----------------------------------------------------------------------------------
@pytest.mark.parametrize("frame", [GX_SNRM, GX_UA, GX_AARQ, GX_GET])
def test_documented_frames_pass_hcs_and_fcs(frame: bytes) -> None:
    f = hdlc.parse_frame(frame)
    assert hdlc.build_frame(f.dest, f.src, f.control, f.info, f.segmented) == frame


def test_ua_parameters_encode_like_the_trace() -> None:
    assert hdlc.build_frame(b"\x21", b"\x03", hdlc.UA, hdlc.hdlc_parameters(1010, 1010)) == GX_UA
    assert hdlc.parse_hdlc_parameters(hdlc.parse_frame(GX_SNRM).info) == {5: 1010, 6: 1010}


def test_damaged_frames_are_frame_errors() -> None:
    bad_fcs = bytearray(GX_GET)
    bad_fcs[-2] ^= 1
    bad_hcs = bytearray(GX_GET)
    bad_hcs[7] ^= 1
    for raw in (bytes(bad_fcs), bytes(bad_hcs), GX_GET[:-1], GX_GET[1:], b"\x7e\x10\x00\x7e" * 3):
        with pytest.raises(FrameError):
            hdlc.parse_frame(raw)


def test_server_addresses() -> None:
    assert hdlc.encode_server_address(1, 17) == bytes((0x02, 0x23))
    assert hdlc.decode_server_address(bytes((0x02, 0x23))) == (1, 17)
    assert hdlc.decode_server_address(hdlc.encode_server_address(1, 0x3FF)) == (1, 0x3FF)
    assert hdlc.decode_server_address(b"\x03") == (1, None)
    # gurux computes the same two-byte address for logical 1, physical 17.
    assert GXDLMSClient.getServerAddress(1, 17) == (1 << 7) | 17


def test_address_config_forms() -> None:
    assert parse_address(17) == (1, 17)
    assert parse_address("1/17") == (1, 17)
    assert parse_address("0x10") == (1, 16)
    assert parse_address("1/") == (1, None)
    for bad in ("x", "1/y", 70000, True, "200/"):
        with pytest.raises(ValueError):
            parse_address(bad)


# ---- the driver's requests (gurux) against the documents -------------------------------------
def test_gurux_aarq_with_lls_equals_green_book() -> None:
    c = GXDLMSClient(True, 0x10, 1, Authentication.LOW, "12345678", InterfaceType.WRAPPER)
    c.proposedConformance = Conformance(_rev24(0x007E1F))
    c.maxReceivePDUSize = 0x4B0
    frames = c.aarqRequest()
    assert len(frames) == 1
    assert bytes(frames[0]) == hdlc.wrap(0x10, 1, GB_AARQ_LLS)


def test_get_request_for_a_plus_total() -> None:
    # GET-Request-Normal (IEC 62056-5-3 §9.3.6): C0 01, invoke-id-and-priority C1 (as in [GX]),
    # class 3, 1.0.1.8.0.255, attribute 2, no selective access.
    apdu = bytes.fromhex("C001C100030100010800FF0200")
    c = GXDLMSClient(True, 0x20, 1, Authentication.NONE, None, InterfaceType.WRAPPER)
    assert bytes(c.read(GXDLMSRegister("1.0.1.8.0.255"), 2)[0]) == hdlc.wrap(0x20, 1, apdu)
    h = GXDLMSClient(
        True, 0x20, GXDLMSClient.getServerAddress(1, 17), Authentication.NONE, None, InterfaceType.HDLC
    )
    frame = bytes(h.read(GXDLMSRegister("1.0.1.8.0.255"), 2)[0])
    assert frame == hdlc.build_frame(
        bytes((0x02, 0x23)), bytes((0x41,)), hdlc.i_control(0, 0), hdlc.LLC_REQUEST + apdu
    )


# ---- the simulator against the documents -----------------------------------------------------
def test_simulator_aare_encoding_equals_green_book() -> None:
    assert build_aare(True, 0, initiate_response=initiate_response(0x00501F, 0x01F4)) == GB_AARE


def test_simulator_accepts_green_book_aarq_with_right_password_only() -> None:
    server = CosemServer(_meter())
    aare = server.handle(0x20, GB_AARQ_LLS)
    assert aare[:2] == b"\x61\x29" and aare[aare.index(b"\xa2\x03") + 4] == 0  # accepted
    assert 0x20 in server.associations
    wrong = CosemServer(SimMeter(id="m", serial="SN1", password="87654321", now=lambda: NOW))
    aare = wrong.handle(0x20, GB_AARQ_LLS)
    assert aare[aare.index(b"\xa2\x03") + 4] == 1  # rejected-permanent
    assert aare[aare.index(b"\xa3\x05") + 6] == 13  # authentication-failure
    assert not wrong.associations


def test_simulator_replays_the_gurux_trace() -> None:
    """The [GX] client frames, fed to the simulator, get answers with the control fields,
    addresses, and (given the same PDU limit) the AARE bytes of the traced meter."""
    session = HdlcSession({(1, None): _meter(options={"max_info": 1010, "max_pdu": 0x3EF})})
    (ua,) = session.feed(GX_SNRM)
    assert ua.data == GX_UA
    (aare,) = session.feed(GX_AARQ)
    f = hdlc.parse_frame(aare.data)
    assert (f.dest, f.src, f.control) == (b"\x21", b"\x03", GX_AARE_CONTROL)
    assert f.info == hdlc.LLC_RESPONSE + GX_AARE_APDU
    (get,) = session.feed(GX_GET)
    f = hdlc.parse_frame(get.data)
    assert f.control == GX_GET_REPLY_CONTROL
    assert f.info[3:6] == b"\xc4\x01\xc1"  # GET-Response-Normal to invoke C1


def test_simulator_ignores_other_addresses_and_damage() -> None:
    session = HdlcSession({(1, 17): _meter()})
    assert session.feed(GX_SNRM) == []  # addressed to logical 1 without physical part
    snrm = hdlc.build_frame(hdlc.encode_server_address(1, 17), b"\x41", hdlc.SNRM)
    damaged = bytearray(snrm)
    damaged[-2] ^= 0xFF
    assert session.feed(bytes(damaged)) == []
    (ua,) = session.feed(b"\x00\xff" + snrm)  # noise before the flag is skipped
    assert hdlc.parse_frame(ua.data).control == hdlc.UA


def test_wrapper_session_rejects_unassociated_get() -> None:
    session = WrapperSession({1: _meter()})
    get = bytes.fromhex("C001C100030100010800FF0200")
    (reply,) = session.feed(hdlc.wrap(0x20, 1, get))
    assert reply.data[8:] == bytes((0xD8, 1, 0))  # exception-response: service not allowed
    aarq = hdlc.wrap(0x20, 1, GB_AARQ_LLS)
    assert session.feed(aarq[:10]) == []  # partial: nothing yet
    (reply,) = session.feed(aarq[10:])
    assert reply.data[:8] == hdlc.wrap(1, 0x20, b"")[:6] + reply.data[6:8]  # ports swapped back
    assert reply.data[8] == 0x61 and reply.data[8:][reply.data[8:].index(b"\xa2\x03") + 4] == 0
    (reply,) = session.feed(hdlc.wrap(0x20, 1, get))
    assert reply.data[8:11] == b"\xc4\x01\xc1" and reply.data[11] == 0  # now the value comes


def test_session_factory_checks_its_arguments() -> None:
    with pytest.raises(ValueError):
        make_session_factory({17: _meter(), "1/18": _meter()}, transport="tcp")
    with pytest.raises(ValueError):
        make_session_factory({17: _meter()}, transport="usb")  # type: ignore[arg-type]
    assert isinstance(make_session_factory({17: _meter()}, transport="serial")(), HdlcSession)


# ---- A-XDR and COSEM values -------------------------------------------------------------------
def test_axdr_roundtrip() -> None:
    data = axdr.structure(
        axdr.integer(axdr.LONG_UNSIGNED, 8),
        axdr.octets(cosem.obis_bytes("0.0.1.0.0.255")),
        axdr.integer(axdr.INTEGER, -3),
        axdr.array([axdr.boolean(True), axdr.null()]),
        axdr.visible("SN1"),
        axdr.integer(axdr.DOUBLE_LONG_UNSIGNED, 4_000_000_000),
    )
    value, end = axdr.decode(data)
    assert end == len(data)
    assert value == [8, bytes((0, 0, 1, 0, 0, 255)), -3, [True, None], "SN1", 4_000_000_000]
    assert axdr.length(0x7F) == b"\x7f" and axdr.length(0x80) == b"\x81\x80"
    assert axdr.length(0x1234) == b"\x82\x12\x34"


def test_datetime_codec_uses_blue_book_deviation() -> None:
    msk = timezone(timedelta(hours=3))
    raw = cosem.encode_datetime(NOW, msk)
    # 2026-11-10 15:07:30 local, Tuesday, deviation -180 minutes (local -> UTC), status 0.
    assert raw == bytes.fromhex("07EA0B0A020F071E00FF4C00")
    assert cosem.decode_datetime(raw, UTC) == NOW
    unspecified = raw[:9] + b"\x80\x00" + raw[11:]
    assert cosem.decode_datetime(unspecified, msk) == NOW  # falls back to the meter's zone
    assert cosem.decode_datetime(b"\xff" * 12, msk) is None
    with pytest.raises(ProtocolError):
        cosem.decode_datetime(raw[:11], msk)
    with pytest.raises(ProtocolError):
        cosem.decode_datetime(bytes.fromhex("07EA0D200200000000FF4C00"), msk)  # month 13
    with pytest.raises(ProtocolError):  # deviation beyond ±720 min (found by the mutation test)
        cosem.decode_datetime(raw[:9] + (-23000).to_bytes(2, "big", signed=True) + b"\x00", msk)


def test_scaler_unit_conversion() -> None:
    assert cosem.scaled(1234567, 0, 30) == (1234.567, "kWh")
    assert cosem.scaled(2301, -1, 35) == (230.1, "V")
    assert cosem.scaled(15, 2, 32) == (1.5, "kvarh")


def test_spodes_event_codes() -> None:
    assert cosem.describe_event("0.0.99.98.4.255", 1) == "Магнитное поле - начало"
    assert cosem.describe_event("0.0.99.98.4.255", 2, "en") == "Magnetic field ended"
    assert cosem.describe_event("0.0.99.98.4.255", 3) == "Срабатывание электронной пломбы крышки клеммников"
    assert cosem.describe_event("0.0.99.98.2.255", 3, "en") == "Consumer disconnected remotely"
    assert cosem.describe_event("0.0.99.98.7.255", 99) == "Событие 99"
    with pytest.raises(ValueError):
        cosem.describe_event("1.0.99.1.0.255", 1)
    # SimMeter keeps СПОДЭС journals and codes; the simulator serves them as they are.
    assert spodes_event(JournalEntry("0.0.99.98.2.255", NOW, 2)) == (2, 2)  # power on
    assert spodes_event(JournalEntry("0.0.99.98.3.255", NOW, 3)) == (3, 3)  # time set
    assert spodes_event(JournalEntry("0.0.99.98.2.255", NOW, 3)) == (2, 3)  # remote disconnect
    assert spodes_event(JournalEntry("0.0.99.98.4.255", NOW, 3)) == (4, 3)


# ---- fuzzing: bad input is a typed error or silence, never a crash ------------------------------
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=300))
def test_parse_frame_fuzz(data: bytes) -> None:
    try:
        hdlc.parse_frame(data)
    except FrameError:
        pass


@FUZZ
@given(st.binary(max_size=200))
def test_axdr_decode_fuzz(data: bytes) -> None:
    try:
        axdr.decode(data)
    except ProtocolError:
        pass


@FUZZ
@given(st.lists(st.binary(max_size=80), max_size=6), st.integers(0, len(GX_AARQ)))
def test_hdlc_session_fuzz(chunks: list[bytes], cut: int) -> None:
    session = HdlcSession({(1, None): _meter()})
    session.feed(GX_SNRM)
    session.feed(GX_AARQ[:cut])  # a truncated frame followed by noise
    for c in chunks:
        for reply in session.feed(c):
            hdlc.parse_frame(reply.data)  # whatever it answers is a valid frame


@FUZZ
@given(st.binary(max_size=120))
def test_cosem_server_fuzz(apdu: bytes) -> None:
    server = CosemServer(_meter())
    server.handle(0x20, GB_AARQ_LLS)
    for body in (
        apdu,
        b"\xc0\x01\xc1" + apdu,
        b"\xc1\x01\xc1" + apdu,
        b"\xc3\x01\xc1" + apdu,
        b"\x60" + apdu,
    ):
        answer = server.handle(0x20, body)
        assert answer and answer[0] in (0x61, 0x63, 0xC4, 0xC5, 0xC7, 0xD8)
