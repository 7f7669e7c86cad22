"""The driver against the other side a library offers: gurux-dlms's GXDLMSServer over the TCP
wrapper. gurux 1.0.203's server needs the hooks below (ENVIRONMENT.md: missing
notifyRead/getTransaction…, an association object it cannot build itself), and it
does not run over HDLC; its profile range filter is broken too (it compares a date
with 0), so the load profile is covered by the simulator tests and the dlms-cosem
cross-check instead. What this adds: association with LLS, serial, a register with a
non-zero scaler, clock read, and error answers to SET and ACTION (gurux's handlers
for both are broken in this version), all answered by code the driver does not
share with its own simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from gurux_dlms import GXDateTime, GXDLMSServer, GXServerReply
from gurux_dlms.enums import (
    AccessMode,
    Authentication,
    DataType,
    InterfaceType,
    MethodAccessMode,
    SourceDiagnostic,
    Unit,
)
from gurux_dlms.objects import (
    GXDLMSAssociationLogicalName,
    GXDLMSClock,
    GXDLMSData,
    GXDLMSDisconnectControl,
    GXDLMSRegister,
)

from askue.drivers.base import MeterSpec
from askue.drivers.dlms.driver import DlmsDriver
from askue.drivers.errors import AuthError, IdentityMismatch, ProtocolError
from askue.drivers.transport import TcpTransport

PASSWORD = "12345678"


class _Reply(GXServerReply):
    def setReply(self, value):  # noqa: N802 (gurux's naming)
        self.reply = value

    def getConnectionInfo(self):  # noqa: N802
        return self.connectionInfo


class GuruxMeter(GXDLMSServer):
    """A gurux server holding a serial, A+ total (Wh, scaler 10^1), a clock, a relay and the
    transformer ratios as СПОДЭС meters keep them (Data, long-unsigned)."""

    def __init__(self, password: str, serial: bytes, wh_tens: int, clock: datetime, ratios: tuple[int, int] = (1, 1)):
        super().__init__(True, InterfaceType.WRAPPER)
        self.password = password.encode()
        self.serial = GXDLMSData("0.0.96.1.0.255")
        self.serial.value = serial
        self.serial.setDataType(2, DataType.OCTET_STRING)
        self.a_plus = GXDLMSRegister("1.0.1.8.0.255")
        self.a_plus.value = wh_tens
        self.a_plus.setDataType(2, DataType.UINT32)
        self.a_plus.scaler = 10  # gurux keeps the multiplier: 10 means scaler +1
        self.a_plus.unit = Unit.ACTIVE_ENERGY
        self.clock = GXDLMSClock("0.0.1.0.0.255")
        self.clock.time = GXDateTime(clock)
        self.relay = GXDLMSDisconnectControl("0.0.96.3.10.255")
        self.relay.outputState = True
        ratio_objects = []
        for obis, value in zip(("1.0.0.4.2.255", "1.0.0.4.3.255"), ratios, strict=True):
            obj = GXDLMSData(obis)
            obj.value = value
            obj.setDataType(2, DataType.UINT16)
            ratio_objects.append(obj)
        association = GXDLMSAssociationLogicalName()
        association.authenticationMechanismName.mechanismId = Authentication.LOW
        association.secret = self.password
        objects = (self.serial, self.a_plus, self.clock, self.relay, *ratio_objects)
        for obj in (association, *objects):
            self.items.append(obj)
        for obj in objects:  # gurux's initialize() would append the whole list as one item
            association.objectList.append(obj)
        self.initialize()

    # hooks gurux calls (some are missing from its base class in this version)
    def isTarget(self, serverAddress, clientAddress):  # noqa: N802,N803
        return True

    def onValidateAuthentication(self, authentication, password):  # noqa: N802
        if authentication == Authentication.LOW and bytes(password or b"") == self.password:
            return SourceDiagnostic.NONE
        return SourceDiagnostic.AUTHENTICATION_FAILURE

    def getTransaction(self):  # noqa: N802
        return self.transaction

    def setTransaction(self, value):  # noqa: N802
        self.transaction = value

    def onGetAttributeAccess(self, arg):  # noqa: N802
        return AccessMode.READ_WRITE

    def onGetMethodAccess(self, arg):  # noqa: N802
        return MethodAccessMode.ACCESS

    def onFindObject(self, objectType, sn, ln):  # noqa: N802,N803
        return None

    def _noop(self, *args):
        return None

    notifyRead = notifyConnected = onPreGet = onPostGet = onPreRead = onPostRead = _noop  # noqa: N815
    onPreWrite = onPostWrite = onConnected = onInvalidConnection = onDisconnected = _noop  # noqa: N815
    onPreAction = onPostAction = _noop  # noqa: N815


@contextlib.asynccontextmanager
async def gurux_line(meter: GuruxMeter) -> AsyncIterator[TcpTransport]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(4096):
                sr = _Reply(bytearray(data))
                sr.reply = None
                meter.handleRequest(sr)
                if sr.reply:
                    writer.write(bytes(sr.reply))
                    await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    transport = TcpTransport("127.0.0.1", server.sockets[0].getsockname()[1])
    try:
        yield transport
    finally:
        await transport.close()
        server.close()


def spec(**kw) -> MeterSpec:
    kw.setdefault("password", PASSWORD)
    return MeterSpec(id="gx", driver="dlms", address=17, options={"timeout": 2.0}, **kw)


CLOCK = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


async def test_driver_reads_a_gurux_server():
    meter = GuruxMeter(PASSWORD, b"GX0001", 123_456_7, CLOCK, ratios=(60, 100))
    async with gurux_line(meter) as t:
        d = DlmsDriver(t, spec(serial="GX0001"))
        ident = await d.connect()
        assert ident.serial == "GX0001"
        assert (ident.ct_ratio, ident.vt_ratio) == (60.0, 100.0)
        assert await d.read_clock() == CLOCK
        regs = {r.obis: r for r in await d.read_registers()}
        # gurux 1.0.203 answers every SET and ACTION with hardware-fault (its handlers call
        # list() on a ValueEventArgs): the driver must turn that into a typed error and
        # the association must stay usable.
        with pytest.raises(ProtocolError, match="hardware fault"):
            await d.set_clock(datetime(2026, 11, 10, 9, 30, tzinfo=UTC))
        with pytest.raises(ProtocolError, match="hardware fault"):
            await d.relay(False)
        assert await d.read_clock() == CLOCK
        assert await d.read_serial() == "GX0001"
        await d.close()
    # Only A+ total exists on this server; the other registers are skipped as undefined.
    assert set(regs) == {"1.0.1.8.0.255"}
    assert regs["1.0.1.8.0.255"].value == pytest.approx(12345.67)  # 1234567 x 10 Wh
    assert regs["1.0.1.8.0.255"].unit == "kWh"


async def test_gurux_server_refuses_wrong_password():
    async with gurux_line(GuruxMeter(PASSWORD, b"GX0001", 1, CLOCK)) as t:
        with pytest.raises(AuthError):
            await DlmsDriver(t, spec(password="wrong")).connect()


async def test_gurux_server_serial_mismatch():
    async with gurux_line(GuruxMeter(PASSWORD, b"GX0002", 1, CLOCK)) as t:
        with pytest.raises(IdentityMismatch):
            await DlmsDriver(t, spec(serial="GX0001")).connect()
