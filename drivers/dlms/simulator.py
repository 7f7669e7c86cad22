"""A СПОДЭС meter's DLMS/COSEM server, sans-I/O, over HDLC (serial) or the TCP wrapper.

The link layers live here (HDLC per IEC 62056-46 with frame-size negotiation,
segmentation, sequence numbers and the inactivity timeout; the IEC 62056-47
wrapper); the COSEM application is server.CosemServer. Both are written by hand from
the standards rather than with gurux's GXDLMSServer: the driver uses gurux, so a
server from a second implementation catches mistakes a shared library would hide
(and gurux's server does not run over HDLC in this version, see ENVIRONMENT.md).

Served objects (logical name referencing, no ciphering):
  0.0.96.1.0.255  serial (Data)                 0.0.1.0.0.255  clock (get/set)
  1.0.q.8.t.255   energy q=1..4 (A+ A- R+ R-), tariff t=0..4 (Register, scaler/unit)
  1.0.32.7.0.255 … instantaneous U, I, P, f     1.0.99.1.0.255 load profile (by range/entry)
  0.0.99.98.N.255 event journals N=0..7         0.0.96.3.10.255 disconnect control
  1.0.98.2.0.255 / 1.0.98.1.0.255 daily / monthly billing profile (registers at each day /
  month start)                                   1.0.0.4.2.255 / 1.0.0.4.3.255 Ктт / Ктн (Data)
Clients: 0x10 public (serial and clock only), 0x20 reader with the meter's
low-level password.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from askue.drivers.dlms import hdlc
from askue.drivers.dlms.address import parse_address
from askue.drivers.dlms.server import CosemServer
from askue.drivers.errors import FrameError
from askue.drivers.sim.line import Reply, SessionFactory
from askue.drivers.sim.meter import SimMeter


# ---- link layers --------------------------------------------------------------------------------
@dataclass
class _Link:
    """HDLC link state between one client and one meter."""

    server: CosemServer
    connected: bool = False
    vs: int = 0
    vr: int = 0
    max_tx: int = hdlc.DEFAULT_MAX_INFO
    rx: bytes = b""
    tx: list[bytes] = field(default_factory=list)
    last: bytes = b""
    seen: datetime | None = None  # meter time of the last frame, for the inactivity timeout


class HdlcSession:
    """The RS-485 line: every meter on it sees every frame and answers its own address."""

    MAX_BUFFER = 8192

    def __init__(self, meters: Mapping[tuple[int, int | None], SimMeter]):
        self.meters = dict(meters)
        self.servers = {addr: CosemServer(m) for addr, m in self.meters.items()}
        self.links: dict[tuple[tuple[int, int | None], bytes], _Link] = {}
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[Reply]:
        self.buf += data
        replies: list[Reply] = []
        while True:
            start = self.buf.find(hdlc.FLAG)
            if start < 0:
                self.buf.clear()
                break
            del self.buf[:start]
            if len(self.buf) >= 2 and self.buf[1] == hdlc.FLAG:
                del self.buf[0]  # closing flag of the previous frame or an idle flag
                continue
            try:
                total = hdlc.frame_length(self.buf)
            except FrameError:
                del self.buf[0]
                continue
            if total is None or len(self.buf) < total:
                if len(self.buf) > self.MAX_BUFFER:
                    self.buf.clear()
                break
            raw = bytes(self.buf[:total])
            try:
                frame = hdlc.parse_frame(raw)
            except FrameError:
                del self.buf[0]  # damaged: a real meter stays silent; resync on the next flag
                continue
            del self.buf[:total]
            reply = self._frame(frame)
            if reply is not None:
                replies.append(reply)
        return replies

    def _frame(self, f: hdlc.Frame) -> Reply | None:
        try:
            logical, physical = hdlc.decode_server_address(f.dest)
            client = hdlc.decode_client_address(f.src)
        except FrameError:
            return None
        addr = (logical, physical)
        meter = self.meters.get(addr)
        if meter is None:
            return None  # another meter's frame (or a broadcast we do not answer)
        key = (addr, f.src)
        link = self.links.setdefault(key, _Link(self.servers[addr]))
        now = meter.now()
        # IEC 62056-46 inactivity timeout (СПОДЭС default 120 s): an idle link is closed and
        # the association with it; the next I-frame gets DM.
        limit = float(meter.options.get("inactivity_s", 120))
        if link.connected and link.seen is not None and (now - link.seen).total_seconds() > limit:
            link.connected = False
            link.server.associations.pop(client, None)
        link.seen = now
        if f.is_i and link.connected and link.last and (f.ns + 1) % 8 == link.vr:
            # A repeat of the previous request (our answer was lost on the line): answer again.
            return Reply(meter, link.last, checksum_at=len(link.last) - 3)
        out = self._link_step(link, f, client)
        if out is None:
            return None
        control, info, segmented = out
        frame = hdlc.build_frame(f.src, f.dest, control, info, segmented)
        link.last = frame
        return Reply(meter, frame, checksum_at=len(frame) - 3)

    def _link_step(self, link: _Link, f: hdlc.Frame, client: int) -> tuple[int, bytes, bool] | None:
        control = f.unnumbered
        if control == hdlc.SNRM:
            params = hdlc.parse_hdlc_parameters(f.info)
            limit = int(link.server.opts.get("max_info", hdlc.DEFAULT_MAX_INFO))
            link.max_tx = max(32, min(params.get(6, hdlc.DEFAULT_MAX_INFO), limit))
            max_rx = min(params.get(5, hdlc.DEFAULT_MAX_INFO), limit)
            link.connected, link.vs, link.vr, link.rx, link.tx = True, 0, 0, b"", []
            link.server.associations.pop(client, None)
            return hdlc.UA, hdlc.hdlc_parameters(link.max_tx, max_rx), False
        if control == hdlc.DISC:
            was = link.connected
            link.connected = False
            link.server.associations.pop(client, None)
            return (hdlc.UA if was else hdlc.DM), b"", False
        if not link.connected:
            return hdlc.DM, b"", False
        if f.is_i:
            if f.ns != link.vr:
                return hdlc.rr_control(link.vr), b"", False
            link.vr = (link.vr + 1) % 8
            link.rx += f.info
            if f.segmented:
                return hdlc.rr_control(link.vr), b"", False
            request, link.rx = link.rx, b""
            if request[:3] != hdlc.LLC_REQUEST:
                return hdlc.FRMR, b"", False
            answer = hdlc.LLC_RESPONSE + link.server.handle(client, request[3:])
            link.tx = [answer[i : i + link.max_tx] for i in range(0, len(answer), link.max_tx)]
            return self._send_segment(link)
        if f.is_rr:
            if link.tx:
                return self._send_segment(link)
            return hdlc.rr_control(link.vr), b"", False
        return hdlc.FRMR, b"", False

    def _send_segment(self, link: _Link) -> tuple[int, bytes, bool]:
        info = link.tx.pop(0)
        control = hdlc.i_control(link.vs, link.vr)
        link.vs = (link.vs + 1) % 8
        return control, info, bool(link.tx)


class WrapperSession:
    """One TCP connection speaking the IEC 62056-47 wrapper to one or more logical devices."""

    def __init__(self, meters: Mapping[int, SimMeter]):
        self.meters = dict(meters)
        self.servers = {wport: CosemServer(m) for wport, m in self.meters.items()}
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[Reply]:
        self.buf += data
        replies = []
        while len(self.buf) >= hdlc.WRAPPER_HEADER:
            try:
                src, dst, n = hdlc.parse_wrapper_header(bytes(self.buf[: hdlc.WRAPPER_HEADER]))
            except FrameError:
                self.buf.clear()  # not a wrapper stream: drop it, the client will time out
                break
            if len(self.buf) < hdlc.WRAPPER_HEADER + n:
                break
            apdu = bytes(self.buf[hdlc.WRAPPER_HEADER : hdlc.WRAPPER_HEADER + n])
            del self.buf[: hdlc.WRAPPER_HEADER + n]
            meter = self.meters.get(dst)
            if meter is None:
                continue
            answer = self.servers[dst].handle(src, apdu)
            replies.append(Reply(meter, hdlc.wrap(dst, src, answer)))
        return replies


def make_session_factory(
    meters: Mapping[int | str, SimMeter], *, transport: Literal["tcp", "serial"]
) -> SessionFactory:
    """Sessions for `meters` keyed by DLMS address (17 or "1/17", see address.py).
    Serial: HDLC, the server address is (logical, physical). TCP: the wrapper, the
    destination wPort is the logical device (one meter per logical address)."""
    parsed = {parse_address(k): m for k, m in meters.items()}
    if transport == "serial":
        return lambda: HdlcSession(parsed)
    if transport == "tcp":
        by_wport: dict[int, SimMeter] = {}
        for (logical, _physical), m in parsed.items():
            if logical in by_wport:
                raise ValueError(
                    f"two meters with logical device {logical} on one TCP wrapper endpoint; "
                    "serve them on separate ports"
                )
            by_wport[logical] = m
        return lambda: WrapperSession(by_wport)
    raise ValueError(f"transport must be 'tcp' or 'serial', not {transport!r}")
