"""The simulator against a third DLMS implementation: dlms-cosem's blocking client (its
own HDLC, AARQ, GET and A-XDR code) over the TCP wrapper and over HDLC on a pty.

The driver (gurux) and the simulator (hand-written) already disagree-proof each
other; this test makes sure they do not agree on a shared misreading of the
standard that a third client would reject.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from dlms_cosem import cosem, enumerations
from dlms_cosem.client import DataResultError, DlmsClient
from dlms_cosem.cosem.capture_object import CaptureObject
from dlms_cosem.cosem.selective_access import RangeDescriptor
from dlms_cosem.io import BlockingTcpIO, HdlcTransport, SerialIO, TcpTransport
from dlms_cosem.security import LowLevelSecurityAuthentication
from dlms_cosem.utils import parse_as_dlms_data
from test_dlms_archives import KPZ_M2M1_DAILY_COLUMNS

from askue.drivers.dlms import cosem as spodes
from askue.drivers.dlms.simulator import make_session_factory
from askue.drivers.sim.line import PtyServer, serve_tcp
from askue.drivers.sim.meter import SimMeter

NOW = datetime(2026, 11, 10, 12, 7, 30, tzinfo=UTC)
IC = enumerations.CosemInterface


def _attr(ic: enumerations.CosemInterface, obis: str, attribute: int) -> cosem.CosemAttribute:
    return cosem.CosemAttribute(interface=ic, instance=cosem.Obis.from_string(obis), attribute=attribute)


def _read_all(transport, password: bytes) -> dict:
    client = DlmsClient(transport=transport, authentication=LowLevelSecurityAuthentication(secret=password))
    out: dict = {}
    with client.session() as s:
        out["serial"] = parse_as_dlms_data(s.get(_attr(IC.DATA, spodes.SERIAL_OBIS, 2)))
        out["a_plus"] = parse_as_dlms_data(s.get(_attr(IC.REGISTER, "1.0.1.8.0.255", 2)))
        out["scaler_unit"] = parse_as_dlms_data(s.get(_attr(IC.REGISTER, "1.0.1.8.0.255", 3)))
        clock_column = CaptureObject(cosem_attribute=_attr(IC.CLOCK, spodes.CLOCK_OBIS, 2), data_index=0)
        out["profile"] = parse_as_dlms_data(
            s.get(
                _attr(IC.PROFILE_GENERIC, spodes.LOAD_PROFILE_OBIS, 2),
                access_descriptor=RangeDescriptor(
                    restricting_object=clock_column,
                    from_value=datetime(2026, 11, 10, 9, 0, tzinfo=UTC),
                    to_value=datetime(2026, 11, 10, 10, 0, tzinfo=UTC),
                ),
            )
        )
        out["daily_columns"] = s.get(_attr(IC.PROFILE_GENERIC, spodes.DAILY_PROFILE_OBIS, 3))
        out["daily_period"] = parse_as_dlms_data(s.get(_attr(IC.PROFILE_GENERIC, spodes.DAILY_PROFILE_OBIS, 4)))
        out["daily"] = parse_as_dlms_data(
            s.get(
                _attr(IC.PROFILE_GENERIC, spodes.DAILY_PROFILE_OBIS, 2),
                access_descriptor=RangeDescriptor(
                    restricting_object=clock_column,
                    from_value=datetime(2026, 11, 8, 21, 0, tzinfo=UTC),  # 9 and 10 Nov 00:00 MSK
                    to_value=datetime(2026, 11, 9, 21, 0, tzinfo=UTC),
                ),
            )
        )
        out["monthly"] = parse_as_dlms_data(s.get(_attr(IC.PROFILE_GENERIC, spodes.MONTHLY_PROFILE_OBIS, 2)))
        out["ratios"] = [
            parse_as_dlms_data(s.get(_attr(IC.DATA, obis, 2))) for obis in (spodes.CT_RATIO_OBIS, spodes.VT_RATIO_OBIS)
        ]
        try:
            s.get(_attr(IC.REGISTER, "1.0.9.9.9.255", 2))
        except DataResultError as e:
            out["unknown"] = str(e)
    return out


def _check(m: SimMeter, got: dict) -> None:
    assert got["serial"] == b"SN1"
    assert got["a_plus"] == round(m.registers(NOW)[0] * 1000)  # Wh, scaler 0
    assert got["scaler_unit"] == [0, 30]
    expected = m.profile(
        datetime(2026, 11, 10, 9, 0, tzinfo=UTC), datetime(2026, 11, 10, 10, 0, 1, tzinfo=UTC)
    )
    assert len(got["profile"]) == len(expected) == 3  # the range includes both ends
    for row, (when, kwh) in zip(got["profile"], expected, strict=True):
        assert spodes.decode_datetime(bytes(row[0]), UTC) == when
        assert row[1] == round(kwh * 1000)
    assert "OBJECT_UNDEFINED" in got["unknown"]  # DataAccessResult 4, decoded by dlms-cosem
    # Billing profiles: the capture objects of a real single-phase СПОДЭС meter byte for byte
    # (test_dlms_archives.py), one row per day start, registers at that boundary.
    assert got["daily_columns"] == KPZ_M2M1_DAILY_COLUMNS
    assert got["daily_period"] == 86400
    assert len(got["daily"]) == 2
    for row, day in zip(got["daily"], (9, 10), strict=True):
        when = spodes.decode_datetime(bytes(row[0]), UTC)
        assert when == datetime(2026, 11, day - 1, 21, 0, tzinfo=UTC)
        regs = m.registers(when)
        assert row[1:6] == [round(regs.get(t, 0.0) * 1000) for t in (1, 2, 3, 4, 0)]  # A+ T1-T4, total (Wh)
        assert len(row) == 21
    assert [spodes.decode_datetime(bytes(r[0]), UTC) for r in got["monthly"]] == [
        datetime(2026, 10, 31, 21, 0, tzinfo=UTC)  # 1 Nov 00:00 MSK; the meter's memory starts in November
    ]
    assert got["ratios"] == [40, 1]


@pytest.fixture
def meter() -> SimMeter:
    return SimMeter(id="m", serial="SN1", password="12345678", now=lambda: NOW, history_days=12,
                    options={"ct_ratio": 40})


async def test_dlms_cosem_client_over_tcp_wrapper(meter):
    server = await serve_tcp(make_session_factory({17: meter}, transport="tcp"))
    port = server.sockets[0].getsockname()[1]
    try:
        transport = TcpTransport(
            client_logical_address=0x20,
            server_logical_address=1,
            io=BlockingTcpIO(host="127.0.0.1", port=port, timeout=5),
        )
        got = await asyncio.to_thread(_read_all, transport, b"12345678")
    finally:
        server.close()
    _check(meter, got)


async def test_dlms_cosem_client_over_hdlc(meter, tmp_path):
    pty = await PtyServer(make_session_factory({17: meter}, transport="serial"), tmp_path / "tty").start()
    try:
        transport = HdlcTransport(
            client_logical_address=0x20,
            server_logical_address=1,
            server_physical_address=17,
            io=SerialIO(port_name=str(tmp_path / "tty"), timeout=5),
        )
        got = await asyncio.to_thread(_read_all, transport, b"12345678")
    finally:
        await pty.stop()
    _check(meter, got)
