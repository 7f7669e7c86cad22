"""Every driver's I/O-free frame parsers fed damaged answers: 10,000 seeded mutations of
documented frames per protocol. A parser returns a result or raises a typed DriverError
(the gateway decides retry/back-off by its type); anything else is a bug.

Golden frames come from the protocol tests in tests/drivers/, where each is tied to its
published source: Modbus Application Protocol V1.1b3 and Serial Line V1.02 examples and
the 2flow MAG-11 manual (test_modbus_frames.py); the WaterStar/Minocal M-Bus telegrams
(test_mbus_frames.py) and the libmbus corpus (test_mbus_golden.py); Wiren Board and Home Assistant captures of CE102M, CE301 and
NEVA MT324 (test_iec62056_21_frames.py); the DLMS Green Book AARQ/AARE examples and a
Gurux Director HDLC trace (test_dlms_frames.py). Mercury 230/234 replies are the
documented ones of test_mercury_frames.py, copied here because they live inline there.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC
from pathlib import Path

import pytest
from mutation import run_mutations

from askue.drivers.dlms import axdr, cosem, hdlc
from askue.drivers.errors import DriverError
from askue.drivers.iec62056_21 import frames as iec
from askue.drivers.mbus import frames as mbus
from askue.drivers.mbus import obis as mbus_obis
from askue.drivers.mbus import records as mbus_records
from askue.drivers.mercury import frames as merc
from askue.drivers.modbus import frames as mb

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "drivers"))
import test_dlms_frames as dlms_gold  # noqa: E402
import test_iec62056_21_frames as iec_gold  # noqa: E402
import test_mbus_frames as mbus_gold  # noqa: E402
import test_mbus_golden as mbus_golden  # noqa: E402
import test_modbus_frames as mb_gold  # noqa: E402

pytestmark = pytest.mark.slow



def _fuzz(samples: list[bytes], parse: Callable[[bytes], object]) -> dict[str, int]:
    """Run `parse` on 10,000 mutated samples; count outcomes (both must occur)."""
    seen = run_mutations(samples, parse, DriverError)
    assert seen["typed"] > 1000 and seen["ok"] > 0, seen
    return seen


def _ok(fn: Callable[..., object], *args: object) -> None:
    try:
        fn(*args)
    except DriverError:
        pass


def test_modbus_parsers() -> None:
    rtu = [mb_gold.MANUAL_RTU_RESPONSE, mb.with_crc(bytes.fromhex("01") + mb_gold.SPEC_FC03_RESPONSE),
           mb.with_crc(bytes.fromhex("01") + mb_gold.SPEC_FC04_RESPONSE), mb.with_crc(bytes.fromhex("01 83 02"))]
    tcp = [bytes.fromhex("0001 0000 0009 11") + mb_gold.SPEC_FC03_RESPONSE,
           bytes.fromhex("0001 0000 0003 11") + bytes.fromhex("83 02")]

    def parse(data: bytes) -> None:
        if len(data) >= 3:
            _ok(mb.rtu_length, data[:3])
        for fc, count in ((3, 2), (3, 3), (4, 1)):
            _ok(mb.parse_rtu_response, data, 1, fc, count)
            _ok(mb.parse_tcp_response, data, 1, 0x11, fc, count)
        if len(data) >= 7:
            _ok(mb.parse_mbap, data[:7])
        mb.parse_read_pdu(data[1:], 3, 2)

    _fuzz(rtu + tcp, parse)


def test_mbus_parsers() -> None:
    samples = [mbus_gold.WATERSTAR, mbus_gold.MINOCAL, bytes.fromhex("10 5B FE 59 16"), b"\xe5"]

    def parse(data: bytes) -> None:
        if len(data) >= 4:
            _ok(mbus.frame_length, data[:4])
            _ok(mbus_records.decode_records, b"\x04\x6d" + data[-6:-2])  # a type F date/time
        _ok(mbus.parse_frame, data)
        mbus.decode_rsp_ud(data)

    _fuzz(samples, parse)


# Real telegrams of the shapes the record decoder had to learn (golden corpus, libmbus):
# LVAR text and binary, VIF 0xFB energy, VIFE 0x3B/0x3C, the undefined VIF 0x7B, DIF 0x1F,
# dates with VIFE "date of", plus simulator telegrams with an invalid type F date/time.
MBUS_SHAPES = ["ACW_Itron-CYBLE-M-Bus-14", "siemens_wfh21", "LGB_G350", "example_binary16_lvar",
               "engelmann_sensostar2c", "SEN_Pollustat", "EDC", "sen_pollutherm", "landis+gyr_ultraheat_t230",
               "kamstrup_multical_601", "ELS_Elster-F96-Plus"]


def _mbus_samples() -> list[bytes]:
    from askue.drivers.mbus.simulator import MBusSession
    from askue.drivers.sim.meter import SimMeter

    out = [mbus_golden.load(n)[0] for n in MBUS_SHAPES]
    for opts in ({"time_invalid": True, "energy_vif": "mwh", "text_records": True},
                 {"unknown_vif": True, "energy_vif": "kwh_accumulation", "records_per_telegram": 5}):
        s = MBusSession({1: SimMeter(id="h", serial="12345678", resource="heat", options=opts)})
        s.feed(mbus.snd_nke(1))
        out += [r.data for fcb in (True, False) for r in s.feed(mbus.req_ud2(1, fcb))]
    return out


def _refit(data: bytes) -> bytes:
    """A mutated RSP_UD with its L fields and checksum made consistent again, so the damage
    reaches the record decoder instead of stopping at the link layer."""
    body = data[4:-2] if len(data) > 9 else data
    body = bytes([0x08, 0x01, 0x72]) + body[3:] if len(body) >= 3 else bytes([0x08, 0x01, 0x72])
    return mbus.long_frame(body[0], body[1], body[2], body[3:253])


def test_mbus_record_decoder() -> None:
    """EN 13757-3 records (records.py) and the OBIS mapping on damaged user data."""
    samples = [d[19:-2] for d in _mbus_samples()]  # user data after the 12-byte fixed header

    def parse(data: bytes) -> None:
        decoded = mbus_records.decode_records(data)
        tel = mbus.Telegram(1, mbus.Header("00000001", "ASK", 1, 0x04, 0, 0), decoded.records, decoded.more,
                            decoded.skipped, decoded.manufacturer_data)
        for medium in ("heat", "cold_water", "hot_water"):
            for r in mbus_obis.readings(tel, UTC, medium):
                assert r.meter_time is None or r.meter_time.tzinfo is not None

    _fuzz(samples, parse)


def test_mbus_telegram_decoder() -> None:
    """Whole RSP_UD telegrams, re-framed after each mutation (valid L fields and checksum)."""
    def parse(data: bytes) -> None:
        tel = mbus.decode_rsp_ud(_refit(data))
        mbus_obis.clock(tel, UTC)

    _fuzz(_mbus_samples(), parse)


MERCURY_REPLIES = [  # (frame, expected length, what) from test_mercury_frames.py's golden replies
    ("00 00 01 B0", merc.STATUS_LEN, "status"),
    ("00 30 00 28 C5 FF FF FF FF 04 00 9C 95 FF FF FF FF 44 AB", merc.ENERGY_LEN, "energy"),
    ("00 00 40 5E B0 1C", merc.AUX_ONE_LEN, "param"), ("00 48 87 70 E2 26", merc.AUX_ONE_LEN, "param"),
]


def test_mercury_parsers() -> None:
    samples = [bytes.fromhex(h) for h, _n, _w in MERCURY_REPLIES]
    lens = [n for _h, n, _w in MERCURY_REPLIES] + [merc.TIME_LEN, merc.SERIAL_LEN]

    def parse(data: bytes) -> None:
        for n in lens:
            _ok(merc.check_reply, data, 0, n, "fuzz")
        body = data[1:-2]
        _ok(merc.decode_time, body[:8])
        _ok(merc.decode_serial, body[:7])
        merc.decode_u32(body[:4]) if len(body) >= 4 else None
        merc.decode_u24(body[:3]) if len(body) >= 3 else None
        merc.check_reply(data, 0, len(data), "fuzz")

    _fuzz(samples, parse)


def test_iec62056_21_parsers() -> None:
    g = iec_gold
    lines = [g.CE102M_IDENT, g.NEVA_IDENT]
    blocks = [g.CE102M_P0, g.CE102M_ET0PE, g.CE102M_CURRE, g.CE301_ET0PE, g.CE301_VOLTA, g.NEVA_A, g.NEVA_POWER,
              g.NEVA_UNSUPPORTED, g.NEVA_SERIAL, g.CE301_BREAK]

    def parse(data: bytes) -> None:
        _ok(iec.parse_identification, data)
        _ok(iec.parse_option_select, data)
        for method in (iec.Bcc.XOR, iec.Bcc.SUM7):  # НЕВА uses XOR, Энергомера a 7-bit sum
            for name in ("ET0PE", "0F0880FF", "CURRE"):
                _ok(iec.parse_answer, data, name, method)
            _ok(iec.parse_readout, data, method)
            _ok(iec.operand, data, method)
            _ok(iec.unpack_block, data, method)
        for parity, line in ((iec.Parity.SOFTWARE, iec.add_parity(bytes(x & 0x7F for x in data)) + data),
                             (iec.Parity.NONE, data)):
            asm = iec.Assembler(parity)
            for b in line:
                _ok(asm.feed_byte, b)
        iec.strip_parity(data)

    _fuzz(lines + blocks, parse)


def test_dlms_parsers() -> None:
    g = dlms_gold
    frames = [g.GX_SNRM, g.GX_UA, g.GX_AARQ] if isinstance(g.GX_AARQ, bytes) else [g.GX_SNRM, g.GX_UA]
    apdus = [g.GB_AARQ_LLS, g.GB_AARE, g.GX_AARE_APDU]
    wrapped = [hdlc.wrap(0x10, 0x01, a) for a in apdus]
    datetimes = [bytes.fromhex("07E6 0B 16 02 0C 1E 00 00 FF4C 00")]  # 2022-11-22 12:30, UTC+3 (deviation -180)

    def parse(data: bytes) -> None:
        _ok(hdlc.frame_length, data)
        _ok(hdlc.parse_hdlc_parameters, data[8:-3] if len(data) > 11 else data)
        if len(data) >= 8:
            _ok(hdlc.parse_wrapper_header, data[:8])
        _ok(axdr.decode, data)
        _ok(axdr.decode, data[8:])
        if len(data) >= 12:
            _ok(cosem.decode_datetime, data[:12], UTC)
        hdlc.parse_frame(data)

    _fuzz(frames + apdus + wrapped + datetimes, parse)
